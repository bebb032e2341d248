"""Building blocks of the synthetic NIR eye: polar iris texture, smooth noise fields, eyelashes, Gaussian blur.

All random draws here use fixed-size grids (independent of the output size), so one seed gives the same eye at
64, 128 or 320 px; only the sensor noise is drawn per pixel (in synthetic.py, last).
"""
from __future__ import annotations

import math

import numpy as np

N_RHO, N_THETA = 96, 768  # polar texture grid: rho (pupil edge 0 -> limbus 1) x theta (0 -> 2 pi)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a [H, W] float array (reflect padding); sigma in px, < 0.1 = no-op."""
    if sigma < 0.1:
        return img
    radius = max(1, int(math.ceil(3.0 * sigma)))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k = (k / k.sum()).astype(np.float32)
    out = img
    for axis in (0, 1):
        n = out.shape[axis]
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        p = np.pad(out, pad, mode="reflect" if n > radius else "edge")
        acc = np.zeros_like(out)
        for j, w in enumerate(k):
            acc += w * (p[j:j + n] if axis == 0 else p[:, j:j + n])
        out = acc
    return out


def bilinear(grid: np.ndarray, u: np.ndarray, v: np.ndarray, wrap_v: bool = False) -> np.ndarray:
    """Sample grid [M, N] at fractional indices (u rows, v columns), clamped (or wrapped along v)."""
    m, n = grid.shape
    u = np.clip(u, 0.0, m - 1.0)
    u0 = np.minimum(u.astype(np.int32), m - 2)
    fu = u - u0
    if wrap_v:
        v = np.mod(v, n)
        v0 = v.astype(np.int32) % n
        v1 = (v0 + 1) % n
    else:
        v = np.clip(v, 0.0, n - 1.0)
        v0 = np.minimum(v.astype(np.int32), n - 2)
        v1 = v0 + 1
    fv = v - np.floor(v)
    top = grid[u0, v0] * (1 - fv) + grid[u0, v1] * fv
    bot = grid[u0 + 1, v0] * (1 - fv) + grid[u0 + 1, v1] * fv
    return (top * (1 - fu) + bot * fu).astype(np.float32)


def smooth_field(rng: np.random.Generator, cells: int = 12, octaves: int = 3) -> np.ndarray:
    """Zero-mean smooth noise on a 64x64 grid (sum of octaves of bilinear-upsampled random cells), std ~1."""
    out = np.zeros((64, 64), np.float32)
    idx = np.linspace(0, 1, 64, dtype=np.float32)
    for o in range(octaves):
        c = cells * 2 ** o
        g = rng.standard_normal((c + 1, c + 1)).astype(np.float32)
        uu, vv = np.meshgrid(idx * c, idx * c, indexing="ij")
        out += bilinear(g, uu, vv) * 0.5 ** o
    return out / out.std()


def _band_noise(rng, k_theta: tuple[float, float], k_rho_max: float) -> np.ndarray:
    """White noise on the polar grid filtered to fibres: angular frequencies in k_theta, radially smooth."""
    spec = np.fft.rfft2(rng.standard_normal((N_RHO, N_THETA)).astype(np.float32))
    kr = np.abs(np.fft.fftfreq(N_RHO) * N_RHO)[:, None]          # cycles per unit rho
    kt = np.fft.rfftfreq(N_THETA) * N_THETA                         # cycles per turn
    lo, hi = k_theta
    band = np.exp(-0.5 * (np.log(np.maximum(kt, 1.0) / math.sqrt(lo * hi)) / (0.5 * math.log(hi / lo))) ** 2)
    band = band[None, :] * np.exp(-0.5 * (kr / k_rho_max) ** 2)
    out = np.fft.irfft2(spec * band, s=(N_RHO, N_THETA)).astype(np.float32)
    return out / (out.std() + 1e-8)


def _shear(tex: np.ndarray, turns: float) -> np.ndarray:
    """Rotate each rho row by an angle growing with rho**1.5, so fibres curve (circular shift per row)."""
    rho = np.linspace(0, 1, N_RHO)
    out = np.empty_like(tex)
    for i, r in enumerate(rho):
        out[i] = np.roll(tex[i], int(round(turns * r ** 1.5 * N_THETA)))
    return out


def _periodic_curve(rng, n_terms: int, amp: float) -> np.ndarray:
    """A smooth random function of theta [N_THETA] with the first n_terms harmonics, peak ~amp."""
    th = np.linspace(0, 2 * math.pi, N_THETA, endpoint=False)
    out = np.zeros(N_THETA, np.float32)
    for k in range(1, n_terms + 1):
        out += rng.standard_normal() / k * np.cos(k * th + rng.uniform(0, 2 * math.pi))
    return amp * out / (np.abs(out).max() + 1e-8)


