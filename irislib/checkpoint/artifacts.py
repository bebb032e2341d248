"""Other files of a run directory: sample grids (samples/step_000123.png) and the VAE's fitted prior."""
from __future__ import annotations

import io
from pathlib import Path

import torch

from .files import load_tensors, save_tensors, write_bytes

PRIOR_FILE = "prior.safetensors"


def write_sample_grid(run_dir, step: int, image) -> Path:
    """Atomically save a PIL image as run_dir/samples/step_000123.png; returns the path."""
    path = Path(run_dir) / "samples" / f"step_{step:06d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    write_bytes(path, buf.getvalue())
    return path


def save_prior(run_dir, state: dict[str, torch.Tensor]) -> Path:
    """Atomically save the fitted latent prior's state dict as run_dir/prior.safetensors."""
    path = Path(run_dir) / PRIOR_FILE
    save_tensors(path, state, {"format": "irislib-prior"})
    return path


def load_prior(run_dir) -> dict[str, torch.Tensor] | None:
    """The prior's state dict, or None when the run has none (e.g. prior=normal or not fitted yet)."""
    path = Path(run_dir) / PRIOR_FILE
    return load_tensors(path) if path.is_file() else None
