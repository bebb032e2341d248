"""Building blocks of the synthetic NIR eye: polar iris texture, smooth noise fields, eyelashes, Gaussian blur.

All random draws here use fixed-size grids (independent of the output size), so one seed gives the same eye at
64, 128 or 320 px; only the sensor noise is drawn per pixel (in synthetic.py, last).
"""
from __future__ import annotations

import math

import numpy as np

N_RHO, N_THETA = 64, 768  # polar texture grid: rho (pupil edge 0 -> limbus 1) x theta (0 -> 2 pi)


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
    """Sample grid [M, N] (or [M, N, K] -> [..., K]) at fractional indices u (rows), v (columns); clamped, or
    wrapped along v."""
    m, n = grid.shape[:2]
    flat = grid.reshape(m * n, -1) if grid.ndim == 3 else grid.ravel()
    u = np.clip(u, 0.0, m - 1.0)
    u0 = np.minimum(u.astype(np.int32), m - 2)
    fu = u - u0
    if wrap_v:
        v = np.mod(v, n)
        v0 = v.astype(np.int32) % n
        v1 = (v0 + 1) % n
        fv = v - np.floor(v)
    else:
        v = np.clip(v, 0.0, n - 1.0)
        v0 = np.minimum(v.astype(np.int32), n - 2)
        v1 = v0 + 1
        fv = v - v0
    i00, i01 = u0 * n + v0, u0 * n + v1
    if grid.ndim == 3:
        fu, fv = fu[..., None], fv[..., None]
    top = flat[i00] * (1 - fv) + flat[i01] * fv
    bot = flat[i00 + n] * (1 - fv) + flat[i01 + n] * fv
    return (top * (1 - fu) + bot * fu).astype(np.float32)


def smooth_field(rng: np.random.Generator, cells: float) -> np.ndarray:
    """Zero-mean smooth noise on a 64x64 grid, std 1: white noise low-passed to ~`cells` blobs per side (1/f-ish)."""
    k = np.hypot(np.fft.fftfreq(64)[:, None], np.fft.rfftfreq(64)[None, :]) * 64   # cycles per side
    spec = np.fft.rfft2(rng.standard_normal((64, 64)).astype(np.float32))
    out = np.fft.irfft2(spec * np.exp(-0.5 * (k / cells) ** 2) / np.maximum(k, 1.0) ** 0.5, s=(64, 64))
    out = out - out.mean()
    return (out / (out.std() + 1e-8)).astype(np.float32)


def _band_noise(rng, k_theta: tuple[float, float], rho_cells: int) -> np.ndarray:
    """Fibre noise on the polar grid: log-normal band of angular frequencies k_theta (cycles per turn), smooth in
    rho (rho_cells random rows, linearly interpolated)."""
    spec = np.fft.rfft(rng.standard_normal((rho_cells + 1, N_THETA)).astype(np.float32), axis=1)
    kt = np.fft.rfftfreq(N_THETA) * N_THETA
    lo, hi = k_theta
    band = np.exp(-0.5 * (np.log(np.maximum(kt, 1.0) / math.sqrt(lo * hi)) / (0.5 * math.log(hi / lo))) ** 2)
    coarse = np.fft.irfft(spec * band[None, :], n=N_THETA, axis=1).astype(np.float32)   # [cells + 1, N_THETA]
    pos = np.linspace(0, rho_cells, N_RHO)
    i0 = np.minimum(pos.astype(np.int32), rho_cells - 1)
    f = (pos - i0).astype(np.float32)[:, None]
    out = coarse[i0] * (1 - f) + coarse[i0 + 1] * f
    return out / (out.std() + 1e-8)


def _shear(tex: np.ndarray, turns: float) -> np.ndarray:
    """Rotate each rho row by an angle growing with rho**1.5, so fibres curve (circular shift per row)."""
    shift = np.round(turns * np.linspace(0, 1, N_RHO) ** 1.5 * N_THETA).astype(np.int64)
    idx = (np.arange(N_THETA)[None, :] - shift[:, None]) % N_THETA
    return np.take_along_axis(tex, idx, axis=1)


