"""Daugman rubber-sheet normalisation between the fitted pupil ellipse and iris circle, with a noise mask.

Coordinates as in irislib.metrics: pixel centres at integers, x right, y down; angle theta is measured from +x
towards +y around each boundary's own centre, and point k of the pupil contour is joined to point k of the iris
contour (as open-iris's LinearNormalization does with the contours it is given).
"""
from __future__ import annotations

import math
from dataclasses import astuple, dataclass

import numpy as np

from ..metrics import to_unit_image
from ..metrics.image_ops import bilinear, dilate
from ..segmentation import Eye, find_eye, fit_set
from .eyelids import glint_mask, lid_masks, sample_mask

SATURATED = 254 / 255   # glints: at or above this grey level (open-iris's oversat_threshold)
EDGE_PX = 1.5           # rows this close to a boundary mix pupil or sclera into their samples


@dataclass(frozen=True)
class Boundaries(Eye):
    """Pupil ellipse (centre, semi-axes a >= b, direction of a in degrees) and iris circle, in px: segmentation's
    Eye with what the rubber sheet needs of it."""

    def rho_theta(self, xx: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rubber-sheet coordinates of points (x, y): rho (0 at the pupil ellipse, 1 at the limbus) and theta."""
        dx, dy = xx - self.pupil_cx, yy - self.pupil_cy
        th = np.arctan2(dy, dx) % (2 * math.pi)
        rp = self.pupil_radius_at(th)
        # Limbus along the ray from the pupil centre: |p + t u - c| = R, t > 0.
        ox, oy = self.pupil_cx - self.iris_cx, self.pupil_cy - self.iris_cy
        ou = ox * np.cos(th) + oy * np.sin(th)
        r_limbus = -ou + np.sqrt(np.maximum(ou ** 2 - ox ** 2 - oy ** 2 + self.iris_r ** 2, 0))
        return (np.hypot(dx, dy) - rp) / np.maximum(r_limbus - rp, 1e-6), th

    @property
    def pupil_radius(self) -> float:
        """Equal-area pupil radius sqrt(a b)."""
        return math.sqrt(self.pupil_a * self.pupil_b)

    @classmethod
    def from_measurement(cls, m, require_found: bool = True) -> Boundaries | None:
        """From irislib.metrics.PupilMeasurement; None when the pupil or the limbus was not found (or, with
        require_found=False, not measured at all)."""
        vals = (m.cx, m.cy, m.a, m.b, m.angle_deg, m.iris_cx, m.iris_cy, m.iris_radius)
        if (require_found and not m.found) or not all(np.isfinite(vals)) or m.iris_radius <= m.a:
            return None
        return cls(*(float(v) for v in vals))

    @classmethod
    def from_eye(cls, eye) -> Boundaries:
        """From irislib.segmentation's Eye (the same fields)."""
        return cls(*(float(v) for v in astuple(eye)))

    @classmethod
    def from_geometry(cls, geo: dict) -> Boundaries:
        """From the synthetic generator's ground-truth geometry dict."""
        p, i = geo["pupil"], geo["iris"]
        return cls(p["cx"], p["cy"], p["a"], p["b"], p["angle_deg"], i["cx"], i["cy"], i["r"])

    @classmethod
    def circles(cls, cx: float, cy: float, r_pupil: float, r_iris: float) -> Boundaries:
        """Concentric circles (constructed test images)."""
        return cls(cx, cy, r_pupil, r_pupil, 0.0, cx, cy, r_iris)

    def pupil_radius_at(self, theta: np.ndarray) -> np.ndarray:
        """Distance from the pupil centre to the ellipse along direction theta."""
        phi = theta - math.radians(self.pupil_angle_deg)
        a, b = self.pupil_a, self.pupil_b
        return a * b / np.sqrt((b * np.cos(phi)) ** 2 + (a * np.sin(phi)) ** 2)

    def contours(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Pupil and iris contour points [n, 2] (x, y) at theta_k = 2 pi k / n around their own centres."""
        th = 2 * math.pi * np.arange(n) / n
        rp = self.pupil_radius_at(th)
        pupil = np.stack([self.pupil_cx + rp * np.cos(th), self.pupil_cy + rp * np.sin(th)], 1)
        iris = np.stack([self.iris_cx + self.iris_r * np.cos(th), self.iris_cy + self.iris_r * np.sin(th)], 1)
        return pupil, iris


def fit_boundaries(image) -> Boundaries | None:
    """Boundaries of one eye image, crop or camera frame, by irislib.segmentation (None if no plausible eye).

    Lenient: a blurred or noisy pupil that the strict "is this a good pupil" tests reject still has a boundary to
    unwrap (a blurred copy of a training iris must still be matched against it)."""
    eye, _ = find_eye(to_unit_image(image), lenient=True)
    return None if eye is None else Boundaries.from_eye(eye)


def fit_boundaries_set(images, done=None) -> list[tuple[Boundaries | None, str]]:
    """fit_boundaries of a set's images, with a second look at those whose iris is far from the median size of the
    set's images of that shape, or where none was found (segmentation.fit_set): what verify-dataset uses, as
    data.crop=iris does. [(boundaries, "") or (None, why)]; done(k): called after each image's first pass."""
    units = [to_unit_image(im) for im in images]
    first = {}
    for k, img in enumerate(units):
        first[k] = (*find_eye(img, lenient=True), img.shape)
        if done is not None:
            done(k)
    fitted = fit_set(first, lambda k: units[k], lenient=True)
    return [(None if fitted[k][0] is None else Boundaries.from_eye(fitted[k][0]), fitted[k][1])
            for k in range(len(units))]


def sample_grid(bnd: Boundaries, n_rho: int, n_theta: int, inclusive: bool = False) -> tuple[np.ndarray, ...]:
    """Image coordinates (x, y) [n_rho, n_theta] of the rubber sheet: rho from the pupil (0) to the limbus (1),
    at cell centres, or at both boundaries too when `inclusive` (open-iris's linspace(0, 1, n))."""
    rho = np.linspace(0, 1, n_rho) if inclusive else (np.arange(n_rho) + 0.5) / n_rho
    pupil, iris = bnd.contours(n_theta)
    pts = pupil[None] + rho[:, None, None] * (iris - pupil)[None]         # [n_rho, n_theta, 2]
    return pts[..., 0], pts[..., 1]


def _sample(img: np.ndarray, x: np.ndarray, y: np.ndarray, nearest: bool) -> np.ndarray:
    """Grey values at (x, y); NaN outside the image. `nearest` rounds like open-iris (np.round)."""
    if not nearest:
        return bilinear(img, x, y)
    h, w = img.shape
    xi, yi = np.round(x).astype(int), np.round(y).astype(int)
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    return np.where(inside, img[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)], np.nan)


def occlusion_mask(strip: np.ndarray, bright_k: float = 4.0, dark_k: float = 4.0, floor: float = 0.08,
                   edge_rows: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Noise mask [n_rho, n_theta] (True = not iris) of a rubber-sheet strip in [0, 1] (NaN = outside the image).

    Eyelid skin and sclera are brighter than the iris, lashes darker: a pixel further than max(k robust sd, floor)
    from the strip's median is noise. An eyelid covers the iris from the limbus inwards, so in every column all rows
    beyond a bright run of >= 2 rows are masked too. Saturated pixels (glints) and NaN are always noise. The first
    and last `edge_rows` rows blend with pupil and sclera, so only a lid reaching them from inside masks them."""
    valid = np.isfinite(strip)
    if not valid.any():
        return np.ones(strip.shape, bool)
    v = strip[valid]
    med = float(np.median(v))
    sd = 1.4826 * float(np.median(np.abs(v - med)))
    s = np.where(valid, strip, med)
    core = np.zeros(strip.shape, bool)
    core[edge_rows[0]:strip.shape[0] - edge_rows[1]] = True
    bright = (s > med + max(bright_k * sd, floor)) & core
    lid = bright & np.roll(bright, 1, axis=0)                  # two consecutive bright rows: skin, not a fibre
    lid[0] = False
    lid = np.cumsum(lid, axis=0) > 0                           # everything outward of the lid edge
    lid = np.roll(lid, -1, axis=0) | lid                       # include the first bright row
    spots = (s >= SATURATED) | bright | ((s < med - max(dark_k * sd, floor)) & core)
    return ~valid | lid | dilate(spots, 1)                    # lashes and glints blur into their neighbours


def _offsets(bnd: Boundaries, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectors from the iris centre to the pupil contour points (their length bounds the iris width from below)."""
    pupil, _ = bnd.contours(n)
    return pupil[:, 0] - bnd.iris_cx, pupil[:, 1] - bnd.iris_cy


def rubber_sheet(image, bnd: Boundaries, n_rho: int = 64, n_theta: int = 256, *, nearest: bool = False,
                 inclusive: bool = False, mask: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Normalised iris strip [n_rho, n_theta] in [0, 1] (rows: pupil -> limbus; columns: theta) and its noise
    mask (True = occluded / outside the image / glint): the strip thresholds of occlusion_mask (lashes, bright
    spots) plus, found in the image, everything beyond a fitted upper / lower eyelid and (near-)saturated glints
    grown by their blur (irislib.biometrics.eyelids). With mask=False only outside-image and saturated
    pixels are masked (open-iris given an empty noise mask)."""
    if n_rho < 2 or n_theta < 8:
        raise ValueError(f"n_rho={n_rho}, n_theta={n_theta}: use n_rho >= 2 and n_theta >= 8")
    img = to_unit_image(image)
    x, y = sample_grid(bnd, n_rho, n_theta, inclusive)
    strip = _sample(img, x, y, nearest)
    if mask:
        width = float(np.min(bnd.iris_r - np.hypot(*_offsets(bnd, n_theta))))      # thinnest iris, px
        edge = int(math.ceil(EDGE_PX / max(width, 1e-6) * n_rho))
        noise = occlusion_mask(strip, edge_rows=(edge, edge))
        noise |= lid_masks(img, bnd, x, y) | sample_mask(glint_mask(img), x, y)
    else:
        noise = ~np.isfinite(strip) | (np.nan_to_num(strip) >= SATURATED)
    return np.nan_to_num(strip, nan=0.0), noise


def annulus_size(bnd: Boundaries) -> int:
    """Pixel centres in the annulus on an unbounded grid: the iris as a whole, including any part outside the
    image (which iris_pixels cannot see, and which counts as occluded in the ISO usable iris area)."""
    x0, y0 = math.floor(bnd.iris_cx - bnd.iris_r), math.floor(bnd.iris_cy - bnd.iris_r)
    x1, y1 = math.ceil(bnd.iris_cx + bnd.iris_r), math.ceil(bnd.iris_cy + bnd.iris_r)
    yy, xx = np.mgrid[y0:y1 + 1, x0:x1 + 1].astype(np.float64)
    rho, _ = bnd.rho_theta(xx, yy)
    return int(((rho >= 0) & (rho < 1)).sum())


def iris_pixels(shape: tuple[int, int], bnd: Boundaries, noise: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Image-domain annulus [H, W] (between the pupil ellipse and the iris circle; only its part inside the image,
    see annulus_size for the whole), its usable part (the strip's noise mask looked up at each pixel's
    (rho, theta)) and each pixel's rho."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    rho, th = bnd.rho_theta(xx, yy)
    annulus = (rho >= 0) & (rho < 1)
    if noise is None:
        return annulus, annulus.copy(), rho
    n_rho, n_theta = noise.shape
    i = np.clip((rho * n_rho).astype(int), 0, n_rho - 1)
    j = np.round(th / (2 * math.pi) * n_theta).astype(int) % n_theta
    return annulus, annulus & ~noise[i, j], rho
