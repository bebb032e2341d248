"""train.precision="auto": bf16 where the card computes it natively, fp16 with a GradScaler on older cards, fp32 on CPU.

bf16 has fp32's exponent range (no loss scaling, no skipped steps) and runs on tensor cores from compute capability
8.0 (A100, L4, RTX 30xx, H100/H200). A T4 (7.5) or V100 (7.0), Colab's usual cards, only emulates bf16, slower than
fp32, so they get fp16 autocast with a GradScaler. CPUs train in fp32 (CPU autocast is slower for these convs).
"""
from __future__ import annotations

import torch

from ..config import PRECISIONS, ConfigError

BF16_MIN_CAPABILITY = (8, 0)  # first CUDA compute capability with native bf16 tensor-core arithmetic (Ampere)


def resolve(precision: str, device: torch.device | str) -> str:
    """The precision a Trainer uses on `device`: train.precision itself, or for "auto" bf16 / fp16 / fp32."""
    if precision not in PRECISIONS:
        raise ConfigError(f"train.precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type != "cuda":
        return "fp32"
    capability = tuple(torch.cuda.get_device_capability(device))
    return "bf16" if capability >= BF16_MIN_CAPABILITY else "fp16"


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision; None for fp32 (no autocast)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]


def uses_grad_scaler(precision: str) -> bool:
    """fp16 needs loss scaling (its exponent range underflows small gradients); bf16 and fp32 do not."""
    return precision == "fp16"
