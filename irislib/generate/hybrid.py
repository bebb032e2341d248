"""Hybrid sampling's one start: VAE drafts, the refiner's condition, and the chain started from them.

SDEdit / ES-DDPM style: a draft (round pupil) is noised to `strength` and denoised, so shape survives and texture
is redrawn in far fewer UNet calls than from pure noise. `strength` is the noise std sqrt(1 - alpha_bar) at the
start (docs/design.md, contract 5), not diffusers' fraction of steps; 1 = pure noise. HybridSampler and the
training sample grids all start their chains through `denoise_batch`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import ConfigError
from ..diffusion import samplers


@dataclass
class HybridOutput:
    """Final images, the drafts they started from, and where the chain really started."""
    images: torch.Tensor            # [N, C, H, W] in [-1, 1]
    drafts: torch.Tensor | None     # [N, C, H, W] the drafts (None for pure-noise sampling without a condition)
    t0: int                         # start timestep on the model's 0..T-1 scale (-1: not noised)
    nfe: int                        # UNet calls per image
    timesteps: list[int]            # timesteps visited


SEED_LIMIT = 2 ** 63   # seeds are 0 <= seed < SEED_LIMIT: a generator is seeded with 2 * seed + salt (< 2**64)


def generators(seeds: list[int], device: torch.device | str, salt: int = 0) -> list[torch.Generator]:
    """One generator per image, so image i is the same at any batch size (EDM's convention)."""
    bad = [s for s in seeds if not 0 <= int(s) < SEED_LIMIT]
    if bad:
        raise ConfigError(f"seed {bad[0]} is outside 0..2**63-1, the seeds a generator accepts")
    return [torch.Generator(device=device).manual_seed(int(s) * 2 + salt) for s in seeds]


def require_prior(vae, prior, run: str) -> None:
    """A vae.prior=gmm run drafts only from its fitted prior; one error naming the run otherwise."""
    if vae.cfg.prior == "gmm" and (prior is None or not bool(prior.fitted)):
        raise ConfigError(f"{run} has vae.prior=gmm but no fitted prior (prior.safetensors, fitted when its training "
                          f"ends); resume its training to fit it (irislib train-vae --config {run}/config.json "
                          f"--out {run}), or use a run trained with vae.prior=normal, which drafts from N(0, I)")


@torch.no_grad()
def draw_drafts(vae, seeds: list[int], prior=None, device="cpu") -> torch.Tensor:
    """One VAE draft per seed [N, C, H, W] in [-1, 1], each from its own generator (VAE.sample's rules: `prior`
    must be fitted; None draws z from N(0, I), e.g. a training preview before the prior exists)."""
    return vae.sample(len(seeds), generator=generators(seeds, device, salt=0), prior=prior)


@torch.no_grad()
def denoise_batch(unet, diffusion, seeds: list[int], drafts: torch.Tensor | None = None, *, strength: float,
                  steps: int | str = 50, sampler: str = "ddim", eta: float = 0.0,
                  progress: bool = False) -> HybridOutput:
    """One image per seed: `drafts` noised to `strength` (< 1) or pure noise (1), denoised in `steps` calls.

    A refiner UNet (cond_channels > 0, DiffuseVAE Form 1) also gets the drafts as its condition, at any strength.
    """
    device = next(unet.parameters()).device
    is_refiner = bool(unet.cfg.cond_channels)
    if drafts is None and (strength < 1.0 or is_refiner):
        need = "a refiner needs drafts as its condition" if is_refiner else f"strength={strength} < 1 needs drafts"
        raise ValueError(f"{need} (a VAE run, --vae RUN, or given images); use strength=1 with a plain UNet for "
                         "pure-noise sampling")
    drafts = None if drafts is None else drafts.to(device).clamp(-1, 1)
    model_kwargs = {"cond": drafts} if is_refiner else None
    hw = tuple(drafts.shape[-2:]) if drafts is not None else (unet.cfg.image_size, unet.cfg.image_size)
    out = samplers.denoise(unet, diffusion, shape=(len(seeds), int(unet.cfg.in_channels), *hw),
                           x_init=drafts if strength < 1.0 else None, strength=strength, steps=steps,
                           sampler=sampler, eta=eta, generator=generators(seeds, device, salt=1),
                           progress=progress, model_kwargs=model_kwargs)
    return HybridOutput(out.x.clamp(-1, 1), drafts, int(out.t0), int(out.nfe), list(out.timesteps))
