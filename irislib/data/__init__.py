"""Data sets yielding float32 image tensors [C, H, W] in [-1, 1]: real iris folders and synthetic irises."""
from __future__ import annotations

import torch

from ..config import ConfigError, DataConfig
from .folder import FolderDataset
from .synthetic import SyntheticIrisDataset, generate, write_synthetic

SYNTHETIC_PREFIX = "synthetic:"


def parse_synthetic(path: str, field: str = "data.path") -> int | None:
    """Number of images N for "synthetic:N", None for any other path; a malformed spec is a ConfigError."""
    text = str(path).strip()
    if not text.lower().startswith(SYNTHETIC_PREFIX):
        return None
    count = text[len(SYNTHETIC_PREFIX):].strip()
    if not count.isdigit() or int(count) <= 0:
        raise ConfigError(f"{field}={path!r} is not a valid synthetic data spec; use synthetic:N with N a positive "
                          f"integer, e.g. synthetic:256")
    return int(count)


def make_dataset(cfg: DataConfig) -> torch.utils.data.Dataset:
    """The data set cfg describes: "synthetic:N" built-in irises, or a folder of images (searched recursively)."""
    n = parse_synthetic(cfg.path)
    if n is not None:
        return SyntheticIrisDataset(n, cfg.image_size, channels=cfg.channels, seed=cfg.synthetic_seed)
    return FolderDataset(cfg.path, cfg.image_size, cfg.channels, crop_csv=cfg.crop_csv, cache_dir=cfg.cache_dir,
                         crop=cfg.crop)


__all__ = ["FolderDataset", "SyntheticIrisDataset", "generate", "make_dataset", "parse_synthetic",
           "write_synthetic"]
