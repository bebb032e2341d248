"""One writer per folder. run_lock: a lock file naming the training process, so a second `train-*` on the same
--out (a duplicated Colab cell, a forgotten background job) stops with a clear message instead of interleaving
checkpoints. MirrorLease: the same for a Drive mirror that several Colab sessions (other machines, whose pids mean
nothing here) may share; its holder renews it every RENEW_S, and a lease not renewed for LEASE_S is taken over.

Drive has no atomic create across machines, so the lease is best effort: the holder re-checks it at every renewal
and stops mirroring once another session holds it.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Callable

from .files import fsync_dir, host_name, pid_alive, tmp_path, writer_tag

LOCK = ".train.lock"
MIRROR_LOCK = ".mirror.lock"
WRITE_GRACE_S = 10.0  # a lock file still empty after this long was left by a process killed before writing it
LEASE_S = 300.0       # a mirror lease not renewed for this long belongs to a session that is gone
RENEW_S = 60.0        # how often a holder renews its mirror lease
SETTLE_S = 0.2        # after a take-over, wait this long and re-read: a racing taker-over wins or loses cleanly


class RunLockedError(OSError):
    """Another live process is training into the same folder (an OSError, like EBUSY)."""


def _same_host(host) -> bool:
    return host in (host_name(), socket.gethostname())  # older lock files hold the raw hostname


def _me() -> dict:
    return {"pid": os.getpid(), "host": host_name(), "writer": writer_tag(), "renewed": time.time()}


def _read(path: Path) -> tuple[dict | None, float] | None:
    """(holder or None while still empty/partial, age in s of the file), or None if the file is gone."""
    try:
        text, age = path.read_text(), time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(text)
    except ValueError:
        holder = None
    return (holder if isinstance(holder, dict) and holder else None), age


def _write(path: Path, info: dict) -> None:
    """Replace the lock file's content atomically (a reader never sees it empty)."""
    tmp = tmp_path(path)
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _acquire(path: Path, busy: Callable[[dict, float], str | None]) -> dict:
    """Create `path` naming this process, or take it over when busy(holder, age) finds its holder gone (None).

    A file that exists but is still empty is being written by its creator (O_EXCL create, then write): it is
    waited for, and only taken over once it stayed empty for WRITE_GRACE_S (its creator was killed in between).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    me = _me()
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            return me
        seen = _read(path)
        if seen is None:
            continue  # released meanwhile
        holder, age = seen
        if holder is None and age < WRITE_GRACE_S:
            time.sleep(0.05)
            continue
        reason = busy(holder, age) if holder is not None else None
        if reason:
            raise RunLockedError(reason)
        _write(path, me)
        time.sleep(SETTLE_S)
        if (_read(path) or ({}, 0))[0] == me:
            return me


def _release(path: Path, me: dict) -> None:
    seen = _read(path)
    if seen is not None and (seen[0] or {}).get("writer") == me["writer"]:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def run_lock(run_dir):
    """Hold run_dir/.train.lock while training; a live holder on this host is an error, a dead one is taken over."""
    path = Path(run_dir) / LOCK

    def busy(holder: dict, _age: float) -> str | None:
        if _same_host(holder.get("host")) and pid_alive(int(holder.get("pid", -1))):
            return (f"{run_dir} is being trained by process {holder['pid']} on this machine; stop it first, or "
                    f"train into another --out")
        if holder.get("host") is not None and not _same_host(holder.get("host")):
            warnings.warn(f"taking over the lock of {run_dir} left by {holder}: a session on another machine "
                          f"(e.g. a Colab VM that was cut off)")
        return None

    me = _acquire(path, busy)
    try:
        yield path
    finally:
        _release(path, me)


class MirrorLease:
    """Exclusive use of a mirror folder by one training session, renewed in a background thread.

    acquire() raises RunLockedError naming the holder while another live session (this machine: its process is
    alive; another machine: renewed within LEASE_S) holds it. `lost` is set once another session took it over.
    """

    def __init__(self, mirror_dir):
        self.root = Path(mirror_dir)
        self.path = self.root / MIRROR_LOCK
        self.me: dict | None = None
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> "MirrorLease":
        """Take the lease (or raise) and start renewing it."""
        self.me = _acquire(self.path, self._busy)
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name="irislib-mirror-lease", daemon=True)
        self._thread.start()
        return self

    def _busy(self, holder: dict, age: float) -> str | None:
        pid, host = int(holder.get("pid", -1)), holder.get("host")
        here = _same_host(host)
        if here:
            # This machine: the pid tells. This very process (an earlier Trainer not yet closed) may re-take it.
            alive = pid != os.getpid() and pid_alive(pid)
        else:
            age = time.time() - float(holder.get("renewed", time.time() - age))
            alive = age < LEASE_S
        if alive:
            wait = f"; if that session was cut off, its lease expires in {max(0, LEASE_S - age):.0f} s" \
                if not here else ""
            return (f"mirror {self.root} is in use by another training session (host {host}, pid {pid}, "
                    f"renewed {age:.0f} s ago){wait}. Two sessions must not share one mirror: stop the other one, "
                    f"or pass another mirror folder (--mirror DIR, mirror_dir=)")
        if not here:
            warnings.warn(f"taking over the mirror lease of {self.root} from {host} (pid {pid}), not renewed for "
                          f"{age:.0f} s: a session that is gone (e.g. a Colab VM that was cut off)")
        return None

    def renew(self) -> bool:
        """Rewrite the heartbeat if the lease is still ours; False (and `lost` set) once another session has it."""
        if self.me is None or self.lost:
            return False
        seen = _read(self.path)
        holder = seen[0] if seen else None
        if holder is not None and holder.get("writer") != self.me["writer"]:
            self.lost = f"{self.root} was taken over by host {holder.get('host')} pid {holder.get('pid')}"
            return False
        self.me = {**self.me, "renewed": time.time()}
        try:
            _write(self.path, self.me)
        except OSError as e:  # Drive hiccup: the next renewal tries again
            warnings.warn(f"could not renew the mirror lease {self.path}: {e}", RuntimeWarning)
        return True

    def _renew_loop(self) -> None:
        while not self._stop.wait(RENEW_S):
            if not self.renew():
                return

    def release(self) -> None:
        """Stop renewing and delete the lease file if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.me is not None and not self.lost:
            _release(self.path, self.me)
        self.me = None
