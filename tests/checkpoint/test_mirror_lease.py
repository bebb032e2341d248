"""A Drive mirror shared by several Colab sessions: one session holds it (a lease), a second one is refused with a
clear message, and cleanup never deletes another live writer's in-flight temporary folder (issue 9, defect 6)."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
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
                                                 rf"\(host .*, pid {first.pid}, renewed .*another mirror folder "
                                                 r"\(--mirror DIR, mirror_dir=\)"):
            _trainer(tmp_path / "vm2", mirror)
    finally:
        first.kill()
        first.wait()
    # The first session was killed (a cut-off Colab runtime on this machine): its lease is taken over at once.
    tr = _trainer(tmp_path / "vm2", mirror)
    assert json.loads((mirror / ".mirror.lock").read_text())["pid"] == os.getpid()
    tr.run()
    assert not (mirror / ".mirror.lock").exists()  # handed back at the end of the run


def _foreign_lease(mirror: Path, renewed_ago: float) -> None:
    mirror.mkdir(parents=True, exist_ok=True)
    (mirror / lock.MIRROR_LOCK).write_text(json.dumps({"pid": 4242, "host": "colab_vm_2", "writer": "4242@colab_vm_2-a",
                                                       "renewed": time.time() - renewed_ago}))


def test_a_lease_from_another_machine_holds_until_it_expires(tmp_path):
    mirror = tmp_path / "drive"
    _foreign_lease(mirror, renewed_ago=30)
    with pytest.raises(RunLockedError, match=r"host colab_vm_2, pid 4242, renewed 30 s ago\); if that session was "
                                             r"cut off, its lease expires in 270 s"):
        checkpoint.MirrorLease(mirror).acquire()
    _foreign_lease(mirror, renewed_ago=lock.LEASE_S + 5)
    with pytest.warns(UserWarning, match="taking over the mirror lease .* from colab_vm_2"):
        lease = checkpoint.MirrorLease(mirror).acquire()
    assert json.loads((mirror / lock.MIRROR_LOCK).read_text())["writer"] == files.writer_tag()
    # The other session comes back and takes the lease: this one notices at its next renewal and stops copying.
    _foreign_lease(mirror, renewed_ago=0)
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
