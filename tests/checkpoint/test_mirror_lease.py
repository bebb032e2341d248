"""A Drive mirror shared by several Colab sessions: one session holds it (a lease), a second one is refused with a
clear message, and cleanup never deletes another live writer's in-flight temporary folder (issue 9, defect 6)."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from _subproc import env, worker_cmd  # noqa: E402
from toy import ToyDataset, ToyNet, ToyTask, toy_exp  # noqa: E402

from irislib import checkpoint  # noqa: E402
from irislib.checkpoint import RunLockedError, files, lock  # noqa: E402
from irislib.train import Trainer  # noqa: E402


def _trainer(run_dir, mirror, **kw):
    torch.manual_seed(0)
    exp = toy_exp(max_steps=4, save_every_steps=2, **kw)
    return Trainer(ToyNet(), ToyTask(), ToyDataset(12), exp, run_dir, resume="auto", progress=False, device="cpu",
                   mirror_dir=mirror)


def test_a_second_live_session_on_the_same_mirror_is_refused(tmp_path):
    mirror = tmp_path / "drive"
    first = subprocess.Popen(worker_cmd(tmp_path / "vm1", "--steps", 2000, "--sleep", 0.01, "--mirror", mirror),
                             env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().startswith("READY"), first.stderr.read()[-2000:]
        with pytest.raises(RunLockedError, match=rf"mirror .*drive is in use by another training session "
                                                 rf"\(host .*, pid {first.pid}, a live process on this machine\)\. "
                                                 r".*another mirror folder \(--mirror DIR, mirror_dir=\)"):
            _trainer(tmp_path / "vm2", mirror)
    finally:
        first.kill()
        first.wait()
    # The first session was killed (a cut-off Colab runtime on this machine): its lease is taken over at once.
    tr = _trainer(tmp_path / "vm2", mirror)
    assert json.loads((mirror / ".mirror.lock").read_text())["pid"] == os.getpid()
    tr.run()
    assert not (mirror / ".mirror.lock").exists()  # handed back at the end of the run


def _foreign_lease(mirror: Path, beat: int) -> None:
    mirror.mkdir(parents=True, exist_ok=True)
    (mirror / lock.MIRROR_LOCK).write_text(json.dumps({"pid": 4242, "host": "colab_vm_2", "writer": "4242@colab_vm_2-a",
                                                       "beat": beat}))


# The real MirrorLease in another process posing as another machine whose wall clock is off by argv[2] seconds.
SKEWED_HOLDER = """
import sys, time
real = time.time
time.time = lambda: real() + float(sys.argv[2])
from irislib.checkpoint import lock
lock.host_name = lambda: "colab_vm_2"
lock.RENEW_S = 0.1
lease = lock.MirrorLease(sys.argv[1]).acquire()
print("READY", flush=True)
time.sleep(120)
"""


def _skewed_holder(mirror: Path, skew_s: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", SKEWED_HOLDER, str(mirror), str(skew_s)], env=env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert holder.stdout.readline().startswith("READY"), holder.stderr.read()[-2000:]
    return holder


@pytest.fixture
def short_lease(monkeypatch):
    monkeypatch.setattr(lock, "LEASE_S", 2.0)
    monkeypatch.setattr(lock, "POLL_S", 0.05, raising=False)   # raising=False: the tests also run on older code


def test_a_live_holder_whose_clock_runs_6_minutes_slow_keeps_its_lease(tmp_path, short_lease):
    mirror = tmp_path / "drive"
    holder = _skewed_holder(mirror, -360)
    try:
        t0 = time.monotonic()
        with pytest.warns(UserWarning, match="leased by host colab_vm_2 .* watching it for up to 2 s"), \
                pytest.raises(RunLockedError, match=rf"host colab_vm_2, pid {holder.pid}, renewed \d s into watching "
                                                    r"it from here; .* unchanged for 2 s\)"):
            checkpoint.MirrorLease(mirror).acquire()
        assert time.monotonic() - t0 < lock.LEASE_S       # refused on the first renewal seen, not after a timeout
        assert json.loads((mirror / lock.MIRROR_LOCK).read_text())["pid"] == holder.pid   # still the holder's
        assert holder.poll() is None
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_holder_whose_clock_ran_an_hour_fast_is_taken_over_after_lease_s_seen_here(tmp_path, short_lease):
    mirror = tmp_path / "drive"
    holder = _skewed_holder(mirror, +3600)
    holder.kill()                                          # a Colab VM cut off mid-run
    holder.wait()
    t0 = time.monotonic()
    with pytest.warns(UserWarning, match=r"taking over the mirror lease .* from colab_vm_2 .* unchanged for 2 s"), \
            pytest.warns(UserWarning, match="watching it for up to 2 s"):
        lease = checkpoint.MirrorLease(mirror).acquire()
    assert time.monotonic() - t0 >= lock.LEASE_S            # watched for the whole lease, on this machine's clock
    assert json.loads((mirror / lock.MIRROR_LOCK).read_text())["writer"] == files.writer_tag()
    lease.release()
    assert not (mirror / lock.MIRROR_LOCK).exists()


def test_an_empty_lease_from_a_creator_killed_on_a_fast_clock_is_taken_over(tmp_path, monkeypatch):
    """Created (O_EXCL) but never written by a session on another machine whose clock ran an hour fast: its mtime
    says it is younger than the write grace for an hour; this machine's own watch says it is not."""
    monkeypatch.setattr(lock, "WRITE_GRACE_S", 0.5)
    mirror = tmp_path / "drive"
    mirror.mkdir()
    (mirror / lock.MIRROR_LOCK).write_text("")
    future = time.time() + 3600
    os.utime(mirror / lock.MIRROR_LOCK, (future, future))
    got = []
    taker = threading.Thread(target=lambda: got.append(checkpoint.MirrorLease(mirror).acquire()), daemon=True)
    taker.start()
    taker.join(timeout=30)
    assert got, "an empty lease with a future mtime was waited for as if it were being written"
    assert json.loads((mirror / lock.MIRROR_LOCK).read_text())["writer"] == files.writer_tag()
    got[0].release()


