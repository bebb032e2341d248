"""Least-squares ellipse and circle fits (Halir-Flusser / Kasa), radial residuals, RANSAC circle."""
from __future__ import annotations

import math

import numpy as np


def fit_ellipse(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float, float] | None:
    """Direct least-squares ellipse (Fitzgibbon 1999, stable form of Halir & Flusser 1998) -> (cx, cy, a, b,
    angle_deg) with a >= b, or None if the points do not determine an ellipse."""
    if len(x) < 6:
        return None
    mx, my = x.mean(), y.mean()
    s = max(np.sqrt(np.mean((x - mx) ** 2 + (y - my) ** 2)), 1e-9)   # normalise for conditioning
    u, v = (x - mx) / s, (y - my) / s
    d1 = np.stack([u * u, u * v, v * v], axis=1)                       # [N, 3] quadratic part
    d2 = np.stack([u, v, np.ones_like(u)], axis=1)                     # [N, 3] linear part
    s1, s2, s3 = d1.T @ d1, d1.T @ d2, d2.T @ d2
    try:
        t = -np.linalg.solve(s3, s2.T)
        m = s1 + s2 @ t
        m = np.stack([m[2] / 2, -m[1], m[0] / 2])                      # C1^-1 @ M
        _, vecs = np.linalg.eig(m)
    except np.linalg.LinAlgError:
        return None
    vecs = np.real(vecs)
    ok = 4 * vecs[0] * vecs[2] - vecs[1] ** 2 > 0                      # the ellipse constraint
    if not ok.any():
        return None
    a1 = vecs[:, np.argmax(ok)]
    A, B, C = a1
    D, E, F = t @ a1
    try:
        x0, y0 = np.linalg.solve([[2 * A, B], [B, 2 * C]], [-D, -E])
    except np.linalg.LinAlgError:
        return None
    fc = A * x0 ** 2 + B * x0 * y0 + C * y0 ** 2 + D * x0 + E * y0 + F
    lam, evec = np.linalg.eigh([[A, B / 2], [B / 2, C]])
    axes2 = -fc / lam
    if np.any(axes2 <= 0):
        return None
    axes = np.sqrt(axes2) * s
    i = int(np.argmax(axes))                                           # major axis
    angle = math.degrees(math.atan2(evec[1, i], evec[0, i])) % 180.0
    return float(x0 * s + mx), float(y0 * s + my), float(axes[i]), float(axes[1 - i]), angle


def radial_residuals(x: np.ndarray, y: np.ndarray, ell) -> np.ndarray:
    """Signed distance from the ellipse centre to each point minus the ellipse radius in that direction."""
    cx, cy, a, b, angle = ell
    dx, dy = x - cx, y - cy
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    phi = np.arctan2(-dx * s + dy * c, dx * c + dy * s)
    return np.hypot(dx, dy) - a * b / np.sqrt((b * np.cos(phi)) ** 2 + (a * np.sin(phi)) ** 2)


def fit_circle(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float] | None:
    """Algebraic (Kasa) circle fit -> (cx, cy, r)."""
    if len(x) < 3:
        return None
    A = np.stack([x, y, np.ones_like(x)], axis=1)
    sol, *_ = np.linalg.lstsq(A, x ** 2 + y ** 2, rcond=None)
    cx, cy = sol[0] / 2, sol[1] / 2
    r2 = sol[2] + cx ** 2 + cy ** 2
    return (float(cx), float(cy), float(np.sqrt(r2))) if r2 > 0 else None


def _robust_keep(res: np.ndarray, floor: float) -> np.ndarray:
    """Inliers: |res - median| <= max(3.5 robust sigma, floor)."""
    med = np.median(res)
    sigma = 1.4826 * np.median(np.abs(res - med))
    return np.abs(res - med) <= max(3.5 * sigma, floor)


# ----------------------------------------------------------------------------------------------- rays
def _ransac_circle(x, y, tol, trials=300):
    """Inlier mask of the circle through 3 of the points that most others lie on (|distance - r| <= tol); seeded,
    so the result is deterministic. Eyelid crossings form a minority arc and drop out."""
    rng = np.random.default_rng(0)
    i, j, k = (rng.integers(0, len(x), trials) for _ in range(3))
    ax, ay, bx, by, cx, cy = x[i], y[i], x[j], y[j], x[k], y[k]
    d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))               # circumcircle of each triple
    ok = np.abs(d) > 1e-6
    d = np.where(ok, d, 1.0)
    a2, b2, c2 = ax ** 2 + ay ** 2, bx ** 2 + by ** 2, cx ** 2 + cy ** 2
    ux = (a2 * (by - cy) + b2 * (cy - ay) + c2 * (ay - by)) / d
    uy = (a2 * (cx - bx) + b2 * (ax - cx) + c2 * (bx - ax)) / d
    r = np.hypot(ax - ux, ay - uy)
    inl = np.abs(np.hypot(x[None] - ux[:, None], y[None] - uy[:, None]) - r[:, None]) <= tol   # [T, N]
    score = np.where(ok, inl.sum(axis=1), -1)
    return inl[int(np.argmax(score))]
