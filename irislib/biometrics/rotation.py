"""The rotation search every Hamming-distance backend shares (match, match_gemm, match_torch import it; it imports
none of them): the order in which shifts are tried and the minimum over them."""
from __future__ import annotations

import numpy as np


def shifts(max_shift: int) -> np.ndarray:
    """0, -1, +1, -2, +2, ... (ties keep the smallest rotation, as open-iris's loop does)."""
    return np.array([0] + [s for k in range(1, max_shift + 1) for s in (-k, k)])


def best(diff, common) -> tuple[np.ndarray, np.ndarray]:
    """Min over the shift axis (1) of diff / common -> (hd [na, nb], shift index [na, nb]); NaN if no common bits."""
    with np.errstate(divide="ignore", invalid="ignore"):
        hd = np.where(common > 0, diff / np.maximum(common, 1), np.inf)
    k = np.argmin(hd, axis=1)
    hd_min = np.take_along_axis(hd, k[:, None], 1)[:, 0]
    return np.where(np.isfinite(hd_min), hd_min, np.nan), k
