"""Training statistics: interval loss means (with guided-diffusion's timestep quartiles), dead units per activation
type, and the Reporter that writes metrics.jsonl records and drives the progress bar (rank 0 writes; all ranks reduce)."""
from __future__ import annotations

import time
from collections import defaultdict

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import checkpoint
from . import distributed

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Mish, nn.ELU, nn.CELU, nn.SELU, nn.Softplus)


class LossMeter:
    """Sums of per-sample loss terms since the last log (kept on device; one sync per log)."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros(()))
        self.counts: dict[str, float] = defaultdict(float)

    def add(self, terms: dict[str, torch.Tensor], num_timesteps: int | None = None) -> None:
        """Accumulate detached per-sample terms [B]; with "t" and num_timesteps also per quartile (key_q0..q3)."""
        t = terms.get("t")
        for key, value in terms.items():
            if key == "t" or not value.is_floating_point():
                continue
            v = value.detach().float()
            self._add(key, v.sum(), v.numel())
            if t is not None and num_timesteps:
                quart = (4 * t.long() // num_timesteps).clamp(0, 3)  # [B]
                for q in range(4):
                    mask = quart == q
                    self._add(f"{key}_q{q}", (v * mask).sum(), mask.sum())

    def _add(self, key: str, total: torch.Tensor, count) -> None:
        self.sums[key] = self.sums[key].to(total.device) + total
        self.counts[key] = self.counts[key] + (count if isinstance(count, (int, float)) else count.float())

    def means(self) -> dict[str, float]:
        """Means over the interval and over all ranks; quartiles that got no samples are left out."""
        keys = sorted(self.sums)
        if not keys:
            return {}
        sums = torch.stack([self.sums[k].float() for k in keys])
        counts = torch.stack([torch.as_tensor(self.counts[k], dtype=torch.float32, device=sums.device)
                              for k in keys])
        both = distributed.all_reduce_(torch.cat([sums, counts]))
        sums, counts = both[:len(keys)].tolist(), both[len(keys):].tolist()
        self.__init__()
        return {k: s / c for k, s, c in zip(keys, sums, counts) if c > 0}


DEAD_GRAD = 1e-6  # |d output / d input| below this at every position: no gradient reaches the unit's input


def dead_units_by_layer(model: nn.Module, forward) -> dict[str, tuple[str, int, int]]:
    """{layer name: (activation type, dead channels, channels)} over one probe pass forward().

    A channel (dim 1) is dead when its output is the same value at every sample and position (a ReLU that is zero
    everywhere) or when the activation's own derivative is ~0 there (a SiLU driven far negative): either way it
    passes no signal and no gradient. A SiLU at -0.5 is alive (derivative 0.26), which an input-sign test misses.
    """
    found: dict[str, tuple[str, int, int]] = {}

    def pre_hook(name):
        def hook(module, inputs):
            x = inputs[0]
            if isinstance(x, torch.Tensor) and x.dim() >= 2 and x.is_floating_point():
                dead = _dead_channels(module, x)
                found[name] = (type(module).__name__.lower(), int(dead.sum()), dead.numel())
        return hook

    handles = [m.register_forward_pre_hook(pre_hook(n)) for n, m in model.named_modules()
               if isinstance(m, ACTIVATIONS)]
    try:
        if handles:
            forward()
    finally:
        for h in handles:
            h.remove()
    return found


def _dead_channels(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """[C] bool: output constant over batch and positions, or |local derivative| <= DEAD_GRAD everywhere."""
    x = x.detach().float().clone().requires_grad_(True)  # clone: an in-place activation must not touch the input
    with torch.enable_grad(), torch.autocast(x.device.type, enabled=False):
        y = module.forward(x)  # .forward: the hooks must not fire again
        (grad,) = torch.autograd.grad(y.sum(), x)  # elementwise activation: the local derivative
    out, grad = y.detach().transpose(0, 1).flatten(1), grad.transpose(0, 1).flatten(1)  # [C, N]
    no_grad = grad.abs().amax(1) <= DEAD_GRAD
    if out.shape[1] < 2:  # one value per channel (e.g. an embedding for one image): "constant" means nothing
        return no_grad
    spread = out.amax(1) - out.amin(1)
    return no_grad | (spread <= 1e-6 * (1.0 + out.abs().amax(1)))


def dead_unit_shares(model: nn.Module, forward) -> dict[str, float]:
    """{"dead_units": share over all activation channels, "dead_units_<type>": share per activation type};
    {} if the model has no activation modules."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for kind, dead, n in dead_units_by_layer(model, forward).values():
        for key in ("dead_units", f"dead_units_{kind}"):
            totals[key][0] += dead
            totals[key][1] += n
    return {k: d / n for k, (d, n) in totals.items() if n}


