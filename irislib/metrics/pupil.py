"""Pupil and iris geometry of one NIR eye image: segmentation, sub-pixel boundary, ellipse fit, edge width, limbus.

Pipeline (numpy only): normalise to [0, 1] -> threshold the dark part (Otsu) -> open away eyelashes -> connected
components -> pick the darkest large compact central blob -> fill glint holes -> cast rays from its centre and take the
50 % crossing between the pupil and the local iris level on each (bilinear samples, linear interpolation) -> drop rays
that touch a glint -> robust direct least-squares ellipse (Halir & Flusser 1998) -> re-cast from the ellipse centre.
The limbus is the strongest sustained brightening further out on the horizontal-ish rays (eyelids hide top/bottom).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

N_RAYS = 96           # rays cast from the pupil centre
STEP_PX = 0.25        # sampling step along a ray
LIMBUS_MAX_DEG = 50.  # rays within this angle of horizontal look for the limbus
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
    pupil_radius: float = NAN        # (a + b) / 2
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
            value_range = (-1.0, 1.0) if np.nanmin(img) < -1e-3 else (0.0, 1.0)
    lo, hi = value_range
    return np.clip((img.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0)


# ----------------------------------------------------------------------------------------------- image helpers
def _shift_reduce(x: np.ndarray, r: int, op, fill) -> np.ndarray:
    """Separable (2r+1)^2 min/max filter by shifting (op = np.minimum or np.maximum)."""
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r, r)
        p = np.pad(x, pad, constant_values=fill)
        out = x.copy()
        n = x.shape[axis]
        for d in range(2 * r + 1):
            out = op(out, np.take(p, range(d, d + n), axis=axis))
        x = out
    return x


def erode(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary erosion by a (2r+1)^2 square; outside the image counts as foreground."""
    return _shift_reduce(mask, r, np.minimum, True) if r > 0 else mask


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation by a (2r+1)^2 square."""
    return _shift_reduce(mask, r, np.maximum, False) if r > 0 else mask


def box_blur(img: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window with edge replication (cumulative sums)."""
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r + 1, r)
        c = np.cumsum(np.pad(img, pad, mode="edge"), axis=axis)
        n = img.shape[axis]
        img = (np.take(c, range(2 * r + 1, 2 * r + 1 + n), axis=axis) - np.take(c, range(n), axis=axis)) / (2 * r + 1)
    return img


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected labels of a boolean mask -> (labels [H, W] with -1 background, count); vectorised min-propagation
    with pointer jumping, so it converges in a few dozen numpy passes even for long thin shapes."""
    h, w = mask.shape
    big = h * w
    lab = np.where(mask, np.arange(big).reshape(h, w), big)
    while True:
        m = lab.copy()
        m[1:] = np.minimum(m[1:], lab[:-1])
        m[:-1] = np.minimum(m[:-1], lab[1:])
        m[:, 1:] = np.minimum(m[:, 1:], lab[:, :-1])
        m[:, :-1] = np.minimum(m[:, :-1], lab[:, 1:])
        m = np.where(mask, m, big)
        flat = np.append(m.ravel(), big)
        for _ in range(4):                          # pointer jumping: a label is a pixel index of the same blob
            flat[:-1] = np.minimum(flat[:-1], flat[flat[:-1]])
        m = flat[:-1].reshape(h, w)
        if np.array_equal(m, lab):
            break
        lab = m
    roots, labels = np.unique(lab[mask], return_inverse=True)
    out = np.full((h, w), -1, dtype=np.int64)
    out[mask] = labels
    return out, len(roots)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions not connected to the image border (glints inside the pupil)."""
    lab, n = label_components(~mask)
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    return mask | ((lab >= 0) & ~np.isin(lab, border))


def otsu_threshold(values: np.ndarray, bins: int = 128) -> float:
    """Otsu's threshold (max between-class variance) of a 1-D sample."""
    hist, edges = np.histogram(values, bins=bins)
    p = hist / max(hist.sum(), 1)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    mu = np.cumsum(p * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * w0 - mu) ** 2 / (w0 * (1 - w0))
    return float(edges[1:][np.nanargmax(np.nan_to_num(between, nan=-1.0))])


def bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples at pixel coordinates (pixel centres at integers); NaN outside the image."""
    h, w = img.shape
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    xc, yc = np.clip(x, 0, w - 1.000001), np.clip(y, 0, h - 1.000001)
    x0, y0 = np.floor(xc).astype(int), np.floor(yc).astype(int)
    fx, fy = xc - x0, yc - y0
    v = (img[y0, x0] * (1 - fx) * (1 - fy) + img[y0, x0 + 1] * fx * (1 - fy)
         + img[y0 + 1, x0] * (1 - fx) * fy + img[y0 + 1, x0 + 1] * fx * fy)
    return np.where(inside, v, np.nan)


# ----------------------------------------------------------------------------------------------- segmentation
def segment_pupil(img: np.ndarray) -> np.ndarray | None:
    """Boolean mask [H, W] of the pupil blob (glint holes filled), or None if no plausible blob."""
    h, w = img.shape
    smooth = box_blur(img, 1)
    dark = smooth[smooth <= np.median(smooth)]
    if dark.size < 16 or np.ptp(smooth) < 0.05:
        return None
    mask = smooth <= otsu_threshold(dark)
    r_open = max(1, round(min(h, w) / 128))
    mask = dilate(erode(mask, r_open), r_open)        # cut eyelashes and thin dark lines
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
    score = area * elong * fill ** 2 * np.exp(-2 * dist ** 2) * np.where(touches, 0.2, 1.0)
    score[area < max(8, 2e-4 * h * w)] = 0
    if score.max() <= 0:
        return None
    return fill_holes(lab == int(np.argmax(score)))
