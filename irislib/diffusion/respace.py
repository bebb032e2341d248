"""Timestep respacing: sample with a subset of the trained noise levels (guided-diffusion's respace.py semantics).

`space_timesteps` picks the kept timesteps; `respace_betas` turns them into the betas of a shorter chain whose
alphas_cumprod are the original ones at the kept steps. `GaussianDiffusion.respaced(...)` combines the two.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np


def space_timesteps(num_timesteps: int, section_counts: str | int | Iterable[int]) -> list[int]:
    """Sorted timesteps kept from range(num_timesteps).

    section_counts: "250" (250 steps spread evenly), "10,20,30" (the range cut into 3 equal sections with 10, 20
    and 30 steps each), "ddimN" (the DDIM paper's fixed integer stride giving exactly N steps), an int, or a list.
    """
    if isinstance(section_counts, int):
        section_counts = [section_counts]
    elif isinstance(section_counts, str):
        text = section_counts.strip()
        if text.startswith("ddim"):
            return _ddim_stride(num_timesteps, text)
        try:
            section_counts = [int(x) for x in text.split(",")]
        except ValueError:
            raise ValueError(f"timestep respacing {text!r} is not understood; use e.g. '250', '10,20,30' "
                             f"or 'ddim50'") from None
    counts = list(section_counts)
    if not counts:
        raise ValueError("timestep respacing is empty; use e.g. '250' or 'ddim50'")
    size_per, extra = divmod(num_timesteps, len(counts))
    start, kept = 0, []
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(f"cannot take {count} steps from a section of {size} timesteps "
                             f"(respacing {section_counts!r} of {num_timesteps}); use fewer steps")
        # Evenly spaced points including both ends of the section, rounded like guided-diffusion.
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        pos = 0.0
        for _ in range(count):
            kept.append(start + round(pos))
            pos += stride
        start += size
    return sorted(set(kept))


def _ddim_stride(num_timesteps: int, text: str) -> list[int]:
    try:
        desired = int(text[len("ddim"):])
    except ValueError:
        raise ValueError(f"timestep respacing {text!r}: expected 'ddimN' with an integer N, e.g. 'ddim50'") from None
    for stride in range(1, num_timesteps):
        if len(range(0, num_timesteps, stride)) == desired:
            return list(range(0, num_timesteps, stride))
    raise ValueError(f"timestep respacing {text!r}: no integer stride gives exactly {desired} of {num_timesteps} "
                     f"steps; pick another N or use a plain count like '{desired}'")


def respace_betas(alphas_cumprod: np.ndarray, use_timesteps: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    """Betas of the chain that visits only `use_timesteps`, and the map from new index to old timestep."""
    keep = set(int(t) for t in use_timesteps)
    if not keep:
        raise ValueError("respacing needs at least one timestep to keep")
    if min(keep) < 0 or max(keep) >= len(alphas_cumprod):
        raise ValueError(f"respaced timesteps must lie in [0, {len(alphas_cumprod) - 1}], got {sorted(keep)[:3]}...")
    last, new_betas, timestep_map = 1.0, [], []
    for i, alpha_cumprod in enumerate(alphas_cumprod):
        if i in keep:
            # 1 - beta_new = alpha_bar[i] / alpha_bar[previous kept], so the cumulative product is unchanged.
            new_betas.append(1 - alpha_cumprod / last)
            last = alpha_cumprod
            timestep_map.append(i)
    return np.array(new_betas, dtype=np.float64), np.array(timestep_map, dtype=np.int64)