def dead_unit_fraction(model: nn.Module, forward) -> float | None:
    """Share of all activation channels that are dead on a probe pass (see dead_units_by_layer); None if none."""
    return dead_unit_shares(model, forward).get("dead_units")


class Reporter:
    """Every train.log_every_steps (and at the last step): one metrics.jsonl record, bar postfix, progress(record)."""

    def __init__(self, trainer):
        self.tr = trainer
        self.last: dict = {}
        show = trainer.progress is None or trainer.progress is True or callable(trainer.progress)
        self.callback = trainer.progress if callable(trainer.progress) else None
        self.bar = tqdm(total=trainer.total_steps, initial=trainer.step, unit="step", dynamic_ncols=True,
                        desc=bar_label(trainer), disable=not (show and trainer.dist.is_main and self.callback is None))
        self._t0, self._images = time.perf_counter(), 0

    def after_step(self, images: int) -> None:
        """Count a finished step; log when due."""
        tr = self.tr
        self._images += images
        self.bar.update(1)
        if tr.step % tr.cfg.log_every_steps == 0 or tr.step >= tr.total_steps:
            self.log()

    def log(self) -> dict:
        """Build, write and show one record; resets the interval statistics."""
        tr = self.tr
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        losses = tr.meter.means()  # collective under DDP
        norms = tr._grad_norms
        record = {"step": tr.step, "epoch": tr.epoch, "lr": lr_of_last_step(tr), **losses,
                  "grad_norm": sum(norms) / len(norms) if norms else None,
                  "img_per_s": self._images / elapsed, "peak_mem_mb": peak_memory_mb(tr.device),
                  "skipped_steps": tr.counters["skipped_steps"], "nan_steps": tr.counters["nan_steps"],
                  "nan_grad_steps": tr.counters.get("nan_grad_steps", 0),
                  "time": time.time()}
        tr._grad_norms = []
        self._t0, self._images = time.perf_counter(), 0
        if tr.dist.is_main:
            record.update(tr.dead_units())
            checkpoint.append_metrics(tr.run_dir, record)
            self.bar.set_postfix(loss=f"{losses.get('loss', float('nan')):.4g}", lr=f"{record['lr']:.3g}",
                                 img_s=f"{record['img_per_s']:.1f}", refresh=False)
            if self.callback is not None:
                self.callback(record)
        self.last = record
        return record

    def close(self) -> None:
        """Close the progress bar."""
        self.bar.close()


def bar_label(tr) -> str:
    """What the bar trains, and from where: "VAE vae_run (resumed at step 20)"."""
    kind = {"VAETask": "VAE", "DiffusionTask": "UNet", "RefinerTask": "refiner"}.get(type(tr.task).__name__, "model")
    return f"{kind} {tr.run_dir.name}" + (f" (resumed at step {tr.step})" if tr.step else "")


def lr_of_last_step(tr) -> float:
    """The LR the step just taken used (the optimizer's current group LR)."""
    return float(tr.opt.param_groups[0]["lr"])


def peak_memory_mb(device: torch.device) -> float | None:
    """CUDA max_memory_allocated in MiB; None on CPU."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20
