"""Convolutional VAE for the hybrid sampler's shape draft: ResBlocks (no time embedding), GroupNorm, SiLU.

SiLU by default: the "gear" learning-rate schedule was seen to kill ReLU units (docs/design.md); `activation=relu`
exists only to reproduce that failure and watch the dead-unit figure rise. The decoder output is
left linear (no tanh): the black pupil sits at the -1 end of the [-1, 1] range, where tanh would need an infinite
pre-activation and its gradient vanishes; `sample` clamps to [-1, 1] instead. Losses live in irislib.train.tasks.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..config import VAEConfig
from .layers import Downsample, ResBlock, Upsample, normalization
from .prior import GaussianMixturePrior

MAX_FLAT = 8192  # cap on the flattened feature size feeding a vector latent's Linear heads
ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU}
LOGVAR_RANGE = (-30.0, 20.0)  # clamp before exp(): keeps std in [3e-7, 2e4], so no inf/NaN from a bad step


class VAE(nn.Module):
    """Encoder -> (mean, logvar) -> reparameterised z -> decoder; spatial or vector latent."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        mult, base = cfg.channel_mult, cfg.base_channels
        act = ACTIVATIONS[cfg.activation]
        levels = len(mult) - 1
        self.feature_channels = ch_last = base * mult[-1]
        self.feature_size = cfg.image_size // 2 ** levels  # side of the deepest feature map
        # Vector latents: a 1x1 conv first shrinks the map to at most ~MAX_FLAT values, so the Linear heads stay
        # around 1M parameters even at 320 px (flattening 256 x 40 x 40 directly would need 52M per head).
        flat_ch = max(1, min(ch_last, MAX_FLAT // self.feature_size ** 2))
        flat = flat_ch * self.feature_size ** 2

        # Encoder: conv_in, per level num_res_blocks ResBlocks then a strided conv (none after the last level).
        enc: list[nn.Module] = [nn.Conv2d(cfg.in_channels, base * mult[0], 3, padding=1)]
        ch = base * mult[0]
        for level, m in enumerate(mult):
            for _ in range(cfg.num_res_blocks):
                enc.append(ResBlock(ch, None, out_channels=base * m, activation=act))
                ch = base * m
            if level != levels:
                enc.append(Downsample(ch, True))
        enc += [ResBlock(ch, None, activation=act), normalization(ch), act()]
        self.encoder = nn.Sequential(*enc)

        # Heads: mean and logvar. Spatial: 3x3 convs to latent_channels; vector: Linear on the flat feature map.
        if cfg.latent_type == "spatial":
            self.mean_head = nn.Conv2d(ch, cfg.latent_channels, 3, padding=1)
            self.logvar_head = nn.Conv2d(ch, cfg.latent_channels, 3, padding=1)
            self.from_latent = nn.Conv2d(cfg.latent_channels, ch, 3, padding=1)
        else:
            self.to_flat = nn.Sequential(nn.Conv2d(ch, flat_ch, 1), act(), nn.Flatten())  # [B, flat]
            self.mean_head = nn.Linear(flat, cfg.latent_dim)
            self.logvar_head = nn.Linear(flat, cfg.latent_dim)
            self.from_latent = nn.Sequential(nn.Linear(cfg.latent_dim, flat), act(),
                                             nn.Unflatten(1, (flat_ch, self.feature_size, self.feature_size)),
                                             nn.Conv2d(flat_ch, ch, 1))

        # Decoder mirrors the encoder: ResBlocks per level, nearest-upsample + conv between levels.
        dec: list[nn.Module] = [ResBlock(ch, None, activation=act)]
        for level, m in reversed(list(enumerate(mult))):
            for _ in range(cfg.num_res_blocks):
                dec.append(ResBlock(ch, None, out_channels=base * m, activation=act))
                ch = base * m
            if level:
                dec.append(Upsample(ch, True))
        dec += [normalization(ch), act(), nn.Conv2d(ch, cfg.in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """Per-sample latent shape: (latent_channels, h, w) or (latent_dim,)."""
        if self.cfg.latent_type == "spatial":
            return (self.cfg.latent_channels, self.feature_size, self.feature_size)
        return (self.cfg.latent_dim,)

    @property
    def latent_numel(self) -> int:
        """Number of latent values per sample (the dimension a GaussianMixturePrior works in)."""
        return math.prod(self.latent_shape)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, H, W] in [-1, 1] -> (mean, logvar), each [B, *latent_shape]; logvar clamped."""
        h = self.encoder(x)  # [B, C_last, h, w]
        if self.cfg.latent_type == "vector":
            h = self.to_flat(h)  # [B, flat]
        return self.mean_head(h), self.logvar_head(h).clamp(*LOGVAR_RANGE)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, *latent_shape] -> image [B, C, H, W], linear output aimed at [-1, 1]."""
        return self.decoder(self.from_latent(z))

    def reparameterize(self, mean: torch.Tensor, logvar: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mean + exp(logvar / 2) * eps, eps ~ N(0, I) drawn from `generator` when given."""
        eps = torch.randn(mean.shape, generator=generator, device=_gen_device(generator, mean), dtype=mean.dtype)
        return mean + (0.5 * logvar).exp() * eps.to(mean.device)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, C, H, W] -> (recon [B, C, H, W], mean, logvar)."""
        mean, logvar = self.encode(x)
        return self.decode(self.reparameterize(mean, logvar, generator)), mean, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | list[torch.Generator] | None = None,
               prior: GaussianMixturePrior | None = None) -> torch.Tensor:
        """n images [n, C, H, W] clamped to [-1, 1]; z from N(0, I) or from a fitted GaussianMixturePrior.

        A list of n generators draws latent i from generator i alone (image i is then the same at any n)."""
        device = next(self.parameters()).device
        if isinstance(generator, (list, tuple)):
            if len(generator) != n:
                raise ValueError(f"got {len(generator)} generators for {n} images; pass one per image or a single one")
            draws = [(1, g) for g in generator]
        else:
            draws = [(n, generator)]
        if prior is not None:
            if prior.dim != self.latent_numel:
                raise ValueError(f"prior has dim={prior.dim} but the VAE latent has {self.latent_numel} values "
                                 f"({self.latent_shape}); fit GaussianMixturePrior({prior.n_components}, "
                                 f"{self.latent_numel})")
            if not bool(prior.fitted):
                raise ValueError("the GaussianMixturePrior is not fitted; call prior.fit(latents) first "
                                 "(a training run fits it when it ends: prior.safetensors)")
            zs = [prior.sample(k, generator=g).reshape(k, *self.latent_shape) for k, g in draws]
        else:
            zs = [torch.randn((k, *self.latent_shape), generator=g, device=_gen_device(g, device))
                  for k, g in draws]
        return self.decode(torch.cat(zs).to(device)).clamp(-1.0, 1.0)


def _gen_device(generator: torch.Generator | None, like) -> torch.device:
    """Draw on the generator's device (a CPU generator gives the same numbers on any model device)."""
    if generator is not None:
        return generator.device
    return like.device if isinstance(like, torch.Tensor) else torch.device(like)
