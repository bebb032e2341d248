"""The geometry segmentation finds (pupil ellipse, iris circle) and the tests any one eye's geometry must pass."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

MAX_DECENTRATION = 0.15         # pupil centre to iris centre, in iris radii (real eyes: a few % of the diameter)
RATIO_RANGE = (0.15, 0.8)        # pupil/iris radius ratios an eye can have (ISO/IEC 29794-6 accepts 0.2-0.7)
MIN_IRIS_SIDE = 1 / 20           # least iris radius, as a share of the image's shorter side


@dataclass(frozen=True)
class Eye:
    """Pupil ellipse (centre, semi-axes a >= b, direction of a in degrees) and iris circle, in image px (x right,
    y down, pixel centres at integers)."""
    pupil_cx: float
    pupil_cy: float
    pupil_a: float
    pupil_b: float
    pupil_angle_deg: float
    iris_cx: float
    iris_cy: float
    iris_r: float

    @property
    def pupil_r(self) -> float:
        """Equal-area pupil radius sqrt(a b)."""
        return math.sqrt(self.pupil_a * self.pupil_b)

    def row(self) -> dict:
        return {k: round(v, 2) for k, v in asdict(self).items()}


def implausible(eye: Eye, shape: tuple[int, int]) -> str:
    """"" if one eye's geometry is possible in an image of this shape, else why not."""
    ratio = eye.pupil_r / eye.iris_r
    off = math.hypot(eye.pupil_cx - eye.iris_cx, eye.pupil_cy - eye.iris_cy)
    if not RATIO_RANGE[0] <= ratio <= RATIO_RANGE[1]:
        return f"pupil/iris ratio {ratio:.2f} is outside {RATIO_RANGE[0]}-{RATIO_RANGE[1]}"
    if off + eye.pupil_a > eye.iris_r:
        return "the pupil reaches outside the iris"
    if off > MAX_DECENTRATION * eye.iris_r:
        return f"pupil centre {off / eye.iris_r:.2f} iris radii from the iris centre (over {MAX_DECENTRATION})"
    h, w = shape
    if eye.iris_r < MIN_IRIS_SIDE * min(h, w):
        return f"iris radius {eye.iris_r:.0f} px is under 1/20 of the image's shorter side"
    if not (0 <= eye.iris_cx <= w - 1 and 0 <= eye.iris_cy <= h - 1):
        return "the iris centre is outside the image"
    return ""
