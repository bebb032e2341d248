"""Helpers for tests that run tests/train/worker.py in subprocesses."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from irislib import checkpoint

WORKER = Path(__file__).resolve().parent / "worker.py"
REPO = Path(__file__).resolve().parents[2]


def worker_cmd(run_dir, *args, nproc: int = 1) -> list[str]:
    """Command line for worker.py (under torchrun when nproc > 1)."""
    launcher = [sys.executable]
    if nproc > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    return launcher + [str(WORKER), str(run_dir), *map(str, args)]


def env() -> dict:
    """Environment for workers: the repo importable, one thread."""
    e = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
             OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return e


def run_worker(run_dir, *args, nproc: int = 1, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run worker.py to completion and fail with its output if it did not exit 0."""
    p = subprocess.run(worker_cmd(run_dir, *args, nproc=nproc), env=env(), capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, f"worker failed ({p.returncode}):\n{p.stdout}\n{p.stderr[-4000:]}"
    return p


def assert_run_consistent(run_dir: Path) -> int | None:
    """latest.json names a checkpoint whose files match its hashes, every step_* folder verifies; returns its step."""
    for _, path in checkpoint.list_checkpoints(run_dir):
        checkpoint.verify(path)  # raises on any damaged or incomplete published checkpoint
    pointer = run_dir / "latest.json"
    if not pointer.exists():
        return None
    latest = json.loads(pointer.read_text())
    ckpt = run_dir / latest["dir"]
    assert ckpt.is_dir(), f"latest.json names missing {ckpt}"
    for name, digest in latest["files"].items():
        assert checkpoint.sha256_file(ckpt / name) == digest, f"{ckpt / name} does not match latest.json"
    return latest["step"]


def assert_same_checkpoint(a: Path, b: Path, exact: bool = True) -> None:
    """Model, EMA and optimizer state of two checkpoint folders are equal (bitwise, or allclose)."""
    sa, sb = checkpoint.load(a), checkpoint.load(b)
    assert sa["step"] == sb["step"]

    def same(x, y, name):
        ok = torch.equal(x, y) if exact else torch.allclose(x, y, rtol=1e-5, atol=1e-6)
        assert ok, f"{name} differs: max abs diff {(x.double() - y.double()).abs().max().item():.3g}"

    for k in sa["model"]:
        same(sa["model"][k], sb["model"][k], f"model.{k}")
    assert sorted(sa["ema"]) == sorted(sb["ema"])
    for e in sa["ema"]:
        for k in sa["ema"][e]:
            same(sa["ema"][e][k], sb["ema"][e][k], f"{e}.{k}")
    oa, ob = sa["trainer"]["optimizer"]["state"], sb["trainer"]["optimizer"]["state"]
    assert sorted(oa) == sorted(ob)
    for p in oa:
        for k in oa[p]:
            same(torch.as_tensor(oa[p][k]), torch.as_tensor(ob[p][k]), f"optimizer[{p}].{k}")