def _periodic_curve(rng, n_terms: int, amp: float) -> np.ndarray:
    """A smooth random function of theta [N_THETA] with the first n_terms harmonics, peak ~amp."""
    th = np.linspace(0, 2 * math.pi, N_THETA, endpoint=False, dtype=np.float32)
    k = np.arange(1, n_terms + 1, dtype=np.float32)[:, None]
    coef, phase = rng.standard_normal((n_terms, 1)), rng.uniform(0, 2 * math.pi, (n_terms, 1))
    out = (coef / k * np.cos(k * th + phase)).sum(0).astype(np.float32)
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
    curl = rng.uniform(-0.06, 0.06)                       # fibres curve mostly one way, a second layer crosses
    f1 = _shear(_band_noise(rng, (25, 140), 6), curl)
    f2 = _shear(_band_noise(rng, (40, 220), 10), -curl * rng.uniform(0.3, 1.0))
    f3 = _band_noise(rng, (60, 300), 32)
    fib_amp = rng.uniform(0.035, 0.07)
    tex = tex + fib_amp * (0.9 * f1 + 0.4 * f2) * (0.6 + 0.4 * (1 - inner)) + 0.015 * f3
    tex = tex + 0.02 * _band_noise(rng, (3, 20), 4)       # slow brightness patches
    tex = tex - _crypts(rng, rho, th, rc) - _furrows(rng, rho, th)
    # Pupillary ruff (dark pigment rim) and limbal darkening.
    tex = tex - rng.uniform(0.03, 0.08) * np.exp(-0.5 * (rho / 0.015) ** 2)
    tex = tex - rng.uniform(0.03, 0.10) * np.clip((rho - 0.8) / 0.2, 0, 1) ** 2
    return np.clip(tex, 0.15, 0.9).astype(np.float32)


def _crypts(rng, rho, th, rc) -> np.ndarray:
    """Fuchs' crypts: dark radially elongated blobs near the collarette (positive = darkening)."""
    n = int(rng.integers(3, 15))
    rc_mean = float(np.mean(rc))
    cr = np.clip(rc_mean + rng.normal(0.03, 0.1, n), 0.08, 0.85)
    ct = rng.uniform(0, 2 * math.pi, n)
    sr, st = rng.uniform(0.04, 0.11, n), rng.uniform(0.025, 0.09, n)
    depth = rng.uniform(0.06, 0.18, n)
    out = np.zeros((N_RHO, N_THETA), np.float32)
    r1, t1 = rho[:, 0], th[0]
    for k in range(n):   # each crypt touches only a small window of the polar grid
        rows = np.nonzero(np.abs(r1 - cr[k]) < 2.5 * sr[k])[0]
        dth = (t1 - ct[k] + math.pi) % (2 * math.pi) - math.pi          # wrapped angular distance
        cols = np.nonzero(np.abs(dth) < 2.5 * st[k])[0]
        q = ((r1[rows, None] - cr[k]) / sr[k]) ** 2 + (dth[None, cols] / st[k]) ** 2
        out[np.ix_(rows, cols)] += depth[k] * np.exp(-q ** 1.5)
    return out


def _furrows(rng, rho, th) -> np.ndarray:
    """Concentric contraction furrows: thin dark partial arcs in the outer (ciliary) zone."""
    out = np.zeros((N_RHO, N_THETA), np.float32)
    r1 = rho[:, 0]
    for _ in range(int(rng.integers(1, 6))):
        r0 = rng.uniform(0.55, 0.93)
        wave = _periodic_curve(rng, 6, 0.02)[None, :]
        extent = np.clip(_periodic_curve(rng, 4, 1.0) + rng.uniform(-0.2, 0.5), 0, 1)[None, :]
        depth = rng.uniform(0.03, 0.08)
        rows = np.nonzero(np.abs(r1 - r0) < 0.08)[0]         # the arc only touches nearby rows
        out[rows] += depth * extent * np.exp(-0.5 * ((r1[rows, None] - r0 - wave) / 0.012) ** 2)
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
