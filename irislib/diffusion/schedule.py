"""Beta schedules: the noise added per step, as float64 numpy arrays (guided-diffusion's `get_named_beta_schedule`)."""
from __future__ import annotations

import math

import numpy as np

from ..config import SCHEDULES, ConfigError


def linear_betas(num_timesteps: int) -> np.ndarray:
    """Ho et al.'s linear schedule, stretched so any T gives the same curve as T=1000 (scale = 1000 / T)."""
    scale = 1000 / num_timesteps
    return np.linspace(scale * 0.0001, scale * 0.02, num_timesteps, dtype=np.float64)


def betas_for_alpha_bar(num_timesteps: int, alpha_bar, max_beta: float = 0.999) -> np.ndarray:
    """Discretise a continuous alpha_bar(t), t in [0, 1], into T betas; beta is capped at max_beta near t = 1."""
    betas = []
    for i in range(num_timesteps):
        t1, t2 = i / num_timesteps, (i + 1) / num_timesteps
        betas.append(min(1 - alpha_bar(t2) / alpha_bar(t1), max_beta))
    return np.array(betas, dtype=np.float64)


def cosine_betas(num_timesteps: int) -> np.ndarray:
    """Nichol & Dhariwal's cosine schedule (improved-DDPM eq. 17, s = 0.008, max beta 0.999)."""
    return betas_for_alpha_bar(num_timesteps, lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2)


def get_named_beta_schedule(name: str, num_timesteps: int) -> np.ndarray:
    """Betas [T] for a schedule name from DiffusionConfig.noise_schedule."""
    if num_timesteps <= 0:
        raise ConfigError(f"diffusion.diffusion_steps={num_timesteps} must be a positive number, e.g. 1000")
    if name == "linear":
        if num_timesteps <= 20:   # the last beta, 20 / T, would reach 1 and wipe out the signal entirely
            raise ConfigError(f"diffusion.diffusion_steps={num_timesteps} is too small for the linear schedule "
                              f"(its last beta is 20/T); use at least 21 steps or noise_schedule=cosine")
        return linear_betas(num_timesteps)
    if name == "cosine":
        return cosine_betas(num_timesteps)
    raise ConfigError(f"diffusion.noise_schedule={name!r} is not one of {', '.join(SCHEDULES)}; "
                      f"set e.g. --set diffusion.noise_schedule=linear")
