"""Crash-safe file primitives: atomic writes (temp -> fsync -> os.replace -> fsync dir), sha256, plain-data state."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

TMP_TAG = ".tmp-"  # files and folders with this in their name are unfinished writes
OLD_TAG = ".old-"  # a checkpoint folder moved aside while a re-save of its step is published
STALE_S = 3600.0   # another machine's leftover untouched this long belongs to a writer that is gone
_LEFTOVER_RE = re.compile(r"(?:\.tmp-(?:old)?|\.old-)(\d+)(?:@(\w+)-[0-9a-f]+)?$")  # legacy names: pid only
_WRITER: dict[int, str] = {}


def host_name() -> str:
    """This machine's name with only [A-Za-z0-9_], as it appears in writer tags."""
    return re.sub(r"\W", "_", socket.gethostname())[:40] or "host"


def writer_tag() -> str:
    """pid@host-nonce: unique per process, also across machines sharing a folder (Colab VMs reuse pids)."""
    pid = os.getpid()
    if pid not in _WRITER:  # keyed by pid: a forked child gets its own tag
        _WRITER[pid] = f"{pid}@{host_name()}-{secrets.token_hex(3)}"
    return _WRITER[pid]


def tmp_path(path: Path, tag: str = TMP_TAG) -> Path:
    """`path` renamed to this writer's temporary (or moved-aside) name beside it."""
    path = Path(path)
    return path.with_name(f"{path.name}{tag}{writer_tag()}")


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid > 0
    return pid > 0


def leftover_removable(path: Path) -> bool:
    """May this leftover temp entry be deleted? Yes if this process wrote it, if its writer (on this machine)
    is dead, or if nothing in it changed for STALE_S; never while another live writer may still be filling it."""
    m = _LEFTOVER_RE.search(path.name)
    if m is None:
        return _age(path) > STALE_S
    if path.name.endswith(writer_tag()):
        return True
    pid, host = int(m.group(1)), m.group(2) or host_name()
    if host == host_name() and not pid_alive(pid):
        return True
    return _age(path) > STALE_S


def is_moved_aside(path: Path) -> bool:
    """A published checkpoint folder moved aside by _publish (also the pre-0.2 name step_N.tmp-old<pid>)."""
    return OLD_TAG in path.name or f"{TMP_TAG}old" in path.name


def _age(path: Path) -> float:
    """Seconds since anything in `path` (a file or a folder's entries) was last modified."""
    try:
        times = [path.stat().st_mtime] + ([p.stat().st_mtime for p in path.iterdir()] if path.is_dir() else [])
    except OSError:
        return 0.0
    return time.time() - max(times)


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
    tmp = tmp_path(path)
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


# --- a full disk -------------------------------------------------------------------------------------------
class DiskFullError(OSError):
    """A write failed because the disk is full; the message names the folder, the free space and what to do."""

    def __init__(self, message: str):
        super().__init__(message)
        self.errno = errno.ENOSPC


def _looks_full(exc: BaseException, folder: Path) -> bool:
    """ENOSPC however the writer reports it: OSError errno 28, safetensors' "os error 28", or torch.save's
    "unexpected pos" RuntimeError (which never says why) while the disk has (almost) no space left."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    if "No space left on device" in text or "os error 28" in text or "Disk quota exceeded" in text:
        return True
    return isinstance(exc, (OSError, RuntimeError)) and free_bytes(folder) < (1 << 20)


def free_bytes(folder: Path) -> int:
    """Free bytes on the disk holding `folder` (its nearest existing parent); -1 if unknown."""
    p = Path(folder).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return -1


def disk_full_error(folder: Path, exc: BaseException, what: str, need: int = 0,
                    kept: str = "the previous checkpoint is intact") -> DiskFullError | None:
    """A one-line DiskFullError for `exc` if it is a full disk, else None. Call it before deleting partial files,
    so the free space reported is what the write saw; `kept` says what is still safe."""
    if not is_disk_full(exc, folder):
        return None
    return DiskFullError(f"{describe_full(folder, what, need)}. Free space there (delete old runs or checkpoints, "
                         f"lower train.keep_last) or train into a folder on a bigger disk, then run again with "
                         f"--resume auto (resume='auto'): {kept}")


def is_disk_full(exc: BaseException, folder: Path) -> bool:
    """True if `exc` (raised while writing into `folder`) is a full disk."""
    return isinstance(exc, Exception) and not isinstance(exc, DiskFullError) and _looks_full(exc, folder)


def describe_full(folder: Path, what: str, need: int = 0) -> str:
    """'no space left on device: writing WHAT in FOLDER failed with N MiB free; it needs about M MiB'."""
    needs = f"; it needs about {_mb(need)}" if need else ""
    return f"no space left on device: writing {what} in {folder} failed with {_mb(free_bytes(folder))} free{needs}"


def _mb(n: int) -> str:
    return "unknown space" if n < 0 else f"{n / 2**20:.1f} MiB"
