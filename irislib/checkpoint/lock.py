"""One writer per folder. run_lock: a lock file naming the training process, so a second `train-*` on the same
--out (a duplicated Colab cell, a forgotten background job) stops with a clear message instead of interleaving
checkpoints. MirrorLease: the same for a Drive mirror that several Colab sessions (other machines, whose pids mean
nothing here) may share; its holder renews it every RENEW_S (a heartbeat counter), and a lease that this machine
watches for LEASE_S without seeing it change is taken over. Staleness is judged on this machine's monotonic clock
only: the holder's clock (a Colab VM minutes off) and the file times Drive reports are never compared with ours.

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
LEASE_S = 300.0       # a mirror lease seen unchanged for this long belongs to a session that is gone
RENEW_S = 60.0        # how often a holder renews its mirror lease
POLL_S = 1.0          # how often a watched lease is re-read
SETTLE_S = 0.2        # after a take-over, wait this long and re-read: a racing taker-over wins or loses cleanly


class RunLockedError(OSError):
    """Another live process is training into the same folder (an OSError, like EBUSY)."""


def _same_host(host) -> bool:
    return host in (host_name(), socket.gethostname())  # older lock files hold the raw hostname


def _me() -> dict:
    return {"pid": os.getpid(), "host": host_name(), "writer": writer_tag(), "beat": 0}


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


def _signature(path: Path) -> tuple | None:
    """What this machine can see change in a lease file: its bytes and mtime (None once it is gone)."""
    try:
        return path.read_bytes(), path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _watch(path: Path, window_s: float) -> float | None:
    """Re-read `path` for up to window_s on this machine's monotonic clock: seconds until it changed or vanished,
    or None if it stayed the same all along (its writer is gone, whatever its own clock says)."""
    first, t0 = _signature(path), time.monotonic()
    while (waited := time.monotonic() - t0) < window_s:
        time.sleep(min(POLL_S, window_s - waited))
        if _signature(path) != first:
            return time.monotonic() - t0
    return None


def _write(path: Path, info: dict) -> None:
    """Replace the lock file's content atomically (a reader never sees it empty)."""
    tmp = tmp_path(path)
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _acquire(path: Path, busy: Callable[[dict, float], str | None], shared: bool = False) -> dict:
    """Create `path` naming this process, or take it over when busy(holder, age) finds its holder gone (None).

    A file that exists but is still empty is being written by its creator (O_EXCL create, then write): it is
    waited for, and only taken over once it stayed empty for WRITE_GRACE_S (its creator was killed in between),
    judged by its mtime, or in a `shared` folder (other machines' clocks) by how long this process has seen it so.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    me = _me()
    empty_since = None
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
        if shared:
            empty_since = (empty_since or time.monotonic()) if holder is None else None
            age = time.monotonic() - empty_since if holder is None else 0.0
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
        self.me = _acquire(self.path, self._busy, shared=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name="irislib-mirror-lease", daemon=True)
        self._thread.start()
        return self

    def _busy(self, holder: dict, _age: float) -> str | None:
        pid, host = int(holder.get("pid", -1)), holder.get("host")
        if _same_host(host):
            # This machine: the pid tells. This very process (an earlier Trainer not yet closed) may re-take it.
            if pid != os.getpid() and pid_alive(pid):
                return self._in_use(host, pid, "a live process on this machine")
            return None
        warnings.warn(f"mirror {self.root} is leased by host {host} (pid {pid}); watching it for up to "
                      f"{LEASE_S:.0f} s: a live session renews it every {RENEW_S:.0f} s, one that is gone is taken "
                      f"over", stacklevel=4)
        changed = _watch(self.path, LEASE_S)
        if changed is not None and self.path.exists():
            return self._in_use(host, pid, f"renewed {changed:.0f} s into watching it from here; a session that was "
                                           f"cut off loses it once this machine sees it unchanged for {LEASE_S:.0f} s")
        if changed is None:
            warnings.warn(f"taking over the mirror lease of {self.root} from {host} (pid {pid}), seen unchanged for "
                          f"{LEASE_S:.0f} s: a session that is gone (e.g. a Colab VM that was cut off)")
        return None

    def _in_use(self, host, pid, why: str) -> str:
        return (f"mirror {self.root} is in use by another training session (host {host}, pid {pid}, {why}). Two "
                f"sessions must not share one mirror: stop the other one, or pass another mirror folder "
                f"(--mirror DIR, mirror_dir=)")

    def renew(self) -> bool:
        """Rewrite the heartbeat if the lease is still ours; False (and `lost` set) once another session has it."""
        if self.me is None or self.lost:
            return False
        seen = _read(self.path)
        holder = seen[0] if seen else None
        if holder is not None and holder.get("writer") != self.me["writer"]:
            self.lost = f"{self.root} was taken over by host {holder.get('host')} pid {holder.get('pid')}"
            return False
        self.me = {**self.me, "beat": int(self.me.get("beat", 0)) + 1}   # changes even if the clock does not
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
