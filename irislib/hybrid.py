"""Hybrid sampling: a VAE draft (round pupil) is noised to `strength` and denoised by the diffusion model.

SDEdit / ES-DDPM style: shape survives from the draft, texture is redrawn, in far fewer UNet calls than sampling
from pure noise. `strength` is the noise std sqrt(1 - alpha_bar) at the start (docs/design.md); 1 = pure noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .diffusion import samplers


@dataclass
class HybridOutput:
    """Final images, the drafts they started from, and where the chain really started."""
    images: torch.Tensor            # [N, C, H, W] in [-1, 1]
    drafts: torch.Tensor | None     # [N, C, H, W] VAE drafts (None for pure-noise sampling)
    t0: int                         # start timestep on the model's 0..T-1 scale
    nfe: int                        # UNet calls per image
    timesteps: list[int]            # timesteps visited


def generators(seeds: list[int], device: torch.device | str, salt: int = 0) -> list[torch.Generator]:
    """One generator per image, so image i is the same at any batch size (EDM's convention)."""
    return [torch.Generator(device=device).manual_seed(int(s) * 2 + salt) for s in seeds]


@torch.no_grad()
def draw_drafts(vae, seeds: list[int], prior=None, device="cpu") -> torch.Tensor:
    """Decode one latent per seed, drawn from the fitted prior (if given) or N(0, I)."""
    gens = generators(seeds, device, salt=0)
    shape = tuple(vae.latent_shape)
    zs = []
    for g in gens:
        if prior is not None and bool(getattr(prior, "fitted", True)):
            z = prior.sample(1, generator=g).reshape(1, *shape)
        else:
            z = torch.randn((1, *shape), generator=g, device=device)
        zs.append(z)
    return vae.decode(torch.cat(zs).to(device)).clamp(-1, 1)


@torch.no_grad()
def sample(unet, diffusion, *, seeds: list[int], vae=None, prior=None, x_init: torch.Tensor | None = None,
           strength: float = 0.5, steps: int | str = 50, sampler: str = "ddim", eta: float = 0.0,
           cond: torch.Tensor | None = None, progress: bool = False) -> HybridOutput:
    """Draft with the VAE (or take `x_init`), noise it to `strength`, denoise with `sampler` in `steps` calls.

    `cond` feeds a conditional refiner UNet (extra input channels); pass the drafts themselves for DiffuseVAE's
    "Form 1" refiner. With strength 1 and no VAE this is plain pure-noise sampling.
    """
    device = next(unet.parameters()).device
    if x_init is None and vae is not None and strength < 1.0:
        x_init = draw_drafts(vae, seeds, prior=prior, device=device)
    if x_init is None and strength < 1.0:
        raise ValueError(f"strength={strength} < 1 needs a VAE (--vae RUN) or given images to start from; "
                         "use strength=1 for pure-noise sampling")
    drafts = None if x_init is None else x_init.to(device).clamp(-1, 1)
    model_kwargs = None if cond is None else {"cond": cond.to(device)}
    shape = (len(seeds), unet_channels(unet), *image_hw(unet, drafts))
    out = samplers.sample(unet, diffusion, shape=shape, x_init=drafts, strength=strength, steps=steps,
                          sampler=sampler, eta=eta, generator=generators(seeds, device, salt=1),
                          progress=progress, model_kwargs=model_kwargs)
    return HybridOutput(out.x.clamp(-1, 1), drafts, int(out.t0), int(out.nfe), list(out.timesteps))


def unet_channels(unet) -> int:
    """Image channels the UNet denoises (without conditioning channels)."""
    return int(unet.cfg.in_channels)


def image_hw(unet, drafts) -> tuple[int, int]:
    """Spatial size: the drafts' if given, else the UNet's configured square size."""
    if drafts is not None:
        return tuple(drafts.shape[-2:])
    return (unet.cfg.image_size, unet.cfg.image_size)
