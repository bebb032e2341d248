"""Pupil candidates of one NIR eye image [H, W] in [0, 1]: dark, solid, round-ish, central blobs.

Several candidates are kept (not just the best-scoring one) because at 32 px a dark eyelash clump or the whole iris
can outscore a pupil half covered by glints; the caller measures each and keeps the first that passes as a pupil.
"""
from __future__ import annotations

import math

import numpy as np

from .image_ops import box_blur, dilate, erode, fill_holes, label_components, otsu_threshold


def _components(mask: np.ndarray, k: int = 2) -> list[tuple[np.ndarray, float]]:
    """The k most pupil-like 4-connected components of `mask` -> [(mask, shape score)]: large, solid, round-ish,
    central, not touching the border."""
    h, w = mask.shape
    lab, n = label_components(mask)
    if n == 0:
        return []
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
    best = np.argsort(-score)[:k]
    return [(lab == i, float(score[i])) for i in best if score[i] > 0]


def _thresholds(smooth: np.ndarray) -> tuple[list[float], float] | None:
    """Dark thresholds between the darkest pixels and the median (and Otsu on the darker half) and the dark level
    they start from, or None if the image has no dark part."""
    med = np.median(smooth)
    p0s = [np.percentile(smooth, 0.5)]
    p_tiny = np.percentile(smooth, 0.02)                # a small pupil in a large frame is < 0.5 % of it
    if p0s[0] - p_tiny > 0.05:
        p0s.append(p_tiny)
    if med - p0s[-1] < 0.05:
        return None
    ts = [q + f * (med - q) for q in p0s for f in (0.1, 0.2, 0.35, 0.5)] + [otsu_threshold(smooth[smooth <= med])]
    return ts, p0s[-1]


def pupil_candidates(img: np.ndarray, k: int = 4) -> list[np.ndarray]:
    """Up to k distinct boolean masks [H, W] of pupil-like blobs (glint holes filled), best first.

    Each threshold's two most pupil-like components are scored by shape x contrast to their surrounding ring (a
    threshold that also takes in dark iris gives a low-contrast, ragged blob) x darkness (the iris is a round blob
    too, but a grey one); overlapping candidates (IoU > 0.7) count once. A lighter pupil merges at most
    thresholds with the iris darkened under the upper lid: its own blob overlaps that one by IoU 0.5-0.7 and must
    stay a candidate (hence 0.7, a fourth candidate and the lowest threshold, 0.1 of the way up)."""
    h, w = img.shape
    smooth = box_blur(img, 1)
    found = _thresholds(smooth)
    if found is None:
        return []
    (thresholds, p0), med = found, np.median(smooth)
    r_open, r_close = max(1, round(min(h, w) / 128)), max(1, round(min(h, w) / 64))
    scored = []
    for t in thresholds:
        # Closing + hole filling bridge glints (a ring of them splits the pupil); opening cuts eyelashes.
        mask = erode(dilate(smooth <= t, r_close), r_close + r_open)
        for blob, shape in _components(fill_holes(dilate(mask, r_open))):
            kr = max(2, int(round(0.2 * math.sqrt(blob.sum() / math.pi))))
            ring = dilate(blob, 2 * kr) & ~dilate(blob, kr)
            if not ring.any():
                continue
            inside = np.median(smooth[blob])
            darkness = (med - inside) / max(med - p0, 1e-6)             # ~1 for the pupil, ~0.4 for a whole iris
            score = shape * (np.median(smooth[ring]) - inside) * max(darkness, 0) ** 4
            if score > 0:
                scored.append((score, blob))
    out: list[np.ndarray] = []
    for _, blob in sorted(scored, key=lambda c: -c[0]):
        if all((blob & o).sum() <= 0.7 * (blob | o).sum() for o in out):
            out.append(blob)
        if len(out) == k:
            break
    return out


def segment_pupil(img: np.ndarray) -> np.ndarray | None:
    """Boolean mask [H, W] of the most pupil-like blob, or None if there is none (see `pupil_candidates`)."""
    cands = pupil_candidates(img, 1)
    return cands[0] if cands else None


def candidates_scaled(img: np.ndarray, k: int = 4, max_side: int = 256) -> list[np.ndarray]:
    """pupil_candidates on a block-averaged copy when the image is large (640x480 -> 213x160), masks back at full
    size; the rays then refine the boundary at full resolution."""
    f = math.ceil(max(img.shape) / max_side)
    if f == 1:
        return pupil_candidates(img, k)
    h, w = img.shape[0] // f, img.shape[1] // f
    return [_upscale(img, small, f) for small in pupil_candidates(img[:h * f, :w * f].reshape(h, f, w, f)
                                                                  .mean(axis=(1, 3)), k)]


def _upscale(img: np.ndarray, small: np.ndarray, f: int) -> np.ndarray:
    """A coarse mask at full size, re-thresholded halfway between pupil and surrounding ring (the coarse mask is
    ~f px too big)."""
    blob = np.zeros(img.shape, bool)
    h, w = small.shape
    blob[:h * f, :w * f] = np.repeat(np.repeat(small, f, axis=0), f, axis=1)
    inner, ring = erode(blob, f), dilate(blob, 3 * f) & ~dilate(blob, f)
    if not inner.any() or not ring.any():
        return blob
    level = (np.median(img[inner]) + np.median(img[ring])) / 2
    fine = fill_holes(dilate(blob, f) & (box_blur(img, 1) <= level))
    return fine if fine.sum() >= 0.3 * blob.sum() else blob
