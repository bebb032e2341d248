"""Iris-centred crops of camera frames (data.crop = "iris"): the eye found by irislib.segmentation, then a square
centred on the iris whose side is a fixed multiple of the iris diameter, so every training image has the iris at the
same scale as the synthetic irises (diameter 60-90 % of the side; IRIS_CROP_SCALE puts it at 75 %). A frame with no
eye, an implausible one, or an iris far from the size of the other frames of its set (segmentation.set_outliers)
is skipped with the reason."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..segmentation import Eye, find_eye

IRIS_CROP_SCALE = 4 / 3          # crop side / iris diameter
LOCATOR_VERSION = "3"            # in crop=iris caches' fingerprint: bump when the boxes change (2: RANSAC, 3: skips)


@dataclass(frozen=True)
class FoundEye:
    """The geometry located in a frame (px, pixel centres at integers) and the square crop box it gives."""
    iris_cx: float
    iris_cy: float
    iris_r: float
    pupil_cx: float
    pupil_cy: float
    pupil_r: float
    left: int
    top: int
    size: int

    @classmethod
    def from_eye(cls, eye: Eye, scale: float = IRIS_CROP_SCALE) -> FoundEye:
        return cls(eye.iris_cx, eye.iris_cy, eye.iris_r, eye.pupil_cx, eye.pupil_cy, eye.pupil_r,
                   *crop_box(eye.iris_cx, eye.iris_cy, eye.iris_r, scale))

    def box(self) -> tuple[int, int, int]:
        return self.left, self.top, self.size

    def row(self) -> dict:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def crop_box(cx: float, cy: float, r: float, scale: float = IRIS_CROP_SCALE) -> tuple[int, int, int]:
    """The square (left, top, size) of side round(scale * 2r) whose centre is the iris centre (to half a px)."""
    size = max(2, int(round(scale * 2 * r)))
    return int(round(cx + 0.5 - size / 2)), int(round(cy + 0.5 - size / 2)), size


def locate_eye(grey: np.ndarray, scale: float = IRIS_CROP_SCALE) -> FoundEye | None:
    """The eye in a grey frame [H, W] in [0, 1] and its iris-centred crop box, or None when no eye is found
    (segmentation.find_eye says why)."""
    eye, _ = find_eye(grey)
    return None if eye is None else FoundEye.from_eye(eye, scale)