def iris_texture(rng: np.random.Generator, base: float) -> np.ndarray:
    """Polar NIR iris texture [N_RHO, N_THETA]: radial fibres, collarette ridge, crypts, furrows, limbal ring."""
    rho = np.linspace(0, 1, N_RHO, dtype=np.float32)[:, None]
    th = np.linspace(0, 2 * math.pi, N_THETA, endpoint=False, dtype=np.float32)[None, :]
    # Collarette at ~1/3 of the pupil->limbus distance, wavy in theta.
    rc = rng.uniform(0.25, 0.42) + _periodic_curve(rng, 8, rng.uniform(0.02, 0.06))[None, :]
    inner = (rho < rc).astype(np.float32)
    zone = rng.uniform(-0.06, 0.08)                       # pupillary zone brighter or darker than ciliary zone
    tex = base + zone * inner
    tex = tex + rng.uniform(0.04, 0.10) * np.exp(-0.5 * ((rho - rc) / 0.035) ** 2)
    # Radial fibres: two curved layers plus a fine one; stronger in the ciliary zone.
    f1 = _shear(_band_noise(rng, (25, 140), 5.0), rng.uniform(-0.08, 0.08))
    f2 = _shear(_band_noise(rng, (40, 220), 8.0), rng.uniform(-0.12, 0.12))
    f3 = _band_noise(rng, (60, 300), 18.0)
    fib_amp = rng.uniform(0.035, 0.07)
    tex = tex + fib_amp * (0.9 * f1 + 0.5 * f2) * (0.6 + 0.4 * (1 - inner)) + 0.015 * f3
    tex = tex + 0.02 * _band_noise(rng, (3, 20), 4.0)       # slow brightness patches
    tex = tex - _crypts(rng, rho, th, rc) - _furrows(rng, rho, th)
    # Pupillary ruff (dark pigment rim) and limbal darkening.
    tex = tex - rng.uniform(0.04, 0.10) * np.exp(-0.5 * (rho / 0.03) ** 2)
    tex = tex - rng.uniform(0.03, 0.10) * np.clip((rho - 0.8) / 0.2, 0, 1) ** 2
    return np.clip(tex, 0.15, 0.9).astype(np.float32)


def _crypts(rng, rho, th, rc) -> np.ndarray:
    """Fuchs' crypts: dark radially elongated blobs near the collarette (positive = darkening)."""
    n = int(rng.integers(3, 15))
    rc_mean = float(np.mean(rc))
    cr = np.clip(rc_mean + rng.normal(0.03, 0.1, n), 0.08, 0.85)[:, None, None]
    ct = rng.uniform(0, 2 * math.pi, n)[:, None, None]
    sr = rng.uniform(0.04, 0.11, n)[:, None, None]
    st = rng.uniform(0.025, 0.09, n)[:, None, None]
    depth = rng.uniform(0.06, 0.18, n)[:, None, None]
    dth = np.angle(np.exp(1j * (th[None] - ct)))           # wrapped angular distance
    q = ((rho[None] - cr) / sr) ** 2 + (dth / st) ** 2
    return (depth * np.exp(-q ** 1.5)).sum(0).astype(np.float32)


def _furrows(rng, rho, th) -> np.ndarray:
    """Concentric contraction furrows: thin dark partial arcs in the outer (ciliary) zone."""
    out = np.zeros((N_RHO, N_THETA), np.float32)
    for _ in range(int(rng.integers(1, 6))):
        r0 = rng.uniform(0.55, 0.93)
        wave = _periodic_curve(rng, 6, 0.02)[None, :]
        extent = np.clip(_periodic_curve(rng, 4, 1.0) + rng.uniform(-0.2, 0.5), 0, 1)[None, :]
        out += rng.uniform(0.03, 0.08) * extent * np.exp(-0.5 * ((rho - r0 - wave) / 0.012) ** 2)
    return out


def lash_strokes(rng: np.random.Generator, n: int, down: bool) -> dict:
    """Random eyelash shape parameters in units of the iris radius (roots are placed by the caller)."""
    return {"u": np.sort(rng.beta(1.6, 1.6, n)),                 # position along the lid, 0..1
            "length": rng.uniform(0.12, 0.45 if down else 0.25, n),
            "tilt": rng.normal(0.0, 0.25, n),                     # radians, plus an outward fan added later
            "curl": rng.normal(0.25, 0.15, n),
            "width": rng.uniform(0.5, 1.0, n),
            "down": down}


def render_lashes(shape: tuple[int, int], roots: np.ndarray, dirs: np.ndarray, strokes: dict, scale: float,
                  sigma: float) -> np.ndarray:
    """Coverage [H, W] in [0, 1] of curved lashes: roots [n, 2] (x, y) px, dirs [n, 2] unit vectors."""
    h, w = shape
    n = len(roots)
    if n == 0:
        return np.zeros(shape, np.float32)
    length = strokes["length"] * scale                                  # [n] px
    m = int(min(400, max(8, math.ceil(length.max() / 0.4))))           # samples per lash, <= 0.4 px apart
    t = np.linspace(0, 1, m, dtype=np.float32)[None, :]
    normal = np.stack([-dirs[:, 1], dirs[:, 0]], 1) * np.sign(dirs[:, :1] + 1e-6)  # bend outward
    pts = (roots[:, None, :] + length[:, None, None] * (t[..., None] * dirs[:, None, :]
           + strokes["curl"][:, None, None] * t[..., None] ** 2 * normal[:, None, :]))  # [n, m, 2]
    step = (length / (m - 1))[:, None] * np.ones_like(t)
    weight = step * strokes["width"][:, None] * (1.0 - 0.7 * t) * max(1.0, scale / 60)  # tapered
    x, y, wgt = pts[..., 0].ravel(), pts[..., 1].ravel(), weight.ravel()
    keep = (x >= 0) & (x < w - 1) & (y >= 0) & (y < h - 1)
    x, y, wgt = x[keep], y[keep], wgt[keep]
    x0, y0 = x.astype(np.int64), y.astype(np.int64)
    fx, fy = x - x0, y - y0
    acc = np.zeros(h * w, np.float64)
    for dy, dx, ww in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        acc += np.bincount((y0 + dy) * w + x0 + dx, weights=wgt * ww, minlength=h * w)
    acc = gaussian_blur(acc.reshape(h, w).astype(np.float32), sigma)
    return 1.0 - np.exp(-2.5 * acc)
