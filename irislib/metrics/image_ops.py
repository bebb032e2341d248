"""Small numpy image operations for pupil segmentation: morphology, box blur, labelling, Otsu, bilinear."""
from __future__ import annotations

import numpy as np


def _shift_reduce(x: np.ndarray, r: int, op, fill) -> np.ndarray:
    """Separable (2r+1)^2 min/max filter by shifting (op = np.minimum or np.maximum)."""
    h, w = x.shape
    p = np.pad(x, ((r, r), (0, 0)), constant_values=fill)
    out = p[:h].copy()
    for d in range(1, 2 * r + 1):
        op(out, p[d:d + h], out=out)
    p = np.pad(out, ((0, 0), (r, r)), constant_values=fill)
    out = p[:, :w].copy()
    for d in range(1, 2 * r + 1):
        op(out, p[:, d:d + w], out=out)
    return out


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


def _run_min(lab: np.ndarray, idx: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> None:
    """In place: every run of pixels idx[starts[k]:starts[k]+lengths[k]] takes the minimum label of the run."""
    lab[idx] = np.repeat(np.minimum.reduceat(lab[idx], starts), lengths)


def _runs(t: np.ndarray, line: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths of runs of consecutive indices t (sorted) that do not wrap across lines of `line` px."""
    brk = np.ones(len(t), bool)
    brk[1:] = (np.diff(t) != 1) | (t[1:] % line == 0)
    starts = np.flatnonzero(brk)
    return starts, np.diff(np.append(starts, len(t)))


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected labels of a boolean mask -> (labels [H, W] with -1 background, count).

    Vectorised: alternately give each horizontal and vertical run of foreground pixels the minimum label in it, then
    pointer-jump (a label is a pixel index of the same blob), until nothing changes; a few passes for blob shapes."""
    h, w = mask.shape
    idx_r = np.flatnonzero(mask)                               # row-major order
    if len(idx_r) == 0:
        return np.full((h, w), -1, dtype=np.int64), 0
    t = np.flatnonzero(mask.T)                                  # column-major order, as transposed indices
    idx_c = (t % h) * w + t // h
    rs, rl = _runs(idx_r, w)
    cs, cl = _runs(t, h)
    lab = np.full(h * w, h * w, dtype=np.int64)
    lab[idx_r] = idx_r
    while True:
        old = lab[idx_r].copy()
        _run_min(lab, idx_r, rs, rl)
        _run_min(lab, idx_c, cs, cl)
        for _ in range(3):
            lab[idx_r] = lab[lab[idx_r]]
        if np.array_equal(old, lab[idx_r]):
            break
    roots, labels = np.unique(lab[idx_r], return_inverse=True)
    out = np.full(h * w, -1, dtype=np.int64)
    out[idx_r] = labels
    return out.reshape(h, w), len(roots)


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
