"""The rotation-searched masked HD of match.py in torch (for a CUDA GPU): uint64 words as int64, SWAR popcount."""
from __future__ import annotations

import numpy as np
import torch

from .encode import IrisCodes
from .rotation import shifts as _shifts

_M1, _M2, _M4, _H01 = (int(np.int64(np.uint64(v))) for v in
                       (0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F, 0x0101010101010101))


def popcount64(x: torch.Tensor) -> torch.Tensor:
    """Set bits per int64 element (Hacker's Delight 5-2). The masks clear what the arithmetic shifts drag in,
    and the top byte of the product is at most 64, so signed overflow cannot reach the result."""
    x = x - ((x >> 1) & _M1)
    x = (x & _M2) + ((x >> 2) & _M2)
    x = (x + (x >> 4)) & _M4
    return (x * _H01) >> 56


def _as_tensor(x: np.ndarray, dev) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x).view(np.int64)).to(dev)


def hamming_matrix_torch(probe: IrisCodes, gallery: IrisCodes, max_shift: int, device="cuda",
                         block_elems: int = 1 << 26, min_common: int = 1, n_ref: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Same result as match.hamming_matrix, computed with torch on `device` ("auto" = cuda)."""
    dev = torch.device(device)
    shifts = _shifts(max_shift)
    w, wpc = probe.code.shape[1], probe.words_per_col
    idx = torch.from_numpy((np.arange(w)[None, :] - shifts[:, None] * wpc) % w).to(dev)       # [S, W]
    a, ma = _as_tensor(probe.code, dev), _as_tensor(probe.mask, dev)
    b, mb = _as_tensor(gallery.code, dev), _as_tensor(gallery.mask, dev)
    nb = min(len(gallery), 1024)
    na = max(1, min(len(probe), block_elems // (len(shifts) * nb * w)))
    hd = np.empty((len(probe), len(gallery)), np.float32)
    sh = np.empty(hd.shape, np.int16)
    shifts_t = torch.from_numpy(shifts).to(dev)
    tie = (torch.arange(len(shifts), device=dev, dtype=torch.float64) * 1e-13)[None, :, None]
    for i in range(0, len(probe), na):
        pa, pma = a[i:i + na][:, idx], ma[i:i + na][:, idx]                    # [na, S, W]
        for j in range(0, len(gallery), nb):
            m = pma[:, :, None] & mb[None, None, j:j + nb]
            diff = popcount64((pa[:, :, None] ^ b[None, None, j:j + nb]) & m).sum(-1)
            common = popcount64(m).sum(-1)
            ratio = diff.double() / common.clamp(min=1).double()
            if n_ref:                                      # rotation.normalise
                ratio = 0.5 - (0.5 - ratio) * torch.sqrt(common.double() / n_ref)
            ratio = torch.where(common >= max(min_common, 1), ratio, float("inf"))
            best, k = (ratio + tie).min(dim=1)             # tie-break (< any HD step): the smallest |shift| wins
            best = torch.gather(ratio, 1, k[:, None])[:, 0]
            best = torch.where(torch.isfinite(best), best, torch.full_like(best, float("nan")))
            hd[i:i + na, j:j + nb] = best.float().cpu().numpy()
            sh[i:i + na, j:j + nb] = shifts_t[k].cpu().numpy()
    return hd, sh
