"""The tasks against hand-written references (toy stand-ins for the diffusion and the VAE), the probe against
what training feeds the model, and the Task contract."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from toy import toy_exp

from irislib.config import DiffusionConfig, VAEConfig
from irislib.diffusion import GaussianDiffusion
from irislib.diffusion.resample import make_t_sampler
from irislib.train import Trainer
from irislib.train.tasks import DiffusionTask, RefinerTask, Task, VAETask, edge_loss


class FakeDiffusion:
    num_timesteps = 100

    def training_losses(self, model, x_start, t, model_kwargs=None, noise=None):
        mse = (model(x_start + noise) - noise).pow(2).flatten(1).mean(1)
        return {"loss": mse + t.float() / 100, "mse": mse}

    def q_sample(self, x_start, t, noise):
        return x_start + noise


class FakeSampler:
    def __init__(self):
        self.updates = []

    def sample(self, batch_size, device, generator):
        t = torch.randint(0, 100, (batch_size,), generator=generator, device=device)
        return t, torch.full((batch_size,), 2.0)

    def update(self, t, losses):
        self.updates.append((t.clone(), losses.clone()))

    def state_dict(self):
        return {"n": len(self.updates)}

    def load_state_dict(self, state):
        self.loaded = state


def test_diffusion_task_weights_terms_updates_sampler_and_returns_t():
    sampler, model = FakeSampler(), nn.Conv2d(1, 1, 1)
    task = DiffusionTask(FakeDiffusion(), sampler)
    x = torch.randn(5, 1, 4, 4)
    out = task.loss(model, x, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, 100, (5,), generator=g)
    noise = torch.randn(x.shape, generator=g)
    mse = (model(x + noise) - noise).pow(2).flatten(1).mean(1)
    assert torch.equal(out["t"], t)
    torch.testing.assert_close(out["mse"], 2 * mse)
    torch.testing.assert_close(out["loss"], 2 * (mse + t / 100))
    torch.testing.assert_close(sampler.updates[0][1], mse + t / 100)  # the sampler sees unweighted losses
    assert task.state_dict() == {"t_sampler": {"n": 1}} and task.config_sections == ("unet", "diffusion")


class FakeVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(1, 4, 1)
        self.dec = nn.Conv2d(2, 1, 1)

    def forward(self, x, generator=None):
        mean, logvar = self.enc(x).chunk(2, dim=1)
        z = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=generator)
        return self.dec(z), mean, logvar


@pytest.mark.parametrize("recon_loss", ["mse", "l1"])
def test_vae_task_terms_match_reference(recon_loss):
    cfg = VAEConfig(beta=0.1, kl_warmup_steps=10, recon_loss=recon_loss, edge_weight=0.5)
    task, model = VAETask(cfg), FakeVAE()
    x = torch.randn(3, 1, 6, 6)
    task.step = 4
    out = task.loss(model, x, torch.Generator().manual_seed(1))
    recon, mean, logvar = model(x, torch.Generator().manual_seed(1))
    err = recon - x
    rec = (err ** 2 if recon_loss == "mse" else err.abs()).mean(dim=(1, 2, 3))
    kl = 0.5 * (mean ** 2 + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3))
    gx = lambda a: a[..., :, 1:] - a[..., :, :-1]  # noqa: E731
    gy = lambda a: a[..., 1:, :] - a[..., :-1, :]  # noqa: E731
    edge = (gx(recon) - gx(x)).abs().mean(dim=(1, 2, 3)) + (gy(recon) - gy(x)).abs().mean(dim=(1, 2, 3))
    torch.testing.assert_close(out["recon"], rec)
    torch.testing.assert_close(out["kl"], kl)
    torch.testing.assert_close(out["edge"], edge)
    # beta ramped 4/10 of the way; beta is per pixel: the KL sum is divided by the 36 pixels of a 6x6 image
    torch.testing.assert_close(out["loss"], rec + 0.1 * 0.4 * kl / 36 + 0.5 * edge)
    assert task.beta_at(0) == 0 and task.beta_at(10) == task.beta_at(50) == pytest.approx(0.1)
    per_dim = VAETask(cfg, kl_per_dim=True).terms(x, recon, mean, logvar)["kl"]
    torch.testing.assert_close(per_dim, kl / mean[0].numel())


def test_edge_loss_is_zero_for_a_constant_shift():
    x = torch.randn(2, 1, 5, 5)
    assert torch.allclose(edge_loss(x + 3.0, x), torch.zeros(2), atol=1e-6)


class EpsNet(nn.Module):
    """A 3x3 conv that records the timesteps and the condition it is called with."""

    def __init__(self, in_channels: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1, 3, padding=1)
        self.calls = []

    def forward(self, x, t, cond=None):
        self.calls.append((t.clone(), cond))
        return self.conv(x if cond is None else torch.cat([x, cond], 1))


def test_diffusion_task_with_the_real_modules():
    diffusion = GaussianDiffusion(DiffusionConfig(diffusion_steps=50), learn_sigma=False)
    task = DiffusionTask(diffusion, make_t_sampler("uniform", diffusion))
    out = task.loss(EpsNet(), torch.randn(4, 1, 8, 8), torch.Generator().manual_seed(0))
    assert out["loss"].shape == (4,) and out["t"].shape == (4,) and torch.isfinite(out["loss"]).all()


class HalfVAE(nn.Module):
    """encode -> (x / 2, log-variance); decode(z) = z: the refiner's condition of x is x / 2."""

    def encode(self, x):
        return x / 2, torch.zeros_like(x)

    def decode(self, z):
        return z


