"""Reverse-diffusion samplers (ddpm, ddim, dpm++2m) from pure noise or from a partly noised image (SDEdit).

`strength` is the noise standard deviation sqrt(1 - alpha_bar) at the start (docs/design.md): 1 = pure noise,
0 = return `x_init` unchanged; in between, x_init is noised to the timestep t0 whose noise level is closest and
denoised from there. Noise is drawn per image from its generator, so image i does not depend on the batch size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch

from .gaussian import GaussianDiffusion
from .respace import space_timesteps

SAMPLERS = ("ddpm", "ddim", "dpm++2m")
Generators = torch.Generator | Sequence[torch.Generator] | None


@dataclass
class SampleOutput:
    """Result of `sample`: images, the start timestep t0 (original scale; -1 = not noised), visited steps, UNet calls."""
    x: torch.Tensor                                     # [B, C, H, W]
    t0: int
    timesteps: list[int] = field(default_factory=list)  # original-scale timesteps the model was called at, high to low
    nfe: int = 0


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
    k = _strength_to_index(diffusion, _check_strength(strength))
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


def _check_strength(strength) -> float:
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


# --- planning ------------------------------------------------------------------------------------
def plan(diffusion: GaussianDiffusion, strength: float, steps: int | str) -> tuple[GaussianDiffusion | None, bool]:
    """The respaced chain a sampler walks (its last index is t0; None for strength 0) and whether t0 is the top.

    steps int: that many timesteps spread over [0, t0] (t0 included). steps str: guided-diffusion's respacing of
    the whole chain ("250", "ddim25", "10,20,30"); t0 is then the grid step nearest in noise level.
    """
    strength = _check_strength(strength)
    if strength == 0:
        return None, False
    check_trained_strength(diffusion, strength)
    n = diffusion.num_timesteps
    if isinstance(steps, str):
        grid = space_timesteps(n, steps)
        top = _strength_to_index(diffusion.respaced(grid), strength)
        return diffusion.respaced(grid[:top + 1]), top == len(grid) - 1
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps={steps!r} must be a positive int (UNet calls) or a respacing string like 'ddim25'")
    k0 = _strength_to_index(diffusion, strength)
    count = min(int(steps), k0 + 1)
    grid = [k0] if count == 1 else space_timesteps(k0 + 1, str(count))
    return diffusion.respaced(grid), k0 == n - 1


# --- noise ---------------------------------------------------------------------------------------
def _randn(shape, generator: Generators, device, dtype) -> torch.Tensor:
    """Standard normal noise [B, ...]; with a list, image i is drawn from generator i alone."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}; pass one per image")
        return torch.stack([torch.randn(shape[1:], generator=g, device=g.device, dtype=dtype).to(device)
                            for g in generator])
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device, dtype=dtype).to(device)


# --- one step of each sampler (x at chain index i -> index i - 1) ---------------------------------
def _ddpm_step(chain, out, x, t, i, noise_fn, state):
    """Ancestral step: x_{t-1} ~ N(mean, exp(log_variance)); no noise at the last step (guided-diffusion p_sample)."""
    if i == 0:
        return out["mean"]
    return out["mean"] + torch.exp(0.5 * out["log_variance"]) * noise_fn()


def _ddim_step(chain, out, x, t, i, noise_fn, state):
    """DDIM eq. 12 with eta (0 = deterministic), as guided-diffusion's ddim_sample."""
    eps = chain.predict_eps_from_xstart(x, t, out["pred_xstart"])
    alpha_bar = chain._extract("alphas_cumprod", t, x)
    alpha_bar_prev = chain._extract("alphas_cumprod_prev", t, x)
    sigma = (state["eta"] * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar))
             * torch.sqrt(1 - alpha_bar / alpha_bar_prev))
    x_prev = out["pred_xstart"] * torch.sqrt(alpha_bar_prev) + torch.sqrt(1 - alpha_bar_prev - sigma ** 2) * eps
    if i > 0 and state["eta"] > 0:
        x_prev = x_prev + sigma * noise_fn()
    return x_prev


