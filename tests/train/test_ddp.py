"""torchrun with 2 CPU processes (gloo): same weights as one process on the same global batch; resume under DDP."""
from __future__ import annotations

import pytest

import torch
from _subproc import assert_run_consistent, assert_same_checkpoint, run_worker
from toy import ToyDataset, ToyNet, ToyTask, toy_exp  # noqa: F401

from irislib.train import Trainer

ARGS = ("--steps", 8, "--save-every", 4, "--det")


@pytest.mark.slow
def test_two_processes_match_one_and_resume(tmp_path):
    single, ddp, resumed = tmp_path / "single", tmp_path / "ddp", tmp_path / "ddp_resumed"
    torch.manual_seed(0)  # what worker.py does, in this process
    exp = toy_exp(max_steps=8, save_every_steps=4, keep_last=100)
    Trainer(ToyNet(), ToyTask(noisy=False, weighted=False), ToyDataset(30), exp, single, progress=False,
            device="cpu").run()
    run_worker(ddp, *ARGS, nproc=2)
    # Per rank 3 images in one micro-batch vs 4 + 2 in one process: same global mean up to float rounding.
    assert_same_checkpoint(ddp / "checkpoints/step_000008", single / "checkpoints/step_000008", exact=False)
    # Both ranks load the step-4 checkpoint of the DDP run and finish it in a new run directory: bit-identical.
    run_worker(resumed, *ARGS, "--resume", ddp / "checkpoints/step_000004", nproc=2)
    assert assert_run_consistent(resumed) == 8
    assert_same_checkpoint(resumed / "checkpoints/step_000008", ddp / "checkpoints/step_000008", exact=True)
