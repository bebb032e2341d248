"""One writer per run directory: a second live trainer is refused, a dead one's lock is taken over."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from irislib import presets
from irislib.checkpoint import run_lock
from irislib.train import pipeline

TINY = {"data.path": "synthetic:8", "train.batch_size": 4, "train.microbatch": 4, "train.epochs": 0,
        "train.max_steps": 1, "train.sample_grid_images": 0}


def test_a_live_trainer_on_the_same_run_is_refused(tmp_path):
    run = tmp_path / "run"
    with run_lock(run):
        with pytest.raises(OSError, match=f"being trained by process {os.getpid()}"):
            pipeline.train_diffusion(presets.get("tiny").override(TINY), run, progress=False)
    assert not (run / ".train.lock").exists()  # released after the with block


def test_a_dead_trainers_lock_is_taken_over_and_released(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / ".train.lock").write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    pipeline.train_diffusion(presets.get("tiny").override(TINY), run, progress=False)
    assert json.loads((run / "latest.json").read_text())["step"] == 1
    assert not (run / ".train.lock").exists()


def test_a_lock_from_another_machine_is_taken_over_with_a_warning(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".train.lock").write_text(json.dumps({"pid": 1, "host": "colab-vm-that-was-cut-off"}))
    with pytest.warns(UserWarning, match="another machine"):
        with run_lock(run):
            assert json.loads((run / ".train.lock").read_text())["pid"] == os.getpid()


HOLDER = """
import json, os, socket, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # created, still empty ...
print("created", flush=True)
time.sleep(1.0)
os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())  # ... then written
os.close(fd)
time.sleep(60)
"""


def test_a_lock_created_but_not_yet_written_is_not_taken_from_its_live_holder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run / ".train.lock")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "created"
        assert (run / ".train.lock").read_text() == ""  # what a second trainer sees at first
        with pytest.raises(OSError, match=f"being trained by process {holder.pid} on this machine"):
            with run_lock(run):
                pass
        assert json.loads((run / ".train.lock").read_text())["pid"] == holder.pid  # still the holder's
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_empty_by_a_killed_creator_is_taken_over(tmp_path):
    from irislib.checkpoint import lock
    run = tmp_path / "run"
    run.mkdir()
    (run / ".train.lock").write_text("")
    old = time.time() - lock.WRITE_GRACE_S - 1
    os.utime(run / ".train.lock", (old, old))
    with run_lock(run):
        assert json.loads((run / ".train.lock").read_text())["pid"] == os.getpid()
