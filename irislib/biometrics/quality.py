"""ISO/IEC 29794-6 iris image quality components from irislib's pupil and iris fits, and BIQT-style pass shares.

Formulas (ISO/IEC 29794-6:2015 §6.2; grey levels in 8-bit units; P, I, S are medians of pupil, iris and sclera
pixels next to the respective boundaries). Checked against MITRE BIQT-Iris (its port iris-iqm, also offered as
backend="biqt"): the same on the geometric components and the iris-sclera contrast given the same circles; BIQT
takes I for the iris-pupil contrast from outside the limbus, never lets the right/bottom margins limit, and takes
grey-scale utilisation and sharpness (a 9x9 Laplacian) over the whole image, so those differ:
  usable_iris_area      100 * usable iris pixels / annulus pixels (eyelids, lashes, glints removed; the annulus
                        includes its part outside the image, which is never usable)
  iris_sclera_contrast  100 * (S - I) / (S + I - 2P), 0 if negative
  iris_pupil_contrast   100 * W / (0.75 + W), W = (I - P) / (20 + P) (a Weber ratio), 0 if negative
  pupil_boundary_circularity 100 * (1 - RMS radial deviation of the pupil boundary from a circle / radius);
                        by Parseval this is the energy of the boundary's non-DC Fourier terms (ellipse + residual)
  grey_scale_utilisation entropy in bits of the 8-bit histogram of the usable iris pixels
  iris_radius           px (times capture_scale: ISO's >= 80 px holds at capture resolution, not at 64 px)
  pupil_iris_ratio      100 * pupil radius / iris radius (pupil dilation)
  iris_pupil_concentricity 100 * (1 - |pupil centre - iris centre| / iris radius)
  margin_adequacy       100 * min(1, L/0.6, R/0.6, U/0.2, D/0.2), margins from the iris circle to the image
                        edges in iris radii (ISO/IEC 19794-6 asks for 0.6 R left/right, 0.2 R top/bottom)
  sharpness             100 x^2 / (x^2 + c^2): x = mean squared response of Daugman's 8x8 focus kernel (-1, central
                        4x4 +3) over the iris box, c = 180000 [recalled, not checked against the standard]
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..metrics import measure_pupil, to_unit_image
from .normalize import SATURATED, Boundaries, annulus_size, iris_pixels, rubber_sheet

NAN = float("nan")
SHARPNESS_C = 180000.0
# BIQT-Iris recommended values (ISO's for usable area and radius): (lower bound, upper bound, inclusive lower).
THRESHOLDS = {"grey_scale_utilisation": (6, None, True), "iris_pupil_concentricity": (90, None, True),
              "iris_pupil_contrast": (30, None, True), "pupil_iris_ratio": (20, 70, True),
              "iris_sclera_contrast": (5, None, False), "margin_adequacy": (80, None, False),
              "usable_iris_area": (70, None, True), "iris_radius": (80, None, True)}


@dataclass
class QualityComponents:
    """The ISO/IEC 29794-6 components of one image (NaN and found=False when the boundaries were not found)."""
    found: bool = False
    usable_iris_area: float = NAN
    iris_sclera_contrast: float = NAN
    iris_pupil_contrast: float = NAN
    pupil_boundary_circularity: float = NAN
    grey_scale_utilisation: float = NAN
    iris_radius: float = NAN
    pupil_iris_ratio: float = NAN
    iris_pupil_concentricity: float = NAN
    margin_adequacy: float = NAN
    sharpness: float = NAN

    def as_dict(self) -> dict:
        return asdict(self)


COMPONENTS = tuple(f.name for f in fields(QualityComponents) if f.name != "found")


def iris_pupil_contrast(iris: float, pupil: float) -> float:
    """ISO iris-pupil contrast of 8-bit medians."""
    w = (iris - pupil) / (20.0 + pupil)
    return 100.0 * w / (0.75 + w) if w > 0 else 0.0


def iris_sclera_contrast(sclera: float, iris: float, pupil: float) -> float:
    """ISO iris-sclera contrast of 8-bit medians."""
    den = sclera + iris - 2 * pupil
    return max(0.0, 100.0 * (sclera - iris) / den) if den > 0 else 0.0


def grey_scale_utilisation(values01: np.ndarray) -> float:
    """Entropy (bits) of the 8-bit histogram of the given pixel values in [0, 1]."""
    v = np.round(np.clip(np.asarray(values01, float).ravel(), 0, 1) * 255).astype(int)
    if v.size == 0:
        return NAN
    p = np.bincount(v, minlength=256) / v.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def margin_adequacy(bnd: Boundaries, shape: tuple[int, int]) -> float:
    """ISO margin adequacy: distance from the iris circle to each image edge (pixel edges) in iris radii."""
    h, w = shape
    r = bnd.iris_r
    left, right = (bnd.iris_cx + 0.5 - r) / r, (w - 0.5 - bnd.iris_cx - r) / r
    up, down = (bnd.iris_cy + 0.5 - r) / r, (h - 0.5 - bnd.iris_cy - r) / r
    return 100.0 * float(np.clip(min(left / 0.6, right / 0.6, up / 0.2, down / 0.2, 1.0), 0.0, 1.0))


def pupil_boundary_circularity(bnd: Boundaries, residual: float = 0.0) -> float:
    """100 (1 - RMS deviation of r(theta) from its mean / mean) for the fitted ellipse, with the fit's own RMS
    radial residual (relative to the radius, PupilMeasurement.ellipse_residual) added in quadrature."""
    r = bnd.pupil_radius_at(2 * math.pi * np.arange(720) / 720)
    dev = math.hypot(float(np.std(r) / np.mean(r)), residual if np.isfinite(residual) else 0.0)
    return 100.0 * max(0.0, 1.0 - dev)


def sharpness(img01: np.ndarray, box: tuple[int, int, int, int] | None = None) -> float:
    """ISO/Daugman focus score of an image region (x0, y0, x1, y1) in 8-bit units; 0 for a flat image."""
    x = img01 * 255.0
    if box is not None:
        x0, y0, x1, y1 = box
        x = x[max(0, y0):max(0, y1), max(0, x0):max(0, x1)]
    if min(x.shape) < 8:
        return NAN
    c = np.cumsum(np.cumsum(np.pad(x, ((1, 0), (1, 0))), 0), 1)          # integral image

    def box_sum(k, off):   # sums over k x k windows starting at offset off inside each 8 x 8 window
        return c[off + k:c.shape[0] - 8 + off + k, off + k:c.shape[1] - 8 + off + k] \
            - c[off:c.shape[0] - 8 + off, off + k:c.shape[1] - 8 + off + k] \
            - c[off + k:c.shape[0] - 8 + off + k, off:c.shape[1] - 8 + off] + c[off:c.shape[0] - 8 + off,
                                                                                  off:c.shape[1] - 8 + off]
    resp = 4.0 * box_sum(4, 2) - box_sum(8, 0)              # -1 everywhere, +3 more in the central 4x4
    power = float(np.mean(resp ** 2))
    return 100.0 * power ** 2 / (power ** 2 + SHARPNESS_C ** 2)


def _medians(img: np.ndarray, bnd: Boundaries, usable: np.ndarray, rho: np.ndarray) -> tuple[float, ...]:
    """8-bit medians: pupil (inner 80 %, no glints), iris near the pupil, iris near the limbus and sclera just
    outside it (both within 45 / 30 deg of horizontal, where eyelids rarely reach)."""
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ang = math.radians(bnd.pupil_angle_deg)
    u = (xx - bnd.pupil_cx) * math.cos(ang) + (yy - bnd.pupil_cy) * math.sin(ang)
    v = -(xx - bnd.pupil_cx) * math.sin(ang) + (yy - bnd.pupil_cy) * math.cos(ang)
    pupil = (np.hypot(u / bnd.pupil_a, v / bnd.pupil_b) <= 0.8) & (img < SATURATED)
    dx, dy = xx - bnd.iris_cx, yy - bnd.iris_cy
    horiz = np.abs(dy) <= np.abs(dx)                                          # within 45 deg of horizontal
    dist = np.hypot(dx, dy)
    sclera = (dist > 1.1 * bnd.iris_r) & (dist < 1.1 * bnd.iris_r + max(2.0, 0.2 * bnd.iris_r)) \
        & (np.abs(dy) <= 0.5 * np.abs(dx)) & (img < SATURATED)
    regions = (pupil, usable & (rho >= 0.05) & (rho < 0.35), usable & (rho >= 0.65) & (rho < 0.95) & horiz, sclera)
    return tuple(255.0 * float(np.median(img[r])) if r.any() else NAN for r in regions)


def quality_components(image, boundaries: Boundaries | None = None, *, capture_scale: float = 1.0,
                       residual: float | None = None) -> QualityComponents:
    """Quality components of one eye image ([H, W] in [0, 1], or anything metrics.to_unit_image takes).

    Boundaries come from irislib.metrics.measure_pupil unless given (then `residual`, the RMS radial residual of
    the pupil boundary over its radius, defaults to 0). capture_scale converts the iris radius to capture px."""
    img = to_unit_image(image)
    if boundaries is None:
        m = measure_pupil(img)
        boundaries, residual = Boundaries.from_measurement(m), m.ellipse_residual
    if boundaries is None:
        return QualityComponents()
    bnd = boundaries
    strip, noise = rubber_sheet(img, bnd, 64, 256)
    _, usable, rho = iris_pixels(img.shape, bnd, noise)
    p, i_in, i_out, s = _medians(img, bnd, usable, rho)
    r = bnd.iris_r
    box = (int(bnd.iris_cx - r), int(bnd.iris_cy - r), int(math.ceil(bnd.iris_cx + r)) + 1,
           int(math.ceil(bnd.iris_cy + r)) + 1)
    return QualityComponents(
        found=True,
        usable_iris_area=float(100.0 * usable.sum() / max(annulus_size(bnd), 1)),   # iris off the image: occluded
        iris_sclera_contrast=iris_sclera_contrast(s, i_out, p) if np.isfinite([s, i_out, p]).all() else NAN,
        iris_pupil_contrast=iris_pupil_contrast(i_in, p) if np.isfinite([i_in, p]).all() else NAN,
        pupil_boundary_circularity=pupil_boundary_circularity(bnd, residual or 0.0),
        grey_scale_utilisation=grey_scale_utilisation(img[usable]),
        iris_radius=r * capture_scale,
        pupil_iris_ratio=100.0 * bnd.pupil_radius / r,
        iris_pupil_concentricity=100.0 * max(0.0, 1 - math.hypot(bnd.pupil_cx - bnd.iris_cx,
                                                                   bnd.pupil_cy - bnd.iris_cy) / r),
        margin_adequacy=margin_adequacy(bnd, img.shape),
        sharpness=sharpness(img, box))


# Our component -> (field of iris-iqm's result dict, factor to our units).
BIQT_FIELDS = {"usable_iris_area": ("usable_iris_area_percent", 1.0),
               "iris_sclera_contrast": ("iso_iris_sclera_contrast", 1.0),
               "iris_pupil_contrast": ("iso_iris_pupil_contrast", 1.0),
               "pupil_boundary_circularity": ("iso_pupil_boundary_circularity", 1.0),
               "grey_scale_utilisation": ("iso_greyscale_utilization", 1.0), "iris_radius": ("iris_diameter", 0.5),
               "pupil_iris_ratio": ("iris_pupil_ratio", 100.0),
               "iris_pupil_concentricity": ("iso_iris_pupil_concentricity", 1.0),
               "margin_adequacy": ("iso_margin_adequacy", 1.0), "sharpness": ("iso_sharpness", 1.0)}


def biqt_components(image, *, capture_scale: float = 1.0) -> QualityComponents:
    """The same components from MITRE BIQT-Iris's own segmentation and formulas, through its Python port iris-iqm
    (optional: pip install iris-iqm). BIQT refuses images under 256 x 256 px (found=False, NaN)."""
    try:
        import iris_iqm
    except ImportError as e:
        raise ImportError(f"the BIQT-Iris quality backend needs iris-iqm (pip install iris-iqm): {e}") from None
    r = iris_iqm.evaluate_array(np.round(to_unit_image(image) * 255).astype(np.uint8)).to_dict()
    if r["error_code"] != 0 or not r["iris_diameter"]:
        return QualityComponents()
    comps = {c: k * float(r[f]) for c, (f, k) in BIQT_FIELDS.items()}
    return QualityComponents(found=True, **{**comps, "iris_radius": comps["iris_radius"] * capture_scale})


def passes(name: str, values: np.ndarray) -> np.ndarray:
    """Which values meet the recommended value of component `name` (NaN fails)."""
    lo, hi, inclusive = THRESHOLDS[name]
    v = np.asarray(values, float)
    ok = (v >= lo) if inclusive else (v > lo)
    return ok & (v <= hi) if hi is not None else ok


def quality_report(images01, boundaries: list | None = None, *, capture_scale: float = 1.0,
                   backend: str = "irislib") -> dict:
    """Per-set quality: for each component mean, sd, 5/50/95th percentiles and (where BIQT or ISO recommends a
    value) the share passing; plus the share found and the share passing all BIQT-Iris thresholds (usable area
    and radius, ISO's, are reported separately: the radius fails below 160 px across at capture resolution).
    backend "biqt" measures with BIQT-Iris instead (biqt_components; it segments the images itself)."""
    imgs = np.asarray(images01)
    if imgs.ndim != 3 or len(imgs) == 0:
        raise ValueError(f"images01 has shape {imgs.shape}; pass a non-empty stack [N, H, W] in [0, 1]")
    if backend not in ("irislib", "biqt") or (backend == "biqt" and boundaries is not None):
        raise ValueError(f"backend={backend!r}: use 'irislib' or 'biqt' (which takes no boundaries)")
    if backend == "biqt":
        comps = [biqt_components(im, capture_scale=capture_scale) for im in imgs]
    else:
        comps = [quality_components(im, None if boundaries is None else boundaries[k], capture_scale=capture_scale)
                 for k, im in enumerate(imgs)]
    table = {c: np.array([getattr(q, c) for q in comps], float) for c in COMPONENTS}
    out = {"n": len(comps), "found_share": float(np.mean([q.found for q in comps])), "components": {},
           "per_image": [q.as_dict() for q in comps]}
    for c, v in table.items():
        fin = v[np.isfinite(v)]
        row = {"mean": float(fin.mean()) if fin.size else NAN, "sd": float(fin.std()) if fin.size else NAN,
               **{f"p{q}": float(np.percentile(fin, q)) if fin.size else NAN for q in (5, 50, 95)}}
        if c in THRESHOLDS:
            lo, hi, inc = THRESHOLDS[c]
            row["threshold"] = f"{'>=' if inc else '>'} {lo}" + (f" and <= {hi}" if hi is not None else "")
            row["pass_share"] = float(passes(c, v).mean())
        out["components"][c] = row
    biqt = [c for c in THRESHOLDS if c not in ("usable_iris_area", "iris_radius")]
    out["pass_all_biqt_share"] = float(np.all([passes(c, table[c]) for c in biqt], axis=0).mean())
    return out
