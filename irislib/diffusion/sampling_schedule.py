"""Sampling schedules, planned once: which timesteps a sampler visits, from `strength` and `steps`.

`strength` is the noise standard deviation sqrt(1 - alpha_bar) at the start (docs/design.md, contract 5), not
diffusers' fraction of steps: 1 = pure noise, 0 = nothing to do; in between the start t0 is the timestep whose
noise level is closest. (Not to be confused with schedule.py, the beta schedule a model is trained with.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .gaussian import GaussianDiffusion
from .resample import trained_timesteps
from .respace import space_timesteps


@dataclass(frozen=True)
class SamplingSchedule:
    """The steps one sampling run walks, high noise to low; samplers read it and keep their memory in locals.

    `chain` is the respaced chain over exactly these steps: chain index i is timesteps[-1 - i], and its tables
    (alphas_cumprod, alphas_cumprod_prev, posterior_*) are the original ones at those timesteps.
    """
    chain: GaussianDiffusion | None   # None: strength 0, nothing to denoise
    t0: int                           # original-scale start timestep; -1 = not noised
    timesteps: tuple[int, ...]        # original-scale timesteps the model is called at, t0 first, 0 last
    from_top: bool                    # t0 is the diffusion's last step: pure noise is a valid start

    @property
    def indices(self) -> range:
        """Chain indices in walking order: len - 1 down to 0."""
        return range(len(self.timesteps) - 1, -1, -1)

    @property
    def alphas_cumprod(self) -> np.ndarray:
        """alpha_bar per chain index (float64)."""
        return self.chain.alphas_cumprod

    @property
    def alphas_cumprod_prev(self) -> np.ndarray:
        """alpha_bar of the next step down per chain index (1 at index 0: the step lands on sigma = 0)."""
        return self.chain.alphas_cumprod_prev


def plan(diffusion: GaussianDiffusion, strength: float, steps: int | str) -> SamplingSchedule:
    """The schedule of one run from noise std `strength` with `steps` model calls.

    steps int: that many timesteps spread evenly over [0, t0] (t0 included). steps str: guided-diffusion's respacing
    of the whole chain ("250", "ddim25", "10,20,30"), cut at t0, the grid step nearest `strength` in noise level,
    or, where that step lies above a truncated model's trained range, the highest grid step inside it.
    """
    strength = check_strength(strength)
    if strength == 0:
        return SamplingSchedule(None, -1, (), False)
    check_trained_strength(diffusion, strength)
    n = diffusion.num_timesteps
    if isinstance(steps, str):
        grid = sorted(space_timesteps(n, steps))
        top = _strength_to_index(diffusion.respaced(grid), strength)
        trained = trained_timesteps(diffusion)          # a truncated model never starts above what it learnt
        while top > 0 and grid[top] >= trained:
            top -= 1
        return _schedule(diffusion.respaced(grid[:top + 1]), top == len(grid) - 1)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps={steps!r} must be a positive int (UNet calls) or a respacing string like 'ddim25'")
    k0 = _strength_to_index(diffusion, strength)
    count = min(int(steps), k0 + 1)
    grid = [k0] if count == 1 else space_timesteps(k0 + 1, str(count))
    return _schedule(diffusion.respaced(grid), k0 == n - 1)


def _schedule(chain: GaussianDiffusion, from_top: bool) -> SamplingSchedule:
    timesteps = tuple(int(s) for s in chain.timestep_map[::-1])
    return SamplingSchedule(chain, timesteps[0], timesteps, from_top)


# --- strength <-> timestep -----------------------------------------------------------------------
def _strength_to_index(diffusion: GaussianDiffusion, strength: float) -> int:
    """Chain index whose noise std sqrt(1 - alpha_bar) is closest to strength; -1 for strength <= 0."""
    if strength <= 0:
        return -1
    if strength >= 1:
        return diffusion.num_timesteps - 1
    return int(np.argmin(np.abs(diffusion.sqrt_one_minus_alphas_cumprod - strength)))


def strength_to_timestep(diffusion: GaussianDiffusion, strength: float) -> int:
    """Original-scale timestep whose noise std is closest to `strength` (T-1 for >= 1, -1 for <= 0)."""
    k = _strength_to_index(diffusion, check_strength(strength))
    return -1 if k < 0 else int(diffusion.timestep_map[k])


def timestep_to_strength(diffusion: GaussianDiffusion, timestep: int) -> float:
    """Noise std sqrt(1 - alpha_bar) at an original-scale timestep of `diffusion` (0.0 for -1)."""
    if timestep < 0:
        return 0.0
    hits = np.nonzero(diffusion.timestep_map == int(timestep))[0]
    if len(hits) == 0:
        raise ValueError(f"timestep {timestep} is not a step of this diffusion "
                         f"(its steps are {diffusion.timestep_map[:3].tolist()}...{int(diffusion.timestep_map[-1])})")
    return float(diffusion.sqrt_one_minus_alphas_cumprod[hits[0]])


def check_strength(strength) -> float:
    """strength as a float in [0, 1], or one clear error."""
    strength = float(strength)
    if math.isnan(strength) or not 0 <= strength <= 1:
        raise ValueError(f"strength={strength} must be in [0, 1] (noise std at the start; 1 = pure noise)")
    return strength


def check_trained_strength(diffusion: GaussianDiffusion, strength: float) -> None:
    """Refuse to start above the noise level a truncated model was trained to (diffusion.max_strength)."""
    max_strength = float(getattr(diffusion.cfg, "max_strength", 1.0))
    if strength > max_strength + 1e-9:
        raise ValueError(f"strength={strength:g} is above diffusion.max_strength={max_strength:g}: this UNet was "
                         f"trained only on noise std <= {max_strength:g} (truncated training), so it cannot start "
                         f"there; use strength <= {max_strength:g} with a VAE draft, or a full-chain UNet")
