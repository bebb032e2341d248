"""guided-diffusion's UNetModel for any image size and channel count, with identical state-dict keys.

A guided-diffusion checkpoint loads with a strict `load_state_dict` (see `irislib.compat`), and gives the same
outputs. The layers live in `layers.py`; this file only wires them as guided-diffusion's `UNetModel.__init__`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..config import UNetConfig
from .layers import AttentionBlock, Downsample, ResBlock, Upsample, normalization, timestep_embedding, zero_module


class EmbedSequential(nn.Sequential):
    """nn.Sequential passing the timestep embedding to the blocks that take one (guided's TimestepEmbedSequential)."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Apply the layers in order; ResBlocks and attention also get emb [B, E]."""
        for layer in self:
            x = layer(x, emb) if isinstance(layer, (ResBlock, AttentionBlock)) else layer(x)
        return x


class UNet(nn.Module):
    """Denoising UNet: forward(x [B, in(+cond), H, W], t [B], cond=None) -> [B, out_channels, H, W]."""

    def __init__(self, cfg: UNetConfig, *, timestep_scale: float | None = None):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        # t is multiplied by this before the embedding: 1000/T for checkpoints trained with rescale_timesteps.
        self.timestep_scale = float(cfg.timestep_scale if timestep_scale is None else timestep_scale)
        self.in_channels, self.cond_channels = cfg.in_channels, cfg.cond_channels
        self.out_channels = cfg.in_channels * (2 if cfg.learn_sigma else 1)
        self.model_channels = mc = cfg.num_channels
        mult = cfg.resolved_channel_mult()
        # guided-diffusion's create_model: attention resolutions in px -> downsample rates.
        self.attention_ds = {cfg.image_size // r for r in cfg.attention_resolutions}
        emb_dim = mc * 4
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        ch = input_ch = int(mult[0] * mc)
        self.input_blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(cfg.in_channels + cfg.cond_channels, ch, 3,
                                                                     padding=1))])
        chans, ds = [ch], 1
        for level, m in enumerate(mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [self._res(ch, int(m * mc))]
                ch = int(m * mc)
                if ds in self.attention_ds:
                    layers.append(self._attn(ch, cfg.num_heads))
                self.input_blocks.append(EmbedSequential(*layers))
                chans.append(ch)
            if level != len(mult) - 1:
                down = self._res(ch, ch, down=True) if cfg.resblock_updown else Downsample(ch, True, ch)
                self.input_blocks.append(EmbedSequential(down))
                chans.append(ch)
                ds *= 2

        self.middle_block = EmbedSequential(self._res(ch, ch), self._attn(ch, cfg.num_heads), self._res(ch, ch))

        heads_up = cfg.num_heads if cfg.num_heads_upsample == -1 else cfg.num_heads_upsample
        self.output_blocks = nn.ModuleList([])
        for level, m in list(enumerate(mult))[::-1]:
            for i in range(cfg.num_res_blocks + 1):
                layers = [self._res(ch + chans.pop(), int(mc * m))]
                ch = int(mc * m)
                if ds in self.attention_ds:
                    layers.append(self._attn(ch, heads_up))
                if level and i == cfg.num_res_blocks:
                    layers.append(self._res(ch, ch, up=True) if cfg.resblock_updown else Upsample(ch, True, ch))
                    ds //= 2
                self.output_blocks.append(EmbedSequential(*layers))

        self.out = nn.Sequential(normalization(ch), nn.SiLU(),
                                 zero_module(nn.Conv2d(input_ch, self.out_channels, 3, padding=1)))

    def _res(self, ch: int, out_ch: int, up: bool = False, down: bool = False) -> ResBlock:
        c = self.cfg
        return ResBlock(ch, self.model_channels * 4, c.dropout, out_channels=out_ch,
                        use_scale_shift_norm=c.use_scale_shift_norm, use_checkpoint=c.use_checkpoint,
                        up=up, down=down)

    def _attn(self, ch: int, num_heads: int) -> AttentionBlock:
        c = self.cfg
        return AttentionBlock(ch, num_heads=num_heads, num_head_channels=c.num_head_channels,
                              use_checkpoint=c.use_checkpoint, use_new_attention_order=c.use_new_attention_order)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, C, H, W] (C = in_channels, or in+cond when cond is None), t [B] on the 0..T-1 scale."""
        if cond is not None:
            x = torch.cat([x, cond.to(x.dtype)], dim=1)  # [B, in + cond, H, W]
        expected = self.in_channels + self.cond_channels
        if x.ndim != 4 or x.shape[1] != expected:
            raise ValueError(f"UNet expects x of shape [B, {expected}, H, W] (in_channels={self.in_channels} + "
                             f"cond_channels={self.cond_channels}), got {tuple(x.shape)}; pass the conditioning "
                             f"image as cond=")
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if self.timestep_scale != 1.0:
            t = t.float() * self.timestep_scale
        emb = self.time_embed(timestep_embedding(t, self.model_channels))  # [B, 4 * mc]

        hs, h = [], x
        for module in self.input_blocks:
            h = module(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for module in self.output_blocks:
            h = module(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (works on the meta device)."""
    return sum(p.numel() for p in module.parameters())

