"""Kill-and-resume on CUDA: a fp16 training (GradScaler state, CUDA generators) SIGKILLed inside a checkpoint
save and at a random moment, then resumed, ends bit-identical to an uninterrupted run."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _subproc import assert_run_consistent, assert_same_checkpoint, env
from gpu_device import DEVICE

pytestmark = pytest.mark.gpu

WORKER = Path(__file__).resolve().parent / "cuda_worker.py"
STEPS = 24
ARGS = ["--steps", str(STEPS), "--save-every", "4", "--sleep", "0.01", "--device", DEVICE]


def cuda_env() -> dict:
    return dict(env(), CUBLAS_WORKSPACE_CONFIG=":4096:8")  # deterministic cuBLAS (use_deterministic_algorithms)


def cmd(run_dir, *extra) -> list[str]:
    return [sys.executable, str(WORKER), str(run_dir), *ARGS, *extra]


def test_kill_and_resume_on_cuda_is_bit_identical(tmp_path):
    ref_dir, run_dir = tmp_path / "reference", tmp_path / "killed"
    ref = subprocess.run(cmd(ref_dir), env=cuda_env(), capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-3000:]

    died = subprocess.run(cmd(run_dir, "--die-at-write", "trainer_state.pt:2"), env=cuda_env(),
                          capture_output=True, text=True, timeout=300)
    assert died.returncode == -signal.SIGKILL, died.stderr[-3000:]
    assert assert_run_consistent(run_dir) == 4  # the first checkpoint survives, the second never published

    p = subprocess.Popen(cmd(run_dir), env=cuda_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("READY 4"), f"{line}{p.stderr.read()[-3000:]}"
    time.sleep(random.Random(os.getpid()).uniform(0.05, 0.2))
    p.send_signal(signal.SIGKILL)
    p.communicate()
    assert_run_consistent(run_dir)

    done = subprocess.run(cmd(run_dir), env=cuda_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert assert_run_consistent(run_dir) == STEPS == assert_run_consistent(ref_dir)
    name = f"checkpoints/step_{STEPS:06d}"
    assert_same_checkpoint(run_dir / name, ref_dir / name)
