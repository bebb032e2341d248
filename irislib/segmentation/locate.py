"""The eye in an image, crop or whole camera frame: the pupil by irislib's pupil tests, the limbus by Daugman's
integro-differential operator, refined on edge points.

The pupil is irislib's pupil-ellipse fit (metrics.pupil) on a block-averaged copy of the frame, refined at full
resolution on a window around it. The limbus is then the circle, centred near the pupil, across which the mean grey
level on the lateral arcs (within LATERAL_DEG of horizontal, where the lids rarely reach) rises most. In a whole
frame the per-ray limbus search of metrics.pupil can lock onto the eye corners (a dark sclera against bright skin);
an almond-shaped corner is no circle, so its step is smeared over the arcs' radii while the limbus's adds up. Every
pupil candidate gets its limbus searched and the one whose limbus rises most wins (a dark iris taken for a pupil has
only the eye corners around it). No pupil, no limbus, or a geometry no eye has is "no eye", with the reason.
"""
from __future__ import annotations

import math
from dataclasses import astuple

import numpy as np

from .eye import MAX_DECENTRATION, MIN_IRIS_SIDE, RATIO_RANGE, Eye, implausible

COARSE_SIDE = 200                # the first pass works on a copy whose shorter side is about this
LATERAL_DEG = 40.0               # the limbus arcs: within this angle of the horizontal, both sides
MIN_STEP = 0.03                  # least rise of the arcs' mean grey level (0-1) across the limbus: iris to sclera
MIN_IRIS_WIDTH = 1.15             # the limbus circle clears the pupil circle by this factor of its radius
REFINE_DEG = 45                  # the edge-point rays of the refinement: within this angle of the horizontal



def _candidates(grey: np.ndarray) -> list[tuple[tuple[float, ...], bool]]:
    """Dark candidate regions as pupils (cx, cy, equal-area radius, then the ellipse cx, cy, a, b, angle) in frame
    px, each with whether it passes irislib's pupil tests (metrics.pupil) other than its limbus test: found on a
    block-averaged copy when the frame is large (the tests are scale-free; small pixel i covers frame pixels
    i f .. i f + f - 1)."""
    from ..metrics.pupil import pupil_candidates_measured
    f = max(1, min(grey.shape) // COARSE_SIDE)
    h, w = grey.shape[0] // f, grey.shape[1] // f
    small = grey[:h * f, :w * f].reshape(h, f, w, f).mean(axis=(1, 3)) if f > 1 else grey
    out = []
    for m in pupil_candidates_measured(small, value_range=(0.0, 1.0)):
        if not np.isfinite([m.cx, m.cy, m.a, m.b]).all():
            continue
        cx, cy = m.cx * f + (f - 1) / 2, m.cy * f + (f - 1) / 2
        angle = float(m.angle_deg) if np.isfinite(m.angle_deg) else 0.0
        out.append(((cx, cy, math.sqrt(m.a * m.b) * f, cx, cy, m.a * f, m.b * f, angle),
                    set(m.rejected.split(",")) <= {"", "iris"}))     # its limbus is _limbus's to find, in the frame
    return out


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


def _limbus(grey: np.ndarray, pcx: float, pcy: float, rp: float, iris_range=None):
    """(cx, cy, r, rise) of the iris circle by the integro-differential operator, coarse then fine, or None; rise
    is the smaller side's step of the mean grey level across it (0-1). iris_range: (least, largest) radius."""
    lo, hi = rp / RATIO_RANGE[1], rp / RATIO_RANGE[0]
    if iris_range is not None:
        lo, hi = max(lo, iris_range[0]), min(hi, iris_range[1])
    lat = np.radians(np.linspace(-LATERAL_DEG, LATERAL_DEG, 41))
    best = None
    half_px = max(2.0, 0.02 * rp / RATIO_RANGE[0])      # the means compared: ~2 % of the largest iris, each side
    for span, n, dr in ((0.3 * rp, 7, 1.0), (0.1 * rp, 5, 0.25)):
        centre = (pcx, pcy) if best is None else best[:2]
        cx, cy = np.meshgrid(centre[0] + np.linspace(-span, span, n), centre[1] + np.linspace(-span, span, n))
        radii = np.arange(lo, hi, dr) if best is None else \
            np.arange(best[2] - 3 - half_px, best[2] + 3 + half_px, dr)
        cx, cy = cx.ravel(), cy.ravel()
        half = max(2, int(round(half_px / dr)))
        if len(radii) <= 2 * half:
            return None
        step = _circle_steps(grey, cx, cy, radii, lat, half)
        # only circles an eye can have around this pupil: the pupil inside with some iris all round (else the
        # pupil's own edge on one side passes for a limbus), the centres no further apart than MAX_DECENTRATION
        dist = np.hypot(cx - pcx, cy - pcy)[:, None]
        step[(radii[None, :] - dist < MIN_IRIS_WIDTH * rp) | (dist > MAX_DECENTRATION * radii[None, :])] = -np.inf
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


def find_eye(grey: np.ndarray, lenient: bool = False, iris_range=None) -> tuple[Eye | None, str]:
    """(the eye in a grey image [H, W] in [0, 1], "") or (None, why no eye was found).

    Every dark candidate that passes the pupil tests gets its limbus searched; of the geometries that pass
    eye.implausible, the pupil is the one whose limbus rises most (a whole dark iris taken for a pupil has only the
    eye corners around it). `lenient`: when no candidate passes the pupil tests, try them all (a blurred copy of
    an iris still has a boundary to unwrap, and must still be matched against its original). iris_range: the
    (least, largest) iris radius in px, when the frames of a set tell how large its irises are."""
    grey = np.asarray(grey, np.float32)
    every = _candidates(grey)
    cands = [p for p, passed in every if passed] or ([p for p, _ in every] if lenient else [])
    if not cands:
        return None, "no pupil (no dark region passes the pupil tests)"
    found, why = [], "no limbus (no circle around the pupil rises from iris to sclera on both sides)"
    for p in cands:
        lim = _limbus(grey, *p[:3], iris_range)
        if lim is None:
            continue
        eye = Eye(*p[3:], *lim[:3])
        reason = implausible(eye, grey.shape)
        if reason:
            why = reason
        else:
            found.append((lim[3], eye))
    if not found:
        return None, why
    _, eye = max(found, key=lambda c: c[0])
    iris = _refine(grey, eye.iris_cx, eye.iris_cy, eye.iris_r)
    refined = eye if iris is None else Eye(*astuple(eye)[:5], *(float(v) for v in iris))
    return (eye if implausible(refined, grey.shape) else refined), ""
