"""Set-level pupil geometry: measure many images, summarise each metric, compare two sets by Wasserstein-1.

The per-image numbers come from `measure_pupil`; a generated set is judged by how far each metric's distribution
lies from the reference set's (e.g. ellipse_residual and edge_width_px of real or synthetic eyes; pupil_darkness and
iris_pupil_contrast in grey levels 0..255, so a pupil lighter than the data's shows as a W1 in grey levels).
"""
from __future__ import annotations

import math

import numpy as np

from .pupil import MEASURE_NAMES, measure_pupil

# Metrics compared between sets (positions cx, cy, angle depend on framing, not on quality).
COMPARED = ("axis_ratio", "ellipse_residual", "edge_width_px", "edge_width_p90_px", "outlier_fraction",
            "pupil_radius", "iris_radius", "pupil_iris_ratio", "concentricity", "pupil_darkness", "iris_pupil_contrast")


def _as_image_list(images) -> list:
    """[N, H, W], [N, C, H, W], [N, H, W, C] (numpy/torch) or a list of single images -> list of images."""
    if isinstance(images, (list, tuple)):
        return list(images)
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    arr = np.asarray(images)
    if arr.ndim not in (3, 4):
        raise ValueError(f"images have shape {arr.shape}; pass a batch [N, H, W] or [N, C, H, W] or a list of images")
    return list(arr)


def measure_set(images, *, value_range: tuple[float, float] | None = None,
                strict: bool = True) -> dict[str, np.ndarray]:
    """Measure every image -> {metric: float array [N]} (NaN where not found) plus "found" (bool [N]).

    For a batch the value range is decided once for the whole set (see `to_unit_image`): [-1, 1] if any value is
    below -1e-3, so all images of one set are normalised alike. `strict=False` keeps the measurements of dark
    regions that are not pupils (found stays False): a set of blurred blobs then still has edge widths, where
    strict metrics describe only the images that hold a pupil.
    """
    items = _as_image_list(images)
    if value_range is None and items and all(np.asarray(_np(x)).dtype.kind == "f" for x in items):
        value_range = (-1.0, 1.0) if min(float(np.nanmin(_np(x))) for x in items) < -1e-3 else (0.0, 1.0)
    rows = [measure_pupil(x, value_range=value_range, strict=strict) for x in items]
    out = {name: np.array([getattr(m, name) for m in rows], dtype=np.float64) for name in MEASURE_NAMES}
    out["found"] = np.array([m.found for m in rows], dtype=bool)
    return out


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def summarize(measures: dict[str, np.ndarray]) -> dict:
    """Per metric over the images where it is defined: {metric: {mean, median, std, n}}, plus found_rate."""
    out: dict = {"n_images": int(len(measures["found"])),
                 "found_rate": float(np.mean(measures["found"])) if len(measures["found"]) else math.nan}
    for name, v in measures.items():
        if name == "found":
            continue
        v = v[np.isfinite(v)]
        out[name] = {"mean": float(v.mean()) if v.size else math.nan,
                     "median": float(np.median(v)) if v.size else math.nan,
                     "std": float(v.std()) if v.size else math.nan, "n": int(v.size)}
    return out


def wasserstein1(a, b) -> float:
    """Exact 1-D Wasserstein-1 distance between two samples (any sizes): the integral of |F_a - F_b| over x,
    evaluated on the merged sorted support (as scipy.stats.wasserstein_distance). NaNs are dropped."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a, b = np.sort(a[np.isfinite(a)]), np.sort(b[np.isfinite(b)])
    if a.size == 0 or b.size == 0:
        return math.nan
    x = np.sort(np.concatenate([a, b]))                      # breakpoints of both empirical CDFs
    cdf_a = np.searchsorted(a, x[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, x[:-1], side="right") / b.size
    return float(np.sum(np.abs(cdf_a - cdf_b) * np.diff(x)))


def compare_sets(generated, reference, metrics=COMPARED, *, strict: bool = True) -> dict:
    """W1 per metric between a generated and a reference set (images or `measure_set` dicts) + both summaries.

    Returns {"w1": {metric: float}, "found_rate": {"generated", "reference"}, "generated": summary,
    "reference": summary}; W1 is in the metric's own unit (px for widths/radii) and 0 means identical distributions.
    `strict` is passed to `measure_set` for image sets.
    """
    gen = generated if isinstance(generated, dict) else measure_set(generated, strict=strict)
    ref = reference if isinstance(reference, dict) else measure_set(reference, strict=strict)
    return {"w1": {m: wasserstein1(gen[m], ref[m]) for m in metrics},
            "found_rate": {"generated": float(np.mean(gen["found"])), "reference": float(np.mean(ref["found"]))},
            "generated": summarize(gen), "reference": summarize(ref)}


def metric_floors(reference, *, n_generated: int | None = None, splits: int = 8, seed: int = 0,
                  metrics=COMPARED) -> dict:
    """What each metric reads on the reference set itself, i.e. the best a generator can score at this size.

    `reference`: images or a `measure_set` dict. Returns {"n_reference", "found_rate": the reference's found rate,
    "median": {metric: the reference's median}, "w1": {metric: W1 floor}}. The W1 floor is the mean W1 between
    random halves of the reference over `splits` splits, rescaled by sqrt((1/n_gen + 1/n_ref) / (4/n_ref)) (W1 of
    two samples of one distribution shrinks like sqrt(1/n1 + 1/n2)) to a comparison of `n_generated` images
    (default: as many as the reference) with the whole reference. A W1 at or below its floor is noise."""
    ref = reference if isinstance(reference, dict) else measure_set(reference)
    n = len(ref["found"])
    if n < 4:
        raise ValueError(f"metric floors need at least 4 reference images, got {n}")
    n_gen = n_generated or n
    scale = math.sqrt((1 / n_gen + 1 / n) / (4 / n))
    rng = np.random.default_rng(seed)
    halves = [np.array_split(rng.permutation(n), 2) for _ in range(splits)]
    s = summarize(ref)
    return {"n_reference": n, "found_rate": s["found_rate"],
            "median": {m: s[m]["median"] for m in metrics},
            "w1": {m: scale * float(np.nanmean([wasserstein1(ref[m][a], ref[m][b]) for a, b in halves]))
                   for m in metrics}}
