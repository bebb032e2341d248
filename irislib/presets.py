"""Named Experiments users already train with (the table in README.md and docs/design.md): data, not code paths.

The table itself (PRESETS) lives in config.py, next to the dataclasses it fills, so that config.build_experiment
can start from a preset without importing this module; here is its public face: `presets.get(name)` (a fresh
Experiment), `presets.names()`."""
from __future__ import annotations

from .config import PRESETS, get_preset as get

__all__ = ["PRESETS", "get", "names"]


def names() -> list[str]:
    return list(PRESETS)
