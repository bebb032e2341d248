"""Speed levers (irislib.train.speed): each fast path gives the plain path's loss within bf16 tolerance, on CPU."""
from __future__ import annotations

import copy

import pytest
import torch

from speed_helpers import diffusion_trainer, randomized, step_losses, tiny_unet_cfg
from toy import ToyDataset, ToyNet, ToyTask, toy_exp

from irislib import checkpoint
from irislib.config import ConfigError, DiffusionConfig, TrainConfig
from irislib.diffusion import GaussianDiffusion
from irislib.models.layers import GroupNorm32
from irislib.models.unet import UNet
from irislib.train import Trainer, speed

BF16_RTOL = 2e-2  # bf16 keeps 8 mantissa bits: ~4e-3 per rounding, a few roundings through the tiny UNet


def diffusion_loss(model, x, seed: int = 0, dtype=None) -> torch.Tensor:
    """Mean diffusion training loss at fixed t and noise, under CPU autocast when dtype is given."""
    diffusion = GaussianDiffusion(DiffusionConfig(diffusion_steps=100), learn_sigma=True)
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, 100, (x.shape[0],), generator=g)
    noise = torch.randn(x.shape, generator=g)
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        return diffusion.training_losses(model, x, t, noise=noise)["loss"].float().mean()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def grads(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


# --- GroupNorm in the autocast dtype --------------------------------------------------------------------------
def test_fast_groupnorm_bf16_gives_the_plain_loss_and_gradients():
    x = torch.randn(4, 1, 16, 16)
    plain = randomized(UNet(tiny_unet_cfg()))
    fast = copy.deepcopy(plain)
    n = speed.fast_groupnorm(fast)
    assert n == sum(isinstance(m, GroupNorm32) for m in plain.modules()) > 0
    assert list(fast.state_dict()) == list(plain.state_dict())  # same keys: checkpoints load either way
    ref = diffusion_loss(plain, x, dtype=torch.bfloat16)
    ref.backward()
    out = diffusion_loss(fast, x, dtype=torch.bfloat16)
    out.backward()
    assert rel(out, ref) < BF16_RTOL
    assert rel(grads(fast), grads(plain)) < 5 * BF16_RTOL  # gradients: more roundings, still bf16-close
    fp32 = diffusion_loss(plain, x)
    assert rel(out, fp32) < BF16_RTOL  # and both track the fp32 loss


def test_fast_groupnorm_runs_in_bf16_under_autocast_and_is_exact_in_fp32():
    norm = GroupNorm32(32, 64)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.2, 0.2)
    fast = copy.deepcopy(norm)
    speed.fast_groupnorm(fast)
    x = torch.randn(2, 64, 8, 8)
    assert torch.equal(fast(x), norm(x))  # fp32 outside autocast: guided-diffusion's computation, bit for bit
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fast(x.bfloat16())
        ref = norm(x.bfloat16())
    assert y.dtype == ref.dtype == torch.bfloat16
    assert rel(y, norm(x)) < BF16_RTOL and rel(y, ref) < BF16_RTOL
    speed.fast_groupnorm(fast, enabled=False)
    assert type(fast) is GroupNorm32


# --- activation checkpointing per block (unet.use_checkpoint) --------------------------------------------------
def test_activation_checkpointing_gives_the_same_loss_and_gradients_under_bf16():
    x = torch.randn(2, 1, 16, 16)
    plain = randomized(UNet(tiny_unet_cfg()))
    ckpt = randomized(UNet(tiny_unet_cfg(use_checkpoint=True)))
    ckpt.load_state_dict(plain.state_dict())
    ref = diffusion_loss(plain, x, dtype=torch.bfloat16)
    ref.backward()
    out = diffusion_loss(ckpt, x, dtype=torch.bfloat16)
    out.backward()
    assert rel(out, ref) < 1e-6  # recomputation repeats the same bf16 ops
    assert rel(grads(ckpt), grads(plain)) < 1e-5


# --- fused AdamW --------------------------------------------------------------------------------------------------
def test_optimizer_kwargs_pick_fused_where_torch_has_it():
    assert speed.optimizer_kwargs(TrainConfig(), "cpu") == {}
    on = TrainConfig(fused_optimizer=True)
    assert speed.optimizer_kwargs(on, "cpu") == ({"fused": True} if "cpu" in speed.fused_devices() else
                                                 {"foreach": True})
    assert speed.optimizer_kwargs(on, "cuda:0") == {"fused": True}
    assert speed.optimizer_kwargs(on, "meta") == {"foreach": True}


