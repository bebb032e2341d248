"""Randomness of a training run: the global RNG states as plain data (saved in every checkpoint) and the Trainer's
own generators, closed-form in (seed, step, stream, rank) so any step can be redrawn after a resume."""
from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def derive_seed(seed: int, step: int, stream: str, rank: int = 0) -> int:
    """A 63-bit seed for one (seed, step, stream, rank); streams are e.g. "flip", "task", "probe"."""
    digest = hashlib.blake2b(f"{seed}/{step}/{stream}/{rank}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def seeded_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on `device` seeded with `seed`."""
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch, identical to DistributedSampler(shuffle=True, seed=seed) after set_epoch."""
    return torch.randperm(n, generator=seeded_generator(seed + epoch))


def seed_global(seed: int) -> None:
    """Seed python random, numpy and torch (dropout, user code) for a fresh start."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> dict:
    """States of python random, numpy, torch CPU and every CUDA device, as plain lists/ints/tensors."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(internal), gauss],
            "numpy": [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng_state(state: dict) -> None:
    """Restore what capture_rng_state returned (CUDA states only for devices that exist)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if torch.cuda.is_available() and state["cuda"]:
        for i, s in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu(), i)
