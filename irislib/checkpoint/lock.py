"""One writer per run directory: a lock file naming the training process, so a second `train-*` on the same --out
(a duplicated Colab cell, a forgotten background job) stops with a clear message instead of interleaving checkpoints."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import warnings
from pathlib import Path

LOCK = ".train.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class RunLockedError(OSError):
    """Another live process is training into the same run directory (an OSError, like EBUSY)."""


@contextlib.contextmanager
def run_lock(run_dir):
    """Hold run_dir/.train.lock while training; a live holder on this host is an error, a dead one is taken over."""
    path = Path(run_dir) / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            holder = _holder(path) or {}
            if holder.get("host") == me["host"] and _alive(int(holder.get("pid", -1))):
                raise RunLockedError(f"{run_dir} is being trained by process {holder['pid']} on this machine; stop "
                                   f"it first, or train into another --out") from None
            if holder.get("host") not in (None, me["host"]):
                warnings.warn(f"taking over the lock of {run_dir} left by {holder}: a session on another machine "
                              f"(e.g. a Colab VM that was cut off)")
            path.unlink(missing_ok=True)  # stale: its process is gone
    with os.fdopen(fd, "w") as f:
        json.dump(me, f)
    try:
        yield path
    finally:
        if (_holder(path) or {}).get("pid") == me["pid"]:
            path.unlink(missing_ok=True)
