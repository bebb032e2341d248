"""Blocks shared by the UNet and the VAE, with guided-diffusion's module names so checkpoints load as they are.

Differences from guided-diffusion (same maths, same state-dict keys):
- attention runs through `F.scaled_dot_product_attention` (fused kernels, no [T, T] float32 softmax copy);
- gradient checkpointing uses `torch.utils.checkpoint(use_reentrant=False)`, which keeps autocast working
  (guided-diffusion's custom autograd Function recomputes outside autocast) and costs nothing when switched off;
- GroupNorm computes in float32 only when the input is not float32 already.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 (as guided-diffusion) and returned in the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, ...] -> normalised x, same dtype."""
        if x.dtype == torch.float32 and not torch.is_autocast_enabled(x.device.type):
            return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        # Half/bf16 activations or autocast: statistics in float32 for stability.
        with torch.autocast(x.device.type, enabled=False):
            out = F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps)
        return out.to(x.dtype)


def normalization(channels: int) -> GroupNorm32:
    """guided-diffusion's normalization layer: 32 groups."""
    return GroupNorm32(32, channels)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero a module's parameters (residual branches start as the identity)."""
    for p in module.parameters():
        p.detach().zero_()
    return module


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [N, dim] of (possibly fractional) timesteps [N]; guided-diffusion's formula."""
    half = dim // 2
    # Frequencies computed on the CPU in float32 exactly as guided-diffusion does, then moved.
    freqs = torch.exp(-math.log(max_period) * torch.arange(0, half, dtype=torch.float32) / half)
    args = timesteps[:, None].float() * freqs.to(timesteps.device)[None]  # [N, half]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling, optionally followed by a 3x3 conv (`conv`)."""

    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None):
        super().__init__()
        self.channels, self.out_channels = channels, out_channels or channels
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, self.out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, C', 2H, 2W]."""
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    """2x downsampling by a strided 3x3 conv or 2x2 average pooling (`op`)."""

    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None):
        super().__init__()
        self.channels, self.out_channels = channels, out_channels or channels
        if use_conv:
            self.op = nn.Conv2d(channels, self.out_channels, 3, stride=2, padding=1)
        else:
            if self.out_channels != channels:
                raise ValueError(f"Downsample by pooling keeps channels; got {channels} -> {self.out_channels}")
            self.op = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, C', H/2, W/2]."""
        return self.op(x)


class ResBlock(nn.Module):
    """Residual block with optional timestep embedding (emb_channels=None for the VAE), scale-shift norm, up/down."""

    def __init__(self, channels: int, emb_channels: int | None, dropout: float = 0.0,
                 out_channels: int | None = None, use_conv: bool = False, use_scale_shift_norm: bool = False,
                 use_checkpoint: bool = False, up: bool = False, down: bool = False,
                 activation: type[nn.Module] = nn.SiLU):
        super().__init__()
        self.channels, self.out_channels = channels, out_channels or channels
        self.use_checkpoint = use_checkpoint
        self.use_scale_shift_norm = use_scale_shift_norm and emb_channels is not None
        out_ch = self.out_channels
        self.in_layers = nn.Sequential(normalization(channels), activation(), nn.Conv2d(channels, out_ch, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        if emb_channels is not None:
            self.emb_layers = nn.Sequential(
                activation(), nn.Linear(emb_channels, 2 * out_ch if self.use_scale_shift_norm else out_ch))
        else:
            self.emb_layers = None
        self.out_layers = nn.Sequential(normalization(out_ch), activation(), nn.Dropout(p=dropout),
                                        zero_module(nn.Conv2d(out_ch, out_ch, 3, padding=1)))
        if out_ch == channels:
            self.skip_connection = nn.Identity()
        elif use_conv:
            self.skip_connection = nn.Conv2d(channels, out_ch, 3, padding=1)
        else:
            self.skip_connection = nn.Conv2d(channels, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, C, H, W], emb [B, E] or None -> [B, out_channels, H', W']."""
        if self.use_checkpoint and torch.is_grad_enabled():
            return checkpoint(self._forward, x, emb, use_reentrant=False)
        return self._forward(x, emb)

    def _forward(self, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        if self.updown:
            h = self.in_layers[:-1](x)
            h = self.in_layers[-1](self.h_upd(h))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)
        if self.emb_layers is None:
            h = self.out_layers(h)
        else:
            emb_out = self.emb_layers(emb).to(h.dtype)[:, :, None, None]  # [B, E', 1, 1]
            if self.use_scale_shift_norm:
                scale, shift = emb_out.chunk(2, dim=1)
                h = torch.addcmul(shift, self.out_layers[0](h), 1 + scale)
                h = self.out_layers[1:](h)
            else:
                h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Spatial self-attention; `use_new_attention_order` picks guided-diffusion's QKVAttention vs the legacy split."""

    def __init__(self, channels: int, num_heads: int = 1, num_head_channels: int = -1,
                 use_checkpoint: bool = False, use_new_attention_order: bool = False):
        super().__init__()
        if num_head_channels == -1:
            self.num_heads = num_heads
        else:
            if channels % num_head_channels:
                raise ValueError(f"attention channels {channels} not divisible by num_head_channels "
                                 f"{num_head_channels}")
            self.num_heads = channels // num_head_channels
        if channels % self.num_heads:
            raise ValueError(f"attention channels {channels} not divisible by num_heads {self.num_heads}")
        self.channels = channels
        self.use_checkpoint = use_checkpoint
        self.use_new_attention_order = use_new_attention_order
        self.norm = normalization(channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, C, H, W] -> [B, C, H, W] (emb ignored; accepted so blocks share one call signature)."""
        if self.use_checkpoint and torch.is_grad_enabled():
            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)  # [B, C, T]
        heads, ch, length = self.num_heads, c // self.num_heads, x.shape[-1]
        # The 1x1 conv as a matmul on [B, T, C] keeps each head's channels contiguous, as the fused SDPA kernels
        # want (a [B, H, ch, T] view transposed would send them to the slow math path).
        qkv = F.linear(self.norm(x).transpose(1, 2), self.qkv.weight[:, :, 0], self.qkv.bias)  # [B, T, 3C]
        if self.use_new_attention_order:
            qkv = qkv.view(b, length, 3, heads, ch).permute(2, 0, 3, 1, 4)  # QKVAttention: split qkv, then heads
        else:
            qkv = qkv.view(b, length, heads, 3, ch).permute(3, 0, 2, 1, 4)  # QKVAttentionLegacy: heads, then qkv
        q, k, v = qkv.unbind(0)  # each [B, H, T, ch]
        # SDPA's default scale 1/sqrt(ch) equals guided-diffusion's ch^-1/4 applied to q and to k.
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, length, c)  # [B, T, C]
        h = F.linear(a, self.proj_out.weight[:, :, 0], self.proj_out.bias).transpose(1, 2)  # [B, C, T]
        return (x + h).reshape(b, c, *spatial)
