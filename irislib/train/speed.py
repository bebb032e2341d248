"""Speed levers, each behind a train.* flag that is off by default (the plain path is guided-diffusion's maths).

Each lever gives the plain path's loss within bf16 tolerance (tests/train/test_speed.py):
- train.fused_optimizer: AdamW as one fused kernel (`fused=True`) where torch has one for the device, else the
  batched `foreach` kernels; same update rule.
- train.fast_groupnorm: GroupNorm computed in the autocast dtype (bf16/fp16) instead of casting activations to
  float32 and back (guided-diffusion's GroupNorm32); torch's kernels still accumulate the statistics in float32.
- train.compile: torch.compile of the module the Trainer calls forward on; the Trainer keeps saving the plain
  module, so state-dict keys stay guided-diffusion's (no "_orig_mod." prefix).
- train.data_on_device: the whole dataset held as one tensor on the device, batches gathered by index (no
  DataLoader, no host-to-device copies); the same batches as the DataLoader, bit for bit.
Elsewhere: train.channels_last (irislib.train.pipeline), unet.use_checkpoint (activation checkpointing per block),
train.precision="auto" (irislib.train.precision).
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, TrainConfig
from ..models.layers import GroupNorm32

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
COMPILE_OPTIONS: dict = {}  # extra torch.compile arguments (the CPU tests set backend="aot_eager")
DATA_MEMORY_SHARE = 0.25    # data_on_device only when the dataset takes at most this share of free device memory


def check(cfg: TrainConfig) -> None:
    """Raise ConfigError for a lever setting that cannot work."""
    if cfg.compile_mode not in COMPILE_MODES:
        raise ConfigError(f"train.compile_mode={cfg.compile_mode!r} is not one of {', '.join(COMPILE_MODES)}")


# --- optimizer -----------------------------------------------------------------------------------------------
def fused_devices() -> list[str]:
    """Device types for which torch has fused AdamW kernels (cuda; cpu too from torch 2.4)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
        return list(_get_fused_kernels_supported_devices())
    except ImportError:  # older torch: CUDA only
        return ["cuda"]


def optimizer_kwargs(cfg: TrainConfig, device: torch.device | str) -> dict:
    """Extra torch.optim.AdamW arguments: {} (torch's default), {"fused": True} or {"foreach": True}."""
    if not cfg.fused_optimizer:
        return {}
    return {"fused": True} if torch.device(device).type in fused_devices() else {"foreach": True}


# --- GroupNorm in the autocast dtype -------------------------------------------------------------------------
class LowPrecisionGroupNorm(GroupNorm32):
    """GroupNorm32 that, under autocast or on half inputs, normalises in that half dtype (no float32 copies).

    Same parameters and state-dict keys as GroupNorm32; float32 inputs outside autocast are computed exactly as
    GroupNorm32 does. torch's group_norm kernels accumulate mean and variance in float32 for half inputs.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, ...] -> normalised x in the autocast dtype (or x's half dtype)."""
        kind = x.device.type
        dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else x.dtype
        if dtype not in (torch.bfloat16, torch.float16):
            return super().forward(x)
        with torch.autocast(kind, enabled=False):
            return F.group_norm(x.to(dtype), self.num_groups, self.weight.to(dtype), self.bias.to(dtype), self.eps)


def fast_groupnorm(model: nn.Module, enabled: bool = True) -> int:
    """Switch every GroupNorm32 in `model` to LowPrecisionGroupNorm (or back); returns how many were switched."""
    target = LowPrecisionGroupNorm if enabled else GroupNorm32
    count = 0
    for m in model.modules():
        if isinstance(m, GroupNorm32) and type(m) is not target:
            m.__class__ = target
            count += 1
    return count


# --- torch.compile -------------------------------------------------------------------------------------------
def compile_module(module: nn.Module, cfg: TrainConfig) -> nn.Module:
    """`module` compiled with train.compile_mode when train.compile, else `module` itself.

    Only the returned wrapper is compiled: parameters are shared, so the plain module still trains, saves and
    loads under its own keys.
    """
    check(cfg)
    if not cfg.compile:
        return module
    mode = None if cfg.compile_mode == "default" else cfg.compile_mode
    return torch.compile(module, mode=mode, **COMPILE_OPTIONS)


# --- data held on the device ---------------------------------------------------------------------------------
def _image(item) -> torch.Tensor:
    return item[0] if isinstance(item, (list, tuple)) else item


def device_data(dataset, device: torch.device | str, cfg: TrainConfig) -> torch.Tensor | None:
    """The whole dataset as one tensor [N, C, H, W] on `device` when train.data_on_device and it fits, else None.

    For datasets whose items are fixed tensors (irislib's: random flips are the Trainer's, per step). On CUDA it
    must take at most DATA_MEMORY_SHARE of the free memory; otherwise a warning says so and the DataLoader is used.
    """
    if not cfg.data_on_device:
        return None
    device = torch.device(device)
    first = _image(dataset[0])
    need = len(dataset) * first.numel() * first.element_size()
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if need > DATA_MEMORY_SHARE * free:
            warnings.warn(f"train.data_on_device: the dataset needs {need / 2**30:.2f} GiB, more than "
                          f"{DATA_MEMORY_SHARE:.0%} of the {free / 2**30:.1f} GiB free on {device}; using the "
                          f"DataLoader", RuntimeWarning, stacklevel=2)
            return None
    return torch.stack([_image(dataset[i]) for i in range(len(dataset))]).to(device)


def device_batches(data: torch.Tensor, batches: Iterable[list[int]]) -> Iterator[torch.Tensor]:
    """The batches a DataLoader with batch_sampler=batches would give, gathered from `data` on its device."""
    for idx in batches:
        yield data.index_select(0, torch.as_tensor(idx, dtype=torch.long, device=data.device))
