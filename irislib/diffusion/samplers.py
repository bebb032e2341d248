"""Reverse-diffusion samplers (ddpm, ddim, dpm++2m) from pure noise or from a partly noised image (SDEdit).

k-diffusion's shape: `plan` fixes the timesteps once (sampling_schedule.py), then each sampler is one generator
function `sampler(predict, x, schedule, noise, ...)` that yields x after every model call and keeps its memory
(DPM++'s previous x0) in locals. `SAMPLERS` is the one list of sampler names (CLI, notebook panel, SampleConfig).
`denoise` / `iterate` glue them: plan, start (noise x_init to t0, or pure noise), walk. Noise is drawn per image
from its generator, so image i does not depend on the batch size.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch

from .gaussian import GaussianDiffusion
from .sampling_schedule import SamplingSchedule, plan

Generators = torch.Generator | Sequence[torch.Generator] | None
Predict = Callable[[torch.Tensor, torch.Tensor], dict]   # (x, chain indices [B]) -> p_mean_variance's dict
Noise = Callable[[], torch.Tensor]                         # a fresh standard-normal tensor shaped like x


@dataclass
class DenoiseOutput:
    """Result of `denoise`: images, start timestep t0 (original scale; -1 = not noised), visited steps, UNet calls."""
    x: torch.Tensor                                     # [B, C, H, W]
    t0: int
    timesteps: list[int] = field(default_factory=list)  # original-scale timesteps the model was called at, high to low
    nfe: int = 0


# --- the samplers: x at the schedule's top step -> x at t = 0, one model call per step ----------------------
def _indexed(schedule: SamplingSchedule, x: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    """(chain index i, i as a [B] tensor) from the top step down to 0."""
    for i in schedule.indices:
        yield i, torch.full((x.shape[0],), i, device=x.device, dtype=torch.long)


def ddpm(predict: Predict, x: torch.Tensor, schedule: SamplingSchedule, noise: Noise) -> Iterator[torch.Tensor]:
    """Ancestral steps x_{t-1} ~ N(mean, exp(log_variance)); no noise at the last step (guided-diffusion p_sample)."""
    for i, t in _indexed(schedule, x):
        out = predict(x, t)
        x = out["mean"] if i == 0 else out["mean"] + torch.exp(0.5 * out["log_variance"]) * noise()
        yield x


def ddim(predict: Predict, x: torch.Tensor, schedule: SamplingSchedule, noise: Noise,
         eta: float = 0.0) -> Iterator[torch.Tensor]:
    """DDIM eq. 12 with eta (0 = deterministic), as guided-diffusion's ddim_sample."""
    chain = schedule.chain
    for i, t in _indexed(schedule, x):
        out = predict(x, t)
        eps = chain.predict_eps_from_xstart(x, t, out["pred_xstart"])
        alpha_bar = chain._extract("alphas_cumprod", t, x)
        alpha_bar_prev = chain._extract("alphas_cumprod_prev", t, x)
        sigma = (eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar))
                 * torch.sqrt(1 - alpha_bar / alpha_bar_prev))
        x = out["pred_xstart"] * torch.sqrt(alpha_bar_prev) + torch.sqrt(1 - alpha_bar_prev - sigma ** 2) * eps
        if i > 0 and eta > 0:
            x = x + sigma * noise()
        yield x


def dpmpp_2m(predict: Predict, x: torch.Tensor, schedule: SamplingSchedule, noise: Noise) -> Iterator[torch.Tensor]:
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2): data prediction, 2nd-order multistep; uses no noise.

    First-order (= DDIM) at the first step (also a mid-chain start) and at the last two: the step into t = 0 jumps
    4-5x further in log-SNR than the one before on an evenly spaced grid, where extrapolating x0 hurts (diffusers'
    lower_order_final), and the step to sigma = 0 lands on the denoised image.
    """
    ab_all, ab_prev_all = schedule.alphas_cumprod, schedule.alphas_cumprod_prev
    x0_prev = h_prev = None
    for i, t in _indexed(schedule, x):
        x0 = predict(x, t)["pred_xstart"]
        if i == 0:   # the step to sigma = 0 (alpha_bar_prev = 1) lands on the denoised image, as in DDIM
            yield x0
            return
        ab, ab_prev = ab_all[i], ab_prev_all[i]
        lam, lam_next = 0.5 * math.log(ab / (1 - ab)), 0.5 * math.log(ab_prev / (1 - ab_prev))
        h = lam_next - lam                                   # step in lambda = log(alpha / sigma)
        if x0_prev is None or i == 1:
            d = x0
        else:
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
        x0_prev, h_prev = x0, h
        x = math.sqrt((1 - ab_prev) / (1 - ab)) * x - math.sqrt(ab_prev) * math.expm1(-h) * d
        yield x


SAMPLERS: dict[str, Callable[..., Iterator[torch.Tensor]]] = {"ddpm": ddpm, "ddim": ddim, "dpm++2m": dpmpp_2m}


# --- noise ---------------------------------------------------------------------------------------
def randn(shape, generator: Generators, device, dtype) -> torch.Tensor:
    """Standard normal noise [B, ...]; with a list, image i is drawn from generator i alone."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}; pass one per image")
        return torch.stack([torch.randn(shape[1:], generator=g, device=g.device, dtype=dtype).to(device)
                            for g in generator])
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device, dtype=dtype).to(device)


