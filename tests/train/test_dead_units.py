"""Dead units, measured (issue 9, defect 7): a channel is dead when its output is constant over the probe batch
(all zero for a ReLU) or the activation passes no gradient; per activation type in metrics.jsonl and the loss plot;
and the seed's story: a ReLU VAE under the gear schedule loses units, the SiLU VAE does not."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from toy import ToyDataset, ToyNet, ToyTask, toy_exp  # noqa: F401

from irislib import checkpoint
from irislib.models.unet import UNet
from irislib.models.vae import VAE
from irislib.train import Trainer
from irislib.train.diagnostics import dead_unit_fraction, dead_unit_shares, dead_units_by_layer

REPO = Path(__file__).resolve().parents[2]


def _toy(act, weight_scale: float, bias: float) -> ToyNet:
    model = ToyNet(hidden=4, act=act)
    with torch.no_grad():
        model.conv1.weight.uniform_(-1, 1).mul_(weight_scale)
        model.conv1.bias.fill_(bias)
    return model


def test_a_silu_below_zero_still_passes_gradient():
    # Pre-activations in about [-0.9, -0.1]: every one <= 0, but SiLU's derivative there is 0.26-0.45.
    model = _toy(nn.SiLU, 0.4 / 9, -0.5)
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    assert (model.conv1(x) < 0).all()
    assert dead_unit_fraction(model, lambda: model(x)) == 0.0


def test_far_negative_silu_and_relu_are_dead():
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    for act in (nn.SiLU, nn.ReLU):
        model = _toy(act, 0.5, 0.0)
        with torch.no_grad():
            model.conv1.bias[:3] = -100.0  # three of four channels driven far below zero
        assert dead_unit_fraction(model, lambda: model(x)) == 0.75


def test_units_after_groupnorm_are_measured_too(tiny_exp):
    vae = VAE(tiny_exp.vae).eval()
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    forward = lambda: vae(x, torch.Generator().manual_seed(0))  # noqa: E731
    assert dead_unit_shares(vae, forward)["dead_units_silu"] == 0.0
    norm, act = vae.decoder[-3], f"decoder.{len(vae.decoder) - 2}"  # the last GroupNorm -> SiLU, 32 channels
    with torch.no_grad():
        norm.weight[:16] = 0.0  # half its channels output their bias alone: constant, they carry nothing
        norm.bias[:16] = 1.0    # (and positive: an input-sign test never counts them)
    layers = dead_units_by_layer(vae, forward)
    assert layers[act] == ("silu", 16, 32)
    assert all(dead == 0 for name, (_, dead, _) in layers.items() if name != act)
    total = sum(n for _, _, n in layers.values())
    assert dead_unit_shares(vae, forward) == {"dead_units": 16 / total, "dead_units_silu": 16 / total}


def test_a_healthy_unet_reads_zero_at_any_probe_size(tiny_exp):
    from irislib.diffusion.resample import make_t_sampler
    from irislib.train.pipeline import build_diffusion
    from irislib.train.tasks import DiffusionTask
    unet, diffusion = UNet(tiny_exp.unet).eval(), build_diffusion(tiny_exp)
    task = DiffusionTask(diffusion, make_t_sampler("uniform", diffusion))
    values = []
    for n in (4, 8):
        batch = torch.rand(n, 1, 32, 32) * 2 - 1
        values.append(dead_unit_shares(unet, lambda: task.probe(unet, batch, torch.Generator().manual_seed(0))))
    assert values[0] == values[1] == {"dead_units": 0.0, "dead_units_silu": 0.0}


def test_per_type_shares_are_logged_and_plotted(tmp_path):
    from irislib.notebook import ui
    torch.manual_seed(0)
    tr = Trainer(ToyNet(act=nn.ReLU), ToyTask(), ToyDataset(12), toy_exp(max_steps=3), tmp_path / "run",
                 progress=False, device="cpu")
    tr.run()
    rows = checkpoint.read_metrics(tmp_path / "run")
    assert all(0.0 <= r["dead_units_relu"] <= 1.0 and r["dead_units"] == r["dead_units_relu"] for r in rows)
    fig = ui.plot_losses(tmp_path / "run", path=tmp_path / "loss.png")
    labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    assert "dead_units_relu" in labels and (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def _benchmark():
    spec = importlib.util.spec_from_file_location("dead_units_bench", REPO / "benchmarks" / "dead_units.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_relu_vae_under_gear_loses_units_and_silu_does_not(tmp_path):
    bench = _benchmark()
    relu = bench.dead_unit_curve("relu", steps=80, run_dir=tmp_path)
    silu = bench.dead_unit_curve("silu", steps=80, run_dir=tmp_path)
    assert [s for s, _ in relu] == [s for s, _ in silu] == [0, 10, 20, 30, 40, 50, 60, 70, 80]
    start, end = relu[0][1], relu[-1][1]
    assert start < 0.02 and end >= 0.08 and end - start >= 0.06  # ReLU: rises from ~0 to about a tenth or more
    assert max(v for _, v in silu) <= 0.01                       # SiLU: none
    png = bench.plot({"relu": relu, "silu": silu}, tmp_path / "dead_units.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
