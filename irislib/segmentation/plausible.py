"""Whether a found eye is one a camera could have taken, beside the other frames of its set, and a second look at
those that are not.

One frame's geometry can look like an eye and still be wrong: the eye opening taken for the limbus (1.4-1.8 times
the iris), the dark core inside a ring of LED glints taken for the pupil (the "iris" is then the real pupil). A
camera at a fixed distance sees irises of nearly one size, so each frame is compared with the median of the found
frames of its size (one camera). A frame far from it, or with no eye found, is searched again with the limbus held
to the set's range; what still fails is skipped with the reason, not cropped wrongly. The range: on 160
hand-annotated CASIA and MMU frames the locator's right answers were 0.78-1.13 of the median and its wrong ones
1.44-2.3 (eye opening, a dark iris taken for the pupil) or 0.29-0.53 (glint core); irislib's synthetic frames,
drawn at any distance, span 0.68-1.34.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable

import numpy as np

from .eye import Eye
from .locate import find_eye

SET_RADIUS_RANGE = (0.6, 1.35)    # iris radius / the median of the frames of the same size (see the docstring)
MIN_SET = 8                       # found frames of one size needed before their median is trusted


def set_medians(eyes: dict[str, Eye | None], shapes: dict[str, tuple[int, int]]) -> dict[tuple, tuple[float, int]]:
    """{frame shape: (median iris radius, frames)} over the found eyes, for shapes with at least MIN_SET."""
    groups = defaultdict(list)
    for name, eye in eyes.items():
        if eye is not None:
            groups[tuple(shapes[name])].append(eye.iris_r)
    return {s: (float(np.median(r)), len(r)) for s, r in groups.items() if len(r) >= MIN_SET}


def _outside(eye: Eye, median: float, n: int, shape) -> str:
    q = eye.iris_r / median
    if SET_RADIUS_RANGE[0] <= q <= SET_RADIUS_RANGE[1]:
        return ""
    return (f"iris radius {eye.iris_r:.0f} px is {q:.2f} x the median {median:.0f} px of the {n} {shape[1]}x"
            f"{shape[0]} frames (outside {SET_RADIUS_RANGE[0]}-{SET_RADIUS_RANGE[1]})")


def fit_set(found: dict[str, tuple[Eye | None, str, tuple[int, int]]], load: Callable[[str], np.ndarray],
            lenient: bool = False) -> dict[str, tuple[Eye | None, str]]:
    """{name: (eye, "") or (None, why)} for a set's frames, given find_eye's first answers (eye, why, shape) and a
    way to load a frame again (grey [H, W] in [0, 1]): frames whose iris is far from their size's median, or where
    no eye was found, are searched again within SET_RADIUS_RANGE of that median."""
    medians = set_medians({n: f[0] for n, f in found.items()}, {n: f[2] for n, f in found.items()})
    out = {}
    for name, (eye, why, shape) in found.items():
        shape = tuple(shape)
        if shape not in medians or why == "unreadable":
            out[name] = (eye, why)
            continue
        median, n = medians[shape]
        why = _outside(eye, median, n, shape) if eye is not None else why
        if not why:
            out[name] = (eye, "")
            continue
        again, _ = find_eye(load(name), lenient, (SET_RADIUS_RANGE[0] * median, SET_RADIUS_RANGE[1] * median))
        out[name] = (again, "") if again is not None and not _outside(again, median, n, shape) else (None, why)
    return out
