"""Pupil and iris geometry of one NIR eye image: segmentation, sub-pixel boundary, ellipse fit, edge width, limbus,
and the decision whether the dark region found is a pupil at all.

Pipeline (numpy only): normalise to [0, 1] -> up to 4 dark, compact, central candidates (`segment.py`) -> for each:
cast rays from its centre and take the 50 % crossing between the pupil level and the local iris level on each
(bilinear samples, linear interpolation) -> drop rays that touch a glint, set aside rays that end on something
bright (an eyelid: occluded) -> robust direct least-squares ellipse (Halir & Flusser 1998, seeded by a RANSAC
circle) -> re-cast from the ellipse centre -> erf step fitted to the median radial profile of the pixels around the
traced boundary (`edge.py`: the edge width, no plateau ceiling) -> re-cast with the fitted levels and reach ->
pupil and iris grey levels from the pixels inside and just outside the ellipse. The limbus is the strongest
sustained brightening beyond the pupil on the rays within 60 degrees of horizontal (eyelids hide top and bottom); a
seeded RANSAC circle drops eyelid crossings.
`PUPIL_TESTS` then decide found: a fuzzy blob, a lumpy clover or the whole iris is measured but not a pupil. How
dark the pupil is does not decide found (a lighter pupil is still a pupil); pupil_darkness reports it.
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
from .segment import candidates_scaled, pupil_candidates, segment_pupil  # noqa: F401

N_RAYS = 96           # rays cast from the pupil centre
N_SECTORS = 16        # angular sectors with their own edge width (local bleeding)
STEP_PX = 0.25        # sampling step along a ray
LIMBUS_MAX_DEG = 60.  # rays within this angle of horizontal look for the limbus
NAN = float("nan")


@dataclass
class PupilMeasurement:
    """Geometry and levels of one image in pixel coordinates (x right, y down); all NaN and found=False if no pupil.

    Grey levels are of the image scaled to [0, 1] by `to_unit_image`, times 255 (uint8 input: its own values).
    The levels use only the visible sectors: rays that cross a valid edge that is not occluded, glint pixels out.
    pupil_darkness: median of the pixels inside the fitted ellipse shrunk by the edge's 10-90 % width (at least
        1 px, so the blurred rise does not count), no brighter than the fitted iris plateau (so an eyelid the rays
        did not flag does not count).
    iris_pupil_contrast: median of the pixels in a ring from that same distance outside the ellipse, max(2,
        0.25 pupil_radius) px wide (the iris next to the pupil), minus pupil_darkness.
    """
    found: bool = False              # a darker, flat, roughly elliptical region was fitted (`PUPIL_TESTS`)
    cx: float = NAN                  # pupil ellipse centre
    cy: float = NAN
    a: float = NAN                   # semi-axes, a >= b
    b: float = NAN
    angle_deg: float = NAN           # direction of the a axis, degrees in [0, 180), y down
    axis_ratio: float = NAN          # b / a (1 = round)
    ellipse_residual: float = NAN    # RMS radial residual of the boundary points / mean radius
    inlier_residual: float = NAN     # the same over the points kept by the fit (lashes, a local smear left out)
    edge_width_px: float = NAN       # 10-90 % rise of the erf step fitted to the median radial edge profile
    edge_width_p90_px: float = NAN   # 90th percentile over 16 sectors of the same (local bleeding shows here first)
    outlier_fraction: float = NAN    # share of the visible glint-free boundary points left out of the ellipse fit
    occluded_fraction: float = NAN   # share of the rays whose edge is an eyelid over or at the pupil (`_occluded`)
    pupil_radius: float = NAN        # equal-area radius sqrt(a * b) (the generator's definition)
    iris_cx: float = NAN             # limbus circle
    iris_cy: float = NAN
    iris_radius: float = NAN
    pupil_iris_ratio: float = NAN    # pupil_radius / iris_radius
    concentricity: float = NAN       # |pupil centre - iris centre| / iris_radius
    pupil_darkness: float = NAN      # pupil grey level 0..255 (see the class docstring)
    iris_pupil_contrast: float = NAN  # iris grey level just outside the pupil - pupil_darkness, 0..255
    edge_contrast: float = NAN       # iris plateau - pupil level of the fitted edge (image scaled to [0, 1])
    edge_depth: float = NAN          # edge_contrast / iris plateau: 1 = black pupil (no longer a found test)
    edge_fit_rms: float = NAN        # RMS misfit of that erf step / edge_contrast (a halo is a second step)
    interior_gradient: float = NAN   # (median of the outer - of the inner half, by distance to the ellipse, of the
                                     # pixels pupil_darkness uses) / edge_contrast: ~0 flat floor, > 0 a dark spot
    fill: float = NAN                # share of the ellipse's glint-free pixels darker than the edge midpoint
    core: float = NAN                # share of them within 30 % of the contrast of the pupil level (uniformly dark)
    spill: float = NAN               # share of a ring just outside the edge darker than the midpoint (lumps, halo)
    ray_fraction: float = NAN        # share of the rays that cross a valid, not occluded edge
    n_points: int = 0                # boundary points used for the ellipse
    rejected: str = ""               # why a measured dark region is not a pupil ("" if found or nothing measured)

    def as_dict(self) -> dict:
        """Plain dict (JSON-ready floats)."""
        return asdict(self)


MEASURE_NAMES = tuple(f.name for f in fields(PupilMeasurement) if f.name not in ("found", "n_points", "rejected"))


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
    """Boundary points seen from (cx, cy) -> (angles, r50, x, y, widths, level past the edge) of the valid rays,
    or None."""
    th, rr, prof, g = _cast(img, glint, cx, cy, n_rays, 2.5 * r0 + 12 + 8 * sigma)
    ok, r50, width, lvl = _edges(prof, g, rr, pupil_level, iris_level, r0, sigma)
    if not ok.any():
        return None
    th, r50, width, lvl = th[ok], r50[ok], width[ok], lvl[ok]
    return th, r50, cx + r50 * np.cos(th), cy + r50 * np.sin(th), width, lvl


def _fit_robust(x, y, r_scale):
    """Ellipse fit with two rounds of outlier rejection -> (ellipse, inlier mask) or (None, None).

    Starts from the points near the best RANSAC circle when it holds most of them: lashes that merge with the
    pupil pull a whole sector of rays outwards, too many for the residual-based rejection alone."""
    keep = _ransac_circle(x, y, tol=max(1.0, 0.1 * r_scale))
    if keep.sum() < max(6, 0.6 * len(x)):
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


def _ellipse_pass(img, glint, cx, cy, r0, levels, n_rays, sigma):
    """One ray pass from (cx, cy) and the robust ellipse fit of the visible rays -> (ellipse, inlier mask,
    boundary, occluded mask) or None; occluded rays are never inliers."""
    bnd = _pupil_boundary(img, glint, cx, cy, r0, *levels, n_rays, sigma)
    if bnd is None or len(bnd[0]) < max(8, 0.3 * n_rays):
        return None
    occ = _occluded(bnd[5], *levels)
    if (~occ).sum() < 8:
        return None
    ell, keep = _fit_robust(bnd[2][~occ], bnd[3][~occ], r0)
    if ell is None or not (0 <= ell[0] < img.shape[1] and 0 <= ell[1] < img.shape[0]) or ell[2] > max(img.shape):
        return None
    inlier = np.zeros(len(occ), bool)
    inlier[~occ] = keep
    return ell, inlier, bnd, occ


def _occluded(outer_level, pupil_level, iris_level):
    """Rays whose edge is something bright lying over or against the pupil (an eyelid) [N]: brighter past the
    crossing than the iris by a fifth of the pupil-iris contrast (iris texture stays well within that).
    Their crossing is the eyelid's or pulled towards it, so they are no evidence for or against an ellipse, and
    their sectors stay out of the region shares and levels: skin is neither pupil nor iris. The iris is the median
    ray or the ring around the dark region, whichever is brighter: where the pupil's black bleeds into half the
    iris (the seed's failure) the median ray is the smear, and the clean rays must not look like a lid."""
    iris = max(float(np.median(outer_level)), float(iris_level))
    return outer_level > iris + 0.2 * (iris - pupil_level)


def _rays(bnd, sel):
    """The boundary tuple restricted to the rays in sel."""
    return tuple(v[sel] for v in bnd)


def _edge_pixels(img, glint, ell, bnd, n_rays):
    """Glint-free pixels in the sectors of the valid rays (eyelids, lashes and glints at the edge stay out, as on
    the rays) -> dict of [P] arrays: d (radial distance past the boundary traced by the rays, interpolated between
    them), d_ell (the same to the ellipse), v (value), th (angle from the ellipse centre).

    Edge profiles use d, not d_ell: a lobed but sharp outline keeps its sharp edge (its shape is the ellipse
    residual's business)."""
    h, w = img.shape
    yy, xx = np.mgrid[:h, :w]
    dx, dy = xx - ell[0], yy - ell[1]
    th = np.arctan2(dy, dx)
    tb = np.arctan2(bnd[3] - ell[1], bnd[2] - ell[0])
    ray = np.round(th / (2 * math.pi) * n_rays).astype(int) % n_rays
    valid = np.zeros(n_rays, bool)
    valid[np.round(tb / (2 * math.pi) * n_rays).astype(int) % n_rays] = True
    sel = valid[ray] & ~glint
    th, rho = th[sel], np.hypot(dx, dy)[sel]
    o = np.argsort(tb)
    rb = np.interp(th, tb[o], np.hypot(bnd[2] - ell[0], bnd[3] - ell[1])[o], period=2 * math.pi)
    return {"d": rho - rb, "d_ell": rho - _ellipse_radius(ell, th), "v": img[sel], "th": th}


def _region_shares(px, fit, r0):
    """(fill, core, spill): shares of pixels darker than the edge midpoint inside the ellipse (short of the edge's
    rise), of those near the pupil level, and of dark ones in a ring just outside. A pupil is a uniformly dark
    ellipse on a brighter ring: ~1, ~1 and ~0; lumps leave grey gaps (core), a halo or smear spills out."""
    mid, half = fit["p"] + fit["c"] / 2, max(0.5, fit["width"] / 2)
    dark, deep = px["v"] < mid, px["v"] < fit["p"] + 0.3 * fit["c"]
    inner = px["d_ell"] <= -half
    if inner.sum() < 3:                          # a tiny or very soft pupil: its centre pixels must do
        inner = px["d_ell"] <= min(0.0, np.sort(px["d_ell"])[min(2, len(dark) - 1)])
    outer = (px["d_ell"] >= half + 0.5) & (px["d_ell"] <= half + 0.5 + max(2.0, 0.4 * r0))
    if not inner.any():
        return NAN, NAN, NAN
    return float(dark[inner].mean()), float(deep[inner].mean()), float(dark[outer].mean()) if outer.any() else NAN


def _pupil_and_iris_levels(px, fit, r0):
    """(pupil, iris, interior gradient) from the pixels of the visible sectors, levels in [0, 1]: the median inside
    the ellipse shrunk by the edge's 10-90 % width (at least 1 px; the blurred rise stays out) of the pixels no
    brighter than the iris plateau p + c (an eyelid the rays did not flag), and the median of a ring max(2, 0.25 r)
    px wide starting as far outside; the gradient is defined at `PupilMeasurement.interior_gradient`."""
    shrink = max(1.0, fit["width"])
    inner = (px["d_ell"] <= -shrink) & (px["v"] <= fit["p"] + fit["c"])
    if inner.sum() < 3:                          # a tiny or very soft pupil: its centre pixels must do
        inner = px["d_ell"] <= min(0.0, np.sort(px["d_ell"])[min(2, len(px["d_ell"]) - 1)])
    ring = (px["d_ell"] >= shrink) & (px["d_ell"] <= shrink + max(2.0, 0.25 * r0))
    v, d = px["v"][inner], px["d_ell"][inner]
    pupil = float(np.median(v)) if v.size else NAN
    gradient = NAN
    if v.size >= 8:                              # outer half of the interior minus its inner half
        gradient = (np.median(v[d > np.median(d)]) - np.median(v[d <= np.median(d)])) / fit["c"]
    return pupil, float(np.median(px["v"][ring])) if ring.any() else NAN, float(gradient)


def _fit_pupil(img, blob, n_rays):
    """Three ray passes and fits (2nd from the fitted centre, 3rd with the fitted edge's levels and reach) ->
    (ellipse, inlier mask, boundary, occluded mask, edge fit, visible edge pixels, glints, whether the last pass
    fitted the edge) or None."""
    ys, xs = np.nonzero(blob)
    cx, cy, r0 = xs.mean(), ys.mean(), math.sqrt(blob.sum() / math.pi)
    *levels, glint = _levels(img, blob, r0)
    if levels[1] - levels[0] < 0.05:
        return None
    fit, sigma, last_ok = None, 0.0, False
    for k in range(3):
        out = _ellipse_pass(img, glint, cx, cy, r0, levels, n_rays, sigma)
        if out is None:
            return None
        ell, keep, bnd, occ = out
        cx, cy, r0 = ell[0], ell[1], math.sqrt(ell[2] * ell[3])    # equal-area radius
        if k >= 1:
            width = bnd[4][~occ]
            sigma0 = np.nanmedian(width) / WIDTH_PER_SIGMA if np.isfinite(width).any() else 0.6
            px = _edge_pixels(img, glint, ell, _rays(bnd, ~occ), n_rays)
            new = fit_edge_profile(px["d"], px["v"], r0, sigma if fit else sigma0)
            fit, last_ok = new or fit, new is not None
            if fit is not None:    # the fitted pupil level holds also where the edge reaches the centre
                sigma, levels = fit["sigma"], (fit["p"], levels[1])
    return None if fit is None else (ell, keep, bnd, occ, fit, px, glint, last_ok)


def _measure_blob(img, blob, n_rays):
    """Ellipse, edge, levels and iris circle of the dark region `blob` (found stays False: see `pupil_verdict`;
    edge_width_p90_px is left to `_add_sector_widths`) -> (measurement, its edge pixels and fit or None), or
    None if it has no measurable edge."""
    out = _fit_pupil(img, blob, n_rays)
    if out is None:
        return None
    ell, keep, bnd, occ, fit, px, glint, last_ok = out
    cx, cy, r0 = ell[0], ell[1], math.sqrt(ell[2] * ell[3])
    res = radial_residuals(bnd[2], bnd[3], ell)[~occ]     # all glint-free visible points: a local smear counts
    pupil, iris, gradient = _pupil_and_iris_levels(px, fit, r0)
    m = PupilMeasurement(cx=cx, cy=cy, a=ell[2], b=ell[3], angle_deg=ell[4], axis_ratio=ell[3] / ell[2],
                         ellipse_residual=float(np.sqrt(np.mean(res ** 2)) / r0), edge_width_px=fit["width"],
                         inlier_residual=float(np.sqrt(np.mean(res[keep[~occ]] ** 2)) / r0),
                         outlier_fraction=float(1 - keep[~occ].mean()), pupil_radius=r0, n_points=int(keep.sum()),
                         pupil_darkness=255 * pupil, iris_pupil_contrast=255 * (iris - pupil),
                         occluded_fraction=float(occ.mean()), interior_gradient=gradient,
                         edge_contrast=fit["c"], edge_depth=fit["c"] / max(fit["p"] + fit["c"], 1e-6),
                         edge_fit_rms=fit["rms"], ray_fraction=float((~occ).sum() / n_rays))
    m.fill, m.core, m.spill = _region_shares(px, fit, r0)
    circ = _iris_circle(img, glint, ell, m.edge_width_px, n_rays)
    if circ is not None:
        m.iris_cx, m.iris_cy, m.iris_radius = circ
        m.pupil_iris_ratio = r0 / circ[2]
        m.concentricity = math.hypot(cx - circ[0], cy - circ[1]) / circ[2]
    return m, ((px, fit) if last_ok else None)


def _add_sector_widths(m: PupilMeasurement, edge) -> PupilMeasurement:
    """edge_width_p90_px from the per-sector refits (the slow part, so only for the candidate returned)."""
    if edge is not None:
        px, fit = edge
        sector = np.floor((px["th"] + math.pi) / (2 * math.pi) * N_SECTORS).astype(int) % N_SECTORS
        widths = sector_widths(px["d"], px["v"], sector, fit, N_SECTORS, m.pupil_radius)
        m.edge_width_p90_px = float(np.nanpercentile(widths, 90)) if np.isfinite(widths).any() else NAN
    return m


# What a person calls a pupil: a darker region with a flat floor (floor: a Gaussian spot or a halo keeps darkening
# towards its middle; how dark is pupil_darkness's business, not found's), solid (fill) and compact (spill), close
# to an ellipse where it is not hidden (ellipse: lashes or a local smear may leave up to 35 % of the visible rays
# off it; rays: at least 40 % of the rays see a pupil edge, the rest may be eyelid or glints), bounded by a
# real edge (edge: the rise is short against the radius; profile: one clean step, not a halo) inside an iris ring
# (iris). Set on synthetic irises with exact geometry (found at
# 32/64/128 px) and constructed non-pupils (blurred blobs with halos, lumpy clovers, no pupil, noise, flat grey);
# tests/metrics/test_pupil_found.py holds both.
PUPIL_TESTS = {
    "size": lambda m, side: 1.5 <= m.pupil_radius and m.a <= 0.45 * side,
    "floor": lambda m, side: not m.interior_gradient > 0.15,
    "edge": lambda m, side: m.edge_width_px <= max(2.5, 0.3 * m.pupil_radius),
    "profile": lambda m, side: m.edge_fit_rms <= 0.2,
    "fill": lambda m, side: m.fill >= 0.85 and m.core >= 0.7,
    "spill": lambda m, side: m.spill <= 0.35,
    "ellipse": lambda m, side: (m.inlier_residual <= max(0.1, 1.0 / m.pupil_radius)       # 1 px at small r
                                and m.outlier_fraction <= 0.35),
    "rays": lambda m, side: m.ray_fraction >= 0.4,
    "iris": lambda m, side: not m.pupil_iris_ratio > 0.67 and not m.concentricity > 0.25,  # if a limbus is found
}


def pupil_verdict(m: PupilMeasurement, shape: tuple[int, int]) -> str:
    """"" if the measured region passes every test in PUPIL_TESTS, else the names of those it fails (NaN fails, but
    a NaN interior_gradient passes floor: a pupil of a few px has too few interior pixels to tell)."""
    return ",".join(name for name, test in PUPIL_TESTS.items() if not test(m, min(shape)))


def pupil_candidates_measured(image, *, value_range: tuple[float, float] | None = None,
                              n_rays: int = N_RAYS) -> list[PupilMeasurement]:
    """Every dark candidate region measured (up to 4, see segment.pupil_candidates), `rejected` naming the pupil
    tests each fails ("" = passes): for callers with their own evidence of which is the pupil, e.g. a limbus found
    around it in a whole camera frame (data.iris_crop)."""
    img = to_unit_image(image, value_range)
    if not np.isfinite(img).all() or min(img.shape) < 16:
        return []
    out = []
    for m, _ in (c for c in (_measure_blob(img, blob, n_rays) for blob in candidates_scaled(img)) if c):
        m.rejected = pupil_verdict(m, img.shape)
        out.append(m)
    return out


def measure_pupil(image, *, value_range: tuple[float, float] | None = None, n_rays: int = N_RAYS,
                  strict: bool = True) -> PupilMeasurement:
    """Measure the pupil ellipse, its edge width and the iris circle of one eye image (never raises on content).

    `image`: numpy/torch [H, W], [1|3, H, W] or [H, W, 1|3]; see `to_unit_image` for how the value range is found.
    Up to 4 dark candidates are measured; of those that pass `pupil_verdict` the pupil (found=True) is the darkest
    one inside a found limbus, else the darkest: a lash clump has no iris around it, a pupil merged with lashes is
    greyer. If none passes, all values are NaN and `rejected` names
    the tests the best candidate failed; `strict=False` keeps that candidate's measurements (found still False),
    e.g. to measure the edge of a blob.
    """
    img = to_unit_image(image, value_range)
    if not np.isfinite(img).all() or min(img.shape) < 16:
        return PupilMeasurement()
    measured = [out for out in (_measure_blob(img, blob, n_rays) for blob in candidates_scaled(img)) if out]
    for m, _ in measured:
        m.rejected = pupil_verdict(m, img.shape)
    passed = [(m, edge) for m, edge in measured if not m.rejected]
    if passed:
        # inside a found limbus first, then the lowest pupil level (of the edge fit)
        best, edge = min(passed, key=lambda c: (not np.isfinite(c[0].concentricity),
                                                c[0].edge_contrast / c[0].edge_depth - c[0].edge_contrast))
        best.found = True
        return _add_sector_widths(best, edge)
    if not measured or not strict:
        return _add_sector_widths(*measured[0]) if measured else PupilMeasurement()
    return PupilMeasurement(rejected=measured[0][0].rejected)