def _dpmpp_2m_step(chain, out, x, t, i, noise_fn, state):
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2): data prediction, 2nd-order multistep.

    First-order (= DDIM) at the first step (also a mid-chain start) and at the last two: the step into t = 0 jumps
    4-5x further in log-SNR than the one before on an evenly spaced grid, where extrapolating x0 hurts (diffusers'
    lower_order_final), and the step to sigma = 0 lands on the denoised image.
    """
    x0 = out["pred_xstart"]
    if i == 0:
        return x0   # the step to sigma = 0 (alpha_bar_prev = 1) lands on the denoised image, as in DDIM
    ab, ab_prev = chain.alphas_cumprod[i], chain.alphas_cumprod_prev[i]
    lam, lam_next = 0.5 * math.log(ab / (1 - ab)), 0.5 * math.log(ab_prev / (1 - ab_prev))
    h = lam_next - lam                                   # step in lambda = log(alpha / sigma)
    if state.get("x0_prev") is None or i == 1:
        d = x0
    else:
        r = state["h_prev"] / h
        d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * state["x0_prev"]
    state["x0_prev"], state["h_prev"] = x0, h
    sigma_ratio = math.sqrt((1 - ab_prev) / (1 - ab))
    return sigma_ratio * x - math.sqrt(ab_prev) * math.expm1(-h) * d


_STEPS = {"ddpm": _ddpm_step, "ddim": _ddim_step, "dpm++2m": _dpmpp_2m_step}


# --- public API ----------------------------------------------------------------------------------
def iterate(model, diffusion: GaussianDiffusion, *, shape=None, x_init: torch.Tensor | None = None,
            strength: float = 1.0, steps: int | str = 50, sampler: str = "ddim", eta: float = 0.0,
            generator: Generators = None, progress: bool = False, model_kwargs: dict | None = None,
            clip_denoised: bool = True, device=None, dtype=None) -> Iterator[torch.Tensor]:
    """Yield x after each step (len(timesteps) tensors); the iterator's return value is the SampleOutput."""
    if sampler not in _STEPS:
        raise ValueError(f"sampler={sampler!r} is not one of {', '.join(SAMPLERS)}")
    shape, device, dtype = _resolve_shape(model, shape, x_init, device, dtype)
    chain, is_top = plan(diffusion, strength, steps)
    if chain is None:
        if x_init is None:
            raise ValueError("strength=0 returns x_init unchanged, but no x_init was given")
        return _unchanged(x_init)
    x = _start(chain, is_top, x_init, float(strength), shape, generator, device, dtype)
    noise_fn = lambda: _randn(shape, generator, device, dtype)  # noqa: E731
    return _walk(model, chain, x, _STEPS[sampler], {"eta": float(eta)}, noise_fn,
                 dict(clip_denoised=clip_denoised, model_kwargs=model_kwargs), progress, sampler)


def _unchanged(x_init: torch.Tensor) -> Iterator[torch.Tensor]:
    return SampleOutput(x=x_init, t0=-1, timesteps=[], nfe=0)
    yield  # a generator that yields nothing


def _walk(model, chain, x, step_fn, state, noise_fn, pmv_kwargs, progress, desc) -> Iterator[torch.Tensor]:
    """Run the chain from its top index down to 0, one model call per step."""
    timesteps = [int(s) for s in chain.timestep_map[::-1]]
    bar = _progress_bar(progress, len(timesteps), desc)
    for i in range(chain.num_timesteps - 1, -1, -1):
        t = torch.full((x.shape[0],), i, device=x.device, dtype=torch.long)
        with torch.no_grad():   # per step: a no_grad block must not stay open across a yield
            out = chain.p_mean_variance(model, x, t, **pmv_kwargs)
            x = step_fn(chain, out, x, t, i, noise_fn, state)
        if bar is not None:
            bar.update(1)
        yield x
    if bar is not None:
        bar.close()
    return SampleOutput(x=x, t0=timesteps[0], timesteps=timesteps, nfe=len(timesteps))


def sample(model, diffusion: GaussianDiffusion, *, shape=None, x_init: torch.Tensor | None = None,
           strength: float = 1.0, steps: int | str = 50, sampler: str = "ddim", eta: float = 0.0,
           generator: Generators = None, progress: bool = False, model_kwargs: dict | None = None,
           clip_denoised: bool = True, device=None, dtype=None) -> SampleOutput:
    """Denoise from noise level `strength` to an image with `steps` model calls; see the module docstring."""
    it = iterate(model, diffusion, shape=shape, x_init=x_init, strength=strength, steps=steps, sampler=sampler,
                 eta=eta, generator=generator, progress=progress, model_kwargs=model_kwargs,
                 clip_denoised=clip_denoised, device=device, dtype=dtype)
    while True:
        try:
            next(it)
        except StopIteration as stop:
            return stop.value


def _start(chain, is_top, x_init, strength, shape, generator, device, dtype) -> torch.Tensor:
    """x at the chain's top step: pure noise (strength >= 1, or the top step without x_init) or x_init noised."""
    noise = _randn(shape, generator, device, dtype)
    if strength >= 1 or (x_init is None and is_top):
        return noise
    if x_init is None:
        raise ValueError(f"strength={strength} < 1 starts from a noised x_init, but no x_init was given; "
                         f"pass x_init or use strength=1 for pure noise")
    t = torch.full((shape[0],), chain.num_timesteps - 1, device=device, dtype=torch.long)
    return chain.q_sample(x_init.to(device=device, dtype=dtype), t, noise)


def _resolve_shape(model, shape, x_init, device, dtype):
    if x_init is not None:
        if shape is not None and tuple(shape) != tuple(x_init.shape):
            raise ValueError(f"shape={tuple(shape)} differs from x_init's shape {tuple(x_init.shape)}; pass one")
        shape = tuple(x_init.shape)
        device = device if device is not None else x_init.device
        dtype = dtype if dtype is not None else x_init.dtype
    if shape is None:
        raise ValueError("pass shape=(B, C, H, W) for pure-noise sampling, or x_init")
    if device is None:
        params = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
        device = params.device if params is not None else torch.device("cpu")
    return tuple(int(s) for s in shape), torch.device(device), dtype if dtype is not None else torch.float32


def _progress_bar(progress: bool, total: int, sampler: str):
    if not progress:
        return None
    from tqdm.auto import tqdm   # optional: only when a bar is asked for
    return tqdm(total=total, desc=sampler, leave=False)