@pytest.mark.parametrize("kwargs", [{"fused": True}, {"foreach": True}])
def test_fused_and_foreach_adamw_match_the_plain_loop(kwargs):
    if kwargs.get("fused") and "cpu" not in speed.fused_devices():
        pytest.skip("this torch has no fused AdamW on CPU")
    torch.manual_seed(0)
    plain = ToyNet(8).to(memory_format=torch.channels_last)
    fast = copy.deepcopy(plain)
    opts = (torch.optim.AdamW(plain.parameters(), lr=1e-2, weight_decay=0.1, foreach=False),
            torch.optim.AdamW(fast.parameters(), lr=1e-2, weight_decay=0.1, **kwargs))
    x = torch.randn(6, 1, 8, 8)
    for _ in range(5):
        for m, o in zip((plain, fast), opts):
            o.zero_grad()
            m(x).pow(2).mean().backward()
            o.step()
    for a, b in zip(plain.parameters(), fast.parameters()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


# --- the Trainer with levers ---------------------------------------------------------------------------------------
def test_all_levers_together_track_the_plain_fp32_losses(tmp_path):
    plain = step_losses(diffusion_trainer(tmp_path / "plain"))
    fast_tr = diffusion_trainer(tmp_path / "fast", precision="bf16", fast_groupnorm=True, fused_optimizer=True,
                                channels_last=True, data_on_device=True)
    assert isinstance(fast_tr.model.out[0], speed.LowPrecisionGroupNorm)
    fast = step_losses(fast_tr)
    for a, b in zip(fast, plain):
        assert abs(a - b) <= BF16_RTOL * abs(b), (fast, plain)
    assert list(fast_tr.state_dict()["model"]) == list(UNet(tiny_unet_cfg()).state_dict())  # guided's keys


@pytest.mark.slow
def test_compile_trains_the_plain_module_and_saves_its_keys(tmp_path, monkeypatch):
    """torch.compile wraps only the forward module (dynamo's eager backend here: inductor's C++ build takes minutes
    on 2 cores; tests/gpu and the GPU suite compile with inductor)."""
    monkeypatch.setattr(speed, "COMPILE_OPTIONS", {"backend": "eager"})
    torch._dynamo.reset()
    plain = step_losses(diffusion_trainer(tmp_path / "plain"), 2)
    tr = diffusion_trainer(tmp_path / "compiled", compile=True)
    assert tr.ddp_model is not tr.model and hasattr(tr.ddp_model, "_orig_mod")
    compiled = step_losses(tr, 2)
    assert compiled == pytest.approx(plain, rel=1e-5)
    path = tr.save()
    state = checkpoint.load(path)["model"]
    assert sorted(state) == sorted(UNet(tiny_unet_cfg()).state_dict())  # no "_orig_mod." prefix
    UNet(tiny_unet_cfg()).load_state_dict(state)  # strict load into the plain (guided-keyed) module
    torch._dynamo.reset()


def test_compile_mode_is_checked():
    with pytest.raises(ConfigError, match="train.compile_mode='fast' is not one of default"):
        speed.compile_module(torch.nn.Linear(1, 1), TrainConfig(compile=True, compile_mode="fast"))
    lin = torch.nn.Linear(1, 1)
    assert speed.compile_module(lin, TrainConfig()) is lin


def test_data_on_device_trains_bit_identically(tmp_path):
    """Same batches (and flips) as the DataLoader, so the same weights, EMA and optimizer state."""
    runs = {}
    for on in (False, True):
        torch.manual_seed(0)
        exp = toy_exp(max_steps=7, data_on_device=on)  # 30 images, batch 6: the epoch boundary is crossed
        tr = Trainer(ToyNet(), ToyTask(), ToyDataset(30), exp, tmp_path / str(on), resume=None, progress=False,
                     device="cpu")
        assert (tr.device_data is not None) == on
        tr.run()
        runs[on] = tr.last_checkpoint
    from _subproc import assert_same_checkpoint
    assert_same_checkpoint(runs[False], runs[True])


def test_device_data_falls_back_when_the_set_is_large(monkeypatch):
    ds = ToyDataset(10)
    assert speed.device_data(ds, "cpu", TrainConfig()) is None
    data = speed.device_data(ds, "cpu", TrainConfig(data_on_device=True))
    assert data.shape == (10, 1, 8, 8) and torch.equal(data[3], ds[3])
    batches = list(speed.device_batches(data, [[3, 1], [0, 9]]))
    assert torch.equal(batches[1], torch.stack([ds[0], ds[9]]))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 2000))
    with pytest.warns(RuntimeWarning, match="more than 25% of the"):
        assert speed.device_data(ds, torch.device("cuda", 0), TrainConfig(data_on_device=True)) is None
