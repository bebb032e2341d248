"""Training on CUDA: fp32/bf16/fp16 steps, GradScaler skip counting, the levers (torch.compile with inductor
included) against the plain path, precision="auto", and bf16/fp16 loss curves that track fp32's."""
from __future__ import annotations

import pytest
import torch

from speed_helpers import diffusion_trainer, step_losses, tiny_unet_cfg
from toy import ToyDataset, ToyNet, ToyTask, toy_exp

from irislib import checkpoint
from irislib.config import DataConfig
from irislib.data import make_dataset
from irislib.models.unet import UNet
from irislib.train import Trainer, precision, speed

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("prec", ["fp32", "bf16", "fp16"])
def test_training_steps_save_and_resume_on_cuda(tmp_path, cuda, prec):
    tr = diffusion_trainer(tmp_path / "run", device=str(cuda), precision=prec, max_steps=4)
    assert tr.precision == prec and tr.scaler.is_enabled() == (prec == "fp16")
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    result = tr.run()
    assert result["step"] == 4 and result["checkpoint"]
    assert next(tr.model.parameters()).device == cuda
    assert all(p.dtype == torch.float32 for p in tr.model.parameters())  # autocast: fp32 master weights
    changed = [k for k, v in tr.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "no weight changed in 4 steps"
    assert all(torch.isfinite(v).all() for v in tr.model.state_dict().values())
    saved = checkpoint.load(result["checkpoint"])
    assert (saved["trainer"]["scaler"] is not None) == (prec == "fp16")
    resumed = diffusion_trainer(tmp_path / "run", device=str(cuda), precision=prec, max_steps=6, resume="auto")
    assert resumed.step == 4 and next(iter(resumed.opt.state.values()))["exp_avg"].device == cuda
    assert all(torch.equal(v, resumed.model.state_dict()[k]) for k, v in tr.model.state_dict().items())
    assert resumed.run()["step"] == 6


class BlowUpAt(ToyTask):
    """Finite fp32 loss that is 1e9 times too large at step `bad`: its fp16 gradients overflow."""

    def __init__(self, bad: int):
        super().__init__(noisy=True, weighted=False)
        self.bad = bad

    def loss(self, model, batch, generator):
        out = super().loss(model, batch, generator)
        if self.step == self.bad:
            out["loss"] = out["loss"] * 1e9
        return out


def test_grad_scaler_skips_overflowing_steps_and_counts_them(tmp_path, cuda):
    torch.manual_seed(0)
    tr = Trainer(ToyNet(), BlowUpAt(2), ToyDataset(30), toy_exp(precision="fp16", max_steps=4),
                 tmp_path / "run", resume=None, progress=False, device=str(cuda))
    scale0 = tr.scaler.get_scale()
    took = []
    for step in range(4):
        before = [p.detach().clone() for p in tr.model.parameters()]
        took.append(tr.train_step(tr._next_batch()))
        same = all(torch.equal(a, p) for a, p in zip(before, tr.model.parameters()))
        assert same == (step == 2), f"step {step}: weights {'unchanged' if same else 'changed'}"
    assert took == [True, True, False, True]
    assert tr.counters["skipped_steps"] == 1 and tr.counters["nan_steps"] == 0
    assert tr.scaler.get_scale() == scale0 / 2
    assert all(torch.isfinite(p).all() for p in tr.model.parameters())


def test_levers_with_inductor_compile_match_the_plain_bf16_path(tmp_path, cuda):
    plain = step_losses(diffusion_trainer(tmp_path / "plain", device=str(cuda), precision="bf16"), 3)
    torch._dynamo.reset()
    tr = diffusion_trainer(tmp_path / "fast", device=str(cuda), precision="auto", channels_last=True,
                           fused_optimizer=True, fast_groupnorm=True, data_on_device=True, compile=True)
    assert tr.device_data is not None and tr.device_data.device == cuda
    assert tr.opt.defaults.get("fused") is True
    fast = step_losses(tr, 3)
    for a, b in zip(fast, plain):
        assert abs(a - b) <= 3e-2 * abs(b), (fast, plain)
    state = checkpoint.load(tr.save())["model"]
    assert sorted(state) == sorted(UNet(tiny_unet_cfg()).state_dict())
    torch._dynamo.reset()


def test_fast_groupnorm_runs_in_bf16_on_cuda(cuda):
    from irislib.models.layers import GroupNorm32
    norm = GroupNorm32(32, 64).to(cuda)
    speed.fast_groupnorm(norm)
    x = torch.randn(4, 64, 16, 16, device=cuda)
    with torch.autocast(cuda.type, dtype=torch.bfloat16):
        y = norm(x.bfloat16())
    assert y.dtype == torch.bfloat16
    ref = torch.nn.functional.group_norm(x, 32, norm.weight, norm.bias, norm.eps)
    assert ((y.float() - ref).norm() / ref.norm()).item() < 1e-2


def test_precision_auto_matches_this_card(cuda):
    major, _ = torch.cuda.get_device_capability(cuda)
    assert precision.resolve("auto", cuda) == ("bf16" if major >= 8 else "fp16")


def _curve(tmp_path, cuda, prec: str, steps: int) -> list[float]:
    data = make_dataset(DataConfig(path="synthetic:64", image_size=32))
    tr = diffusion_trainer(tmp_path / prec, unet=tiny_unet_cfg(image_size=32, attention_resolutions=[16]),
                           dataset=data, randomize=False, device=str(cuda), precision=prec, batch_size=16, lr=5e-4,
                           max_steps=steps)
    return step_losses(tr, steps)


def test_bf16_and_fp16_loss_curves_track_fp32(tmp_path, cuda):
    """Same seeds, so the same t, noise and data order: only the arithmetic differs. 20-step means agree once
    fp16's GradScaler has found its scale (its first steps may be skipped, so window 0 is only checked for fp32)."""
    steps, window = 100, 20
    curves = {p: _curve(tmp_path, cuda, p, steps) for p in ("fp32", "bf16", "fp16")}
    means = {p: [sum(c[i:i + window]) / window for i in range(0, steps, window)] for p, c in curves.items()}
    assert means["fp32"][-1] < 0.7 * means["fp32"][0], f"fp32 did not learn: {means['fp32']}"
    for p in ("bf16", "fp16"):
        assert all(torch.isfinite(torch.tensor(curves[p]))), p
        for i, (a, b) in list(enumerate(zip(means[p], means["fp32"])))[1:]:
            assert abs(a - b) <= 0.15 * b, f"{p} window {i}: {means[p]} vs fp32 {means['fp32']}"
        assert abs(means[p][-1] - means["fp32"][-1]) <= 0.1 * means["fp32"][-1]
