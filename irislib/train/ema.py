"""Exponential moving averages of the model weights, one per rate, with guided-diffusion-style warm-up."""
from __future__ import annotations

import torch
from torch import nn


def ema_decay(rate: float, step: int, warmup: bool) -> float:
    """Decay for the update after optimizer step `step` (0-based): min(rate, (1+step)/(10+step)) with warm-up."""
    return min(rate, (1.0 + step) / (10.0 + step)) if warmup else rate


class EMA:
    """EMA copies of a model's state dict: float parameters are averaged, buffers copied (fp32 master copies)."""

    def __init__(self, model: nn.Module, rates: list[float], warmup: bool = True):
        self.rates = [float(r) for r in rates]
        self.warmup = warmup
        self.param_names = {n for n, p in model.named_parameters()}
        self.shadows = {r: _clone_state(model) for r in self.rates}

    @staticmethod
    def key(rate: float) -> str:
        """The name a rate's weights are stored under: ema_<rate>."""
        return f"ema_{rate}"

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Blend the model's current weights into every shadow: ema = decay * ema + (1 - decay) * w."""
        current = model.state_dict()
        for rate, shadow in self.shadows.items():
            decay = ema_decay(rate, step, self.warmup)
            for name, value in shadow.items():
                src = current[name]
                if name in self.param_names and value.is_floating_point():
                    value.lerp_(src.to(value.dtype), 1.0 - decay)
                else:
                    value.copy_(src)

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """{ema_<rate>: state dict} for checkpoint.save."""
        return {self.key(r): s for r, s in self.shadows.items()}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        """Copy saved shadows in place; every configured rate must be present."""
        for rate, shadow in self.shadows.items():
            saved = state.get(self.key(rate))
            if saved is None:
                raise ValueError(f"checkpoint has no EMA for rate {rate} (has {sorted(state)}); "
                                 f"keep train.ema_rate as it was when the run started")
            for name, value in shadow.items():
                value.copy_(saved[name])


def _clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for name, value in model.state_dict().items():
        value = value.detach().clone()
        out[name] = value.float() if value.is_floating_point() else value
    return out
