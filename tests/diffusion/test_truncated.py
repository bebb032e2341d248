"""Truncated training (diffusion.max_strength): timesteps only up to a noise std, sampling refused above it."""
import numpy as np
import pytest
import torch

from irislib import cli
from irislib.config import ConfigError, DiffusionConfig, Experiment
from irislib.diffusion import GaussianDiffusion, make_t_sampler
from irislib.diffusion.resample import trained_timesteps
from irislib.diffusion import denoise, strength_to_timestep


def _diffusion(max_strength, schedule="linear", steps=1000):
    return GaussianDiffusion(DiffusionConfig(diffusion_steps=steps, noise_schedule=schedule,
                                             max_strength=max_strength))


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("max_strength", [0.3, 0.7, 0.95])
def test_trained_range_is_the_noise_levels_up_to_max_strength(schedule, max_strength):
    d = _diffusion(max_strength, schedule)
    n = trained_timesteps(d)
    std = d.sqrt_one_minus_alphas_cumprod
    assert np.all(np.diff(std) > 0)                      # std grows with t, so the range is a prefix
    assert strength_to_timestep(d, max_strength) == n - 1  # strength=max_strength starts on the last trained step
    assert abs(std[n - 1] - max_strength) < std[n] - std[n - 2]  # ... which is the std nearest max_strength
    assert std[n] > max_strength                          # the next one is beyond it
    assert trained_timesteps(_diffusion(1.0, schedule)) == 1000


@pytest.mark.parametrize("name", ["uniform", "loss-second-moment"])
def test_t_samplers_never_draw_above_the_truncation(name):
    d = _diffusion(0.5)
    n = trained_timesteps(d)
    s = make_t_sampler(name, d)
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):  # long enough for loss-second-moment to warm up on the trained range
        t, w = s.sample(256, "cpu", generator=gen)
        assert int(t.max()) < n
        s.update(t, (1.0 + t.float() / 100.0))
    if name == "loss-second-moment":
        assert s.warmed_up()
        p = s.weights()
        assert np.all(p[n:] == 0) and np.all(p[:n] > 0)
        # importance weights keep the objective the uniform mean over the trained range
        t, w = s.sample(200_000, "cpu", generator=gen)
        losses = 1.0 + t.double() / 100.0
        assert float((w.double() * losses).mean()) == pytest.approx(1.0 + (n - 1) / 200.0, rel=0.01)
    counts = np.bincount(s.sample(50_000, "cpu", generator=gen)[0].numpy(), minlength=1000)
    assert counts[n:].sum() == 0 and counts[:n].min() > 0


def test_sampling_above_max_strength_is_refused_with_one_clear_error():
    d = _diffusion(0.7)
    model = lambda x, t, **kw: torch.zeros(x.shape[0], 2 * x.shape[1], *x.shape[2:])  # noqa: E731 (eps=0, sigma)
    x = torch.zeros(2, 1, 8, 8)
    out = denoise(model, d, x_init=x, strength=0.7, steps=5, generator=torch.Generator().manual_seed(0))
    assert out.t0 == trained_timesteps(d) - 1 and out.nfe == 5
    for strength in (0.71, 1.0):
        with pytest.raises(ValueError, match=r"strength=.* is above diffusion.max_strength=0.7"):
            denoise(model, d, x_init=x, strength=strength, steps=5)
    with pytest.raises(ValueError, match="max_strength"):
        denoise(model, d, shape=(2, 1, 8, 8), strength=1.0, steps=5)   # pure noise too


def test_max_strength_validated_and_carried_in_config_json(tmp_path):
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="diffusion.max_strength"):
            Experiment().override({"diffusion.max_strength": bad}).validate()
    exp = Experiment().override({"diffusion.max_strength": 0.6})
    exp.to_json(tmp_path / "config.json")
    assert Experiment.from_json(tmp_path / "config.json").diffusion.max_strength == 0.6


def test_cli_sample_above_the_trained_strength_exits_2(tmp_path, capsys):
    """Train 1 step of a truncated tiny UNet, then ask for strength 1: one line, exit code 2, no traceback."""
    run = tmp_path / "unet"
    code = cli.main(["train-diffusion", "--preset", "tiny", "--data", "synthetic:8", "--out", str(run), "--quiet",
                     "--set", "diffusion.max_strength=0.5", "--set", "train.max_steps=1",
                     "--set", "train.sample_grid_images=2", "--set", "train.sample_grid_steps=2"])
    assert code == 0
    assert Experiment.from_json(run / "config.json").diffusion.max_strength == 0.5
    capsys.readouterr()
    code = cli.main(["sample", "--unet", str(run), "--strength", "1", "--steps", "2", "--n", "1",
                     "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and "max_strength=0.5" in err and "Traceback" not in err


@pytest.mark.parametrize("respacing", ["ddim10", "ddim25", "250", "10", "3,7,9"])
@pytest.mark.parametrize("max_strength", [0.3, 0.5, 0.7])
def test_respaced_chains_never_start_above_the_trained_range(respacing, max_strength):
    """With a respacing string the start is the grid step nearest strength, unless that lies above the trained
    range: then the highest grid step inside it (`ddim10` at max_strength 0.7 started at t=300, trained to 254)."""
    from irislib.diffusion.respace import space_timesteps
    from irislib.diffusion.sampling_schedule import plan
    d = _diffusion(max_strength)
    n = trained_timesteps(d)
    grid = sorted(space_timesteps(1000, respacing))
    std = d.sqrt_one_minus_alphas_cumprod
    for strength in (max_strength, max_strength - 0.05, 0.1):
        t0 = plan(d, strength, respacing).t0
        assert t0 in grid and t0 < n
        inside = [g for g in grid if g < n]
        nearest = min(grid, key=lambda g: abs(std[g] - strength))
        assert t0 == (nearest if nearest < n else max(inside))


def test_ddim10_at_the_trained_limit_starts_at_200_not_300():
    d = _diffusion(0.7)
    model = lambda x, t, **kw: torch.zeros(x.shape[0], 2 * x.shape[1], *x.shape[2:])  # noqa: E731
    out = denoise(model, d, x_init=torch.zeros(1, 1, 8, 8), strength=0.7, steps="ddim10",
                  generator=torch.Generator().manual_seed(0))
    assert trained_timesteps(d) - 1 == 254 and out.t0 == 200 and out.timesteps == [200, 100, 0]


def test_respacing_through_the_python_api_cli_and_panel_stays_in_the_trained_range(tmp_path, capsys):
    """The issue's reproduction on the shipped 64 px pair (trained to t=254): SampleConfig, `irislib sample
    --respacing` and the sampling panel all start at t=200."""
    import json

    from irislib.notebook import ui
    from irislib.generate.sampler import HybridSampler, SampleConfig
    sampler = HybridSampler.load("iris64-unet", "iris64-vae", device="cpu")
    cfg = SampleConfig(n=1, strength=0.7, respacing="ddim10")
    assert sampler.sample(cfg).t0 == 200
    panel = ui.sampling_panel(sampler, cfg)
    assert panel.result.t0 == 200
    out = tmp_path / "s"
    code = cli.main(["sample", "--unet", "iris64-unet", "--vae", "iris64-vae", "--strength", "0.7", "--respacing",
                     "ddim10", "--n", "1", "--out", str(out), "--quiet", "--device", "cpu"])
    assert code == 0 and json.loads((out / "settings.json").read_text())["t0"] == 200
