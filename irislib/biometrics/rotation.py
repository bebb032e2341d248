"""The rotation search every Hamming-distance backend shares (match, match_gemm, match_torch import it; it imports
none of them): the order in which shifts are tried and the minimum over them."""
from __future__ import annotations

import numpy as np


def shifts(max_shift: int) -> np.ndarray:
    """0, -1, +1, -2, +2, ... (ties keep the smallest rotation, as open-iris's loop does)."""
    return np.array([0] + [s for k in range(1, max_shift + 1) for s in (-k, k)])


MIN_COMMON_SHARE = 0.05   # fewest bits two codes must share at a rotation, as a share of all code bits


def min_common_bits(total_bits: int, share: float = MIN_COMMON_SHARE) -> int:
    """Rotations where fewer bits are usable in both codes are not scored: two heavily masked unrelated codes
    overlapping in a handful of bits would otherwise score HD 0 (Daugman normalises such scores toward 0.5 for the
    same reason). At the default 8192-bit code: 410 bits."""
    return max(1, int(np.ceil(share * total_bits)))


def normalise(hd, common, n_ref: int):
    """Daugman's score normalisation 0.5 - (0.5 - HD) sqrt(n / n_ref): a distance from few common bits n is pulled
    towards 0.5, where chance puts it, so two mostly masked codes cannot match by luck (n_ref 0: HD itself)."""
    return hd if not n_ref else 0.5 - (0.5 - hd) * np.sqrt(common / float(n_ref))


def best(diff, common, min_common: int = 1, n_ref: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Min over the shift axis (1) of diff / common (normalised to n_ref bits when n_ref > 0) -> (hd [na, nb],
    shift index [na, nb]); NaN where no rotation has at least min_common common bits."""
    with np.errstate(divide="ignore", invalid="ignore"):
        hd = np.where(common >= max(min_common, 1), normalise(diff / np.maximum(common, 1), common, n_ref), np.inf)
    k = np.argmin(hd, axis=1)
    hd_min = np.take_along_axis(hd, k[:, None], 1)[:, 0]
    return np.where(np.isfinite(hd_min), hd_min, np.nan), k
