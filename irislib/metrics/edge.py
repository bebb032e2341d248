"""Pupil edge width from an erf step fitted to the median radial profile around the fitted ellipse.

Why a fit: a 10-90 % rise read between levels sampled a fixed few px past the edge has a ceiling (the far level
is still on the slope of a wide edge) and, on bilinear rays, reads sharp edges ~0.4 px high. Here every pixel near
the edge is placed at its radial distance d to the ellipse (no interpolation), the median value per 0.25 px bin of
d gives a profile robust to texture, glints and a few occluded sectors, and v(d) = p + c Phi((d - d0) / s) is fitted
over a window that grows with s until it holds both plateaus. 10-90 % width = 2 * 1.2816 * s = 2.563 s.
"""
from __future__ import annotations

import math

import numpy as np

WIDTH_PER_SIGMA = 2 * 1.2815516       # 10-90 % rise of an erf step, in units of its sigma
BIN_PX = 0.25
LOG_S_RANGE = (math.log(0.05), math.log(50.0))   # px; beyond both ends the width is not measurable here


def norm_cdf(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF (Abramowitz & Stegun 7.1.26 erf, |error| < 1.5e-7; numpy has no erf)."""
    x = np.abs(z) / math.sqrt(2)
    t = 1 / (1 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1 - poly * np.exp(-x * x)
    return 0.5 * (1 + np.sign(z) * erf)


def _linear_levels(basis: np.ndarray, y: np.ndarray, w: np.ndarray):
    """Weighted least squares of y ~ p + c * basis for every row of basis [G, B] -> (p [G], c [G], sse [G])."""
    sw, sy = w.sum(), (w * y).sum()
    sb, sbb, sby = basis @ w, (basis ** 2) @ w, basis @ (w * y)
    det = np.maximum(sw * sbb - sb ** 2, 1e-12)
    c = (sw * sby - sb * sy) / det
    p = (sy - c * sb) / sw
    sse = ((p[:, None] + c[:, None] * basis - y) ** 2) @ w
    return p, c, sse


def _grid_start(x, y, w, d0_guess, levels=None):
    """Best (p, c, d0, s) on a grid of d0 and log s, the levels solved exactly for each (variable projection) or
    held at `levels` = (p, c) (two parameters left: a coarser grid will do)."""
    d0 = d0_guess + np.linspace(-3, 3, 25 if levels is None else 9)
    s = np.geomspace(0.15, 10, 30 if levels is None else 10)
    D0, S = np.meshgrid(d0, s, indexing="ij")
    basis = norm_cdf((x[None] - D0.reshape(-1, 1)) / S.reshape(-1, 1))
    if levels is None:
        p, c, sse = _linear_levels(basis, y, w)
    else:
        p, c = np.full(len(basis), levels[0]), np.full(len(basis), levels[1])
        sse = ((levels[0] + levels[1] * basis - y) ** 2) @ w
    sse = np.where(c > 0, sse, np.inf)                          # the iris is brighter than the pupil
    k = int(np.argmin(sse))
    return np.array([p[k], c[k], D0.flat[k], math.log(S.flat[k])])


def _levenberg_marquardt(x, y, w, theta, iters=40, free=slice(0, 4)):
    """Refine theta = (p, c, d0, log s) (the `free` ones) by weighted Levenberg-Marquardt, analytic Jacobian."""
    sw = np.sqrt(w)

    def resid(t):
        return sw * (t[0] + t[1] * norm_cdf((x - t[2]) / math.exp(t[3])) - y)

    lam, r = 1e-3, resid(theta)
    for _ in range(iters):
        s = math.exp(theta[3])
        z = (x - theta[2]) / s
        pdf = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        jac = sw[:, None] * np.stack([np.ones_like(x), norm_cdf(z), -theta[1] * pdf / s, -theta[1] * pdf * z], 1)
        jac = jac[:, free]
        jtj, jtr = jac.T @ jac, jac.T @ r
        step = np.zeros(4)
        try:
            step[free] = np.linalg.solve(jtj + lam * np.diag(np.diag(jtj) + 1e-12), -jtr)
        except np.linalg.LinAlgError:      # flat profile or NaN: keep the best so far
            break
        new = theta + step
        new[3] = np.clip(new[3], LOG_S_RANGE[0], LOG_S_RANGE[1])       # a step edge (s -> 0) stays finite
        r_new = resid(new)
        if r_new @ r_new < r @ r:
            theta, r, lam = new, r_new, lam / 3
            if np.abs(step).max() < 1e-7:
                break
        else:
            lam *= 4
    return theta


def fit_erf_step(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None, d0_guess: float = 0.0,
                 levels: tuple[float, float] | None = None) -> dict | None:
    """Fit y = p + c Phi((x - d0) / s) (c > 0; p, c held if `levels` is given) -> {p, c, d0, sigma, width, rms},
    or None (too few points, no rise).

    `rms` is the weighted RMS residual divided by c: ~0 for a clean step, large for a two-step (halo) profile."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    w = np.ones_like(x) if w is None else np.asarray(w, float)
    if len(x) < (3 if levels else 6) or np.ptp(y) <= 0:
        return None
    theta = _levenberg_marquardt(x, y, w, _grid_start(x, y, w, d0_guess, levels),
                                 free=slice(0, 4) if levels is None else slice(2, 4))
    p, c, d0, s = theta[0], theta[1], theta[2], math.exp(theta[3])
    if not (c > 0 and np.isfinite(theta).all()):
        return None
    res = p + c * norm_cdf((x - d0) / s) - y
    rms = math.sqrt(float((w * res ** 2).sum() / w.sum())) / c
    return {"p": float(p), "c": float(c), "d0": float(d0), "sigma": s, "width": WIDTH_PER_SIGMA * s, "rms": rms}


def radial_profile(d: np.ndarray, v: np.ndarray, lo: float, hi: float, bin_px: float = BIN_PX):
    """Median value and median d per bin of d in [lo, hi] -> (x [B], y [B], count [B]) over non-empty bins."""
    sel = (d >= lo) & (d <= hi)
    d, v = d[sel], v[sel]
    if d.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    k = np.floor((d - lo) / bin_px).astype(int)
    order = np.lexsort((v, k))                      # by bin, then value: a bin's median is its middle element
    k, v, d = k[order], v[order], d[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    counts = np.diff(np.r_[starts, len(k)])
    mid_lo, mid_hi = starts + (counts - 1) // 2, starts + counts // 2
    # d of the median-value pixels: the median d wherever the profile is monotone within the bin
    return (d[mid_lo] + d[mid_hi]) / 2, (v[mid_lo] + v[mid_hi]) / 2, counts.astype(float)


def fit_edge_profile(d: np.ndarray, v: np.ndarray, r0: float, sigma0: float = 0.6) -> dict | None:
    """Erf step fitted to the median profile of values v at radial distances d (px, 0 = fitted boundary, > 0 out).

    The window reaches max(2.5, 3.5 s) px out and max(3, 4 s) px in, refitted with the new s until it settles, so a
    wide edge's far plateau is inside it while a sharp edge's window stops short of the limbus."""
    fit, s, d0 = None, max(sigma0, 0.3), 0.0
    for _ in range(4):
        lo, hi = d0 - min(max(3.0, 4 * s), r0 + 1), d0 + max(2.5, 3.5 * s)
        x, y, n = radial_profile(d, v, lo, hi)
        new = fit_erf_step(x, y, np.sqrt(n), d0)
        if new is None:
            return fit
        fit = new
        if abs(new["sigma"] - s) < 0.02 * s + 0.01 and abs(new["d0"] - d0) < 0.05:
            break
        s, d0 = min(new["sigma"], 2 * r0 + 2), float(np.clip(new["d0"], -r0, r0))
    return fit


def sector_widths(d: np.ndarray, v: np.ndarray, sector: np.ndarray, fit: dict, n_sectors: int,
                  r0: float) -> np.ndarray:
    """10-90 % width per angular sector [n_sectors] (NaN where too few pixels): the erf step refitted to each
    sector's median profile with the global levels held, so a local smear widens its sectors only."""
    s = fit["sigma"]
    # Reaches further out than the global fit (a smear extends the dark); values above the held iris level
    # (limbus, sclera) cannot pull an erf capped at p + c.
    lo, hi = fit["d0"] - max(3.0, 4 * s), fit["d0"] + max(2.5, 3.5 * s, 0.6 * r0)
    out = np.full(n_sectors, np.nan)
    for k in range(n_sectors):
        x, y, n = radial_profile(d[sector == k], v[sector == k], lo, hi)
        f = fit_erf_step(x, y, np.sqrt(n), fit["d0"], levels=(fit["p"], fit["c"])) if len(x) >= 4 else None
        if f is not None:
            out[k] = f["width"]
    return out
