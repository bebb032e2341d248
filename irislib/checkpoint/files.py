"""Crash-safe file primitives: atomic writes (temp -> fsync -> os.replace -> fsync dir), sha256, plain-data state."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

TMP_TAG = ".tmp-"  # files and folders with this in their name are unfinished writes


def fsync_dir(path: Path) -> None:
    """Make a rename or new entry in `path` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Run write(tmp) for a temp name beside `path`, fsync it, then rename over `path` and fsync the folder."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}{TMP_TAG}{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)


def write_bytes(path: Path, data: bytes) -> None:
    """Atomically write bytes."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_json(path: Path, obj) -> None:
    """Atomically write an indented JSON file."""
    write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def copy_file(src: Path, dst: Path) -> None:
    """Atomically copy a file (to a temp name in dst's folder, then rename)."""
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically write a state dict as safetensors; tensors sharing storage (tied weights) are cloned first."""
    seen, flat = set(), {}
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if t.numel() and key in seen:
            t = t.clone()
        seen.add(key)
        flat[name] = t
    atomic_write(path, lambda tmp: save_file(flat, str(tmp), metadata=metadata))


def load_tensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a safetensors file (no code can run)."""
    try:
        return load_file(str(path), device=str(device))
    except Exception as e:  # safetensors raises its own error types for damaged headers
        raise ValueError(f"{path} is not a readable safetensors file ({e}); the checkpoint is damaged") from None


def save_state(path: Path, state) -> None:
    """Atomically torch.save a plain-data state (tensors, numbers, strings, lists, dicts) loadable weights_only."""
    atomic_write(path, lambda tmp: torch.save(to_plain(state), tmp))


def to_plain(obj):
    """Replace numpy arrays/scalars and tuples by lists and numbers, so torch.load(weights_only=True) accepts them."""
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype), "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, str) and type(obj) is not str:  # e.g. torch.__version__ is a str subclass
        return str(obj)
    return obj


def from_plain(obj):
    """Undo to_plain's ndarray encoding (tuples come back as lists)."""
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            return np.asarray(obj["__ndarray__"], dtype=obj["dtype"]).reshape(obj["shape"])
        return {k: from_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_plain(v) for v in obj]
    return obj
