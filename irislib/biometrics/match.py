"""Masked fractional Hamming distance between packed iris codes, minimised over rotations, in batches.

HD(a, b) = min over shifts s of popcount((roll(a, s) ^ b) & roll(ma, s) & mb) / popcount(roll(ma, s) & mb), with
rolls by whole words (one code column = words_per_col words). numpy >= 2 counts bits with np.bitwise_count (a
byte lookup table otherwise). match_gemm computes the same counts as int8 matrix products, match_torch with a
SWAR popcount in torch; hamming_matrix picks one.
Pairs with fewer than min_common usable bits in common at every rotation get NaN (rotation.min_common_bits:
5 % of the code by default), so two mostly masked codes cannot match on a few bits.
"""
from __future__ import annotations

import numpy as np

from .encode import IrisCodes
from .rotation import best as _best, min_common_bits, shifts as _shifts

_LUT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def popcount_rows(x: np.ndarray) -> np.ndarray:
    """Number of set bits of uint64 array x summed over its last axis (int64)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).sum(-1, dtype=np.int64)
    return _LUT[np.ascontiguousarray(x).view(np.uint8)].sum(-1, dtype=np.int64)


def _rolled(x: np.ndarray, shifts: np.ndarray, wpc: int) -> np.ndarray:
    """[n, W] -> [n, S, W]: each row rolled by every shift (in columns of wpc words)."""
    w = x.shape[1]
    idx = (np.arange(w)[None, :] - shifts[:, None] * wpc) % w          # np.roll semantics
    return x[:, idx]


def _block_numpy(pa, pma, b, mb):
    """Disagreeing and common bit counts [na, S, nb] of rolled probes [na, S, W] vs gallery [nb, W]."""
    m = pma[:, :, None, :] & mb[None, None]
    d = (pa[:, :, None, :] ^ b[None, None]) & m
    return popcount_rows(d), popcount_rows(m)


def hamming_matrix(probe: IrisCodes, gallery: IrisCodes, max_shift: int = 8, *, backend: str = "auto",
                   device: str = "auto", block_bytes: int = 2 << 20,
                   min_common: int | None = None, n_ref: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """All-pairs min-over-rotation HD [Np, Ng] (float32) and the best shift s in code columns [Np, Ng] (int16):
    the gallery code matches the probe code rolled by s (np.roll), i.e. the gallery eye is turned by +s columns.

    backend "popcount" (numpy), "gemm" (exact int8 matrix products in torch, match_gemm), "torch-popcount"
    (SWAR popcount in torch) give identical results; "auto" takes gemm for large problems when torch's int8
    matmul runs on the device (AMX/VNNI CPUs, CUDA), else popcount. device "auto" = CUDA when present.
    min_common: fewest common usable bits a rotation needs to be scored (default min_common_bits of the code).
    n_ref > 0: every rotation's HD normalised to n_ref common bits (rotation.normalise) before the minimum.
    An empty probe or gallery gives an empty [Np, Ng] result."""
    if probe.words_per_col != gallery.words_per_col or probe.code.shape[1] != gallery.code.shape[1]:
        raise ValueError(f"probe codes {probe.code.shape} and gallery codes {gallery.code.shape} have different "
                         f"layouts; encode both with the same IrisCodeSpec")
    if not 0 <= max_shift < probe.n_cols // 2:
        raise ValueError(f"max_shift={max_shift} must be in [0, {probe.n_cols // 2}) columns")
    backend, device = _choose(backend, device, len(probe) * len(gallery))
    if not len(probe) or not len(gallery):
        return np.empty((len(probe), len(gallery)), np.float32), np.empty((len(probe), len(gallery)), np.int16)
    least = min_common_bits(probe.code.shape[1] * 64) if min_common is None else int(min_common)
    if backend == "gemm":
        from .match_gemm import hamming_matrix_gemm
        return hamming_matrix_gemm(probe, gallery, max_shift, device, min_common=least, n_ref=n_ref)
    if backend == "torch-popcount":
        from .match_torch import hamming_matrix_torch
        return hamming_matrix_torch(probe, gallery, max_shift, device=device, min_common=least, n_ref=n_ref)
    return _hamming_numpy(probe, gallery, max_shift, block_bytes, least, n_ref)


def _choose(backend: str, device: str, pairs: int) -> tuple[str, str]:
    """Resolve "auto" backend/device names (raises on unknown names)."""
    if backend not in ("auto", "popcount", "gemm", "torch-popcount"):
        raise ValueError(f"backend={backend!r}: use auto, popcount, gemm or torch-popcount")
    if device in (None, "auto"):
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if backend == "auto":
        from .match_gemm import int8_matmul_available
        big = pairs >= 4096 or device != "cpu"
        backend = "gemm" if big and int8_matmul_available(device) else "popcount"
    return backend, device


def _hamming_numpy(probe: IrisCodes, gallery: IrisCodes, max_shift: int, block_bytes: int, min_common: int = 1,
                   n_ref: int = 0):
    """The popcount backend: blocks of probes (all rotations) x gallery whose temporaries fit in block_bytes."""
    shifts = _shifts(max_shift)
    w = probe.code.shape[1]
    nb = max(1, min(len(gallery), 64))
    na = max(1, min(len(probe), block_bytes // (8 * w * len(shifts) * nb)))
    hd = np.empty((len(probe), len(gallery)), np.float32)
    sh = np.empty(hd.shape, np.int16)
    for i in range(0, len(probe), na):
        pa = _rolled(probe.code[i:i + na], shifts, probe.words_per_col)
        pma = _rolled(probe.mask[i:i + na], shifts, probe.words_per_col)
        for j in range(0, len(gallery), nb):
            diff, common = _block_numpy(pa, pma, gallery.code[j:j + nb], gallery.mask[j:j + nb])
            best, k = _best(diff, common, min_common, n_ref)
            hd[i:i + na, j:j + nb], sh[i:i + na, j:j + nb] = best, shifts[k]
    return hd, sh


def hamming_pair(a: IrisCodes, b: IrisCodes, max_shift: int = 8, min_common: int | None = None,
                 n_ref: int = 0) -> tuple[float, int]:
    """HD and best shift of one pair (first rows of a and b)."""
    hd, sh = hamming_matrix(a[0], b[0], max_shift, backend="popcount", min_common=min_common, n_ref=n_ref)
    return float(hd[0, 0]), int(sh[0, 0])


def hamming_reference(bits_a, mask_a, bits_b, mask_b, max_shift: int = 8, min_common: int = 1,
                      n_ref: int = 0) -> tuple[float, int]:
    """Plain loop on unpacked bool codes [n_cols, bits] (the textbook definition; tests and benchmarks)."""
    best, best_s = np.inf, 0
    for s in _shifts(max_shift):
        m = np.roll(mask_a, s, axis=0) & mask_b
        n = int(m.sum())
        if n < max(min_common, 1):
            continue
        hd = (np.roll(bits_a, s, axis=0) != bits_b)[m].sum() / n
        hd = 0.5 - (0.5 - hd) * np.sqrt(n / n_ref) if n_ref else hd
        if hd < best:
            best, best_s = hd, int(s)
    return (float(best) if np.isfinite(best) else float("nan")), best_s
