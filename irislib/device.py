"""Device choice, shared by training (each torchrun rank's GPU) and generation (loading a pair): a name from
--device / device= ('auto', 'cpu', 'cuda', 'cuda:N') -> torch.device, or one line saying what to pass instead."""
from __future__ import annotations

import torch


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:<local_rank> when a GPU is present else cpu; otherwise torch.device(name)."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r} (--device, device=) is not a device; use auto, cpu, cuda or "
                         "cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} (--device, device=) but no CUDA GPU is visible; use cpu or auto")
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device
