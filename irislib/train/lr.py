"""Learning-rate schedules as closed-form functions of the step, so a resumed run replays the same sequence."""
from __future__ import annotations

import math

from ..config import ConfigError, TrainConfig


def total_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """Optimizer steps the run will take: the smaller of max_steps and epochs * steps_per_epoch (0 = unlimited)."""
    limits = [n for n in (cfg.max_steps, cfg.epochs * steps_per_epoch) if n > 0]
    if not limits:
        raise ConfigError("set train.max_steps or train.epochs (> 0); the run would never stop otherwise")
    return min(limits)


def lr_at(cfg: TrainConfig, step: int, *, epoch: int | None = None, steps_per_epoch: int = 0,
          total: int | None = None) -> float:
    """The LR used by optimizer step `step` (0-based) under cfg.lr_schedule.

    constant: lr. warmup: lr * min(1, (step + 1) / warmup_steps). cosine: warm-up as above, then
    lr * (1 + cos(pi * p)) / 2 with p = (step - warmup) / (total - warmup), i.e. 0 reached at step `total`.
    gear: lr of the last [start_epoch, lr] entry of cfg.gear with start_epoch <= epoch
    (epoch defaults to step // steps_per_epoch); config validation refuses a train.lr other than the table's first
    rate, so a lone --set train.lr cannot be silently ignored.
    """
    name = cfg.lr_schedule
    if name == "constant":
        return cfg.lr
    if name == "gear":
        if epoch is None:
            if steps_per_epoch <= 0:
                raise ValueError("lr_at(gear) needs epoch or steps_per_epoch")
            epoch = step // steps_per_epoch
        lr = cfg.gear[0][1]
        for start, value in cfg.gear:
            if epoch >= start:
                lr = value
        return float(lr)
    warm = _warmup_factor(cfg.warmup_steps, step)
    if name == "warmup":
        return cfg.lr * warm
    if name == "cosine":
        if not total:
            raise ConfigError("train.lr_schedule=cosine needs the run length; set train.max_steps or train.epochs")
        if step < cfg.warmup_steps:
            return cfg.lr * warm
        p = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * p))
    raise ConfigError(f"train.lr_schedule={name!r} is not one of constant, warmup, cosine, gear")


def _warmup_factor(warmup_steps: int, step: int) -> float:
    return 1.0 if warmup_steps <= 0 else min(1.0, (step + 1) / warmup_steps)