# --- public API ----------------------------------------------------------------------------------
def iterate(model, diffusion: GaussianDiffusion, *, shape=None, x_init: torch.Tensor | None = None,
            strength: float = 1.0, steps: int | str = 50, sampler: str = "ddim", eta: float = 0.0,
            generator: Generators = None, progress: bool = False, model_kwargs: dict | None = None,
            clip_denoised: bool = True, device=None, dtype=None) -> Iterator[torch.Tensor]:
    """Yield x after each step (len(timesteps) tensors); the iterator's return value is the DenoiseOutput.

    eta is DDIM's noise; ddpm and dpm++2m take none and ignore it."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is not one of {', '.join(SAMPLERS)}")
    shape, device, dtype = _resolve_shape(model, shape, x_init, device, dtype)
    schedule = plan(diffusion, strength, steps)
    if schedule.chain is None:
        if x_init is None:
            raise ValueError("strength=0 returns x_init unchanged, but no x_init was given")
        return _unchanged(x_init)
    x = _start(schedule, x_init, float(strength), shape, generator, device, dtype)
    walk = SAMPLERS[sampler]
    options = {"eta": float(eta)} if "eta" in inspect.signature(walk).parameters else {}

    def predict(x_t: torch.Tensor, t: torch.Tensor) -> dict:
        return schedule.chain.p_mean_variance(model, x_t, t, clip_denoised=clip_denoised, model_kwargs=model_kwargs)

    steps_iter = walk(predict, x, schedule, lambda: randn(shape, generator, device, dtype), **options)
    return _walk(steps_iter, schedule, progress, sampler)


def _unchanged(x_init: torch.Tensor) -> Iterator[torch.Tensor]:
    return DenoiseOutput(x=x_init, t0=-1, timesteps=[], nfe=0)
    yield  # a generator that yields nothing


def _walk(steps_iter: Iterator[torch.Tensor], schedule: SamplingSchedule, progress: bool,
          desc: str) -> Iterator[torch.Tensor]:
    """Drive a sampler step by step without autograd, with an optional progress bar."""
    bar = _progress_bar(progress, len(schedule.timesteps), desc)
    x = None
    while True:
        with torch.no_grad():   # per step: a no_grad block must not stay open across a yield
            x_next = next(steps_iter, None)
        if x_next is None:
            break
        x = x_next
        if bar is not None:
            bar.update(1)
        yield x
    if bar is not None:
        bar.close()
    return DenoiseOutput(x=x, t0=schedule.t0, timesteps=list(schedule.timesteps), nfe=len(schedule.timesteps))


def denoise(model, diffusion: GaussianDiffusion, *, shape=None, x_init: torch.Tensor | None = None,
            strength: float = 1.0, steps: int | str = 50, sampler: str = "ddim", eta: float = 0.0,
            generator: Generators = None, progress: bool = False, model_kwargs: dict | None = None,
            clip_denoised: bool = True, device=None, dtype=None) -> DenoiseOutput:
    """Denoise from noise level `strength` to an image with `steps` model calls; see the module docstring."""
    it = iterate(model, diffusion, shape=shape, x_init=x_init, strength=strength, steps=steps, sampler=sampler,
                 eta=eta, generator=generator, progress=progress, model_kwargs=model_kwargs,
                 clip_denoised=clip_denoised, device=device, dtype=dtype)
    while True:
        try:
            next(it)
        except StopIteration as stop:
            return stop.value


def _start(schedule: SamplingSchedule, x_init, strength, shape, generator, device, dtype) -> torch.Tensor:
    """x at the schedule's top step: pure noise (strength >= 1, or the top step without x_init) or x_init noised."""
    noise = randn(shape, generator, device, dtype)
    if strength >= 1 or (x_init is None and schedule.from_top):
        return noise
    if x_init is None:
        raise ValueError(f"strength={strength} < 1 starts from a noised x_init, but no x_init was given; "
                         f"pass x_init or use strength=1 for pure noise")
    t = torch.full((shape[0],), len(schedule.timesteps) - 1, device=device, dtype=torch.long)
    return schedule.chain.q_sample(x_init.to(device=device, dtype=dtype), t, noise)


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
