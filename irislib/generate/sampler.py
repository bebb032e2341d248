"""A hybrid sampler loaded once: the UNet (+ the VAE and its prior) stay in memory; each call takes a SampleConfig.

    sampler = HybridSampler.load("iris64-unet", "iris64-vae")      # run folders or manifest names, verified once
    result = sampler.sample(SampleConfig(n=16, strength=0.5, steps=20))
    result.save("samples")                                          # PNGs, grid.png, drafts_grid.png, settings.json

The notebook panel, `irislib sample`, `irislib evaluate` and the demo all go through this class; it drafts with
`hybrid.draw_drafts` and starts every batch with `hybrid.denoise_batch`, the one place (shared with the training
sample grids) that noises drafts to `strength` and builds a refiner's condition.
"""
from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import hybrid
from .. import imageio
from ..config import ConfigError
from ..diffusion.samplers import SAMPLERS


@dataclass
class SampleConfig:
    """What one draw asks for; exactly what settings.json records."""
    n: int = 16                 # images to draw
    strength: float = 0.5       # noise std sqrt(1 - alpha_bar) the draft is noised to (0 = draft, 1 = pure noise);
                                # a noise level, not diffusers' strength (a fraction of the steps)
    steps: int = 50             # UNet calls per image, spread from the start timestep t0 down to 0
    sampler: str = "ddim"       # a name in diffusion.samplers.SAMPLERS: ddim, ddpm or dpm++2m
    seed: int = 0               # image i uses seed + i, so it is the same at any n or batch size
    batch_size: int = 16        # images per UNet batch (memory only; results do not depend on it)
    eta: float = 0.0            # DDIM noise (0 = deterministic); ddpm and dpm++2m ignore it
    respacing: str = ""         # instead of steps: guided-diffusion respacing of the whole chain ("ddim25", "250"),
                                # cut at the grid step nearest strength (never above the
                                # trained range of a truncated UNet); "" = use steps

    def validate(self) -> "SampleConfig":
        if self.n < 1 or self.batch_size < 1:
            raise ConfigError(f"n={self.n} and batch_size={self.batch_size} must both be at least 1")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"steps={self.steps!r} must be a positive number of UNet calls")
        if not 0.0 <= float(self.strength) <= 1.0:
            raise ConfigError(f"strength={self.strength} must be in [0, 1] (noise std at the start; 1 = pure noise)")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler={self.sampler!r} is not one of {', '.join(SAMPLERS)}")
        top = hybrid.SEED_LIMIT - self.n          # image i uses seed + i, and every seed must be below 2**63
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or not 0 <= self.seed <= top:
            raise ConfigError(f"seed={self.seed!r} is outside 0..{top}: image i uses seed + i, and seeds are whole "
                              f"numbers from 0 to 2**63-1 (here n={self.n})")
        return self

    @property
    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.n)]


