"""LR schedules: closed-form values, and a resumed run replays the same LR sequence (and weights)."""
from __future__ import annotations

import math

import pytest
import torch

from toy import ToyDataset, ToyNet, ToyTask, toy_exp  # noqa: F401

from irislib.checkpoint import load, read_metrics
from irislib.config import ConfigError, TrainConfig
from irislib.train import Trainer
from irislib.train.lr import lr_at, total_steps


def test_closed_form_values():
    assert lr_at(TrainConfig(lr=0.1), 123) == 0.1
    warm = TrainConfig(lr=0.1, lr_schedule="warmup", warmup_steps=4)
    assert [lr_at(warm, s) for s in range(6)] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    cos = TrainConfig(lr=0.1, lr_schedule="cosine", warmup_steps=2, max_steps=12)
    total = total_steps(cos, steps_per_epoch=5)
    assert total == 12
    assert lr_at(cos, 0, total=total) == pytest.approx(0.05)
    assert lr_at(cos, 2, total=total) == pytest.approx(0.1)
    assert lr_at(cos, 7, total=total) == pytest.approx(0.05)  # half-way through the decay
    assert lr_at(cos, 11, total=total) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.9)))
    assert lr_at(cos, 12, total=total) == pytest.approx(0.0, abs=1e-12)
    gear = TrainConfig(lr=3e-4, lr_schedule="gear", gear=[[0, 3e-4], [250, 1e-4]], epochs=500)
    assert lr_at(gear, 249 * 10 + 9, steps_per_epoch=10) == 3e-4
    assert lr_at(gear, 250 * 10, steps_per_epoch=10) == 1e-4
    assert lr_at(gear, 0, epoch=300) == 1e-4
    with pytest.raises(ConfigError, match="max_steps or train.epochs"):
        total_steps(TrainConfig(), 10)


class _Stop(Exception):
    pass


def _stop_after(step):
    def cb(record):
        if record["step"] >= step:
            raise _Stop
    return cb


@pytest.mark.parametrize("schedule", ["constant", "warmup", "cosine", "gear"])
def test_resume_mid_schedule_replays_the_same_lrs(tmp_path, schedule):
    # 12 images, batch 4 -> 3 steps per epoch; 9 steps; interrupted after step 5 (mid-epoch 1), saved at 4.
    kw = dict(lr=1e-2, lr_schedule=schedule, warmup_steps=3, gear=[[0, 1e-2], [2, 1e-3]], batch_size=4,
              microbatch=3, max_steps=9, save_every_steps=4)

    def trainer(run_dir, progress=False):
        torch.manual_seed(0)
        return Trainer(ToyNet(), ToyTask(), ToyDataset(12), toy_exp(**kw), run_dir, resume="auto",
                       progress=progress, device="cpu")

    trainer(tmp_path / "a").run()
    with pytest.raises(_Stop):
        trainer(tmp_path / "b", progress=_stop_after(5)).run()
    resumed = trainer(tmp_path / "b")
    assert (resumed.step, resumed.epoch, resumed.pos) == (4, 1, 4)  # mid-epoch: 1 done, 4 images into the 2nd
    resumed.run()
    lrs_a = [r["lr"] for r in read_metrics(tmp_path / "a")]
    lrs_b = [r["lr"] for r in read_metrics(tmp_path / "b")]
    assert len(lrs_a) == 9 and lrs_a == lrs_b
    assert len(set(lrs_a)) > (1 if schedule != "constant" else 0)
    if schedule == "gear":
        assert lrs_a == [1e-2] * 6 + [1e-3] * 3
    ma = load(tmp_path / "a/checkpoints/step_000009")["model"]
    mb = load(tmp_path / "b/checkpoints/step_000009")["model"]
    assert all(torch.equal(ma[k], mb[k]) for k in ma)


def test_set_train_lr_under_gear_is_refused_with_the_scaled_table(capsys, tmp_path):
    from irislib import cli, presets
    with pytest.raises(ConfigError, match=r"train.lr=0.0001 differs from the first rate of "
                                          r"train.gear=\[\[0, 0.0003\], \[250, 0.0001\]\].*set "
                                          r"train.gear=\[\[0, 0.0001\], \[250, 3.33e-05\]\], or set train.lr=0.0003"):
        presets.get("seed-128-gear").override(["train.lr=1e-4"]).validate()
    # The suggested table is accepted as it is printed, and the schedule then follows it.
    exp = presets.get("seed-128-gear").override(["train.lr=1e-4", "train.gear=[[0, 0.0001], [250, 3.33e-05]]"])
    cfg = exp.validate().train
    assert lr_at(cfg, 0, epoch=0) == 1e-4 and lr_at(cfg, 0, epoch=300) == 3.33e-05
    # From the command line: one line, exit code 2, before any data is read.
    argv = ["train-diffusion", "--preset", "seed-128-gear", "--set", "train.lr=1e-4", "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 2 and not (tmp_path / "run").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("irislib train-diffusion: error: train.lr=0.0001 differs")