@pytest.mark.parametrize("refiner", [False, True])
def test_probe_calls_the_model_as_training_does(refiner):
    """On a respaced chain (10 of 50 steps) training feeds the model original-scale timesteps model_timesteps(t),
    not chain indices 0..9; the dead-unit probe must too, with the refiner's condition."""
    diffusion = GaussianDiffusion(DiffusionConfig(diffusion_steps=50, timestep_respacing="10"), learn_sigma=False)
    sampler = make_t_sampler("uniform", diffusion)
    task = RefinerTask(diffusion, sampler, HalfVAE()) if refiner else DiffusionTask(diffusion, sampler)
    model, x = EpsNet(2 if refiner else 1), torch.rand(6, 1, 8, 8) * 2 - 1
    task.loss(model, x, torch.Generator().manual_seed(0))
    task.probe(model, x, torch.Generator().manual_seed(0))
    (t_train, cond_train), (t_probe, cond_probe) = model.calls
    kept = set(diffusion.timestep_map.tolist())
    assert diffusion.num_timesteps == 10 and max(kept) > 40
    assert set(t_train.tolist()) <= kept and set(t_probe.tolist()) <= kept
    assert t_probe.tolist() == [int(diffusion.timestep_map[i]) for i in torch.linspace(0, 9, 6).long()]
    for cond in (cond_train, cond_probe):
        assert (cond is None) if not refiner else torch.equal(cond, x / 2)


def test_a_task_needs_only_a_loss_and_the_trainer_refuses_anything_else(tmp_path):
    class Mean(Task):
        def loss(self, model, batch, generator):
            return {"loss": model(batch).flatten(1).mean(1)}

    task, model, x = Mean(), nn.Conv2d(1, 1, 1), torch.randn(2, 1, 4, 4)
    assert (task.step, task.num_timesteps, task.state_dict()) == (0, None, None)
    assert task.config_sections == ("unet", "vae", "diffusion")   # a resume must match every model section
    calls = []
    model.register_forward_hook(lambda m, inputs, out: calls.append(inputs[0]))
    task.probe(model, x, torch.Generator())
    assert len(calls) == 1 and torch.equal(calls[0], x)           # the default probe: one plain forward pass
    with pytest.raises(TypeError, match="task FakeSampler is not an irislib.train.tasks.Task; subclass Task"):
        Trainer(model, FakeSampler(), [x[0]] * 8, toy_exp(), tmp_path / "run", progress=False, device="cpu")
    with pytest.raises(TypeError, match="abstract"):
        type("NoLoss", (Task,), {})()


def test_vae_beta_means_the_same_at_every_image_size():
    """A KL sum that grows with the pixel count (as it does for a spatial latent) weighs the same per pixel."""
    cfg = VAEConfig(beta=0.5)
    losses = []
    for side in (8, 16):
        x = torch.zeros(1, 1, side, side)
        mean = torch.ones(1, 2, side // 2, side // 2)  # KL per latent value 0.5 -> sum proportional to pixels
        out = VAETask(cfg).terms(x, x.clone(), mean, torch.zeros_like(mean))
        losses.append(float(out["loss"]))
    assert losses[0] == pytest.approx(losses[1]) == pytest.approx(0.5 * 0.5 * 2 / 4)


def test_patch_training_feeds_the_model_random_windows_of_each_image():
    """train.patch_size: each image is cut to its own size x size window, at positions drawn from the step's
    generator (so a resumed step crops the same windows); everything else is unchanged."""
    from irislib.train.tasks import random_crops
    batch = torch.arange(4 * 16 * 16, dtype=torch.float32).reshape(4, 1, 16, 16)
    seen = []

    class Recorder(nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            return torch.zeros_like(x)

    task = DiffusionTask(FakeDiffusion(), FakeSampler(), patch_size=8)
    task.loss(Recorder(), batch, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)   # replay the step: crops, then t, then noise from the same generator
    again = random_crops(batch, 8, g)
    FakeSampler().sample(4, "cpu", g)
    assert again.shape == (4, 1, 8, 8) and torch.equal(seen[0], again + torch.randn(again.shape, generator=g))
    for img, crop in zip(batch, again):   # each crop is a contiguous window of its own image
        y, x = divmod(int(crop[0, 0, 0]) - int(img[0, 0, 0]), 16)
        assert torch.equal(crop, img[:, y:y + 8, x:x + 8])
    many = batch.repeat(16, 1, 1, 1)
    starts = {int(c[0, 0, 0]) - int(i[0, 0, 0]) for i, c in
              zip(many, random_crops(many, 8, torch.Generator().manual_seed(1)))}
    assert len(starts) > 8                                     # positions vary over the image
    assert torch.equal(again, random_crops(batch, 8, torch.Generator().manual_seed(3)))   # reproducible


def test_patch_size_is_validated_with_the_field_named():
    from irislib import presets
    from irislib.config import ConfigError
    exp = presets.get("cpu-128")
    assert exp.override({"train.patch_size": 64}).validate().train.patch_size == 64
    for bad in (100, 128, 256, -8):
        with pytest.raises(ConfigError, match=r"train.patch_size=.*multiple of 16"):
            exp.override({"train.patch_size": bad}).validate()
    with pytest.raises(ConfigError, match=r"train.patch_size=64 needs a truncated UNet"):
        exp.override({"train.patch_size": 64, "diffusion.max_strength": 1.0}).validate()
