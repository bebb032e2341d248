"""The rotation-searched masked HD as two exact int8 matrix products (AMX/VNNI on CPUs, tensor cores on GPUs).

With u = mask * (2 bit - 1) in {-1, 0, 1}: u_a . u_b = common - 2 diff, and common = m_a . m_b, so
diff = (common - u_a . u_b) / 2. Every rotation of every probe is one row of the left matrix; int32 accumulation
makes the counts exact, so the result equals match.hamming_matrix bit for bit.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from .encode import IrisCodes, unpack
from .rotation import best as _best, shifts as _shifts


def _signed(codes: IrisCodes) -> tuple[np.ndarray, np.ndarray]:
    """int8 u [N, n_cols, bits] in {-1, 0, 1} and mask m [N, n_cols, bits] in {0, 1}."""
    bits, mask = unpack(codes)
    return (np.where(mask, np.where(bits, 1, -1), 0).astype(np.int8), mask.astype(np.int8))


def _pad_cols(x: torch.Tensor, mult: int = 8) -> torch.Tensor:
    """Zero columns up to a multiple of `mult` (int8 matmul kernels want aligned sizes)."""
    extra = -x.shape[1] % mult
    return torch.nn.functional.pad(x, (0, extra)) if extra else x


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact int8 x int8 -> int32 product; float32 (exact below 2**24) where _int_mm is missing."""
    try:
        return torch._int_mm(a, b)
    except (RuntimeError, AttributeError):
        return (a.float() @ b.float()).round().int()


@functools.lru_cache(maxsize=None)
def int8_matmul_available(device="cpu") -> bool:
    """Whether torch._int_mm runs on `device` (its int8 kernels are what make this backend fast)."""
    try:
        a = torch.ones((32, 64), dtype=torch.int8, device=device)
        return bool(torch._int_mm(a, a.T.contiguous()).sum() == 32 * 32 * 64)
    except (RuntimeError, AttributeError):
        return False


def hamming_matrix_gemm(probe: IrisCodes, gallery: IrisCodes, max_shift: int, device="cpu",
                        block_rows: int = 4096, min_common: int = 1, n_ref: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Same result as match.hamming_matrix via int8 matrix products on `device`."""
    dev = torch.device(device)
    shifts = _shifts(max_shift)
    ua, ma = _signed(probe)
    ub, mb = _signed(gallery)
    n_cols = ua.shape[1]
    vt = _pad_cols(torch.from_numpy(ub.reshape(len(ub), -1)).to(dev).T.contiguous())      # [K, Ng + pad]
    mt = _pad_cols(torch.from_numpy(mb.reshape(len(mb), -1)).to(dev).T.contiguous())
    idx = (np.arange(n_cols)[None, :] - shifts[:, None]) % n_cols                         # np.roll by columns
    na = max(1, block_rows // len(shifts))
    hd = np.empty((len(ua), len(ub)), np.float32)
    sh = np.empty(hd.shape, np.int16)
    for i in range(0, len(ua), na):
        rows = len(ua[i:i + na]) * len(shifts)
        u = torch.from_numpy(np.ascontiguousarray(ua[i:i + na][:, idx].reshape(rows, -1))).to(dev)
        m = torch.from_numpy(np.ascontiguousarray(ma[i:i + na][:, idx].reshape(rows, -1))).to(dev)
        pad = max(0, 17 - rows)                                                           # _int_mm wants M > 16
        u, m = (torch.nn.functional.pad(t, (0, 0, 0, pad)) for t in (u, m))
        common = _mm(m, mt)[:rows, :len(ub)]
        diff = (common - _mm(u, vt)[:rows, :len(ub)]) // 2
        c = common.cpu().numpy().reshape(-1, len(shifts), len(ub))
        best, k = _best(diff.cpu().numpy().reshape(c.shape), c, min_common, n_ref)
        hd[i:i + na], sh[i:i + na] = best, shifts[k]
    return hd, sh
