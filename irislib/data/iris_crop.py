"""Iris-centred crops of camera frames (data.crop = "iris"): find the pupil and the limbus, then a square centred
on the iris whose side is a fixed multiple of the iris diameter, so every training image has the iris at the same
scale as the synthetic irises (diameter 60-90 % of the side; IRIS_CROP_SCALE puts it at 75 %).

The pupil is irislib's pupil-ellipse fit (metrics.pupil) on a block-averaged copy of the frame, refined at full
resolution on a window around it. The limbus is then Daugman's integro-differential operator: the circle, centred
near the pupil, across which the mean grey level on the lateral arcs (within LATERAL_DEG of horizontal, where the
lids rarely reach) rises most. In a whole frame the per-ray limbus search of metrics.pupil can lock onto the eye
corners (a dark sclera against bright skin); an almond-shaped corner is no circle, so its step is smeared over the
arcs' radii while the limbus's adds up. A frame where no pupil is found, or whose geometry no eye has (pupil/iris
ratio outside 0.15-0.8, iris smaller than 1/20 of the shorter side), counts as "no eye found".
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

IRIS_CROP_SCALE = 4 / 3          # crop side / iris diameter
LOCATOR_VERSION = "2"            # in crop=iris caches' fingerprint: bump when locate_eye's boxes change (2: RANSAC)
COARSE_SIDE = 200                # the first pass works on a copy whose shorter side is about this
LATERAL_DEG = 40.0               # the limbus arcs: within this angle of the horizontal, both sides
MIN_STEP = 0.03                  # least rise of the arcs' mean grey level (0-1) across the limbus: iris to sclera
REFINE_DEG = 45                  # the edge-point rays of the refinement: within this angle of the horizontal
MAX_DECENTRATION = 0.15         # pupil centre to iris centre, in iris radii (real eyes: a few % of the diameter)
RATIO_RANGE = (0.15, 0.8)        # pupil/iris radius ratios the limbus search spans (ISO/IEC 29794-6: 0.2-0.7)


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

    def box(self) -> tuple[int, int, int]:
        return self.left, self.top, self.size

    def row(self) -> dict:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _candidates(grey: np.ndarray) -> list[tuple[tuple[float, float, float], bool]]:
    """Dark candidate regions as pupils (cx, cy, equal-area radius) in frame px, each with whether it passes
    irislib's pupil tests (metrics.pupil) other than its limbus test: found on a block-averaged copy when the frame is large (the tests are
    scale-free; small pixel i covers frame pixels i f .. i f + f - 1)."""
    from ..metrics.pupil import pupil_candidates_measured
    f = max(1, min(grey.shape) // COARSE_SIDE)
    h, w = grey.shape[0] // f, grey.shape[1] // f
    small = grey[:h * f, :w * f].reshape(h, f, w, f).mean(axis=(1, 3)) if f > 1 else grey
    return [((m.cx * f + (f - 1) / 2, m.cy * f + (f - 1) / 2, math.sqrt(m.a * m.b) * f),
             set(m.rejected.split(",")) <= {"", "iris"})      # its limbus is _limbus's to find, in the whole frame
            for m in pupil_candidates_measured(small, value_range=(0.0, 1.0)) if np.isfinite([m.cx, m.a, m.b]).all()]


def _arc_steps(grey, cx, cy, radii, th, half: int):
    """Rise of the mean grey level across each radius (mean of `half` samples outside minus inside) on the arcs at
    angles th around each centre: [n_centres, n_radii] (-inf where an arc is mostly outside the frame)."""
    from ..metrics.image_ops import bilinear
    h, w = grey.shape
    x = cx[:, None, None] + radii[None, :, None] * np.cos(th)[None, None, :]
    y = cy[:, None, None] + radii[None, :, None] * np.sin(th)[None, None, :]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    v = np.where(inside, bilinear(grey, np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)), 0.0)
    n = inside.sum(2)
    mean = np.where(n >= 0.5 * len(th), v.sum(2) / np.maximum(n, 1), np.nan)          # [C, R]
    c = np.concatenate([np.zeros((len(mean), 1)), np.cumsum(np.nan_to_num(mean), 1)], 1)
    step = np.full(mean.shape, -np.inf)
    i = np.arange(half, mean.shape[1] - half)
    step[:, i] = (c[:, i + half + 1] - c[:, i + 1] - (c[:, i] - c[:, i - half])) / half
    bad = ~np.isfinite(mean)
    for k in range(-half, half + 1):             # a window that touches an unmeasured arc is no evidence
        step[np.roll(bad, k, axis=1)] = -np.inf
    return step


def _circle_steps(grey, cx, cy, radii, lat, half: int):
    """The smaller of the right arc's and the left arc's rise: a circle must have its edge on both sides (one
    side's edge alone also fits a larger circle reaching out of the frame, or an eye corner)."""
    return np.minimum(_arc_steps(grey, cx, cy, radii, lat, half), _arc_steps(grey, cx, cy, radii, np.pi + lat, half))


def _limbus(grey: np.ndarray, pcx: float, pcy: float, rp: float):
    """(cx, cy, r, rise) of the iris circle by the integro-differential operator, coarse then fine, or None; rise
    is the smaller side's step of the mean grey level across it (0-1)."""
    lat = np.radians(np.linspace(-LATERAL_DEG, LATERAL_DEG, 41))
    best = None
    half_px = max(2.0, 0.02 * rp / RATIO_RANGE[0])      # the means compared: ~2 % of the largest iris, each side
    for span, n, dr in ((0.3 * rp, 7, 1.0), (0.1 * rp, 5, 0.25)):
        centre = (pcx, pcy) if best is None else best[:2]
        cx, cy = np.meshgrid(centre[0] + np.linspace(-span, span, n), centre[1] + np.linspace(-span, span, n))
        radii = np.arange(rp / RATIO_RANGE[1], rp / RATIO_RANGE[0], dr) if best is None else \
            np.arange(best[2] - 3 - half_px, best[2] + 3 + half_px, dr)
        cx, cy = cx.ravel(), cy.ravel()
        half = max(2, int(round(half_px / dr)))
        step = _circle_steps(grey, cx, cy, radii, lat, half)
        if not np.isfinite(step).any() or step.max() < MIN_STEP:
            return None
        c, k = np.unravel_index(np.argmax(step), step.shape)
        r = radii[k]
        if 0 < k < len(radii) - 1 and np.isfinite(step[c, k - 1:k + 2]).all():      # parabola through the peak
            y0, y1, y2 = step[c, k - 1:k + 2]
            den = y0 - 2 * y1 + y2
            r += 0.5 * dr * (y0 - y2) / den if den < 0 else 0.0
        best = (float(cx[c]), float(cy[c]), float(r), float(step[c, k]))
    return best


def _refine(grey: np.ndarray, cx: float, cy: float, r: float):
    """The circle through the limbus edge points near (cx, cy, r): on rays within REFINE_DEG of the horizontal,
    the steepest rise within 6 % of r, then a robust circle fit (the arcs' mean pins the radius; single rays pin
    the centre, which the near-horizontal arcs leave loose vertically). None if it strays from the arcs' circle."""
    from ..metrics.fit import _ransac_circle, _robust_keep, fit_circle
    from ..metrics.image_ops import bilinear
    lat = np.radians(np.linspace(-REFINE_DEG, REFINE_DEG, 2 * REFINE_DEG // 2 + 1))
    th = np.concatenate([lat, np.pi + lat])
    rr = np.arange(0.9 * r, 1.1 * r, 0.25)
    x, y = cx + rr[None, :] * np.cos(th)[:, None], cy + rr[None, :] * np.sin(th)[:, None]
    h, w = grey.shape
    ok = ((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)).all(1)
    if ok.sum() < 8:
        return None
    prof = bilinear(grey, np.clip(x[ok], 0, w - 1), np.clip(y[ok], 0, h - 1))
    k = max(2, int(round(0.015 * r / 0.25)))
    c = np.concatenate([np.zeros((len(prof), 1)), np.cumsum(prof, 1)], 1)
    i = np.arange(k, prof.shape[1] - k)
    step = (c[:, i + k + 1] - c[:, i + 1] - (c[:, i] - c[:, i - k])) / k
    step[:, np.abs(rr[i] / r - 1) > 0.06] = -np.inf
    j = i[np.argmax(step, 1)]
    px, py = x[ok][np.arange(len(j)), j], y[ok][np.arange(len(j)), j]
    keep = _ransac_circle(px, py, tol=max(0.5, 0.005 * r))    # eyelid crossings: a minority arc, dropped
    circ = fit_circle(px[keep], py[keep])
    for _ in range(2):
        if circ is None:
            return None
        keep = _robust_keep(np.hypot(px - circ[0], py - circ[1]) - circ[2], max(0.5, 0.01 * circ[2]))
        circ = fit_circle(px[keep], py[keep])
    if circ is None or abs(circ[2] / r - 1) > 0.04 or np.hypot(circ[0] - cx, circ[1] - cy) > 0.06 * r:
        return None
    return circ


def crop_box(cx: float, cy: float, r: float, scale: float = IRIS_CROP_SCALE) -> tuple[int, int, int]:
    """The square (left, top, size) of side round(scale * 2r) whose centre is the iris centre (to half a px)."""
    size = max(2, int(round(scale * 2 * r)))
    return int(round(cx + 0.5 - size / 2)), int(round(cy + 0.5 - size / 2)), size


def locate_eye(grey: np.ndarray, scale: float = IRIS_CROP_SCALE) -> FoundEye | None:
    """The eye in a grey frame [H, W] in [0, 1] and its iris-centred crop box, or None when no eye is found.

    Every dark candidate that passes the pupil tests gets its limbus searched; the pupil is the one whose limbus
    rises most (a whole dark iris taken for a pupil has only the eye corners around it)."""
    grey = np.asarray(grey, np.float32)
    found = []
    for p, passed in _candidates(grey):
        lim = _limbus(grey, *p) if passed else None
        if lim is not None and lim[2] >= min(grey.shape) / 20 and RATIO_RANGE[0] <= p[2] / lim[2] <= RATIO_RANGE[1] \
                and math.hypot(lim[0] - p[0], lim[1] - p[1]) <= MAX_DECENTRATION * lim[2]:
            found.append((passed, lim[3], p, lim[:3]))
    if not found:
        return None
    _, _, p, iris = max(found, key=lambda c: c[1])
    iris = _refine(grey, *iris) or iris
    left, top, size = crop_box(*iris, scale)
    return FoundEye(*(float(v) for v in iris), *(float(v) for v in p), left, top, size)
