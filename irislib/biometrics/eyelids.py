"""Image-space eyelid and specular-reflection masks for the rubber sheet (Masek / OSIRIS style).

Eyelids: edge points with a strong vertical gradient of the right sign (skin brighter than the iris it covers)
inside the iris annulus above / below the pupil (clear of the pupil edge), then RANSAC parabolas
y = p0 + p1 u + p2 u^2 (u = x - iris centre) with a bounded curvature, best first; the first one with enough
support that is not the limbus itself and has skin beyond it (brighter than the iris inside it) is the lid, and
everything beyond it (plus a margin for the lash line) is masked. Iris texture rings and the limbus above an open
eye have the same gradient sign; the contrast and limbus checks reject them. Glints: saturated or near-saturated
pixels grown by their blur. Pure numpy, deterministic (a seeded RANSAC).
"""
from __future__ import annotations

import numpy as np

from ..metrics.image_ops import bilinear, box_blur, dilate

GLINT_LEVEL = 254 / 255  # saturated glint cores (as normalize.SATURATED); their blurred rim is grown, not thresholded
GLINT_GROW_PX = 2       # a glint's blurred rim, px (square dilation)
LID_MARGIN_PX = 1.5     # the lid's own edge (lash line, blur) beyond the fitted curve, px
LID_CONTRAST = 0.08     # skin beyond a lid is brighter than the iris by at least this (unit grey, medians)
LIMBUS_PX = 1.5         # a curve whose edge points lie this close to the iris circle is the limbus
MAX_SLOPE = 0.6         # |dy/dx| at the iris centre: lids run roughly level across the eye (head roll < ~30 deg)
_RANSAC_TRIES = 300
_CANDIDATES = 4          # distinct RANSAC curves checked for skin beyond, best first
_INLIER_PX = 1.5


def glint_mask(img: np.ndarray, level: float = GLINT_LEVEL, grow: int = GLINT_GROW_PX) -> np.ndarray:
    """[H, W] True at saturated pixels and within `grow` px of them (a glint's blurred rim)."""
    return dilate(img >= level, grow)


def _edge_points(g: np.ndarray, gy: np.ndarray, bnd, upper: bool) -> tuple[np.ndarray, ...]:
    """Candidate lid edge points (x, y, strength): column-wise local maxima of the signed vertical gradient inside
    the annulus on one side of the pupil, away from the pupil edge (which has the same sign), and their distance
    inside the limbus circle, px."""
    h, w = g.shape
    s = -gy if upper else gy                                  # skin (brighter) above the upper lid / below the lower
    r = bnd.iris_r
    x0, x1 = max(int(bnd.iris_cx - r), 1), min(int(bnd.iris_cx + r) + 1, w - 1)
    y0, y1 = max(int(bnd.iris_cy - r), 1), min(int(bnd.iris_cy + r) + 1, h - 1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    rho, _ = bnd.rho_theta(xx, yy)
    d_lim = r - np.hypot(xx - bnd.iris_cx, yy - bnd.iris_cy)
    width = max(r - bnd.pupil_radius, 1.0)
    inside = (rho * width > max(3.0, 0.1 * width)) & (d_lim > 0.0)   # a lid may clip the iris just inside the limbus
    side = (yy < bnd.pupil_cy) if upper else (yy > bnd.pupil_cy)
    ss = s[y0:y1, x0:x1]
    peak = np.zeros_like(ss, bool)
    peak[1:-1] = (ss[1:-1] >= ss[:-2]) & (ss[1:-1] >= ss[2:])
    ok = inside & side & peak & (ss > 0)
    if not ok.any():
        return np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0)
    thr = max(0.02, 0.35 * float(np.quantile(ss[ok], 0.98)))
    ok &= ss > thr
    return xx[ok], yy[ok], ss[ok], d_lim[ok]


def _fit(u, y, wt):
    a = np.stack([np.ones_like(u), u, u * u], 1) * np.sqrt(wt)[:, None]
    return np.linalg.lstsq(a, y * np.sqrt(wt), rcond=None)[0]


