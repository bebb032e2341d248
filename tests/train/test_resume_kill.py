"""SIGKILL a training at random moments and inside checkpoint saves; resuming must reproduce the
uninterrupted run bit for bit, and the run directory must never hold a corrupt checkpoint."""
from __future__ import annotations

import random
import signal
import subprocess
import time

import pytest

from _subproc import assert_run_consistent, assert_same_checkpoint, env, worker_cmd

STEPS = 40
ARGS = ("--steps", STEPS, "--save-every", 4, "--sleep", 0.005)


def _kill_after_ready(run_dir, delay_s: float) -> int:
    """Start a resuming worker, SIGKILL it delay_s after it is ready; its exit code (-9 if killed)."""
    p = subprocess.Popen(worker_cmd(run_dir, *ARGS), env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    line = p.stdout.readline()
    assert line.startswith("READY"), f"worker did not start: {line}{p.stderr.read()[-3000:]}"
    time.sleep(delay_s)
    p.send_signal(signal.SIGKILL)
    p.communicate()
    return p.returncode


def _die_in_write(run_dir, spec: str) -> int:
    p = subprocess.run(worker_cmd(run_dir, *ARGS, "--die-at-write", spec), env=env(), capture_output=True, text=True)
    return p.returncode


@pytest.mark.slow
def test_kill_and_resume_is_bit_identical(tmp_path):
    ref_dir, run_dir = tmp_path / "reference", tmp_path / "killed"
    reference = subprocess.Popen(worker_cmd(ref_dir, *ARGS), env=env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)  # runs alongside the interrupted one
    rng = random.Random(1234)

    # 1. Killed inside saves: while writing the first checkpoint's trainer_state.pt (its temp folder exists),
    #    then while writing the 2nd latest.json of the resumed run (its folder is published, the pointer is not).
    assert _die_in_write(run_dir, "trainer_state.pt:1") == -signal.SIGKILL
    assert any(".tmp-" in p.name for p in (run_dir / "checkpoints").iterdir())
    assert not (run_dir / "latest.json").exists()
    assert_run_consistent(run_dir)
    assert _die_in_write(run_dir, "latest.json:2") == -signal.SIGKILL
    assert any(".tmp-" in p.name for p in run_dir.iterdir()), "expected a half-written latest.json temp file"
    assert_run_consistent(run_dir)

    # 2. Killed at random moments, resuming each time.
    killed = 0
    for _ in range(2):
        rc = _kill_after_ready(run_dir, rng.uniform(0.05, 0.35))
        killed += rc == -signal.SIGKILL
        assert_run_consistent(run_dir)
    assert killed >= 1, "the random kills should mostly land during training"

    # 3. Finish, then compare with the uninterrupted run.
    done = subprocess.run(worker_cmd(run_dir, *ARGS), env=env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    out, err = reference.communicate(timeout=120)
    assert reference.returncode == 0, err[-3000:]
    assert assert_run_consistent(run_dir) == STEPS == assert_run_consistent(ref_dir)
    assert_same_checkpoint(run_dir / f"checkpoints/step_{STEPS:06d}", ref_dir / f"checkpoints/step_{STEPS:06d}")
    assert not [p for p in (run_dir / "checkpoints").iterdir() if ".tmp-" in p.name]

    # metrics.jsonl of the resumed run has each step once, like the reference.
    from irislib.checkpoint import read_metrics
    steps = [r["step"] for r in read_metrics(run_dir)]
    assert steps == [r["step"] for r in read_metrics(ref_dir)] == list(range(1, STEPS + 1))
