"""Pupil and iris geometry of one NIR eye image: segmentation, sub-pixel boundary, ellipse fit, edge width, limbus.

Pipeline (numpy only): normalise to [0, 1] -> threshold the dark part at a few levels -> close (bridges glints),
fill holes, open (cuts eyelashes) -> connected components -> pick the darkest large compact central blob (on a
block-averaged copy for images over 256 px) -> cast rays from its centre and take the 50 % crossing between the pupil
level and the local iris level on each (bilinear samples, linear interpolation) -> drop rays that touch a glint ->
robust direct least-squares ellipse (Halir & Flusser 1998) -> re-cast from the ellipse centre. The 10-90 % rise on
the same rays gives the edge width. The limbus is the strongest sustained brightening beyond the pupil on the rays
within 60 degrees of horizontal (eyelids hide top and bottom); a seeded RANSAC circle drops eyelid crossings.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, fields

import numpy as np

from .edge import WIDTH_PER_SIGMA, fit_edge_profile, sector_widths
from .fit import _ransac_circle, _robust_keep, fit_circle, fit_ellipse, radial_residuals  # noqa: F401
from .image_ops import (bilinear, box_blur, dilate, erode, fill_holes, label_components,  # noqa: F401
                        otsu_threshold)

N_RAYS = 96           # rays cast from the pupil centre
N_SECTORS = 16        # angular sectors with their own edge width (local bleeding)
STEP_PX = 0.25        # sampling step along a ray
LIMBUS_MAX_DEG = 60.  # rays within this angle of horizontal look for the limbus
NAN = float("nan")


@dataclass
class PupilMeasurement:
    """Geometry of one image in pixel coordinates (x right, y down); all NaN and found=False if no pupil."""
    found: bool = False
    cx: float = NAN                  # pupil ellipse centre
    cy: float = NAN
    a: float = NAN                   # semi-axes, a >= b
    b: float = NAN
    angle_deg: float = NAN           # direction of the a axis, degrees in [0, 180), y down
    axis_ratio: float = NAN          # b / a (1 = round)
    ellipse_residual: float = NAN    # RMS radial residual of the boundary points / mean radius
    edge_width_px: float = NAN       # median over rays of the 10-90 % rise distance across the pupil edge
    edge_width_p90_px: float = NAN   # 90th percentile of the same (local bleeding shows here first)
    outlier_fraction: float = NAN    # share of glint-free boundary points left out of the ellipse fit
    pupil_radius: float = NAN        # equal-area radius sqrt(a * b) (the generator's definition)
    iris_cx: float = NAN             # limbus circle
    iris_cy: float = NAN
    iris_radius: float = NAN
    pupil_iris_ratio: float = NAN    # pupil_radius / iris_radius
    concentricity: float = NAN       # |pupil centre - iris centre| / iris_radius
    n_points: int = 0                # boundary points used for the ellipse

    def as_dict(self) -> dict:
        """Plain dict (JSON-ready floats)."""
        return asdict(self)


MEASURE_NAMES = tuple(f.name for f in fields(PupilMeasurement) if f.name not in ("found", "n_points"))


def to_unit_image(image, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Any eye image -> float64 [H, W] in [0, 1].

    Accepts numpy or torch, [H, W], [1|3, H, W] or [H, W, 1|3] (channels averaged). uint8 / uint16 are divided by their
    maximum; floats use `value_range` if given, else [-1, 1] when the minimum is below -1e-3, else [0, 1].
    """
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = img.mean(axis=0)
    elif img.ndim == 3 and img.shape[-1] in (1, 3):
        img = img.mean(axis=-1) if img.dtype.kind == "f" else img[..., :3].astype(np.float64).mean(axis=-1)
    if img.ndim != 2:
        raise ValueError(f"image has shape {tuple(np.shape(image))}; pass one image [H, W], [C, H, W] or [H, W, C]")
    if value_range is None:
        if np.asarray(image).dtype == np.uint8:
            value_range = (0.0, 255.0)
        elif np.asarray(image).dtype == np.uint16:
            value_range = (0.0, 65535.0)
        else:
            finite = img[np.isfinite(img)]
            value_range = (-1.0, 1.0) if finite.size and finite.min() < -1e-3 else (0.0, 1.0)
    lo, hi = value_range
    return np.clip((img.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0)


# ----------------------------------------------------------------------------------------------- image helpers
def _best_component(mask: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The most pupil-like 4-connected component of `mask` -> (mask, shape score): large, solid, round-ish,
    central, not touching the border."""
    h, w = mask.shape
    lab, n = label_components(mask)
    if n == 0:
        return None
    area = np.bincount(lab[mask], minlength=n).astype(float)
    ys, xs = np.nonzero(mask)
    ids = lab[mask]
    mx, my = np.bincount(ids, xs, n) / area, np.bincount(ids, ys, n) / area
    vxx = np.bincount(ids, (xs - mx[ids]) ** 2, n) / area + 1 / 12
    vyy = np.bincount(ids, (ys - my[ids]) ** 2, n) / area + 1 / 12
    vxy = np.bincount(ids, (xs - mx[ids]) * (ys - my[ids]), n) / area
    tr, det = vxx + vyy, np.maximum(vxx * vyy - vxy ** 2, 1e-12)
    disc = np.sqrt(np.maximum(tr ** 2 / 4 - det, 0))
    elong = np.sqrt(np.maximum(tr / 2 - disc, 1e-12) / (tr / 2 + disc))           # minor/major axis of the blob
    fill = np.minimum(area / (4 * math.pi * np.sqrt(det)), 1.0)                  # 1 for a solid ellipse
    dist = np.hypot(mx - (w - 1) / 2, my - (h - 1) / 2) / (0.5 * min(h, w))
    touches = np.zeros(n, bool)
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    touches[border[border >= 0]] = True
    score = np.sqrt(area) * elong * fill ** 2 * np.exp(-2 * dist ** 2) * np.where(touches, 0.2, 1.0)
    score[area < max(8, 2e-4 * h * w)] = 0
    best = int(np.argmax(score))
    return (lab == best, float(score[best])) if score[best] > 0 else None


def segment_pupil(img: np.ndarray) -> np.ndarray | None:
    """Boolean mask [H, W] of the pupil blob (glint holes filled), or None if no plausible blob.

    Tries a few dark thresholds (between the darkest pixels and the median, and Otsu on the darker half), keeps the
    most pupil-like component of each, and picks the candidate with the best shape x contrast to its surrounding ring
    (a threshold that also takes in dark iris gives a low-contrast, ragged blob) x darkness (the iris is a round blob
    too, but a grey one)."""
    h, w = img.shape
    smooth = box_blur(img, 1)
    med = np.median(smooth)
    p0s = [np.percentile(smooth, 0.5)]
    p_tiny = np.percentile(smooth, 0.02)                # a small pupil in a large frame is < 0.5 % of it
    if p0s[0] - p_tiny > 0.05:
        p0s.append(p_tiny)
    p0 = p0s[-1]
    if med - p0 < 0.05:
        return None
    r_open, r_close = max(1, round(min(h, w) / 128)), max(1, round(min(h, w) / 64))
    best, best_score = None, 0.0
    thresholds = [q + f * (med - q) for q in p0s for f in (0.2, 0.35, 0.5)]
    for t in (*thresholds, otsu_threshold(smooth[smooth <= med])):
        # Closing + hole filling bridge glints (a ring of them splits the pupil); opening cuts eyelashes.
        mask = erode(dilate(smooth <= t, r_close), r_close + r_open)
        cand = _best_component(fill_holes(dilate(mask, r_open)))
        if cand is None:
            continue
        blob = cand[0]
        k = max(2, int(round(0.2 * math.sqrt(blob.sum() / math.pi))))
        ring = dilate(blob, 2 * k) & ~dilate(blob, k)
        if not ring.any():
            continue
        inside = np.median(smooth[blob])
        darkness = (med - inside) / (med - p0)                          # ~1 for the pupil, ~0.4 for a whole iris
        score = cand[1] * (np.median(smooth[ring]) - inside) * max(darkness, 0) ** 4
        if score > best_score:
            best, best_score = blob, score
    return best


# ----------------------------------------------------------------------------------------------- ellipse / circle
def _first_stable_crossing(p: np.ndarray, level: np.ndarray, run: int = 5) -> np.ndarray:
    """Per row of p [N, M]: first index i > 0 with p[i:i+run] all >= level [N] (p[0] must be below), else -1."""
    ok = np.nan_to_num(p, nan=-np.inf) >= level[:, None]
    stable = np.lib.stride_tricks.sliding_window_view(ok, run, axis=1).all(axis=2)   # [N, M - run + 1]
    i = np.where(stable.any(axis=1), stable.argmax(axis=1), -1)
    return np.where(ok[:, 0], -1, i)


def _interp_cross(p: np.ndarray, rr: np.ndarray, i: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Per row: radius where p [N, M] crosses level [N] between samples i-1 and i (i >= 1)."""
    rows = np.arange(len(i))
    p0, p1 = p[rows, i - 1], p[rows, i]
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.clip(np.nan_to_num((level - p0) / (p1 - p0)), 0.0, 1.0)
    return rr[i - 1] + f * (rr[i] - rr[i - 1])


def _nanmedian_rows(v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median of v over mask per row [N] (NaN where a row has no finite value)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)               # all-NaN rows are expected (rejected rays)
        return np.nanmedian(np.where(mask, v, np.nan), axis=1)


def _edges(prof, glint, rr, pupil_level, iris_level, r0, sigma=0.0):
    """Pupil edge on every ray profile [N, M] -> (valid [N], r50 [N], 10-90 width [N], local iris level [N]).

    The local iris level is the median from max(1.5, 2.5 sigma) px past the crossing over max(3, 0.4 r0, 2 sigma)
    px: with the fitted edge sigma it lies on the plateau even for a wide edge."""
    n = len(prof)
    p = np.where(glint, pupil_level, prof)                 # glints inside the pupil count as pupil
    lvl = np.full(n, iris_level)
    ok = np.ones(n, bool)
    for _ in range(2):                                     # global iris level first, then the local one
        i = _first_stable_crossing(p, (pupil_level + lvl) / 2)
        ok &= i > 0
        i = np.maximum(i, 1)
        r50 = _interp_cross(p, rr, i, (pupil_level + lvl) / 2)
        start = max(1.5, 2.5 * sigma)
        win = (rr >= r50[:, None] + start) & (rr <= r50[:, None] + start + max(3.0, 0.4 * r0, 2 * sigma)) & ~glint
        lvl = _nanmedian_rows(prof, win)
        ok &= np.isfinite(lvl)
        lvl = np.where(ok, lvl, iris_level)
    contrast = lvl - pupil_level
    # Glints inside the pupil were replaced by the pupil level; one at or just outside the edge moves the crossing.
    near = (rr >= r50[:, None] - 1.5) & (rr <= r50[:, None] + 2.0 + 0.25 * r0)
    ok &= (contrast >= 0.5 * (iris_level - pupil_level)) & ~(glint & near).any(axis=1)   # eyelid/glint: not an edge
    # 10-90 % rise: last sample below 10 % before the 50 % crossing, first one above 90 % after it.
    idx = np.arange(p.shape[1])
    lo, hi = pupil_level + 0.1 * contrast, pupil_level + 0.9 * contrast
    below = (p < lo[:, None]) & (idx <= i[:, None])
    above = (np.nan_to_num(p, nan=-np.inf) >= hi[:, None]) & (idx >= i[:, None])
    has = below.any(axis=1) & above.any(axis=1)
    j10 = np.minimum(p.shape[1] - 1 - below[:, ::-1].argmax(axis=1) + 1, p.shape[1] - 1)
    j90 = np.maximum(above.argmax(axis=1), 1)
    width = _interp_cross(p, rr, j90, hi) - _interp_cross(p, rr, j10, lo)
    return ok, r50, np.where(has & ok, width, np.nan), lvl


def _glints(img, blob, iris_level, r0):
    """Specular spots near the pupil [H, W]: small components much brighter than the iris (dilated by 1 px);
    large bright regions (sclera, skin) are never glints."""
    h, w = img.shape
    ys, xs = np.nonzero(blob)
    cx, cy = xs.mean(), ys.mean()
    yy, xx = np.mgrid[:h, :w]
    near = np.hypot(xx - cx, yy - cy) <= 1.3 * r0 + 3
    vmax = float(img[near].max())
    if vmax - iris_level < 0.15:
        return np.zeros_like(blob)
    bright = img > iris_level + 0.5 * (vmax - iris_level)
    lab, n = label_components(bright)
    ids = lab[bright]
    area = np.bincount(ids, minlength=n)
    mx, my = np.bincount(ids, xx[bright], n) / area, np.bincount(ids, yy[bright], n) / area
    small = (area <= max(12, 0.25 * blob.sum())) & (np.hypot(mx - cx, my - cy) <= 1.3 * r0 + 3)
    return dilate(np.isin(lab, np.flatnonzero(small)), 1)


def _levels(img, blob, r0):
    """Global pupil level, iris level (ring just outside the blob) and glint mask [H, W]."""
    inner = erode(blob, max(1, int(r0 / 4)))
    k1 = max(2, int(round(0.15 * r0)))
    ring = dilate(blob, k1 + max(2, int(round(0.25 * r0)))) & ~dilate(blob, k1)
    iris = float(np.median(img[ring])) if ring.any() else float(np.median(img))
    glint = _glints(img, blob, iris, r0)
    pupil0 = float(np.median(img[inner if inner.any() else blob]))
    # Bright pixels well inside the pupil are glints too, also blurred ones that open onto the iris (not holes).
    ys, xs = np.nonzero(blob)
    yy, xx = np.mgrid[:img.shape[0], :img.shape[1]]
    inside = erode(blob, 2) | (np.hypot(xx - xs.mean(), yy - ys.mean()) < 0.7 * r0)
    glint |= dilate(inside & (img > (pupil0 + iris) / 2), 1)
    pupil_px = img[(inner if inner.any() else blob) & ~glint]
    pupil = float(np.median(pupil_px)) if pupil_px.size else float(np.median(img[blob]))
    return pupil, iris, glint


def _cast(img, glint, cx, cy, th, r_max, step=STEP_PX):
    """Bilinear profiles along rays at angles th [N] from (cx, cy) -> (th, radii [M], profiles [N, M], glint [N, M])."""
    h, w = img.shape
    th = 2 * math.pi * np.arange(th) / th if np.isscalar(th) else th
    rr = np.arange(0.0, r_max, step)
    xs = cx + np.cos(th)[:, None] * rr                   # [N, M]
    ys = cy + np.sin(th)[:, None] * rr
    prof = bilinear(img, xs, ys)
    g = glint[np.clip(np.round(ys).astype(int), 0, h - 1), np.clip(np.round(xs).astype(int), 0, w - 1)]
    return th, rr, prof, g


def _pupil_boundary(img, glint, cx, cy, r0, pupil_level, iris_level, n_rays, sigma=0.0):
    """Boundary points seen from (cx, cy) -> (angles, r50, x, y, widths) of the valid rays, or None."""
    th, rr, prof, g = _cast(img, glint, cx, cy, n_rays, 2.5 * r0 + 12 + 8 * sigma)
    ok, r50, width, _ = _edges(prof, g, rr, pupil_level, iris_level, r0, sigma)
    if not ok.any():
        return None
    th, r50, width = th[ok], r50[ok], width[ok]
    return th, r50, cx + r50 * np.cos(th), cy + r50 * np.sin(th), width


def _fit_robust(x, y, r_scale):
    """Ellipse fit with two rounds of outlier rejection -> (ellipse, inlier mask) or (None, None)."""
    keep = np.ones(len(x), bool)
    ell = None
    for _ in range(3):
        ell = fit_ellipse(x[keep], y[keep])
        if ell is None:
            return None, None
        new = _robust_keep(radial_residuals(x, y, ell), max(0.5, 0.02 * r_scale))
        if new.sum() < 6 or np.array_equal(new, keep):
            break
        keep = new
    return ell, keep


def _ellipse_radius(ell, th: np.ndarray) -> np.ndarray:
    """Radius of the ellipse from its centre in directions th."""
    _, _, a, b, angle = ell
    phi = th - math.radians(angle)
    return a * b / np.sqrt((b * np.cos(phi)) ** 2 + (a * np.sin(phi)) ** 2)


def _limbus_points(img, glint, ell, edge_width, n_rays):
    """Limbus radii on the horizontal-ish rays from the pupil centre: the strongest sustained brightening beyond the
    pupil edge, placed at the 50 % crossing between the medians on either side -> (angles, radii)."""
    th = 2 * math.pi * np.arange(n_rays) / n_rays
    th = th[np.abs(np.cos(th)) >= math.cos(math.radians(LIMBUS_MAX_DEG))]
    step_px = 0.5
    _, rr, prof, g = _cast(img, glint, ell[0], ell[1], th, math.hypot(*img.shape), step_px)
    p = np.where(g, np.nan, prof)                                  # [N, M]
    hs = max(3, int(min(img.shape) / 40 / step_px))                # half-window in samples (~3 px at 128 px)
    valid = np.isfinite(p)
    c = np.concatenate([np.zeros((len(p), 1)), np.cumsum(np.nan_to_num(p), axis=1)], axis=1)
    cv = np.concatenate([np.zeros((len(p), 1)), np.cumsum(valid, axis=1)], axis=1)
    i = np.arange(hs, p.shape[1] - hs - 1)
    step = (c[:, i + 1 + hs] - c[:, i + 1] - c[:, i] + c[:, i - hs]) / hs            # mean after - mean before
    full = (cv[:, i + 1 + hs] - cv[:, i + 1] + cv[:, i] - cv[:, i - hs]) == 2 * hs
    start = (_ellipse_radius(ell, th) + 2 + 1.5 * np.nan_to_num(edge_width, nan=2.0)) / step_px
    step = np.where(full & (i - hs >= start[:, None]), step, -np.inf)         # both windows beyond the pupil edge
    j = i[np.argmax(step, axis=1)]
    ok = step.max(axis=1) >= 0.03
    idx = np.arange(p.shape[1])
    lo = _nanmedian_rows(p, (idx >= (j - hs)[:, None]) & (idx < j[:, None]))
    hi = _nanmedian_rows(p, (idx > j[:, None]) & (idx <= (j + hs)[:, None]))
    level = (lo + hi) / 2
    up = (np.nan_to_num(p, nan=-np.inf) >= level[:, None]) & (idx >= (j - hs)[:, None]) & (idx < (j + hs)[:, None])
    k = up.argmax(axis=1)
    ok &= up.any(axis=1) & (k > j - hs)
    return th[ok], _interp_cross(p, rr, np.maximum(k, 1), level)[ok]


def _iris_circle(img, glint, ell, edge_width, n_rays):
    """Robust circle through the limbus points -> (cx, cy, r) or None (needs points on both sides)."""
    th, r = _limbus_points(img, glint, ell, edge_width, n_rays)
    if len(r) < 6:
        return None
    x, y = ell[0] + r * np.cos(th), ell[1] + r * np.sin(th)
    keep = _ransac_circle(x, y, tol=max(0.6, 0.01 * np.median(r)))
    for _ in range(2):
        circ = fit_circle(x[keep], y[keep])
        if circ is None:
            return None
        keep = _robust_keep(np.hypot(x - circ[0], y - circ[1]) - circ[2], max(1.0, 0.02 * circ[2]))
    left, right = (np.cos(th[keep]) < 0).sum(), (np.cos(th[keep]) > 0).sum()
    return fit_circle(x[keep], y[keep]) if min(left, right) >= 3 else None


def _segment_scaled(img: np.ndarray, max_side: int = 256) -> np.ndarray | None:
    """segment_pupil on a block-averaged copy when the image is large (640x480 -> 213x160), mask back at full size;
    the rays then refine the boundary at full resolution."""
    f = math.ceil(max(img.shape) / max_side)
    if f == 1:
        return segment_pupil(img)
    h, w = img.shape[0] // f, img.shape[1] // f
    small = segment_pupil(img[:h * f, :w * f].reshape(h, f, w, f).mean(axis=(1, 3)))
    if small is None:
        return None
    blob = np.zeros(img.shape, bool)
    blob[:h * f, :w * f] = np.repeat(np.repeat(small, f, axis=0), f, axis=1)
    # Re-threshold at full resolution halfway between pupil and surrounding ring (the coarse mask is ~f px too big).
    inner, ring = erode(blob, f), dilate(blob, 3 * f) & ~dilate(blob, f)
    if not inner.any() or not ring.any():
        return blob
    level = (np.median(img[inner]) + np.median(img[ring])) / 2
    fine = fill_holes(dilate(blob, f) & (box_blur(img, 1) <= level))
    return fine if fine.sum() >= 0.3 * blob.sum() else blob


def _ellipse_pass(img, glint, cx, cy, r0, levels, n_rays, sigma):
    """One ray pass from (cx, cy) and the robust ellipse fit -> (ellipse, inlier mask, boundary) or None."""
    bnd = _pupil_boundary(img, glint, cx, cy, r0, *levels, n_rays, sigma)
    if bnd is None or len(bnd[0]) < max(8, 0.3 * n_rays):
        return None
    ell, keep = _fit_robust(bnd[2], bnd[3], r0)
    if ell is None or not (0 <= ell[0] < img.shape[1] and 0 <= ell[1] < img.shape[0]) or ell[2] > max(img.shape):
        return None
    return ell, keep, bnd


def _edge_pixels(img, glint, ell, bnd, n_rays):
    """Glint-free pixels in the sectors of the valid rays (eyelids, lashes and glints at the edge stay out, as on
    the rays) -> (distance past the boundary [P], value [P], angle [P]).

    The distance is radial, to the boundary traced by the rays (interpolated between them), not to the ellipse: a
    lobed but sharp outline keeps its sharp edge; its shape is the ellipse residual's business."""
    h, w = img.shape
    yy, xx = np.mgrid[:h, :w]
    dx, dy = xx - ell[0], yy - ell[1]
    th = np.arctan2(dy, dx)
    tb = np.arctan2(bnd[3] - ell[1], bnd[2] - ell[0])
    ray = np.round(th / (2 * math.pi) * n_rays).astype(int) % n_rays
    valid = np.zeros(n_rays, bool)
    valid[np.round(tb / (2 * math.pi) * n_rays).astype(int) % n_rays] = True
    sel = valid[ray] & ~glint
    o = np.argsort(tb)
    rb = np.interp(th[sel], tb[o], np.hypot(bnd[2] - ell[0], bnd[3] - ell[1])[o], period=2 * math.pi)
    return np.hypot(dx, dy)[sel] - rb, img[sel], th[sel]


def _edge_widths(img, glint, ell, bnd, n_rays, sigma0, sectors=True):
    """Erf fit to the median radial profile (see `fit_edge_profile`) and the per-sector widths -> (fit, widths)."""
    d, v, th = _edge_pixels(img, glint, ell, bnd, n_rays)
    r0 = math.sqrt(ell[2] * ell[3])
    fit = fit_edge_profile(d, v, r0, sigma0)
    if fit is None or not sectors:
        return fit, np.full(N_SECTORS, np.nan)
    sector = np.floor((th + math.pi) / (2 * math.pi) * N_SECTORS).astype(int) % N_SECTORS
    return fit, sector_widths(d, v, sector, fit, N_SECTORS, r0)


def measure_pupil(image, *, value_range: tuple[float, float] | None = None,
                  n_rays: int = N_RAYS) -> PupilMeasurement:
    """Measure the pupil ellipse, its edge width and the iris circle of one eye image (never raises on content).

    `image`: numpy/torch [H, W], [1|3, H, W] or [H, W, 1|3]; see `to_unit_image` for how the value range is found.
    """
    img = to_unit_image(image, value_range)
    if not np.isfinite(img).all() or min(img.shape) < 16:
        return PupilMeasurement()
    blob = _segment_scaled(img)
    if blob is None:
        return PupilMeasurement()
    ys, xs = np.nonzero(blob)
    cx, cy, r0 = xs.mean(), ys.mean(), math.sqrt(blob.sum() / math.pi)
    levels = _levels(img, blob, r0)
    glint = levels[2]
    levels = levels[:2]
    if levels[1] - levels[0] < 0.05:
        return PupilMeasurement()
    fit, sigma, sectors = None, 0.0, np.full(N_SECTORS, np.nan)
    for k in range(3):     # 2nd pass re-casts from the fitted centre, 3rd with the fitted edge's levels and reach
        out = _ellipse_pass(img, glint, cx, cy, r0, levels, n_rays, sigma)
        if out is None:
            return PupilMeasurement()
        ell, keep, bnd = out
        th, r50, x, y, width = bnd
        cx, cy, r0 = ell[0], ell[1], math.sqrt(ell[2] * ell[3])    # equal-area radius
        if k >= 1:
            sigma0 = np.nanmedian(width) / WIDTH_PER_SIGMA if np.isfinite(width).any() else 0.6
            new, sectors = _edge_widths(img, glint, ell, bnd, n_rays, sigma if fit else sigma0, sectors=k == 2)
            fit = new or fit
            if fit is not None:    # the fitted pupil level holds also where the edge reaches the centre
                sigma, levels = fit["sigma"], (fit["p"], levels[1])
    res = radial_residuals(x, y, ell)                 # all glint-free points: a local smear must count
    m = PupilMeasurement(found=True, cx=cx, cy=cy, a=ell[2], b=ell[3], angle_deg=ell[4], axis_ratio=ell[3] / ell[2],
                         ellipse_residual=float(np.sqrt(np.mean(res ** 2)) / r0),
                         edge_width_px=fit["width"] if fit else NAN,
                         edge_width_p90_px=float(np.nanpercentile(sectors, 90)) if np.isfinite(sectors).any() else NAN,
                         outlier_fraction=float(1 - keep.mean()), pupil_radius=r0, n_points=int(keep.sum()))
    circ = _iris_circle(img, glint, ell, m.edge_width_px, n_rays)
    if circ is not None:
        m.iris_cx, m.iris_cy, m.iris_radius = circ
        m.pupil_iris_ratio = r0 / circ[2]
        m.concentricity = math.hypot(cx - circ[0], cy - circ[1]) / circ[2]
    return m