def lid_contrast(g: np.ndarray, bnd, p, upper: bool) -> float:
    """Median grey of a band beyond the curve (skin, if it is a lid) minus that of the iris annulus on this side of
    it, both 2 px to R/4 from the curve."""
    h, w = g.shape
    r = bnd.iris_r
    x0, x1 = max(int(bnd.iris_cx - r), 0), min(int(bnd.iris_cx + r) + 1, w)
    y0, y1 = max(int(bnd.iris_cy - 1.5 * r), 0), min(int(bnd.iris_cy + 1.5 * r) + 1, h)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    rho, _ = bnd.rho_theta(xx, yy)
    u = xx - bnd.iris_cx
    d = yy - (p[0] + p[1] * u + p[2] * u * u)
    if upper:
        d = -d                                                # > 0 beyond the lid
    band = 2 + 0.25 * r
    gg = g[y0:y1, x0:x1]
    beyond = gg[(d > 2) & (d < band) & (np.abs(u) < 0.8 * r)]
    inside = gg[(d < -2) & (d > -band) & (rho > 0.1) & (rho < 0.9)]
    if beyond.size < 10 or inside.size < 10:
        return 0.0
    return float(np.median(beyond) - np.median(inside))


def _brighter_beyond(g, bnd, p, upper) -> bool:
    return lid_contrast(g, bnd, p, upper) > LID_CONTRAST


def fit_lid(img: np.ndarray, bnd, upper: bool, g: np.ndarray | None = None):
    """Parabola coefficients (p0, p1, p2) in u = x - iris_cx of the upper or lower lid, or None when no lid
    crosses the iris (too little edge support)."""
    if g is None:
        g = box_blur(img, 1)
    gy = np.zeros_like(g)
    gy[1:-1] = (g[2:] - g[:-2]) / 2
    x, y, s, d_lim = _edge_points(g, gy, bnd, upper)
    r = bnd.iris_r
    if len(x) < 6:
        return None
    u = x - bnd.iris_cx
    cmax = 0.5 / r                                            # lid margin radius >= the iris radius
    lo_c, hi_c = (-0.15 / r, cmax) if upper else (-cmax, 0.15 / r)
    rng = np.random.default_rng(0)
    n = len(x)
    hyps = []                                                 # (score, inliers) of each admissible hypothesis
    for _ in range(_RANSAC_TRIES):
        i = rng.choice(n, 3, replace=False)
        ui = u[i]
        if np.ptp(ui) < 0.2 * r:
            continue
        try:
            p = np.linalg.solve(np.stack([np.ones(3), ui, ui * ui], 1), y[i])
        except np.linalg.LinAlgError:
            continue
        if not lo_c <= p[2] <= hi_c or abs(p[1]) > MAX_SLOPE:
            continue
        inl = np.abs(p[0] + p[1] * u + p[2] * u * u - y) < _INLIER_PX
        hyps.append((float(s[inl].sum()), inl))
    hyps.sort(key=lambda h: -h[0])
    tried: list[np.ndarray] = []
    for _, best in hyps:
        if len(tried) >= _CANDIDATES:
            break
        if best.sum() < 6 or any((best & t).sum() > 0.5 * best.sum() for t in tried):
            continue                                          # too small, or the same curve as one already tried
        tried.append(best)
        p = _fit(u[best], y[best], s[best])
        inl = np.abs(p[0] + p[1] * u + p[2] * u * u - y) < _INLIER_PX
        if inl.sum() >= 6:
            p = _fit(u[inl], y[inl], s[inl])
        else:
            inl = best
        # Support: distinct columns with an inlier, against the iris width the curve runs across; then skin beyond.
        cols = len(np.unique(np.round(x[inl])))
        if cols < max(6, 0.15 * r) or np.ptp(u[inl]) < 0.3 * r:
            continue
        if np.quantile(d_lim[inl], 0.8) < LIMBUS_PX:           # the limbus itself (sclera above the iris)
            continue
        if _brighter_beyond(g, bnd, p, upper):
            return p
    return None


def lid_masks(img: np.ndarray, bnd, x: np.ndarray, y: np.ndarray, margin: float = LID_MARGIN_PX) -> np.ndarray:
    """True at sample points (x, y) beyond a detected upper or lower eyelid."""
    g = box_blur(img, 1)
    out = np.zeros(x.shape, bool)
    u = x - bnd.iris_cx
    for upper in (True, False):
        p = fit_lid(img, bnd, upper, g)
        if p is None:
            continue
        lid = p[0] + p[1] * u + p[2] * u * u
        out |= (y < lid + margin) if upper else (y > lid - margin)
    return out


def sample_mask(mask: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """An image-space mask looked up at sub-pixel points: True where any of the 4 pixels around is True."""
    v = bilinear(mask.astype(np.float32), x, y)
    return np.nan_to_num(v, nan=0.0) > 1e-3