@dataclass
class SampleResult:
    """Images in [-1, 1], the VAE drafts they started from, the start timestep and UNet calls per image."""
    images: torch.Tensor               # [N, C, H, W]
    drafts: torch.Tensor | None        # [N, C, H, W], None for pure-noise sampling
    t0: int                            # start timestep on the model's 0..T-1 scale (-1: not noised)
    nfe: int                           # UNet calls per image
    config: SampleConfig
    sources: dict = field(default_factory=dict)   # {"unet_run": ..., "vae_run": ...}
    paths: list[Path] = field(default_factory=list)

    def settings(self) -> dict:
        return {**self.sources, **dataclasses.asdict(self.config), "t0": self.t0, "nfe": self.nfe}

    def save(self, out, bit_depth: int = 8) -> list[Path]:
        """Write sample_XXXX.png (replacing those of an earlier, larger draw), grids and settings.json."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("sample_*.png"):   # files on disk must match this draw, not the last larger one
            old.unlink()
        self.paths = imageio.save_images(self.images, out, "sample", bit_depth)
        imageio.save_grid(self.images, out / "grid.png")
        drafts_grid = out / "drafts_grid.png"
        if self.drafts is not None:
            imageio.save_grid(self.drafts, drafts_grid)
        elif drafts_grid.exists():
            drafts_grid.unlink()
        (out / "settings.json").write_text(json.dumps({**self.settings(), "bit_depth": bit_depth}, indent=2) + "\n")
        return self.paths


class HybridSampler:
    """A UNet with its diffusion, and optionally the VAE (+ fitted prior) that drafts the shapes."""

    def __init__(self, unet, diffusion, vae=None, prior=None, sources: dict | None = None, experiment=None):
        self.unet, self.diffusion, self.vae, self.prior = unet, diffusion, vae, prior
        self.experiment = experiment   # the UNet run's Experiment (data settings for references)
        self.sources = dict(sources or {})
        self.device = next(unet.parameters()).device
        if vae is not None:
            _check_pair(self.sources, unet, vae)

    @classmethod
    def load(cls, unet_ref, vae_ref=None, device: str = "auto", use_ema: bool = True) -> "HybridSampler":
        """Load (and verify) the runs or manifest names once; EMA weights by default."""
        from .loading import load_unet, load_vae, resolve_device
        dev = resolve_device(device)
        unet, diffusion, exp = load_unet(unet_ref, dev, use_ema)
        vae, prior = load_vae(vae_ref, dev, use_ema) if vae_ref is not None else (None, None)
        return cls(unet, diffusion, vae, prior, {"unet_run": str(unet_ref),
                                                 "vae_run": None if vae_ref is None else str(vae_ref)}, exp)

    def with_drafts_from(self, other: "HybridSampler") -> "HybridSampler":
        """This UNet with another sampler's VAE and prior (e.g. a full-chain peer drafting the same shapes)."""
        return HybridSampler(self.unet, self.diffusion, other.vae, other.prior,
                             {**self.sources, "vae_run": other.sources.get("vae_run")}, self.experiment)

    @property
    def is_refiner(self) -> bool:
        return bool(self.unet.cfg.cond_channels)

    @property
    def max_strength(self) -> float:
        return float(self.diffusion.cfg.max_strength)

    def drafts(self, seeds: list[int]) -> torch.Tensor:
        """VAE drafts for these seeds, [N, C, H, W] in [-1, 1]: from the fitted prior (vae.prior=gmm) or N(0, I)."""
        if self.vae is None:
            raise ConfigError("drafts need a VAE run (--vae RUN)")
        hybrid.require_prior(self.vae, self.prior, self.sources.get("vae_run") or "the VAE run")
        return hybrid.draw_drafts(self.vae, seeds, prior=self.prior, device=self.device)

    def sample(self, cfg: SampleConfig, drafts: torch.Tensor | None = None, progress: bool = False) -> SampleResult:
        """Draw cfg.n images in batches; `drafts` (e.g. shared by several methods of a report) skips re-drafting."""
        cfg = cfg.validate()
        self._check(cfg)
        images, kept, res = [], [], None
        for start in range(0, cfg.n, cfg.batch_size):
            seeds = cfg.seeds[start:start + cfg.batch_size]
            d = None
            if self.vae is not None and (cfg.strength < 1.0 or self.is_refiner):
                d = drafts[start:start + len(seeds)].to(self.device) if drafts is not None else self.drafts(seeds)
            res = hybrid.denoise_batch(self.unet, self.diffusion, seeds, d, strength=cfg.strength,
                                       steps=cfg.respacing or cfg.steps, sampler=cfg.sampler, eta=cfg.eta,
                                       progress=progress)
            images.append(res.images.cpu())
            kept.append(None if d is None else d.cpu())
        out_drafts = None if kept[0] is None else torch.cat(kept)
        return SampleResult(torch.cat(images), out_drafts, res.t0, res.nfe, cfg, self.sources)

    def _check(self, cfg: SampleConfig) -> None:
        unet_run = self.sources.get("unet_run", "the UNet")
        if self.is_refiner and self.vae is None:
            raise ConfigError(f"{unet_run} is a conditional refiner; give the VAE run it was trained with (--vae)")
        if self.vae is None and cfg.strength < 1.0:
            raise ConfigError(f"strength={cfg.strength} needs a VAE run (--vae); use strength=1 for pure-noise "
                              "sampling")
        if cfg.strength > self.max_strength + 1e-9:
            raise ConfigError(f"strength={cfg.strength:g} is above diffusion.max_strength={self.max_strength:g} "
                              f"of {unet_run}: it was trained only on noise std <= {self.max_strength:g} (truncated "
                              f"training); use strength <= {self.max_strength:g}, or a full-chain UNet")


def _check_pair(sources: dict, unet, vae) -> None:
    """The VAE must draft images the UNet denoises: same channels and size, or one clear error naming both."""
    u, v = unet.cfg, vae.cfg
    if (u.in_channels, u.image_size) != (v.in_channels, v.image_size):
        raise ConfigError(f"{sources.get('vae_run', 'the VAE')} drafts {v.in_channels}-channel {v.image_size} px "
                          f"images but {sources.get('unet_run', 'the UNet')} denoises {u.in_channels}-channel "
                          f"{u.image_size} px ones; use a VAE and UNet trained on the same data settings")