def test_a_taken_over_lease_is_lost_when_its_holder_comes_back(tmp_path, short_lease):
    mirror = tmp_path / "drive"
    _foreign_lease(mirror, beat=7)                         # not renewed any more
    with pytest.warns(UserWarning, match="taking over the mirror lease .* from colab_vm_2"), \
            pytest.warns(UserWarning, match="watching it"):
        lease = checkpoint.MirrorLease(mirror).acquire()
    assert json.loads((mirror / lock.MIRROR_LOCK).read_text())["writer"] == files.writer_tag()
    assert lease.renew() and json.loads((mirror / lock.MIRROR_LOCK).read_text())["beat"] == 1   # heartbeat counts
    # The other session comes back and takes the lease: this one notices at its next renewal and stops copying.
    _foreign_lease(mirror, beat=8)
    assert lease.renew() is False and "colab_vm_2" in lease.lost
    lease.release()
    assert json.loads((mirror / lock.MIRROR_LOCK).read_text())["host"] == "colab_vm_2"  # not ours to delete


def test_cleanup_spares_another_writers_in_flight_temp_folder(tmp_path):
    mirror = tmp_path / "drive"
    root = mirror / "checkpoints"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = re.sub(r"\W", "_", socket.gethostname())[:40]  # as writer tags spell it
    in_flight = root / "step_000002.tmp-4242@colab_vm_2-abc123"       # another machine, being copied right now
    dead_here = root / f"step_000002.tmp-{int(dead.stdout)}@{host}-def456"  # a dead process on this machine
    stale = root / "step_000004.tmp-77@colab_vm_3-0a0b0c"              # another machine, untouched for 2 h
    for d in (in_flight, dead_here, stale):
        d.mkdir(parents=True)
        (d / "model.safetensors").write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    for p in (stale / "model.safetensors", stale):
        os.utime(p, (two_hours_ago, two_hours_ago))
    _trainer(tmp_path / "vm1", mirror).run()
    assert in_flight.is_dir() and (in_flight / "model.safetensors").read_bytes() == b"partial"
    assert not dead_here.exists() and not stale.exists()
    assert sorted(s for s, _ in checkpoint.list_checkpoints(mirror)) == [2, 4]
    # This writer's own temporary names carry its host and a per-process nonce, so they never collide with another
    # VM's (Colab VMs reuse pids).
    tag = files.tmp_path(root / "step_000006").name
    assert tag.startswith(f"step_000006.tmp-{os.getpid()}@{host}-") and tag != in_flight.name
