"""The Trainer with the real UNet + GaussianDiffusion and the real VAE, at 8 px."""
from __future__ import annotations

import pytest
import torch

from toy import ToyDataset

from irislib import checkpoint
from irislib.diffusion.resample import make_t_sampler
from irislib.models.unet import UNet
from irislib.models.vae import VAE
from irislib.train.pipeline import build_diffusion
from irislib.train import DiffusionTask, Trainer, VAETask


@pytest.fixture
def exp(small_exp):
    """The small experiment at 8 px: two-level models, a 50-step chain with the loss-aware t-sampler."""
    return small_exp({"image_size": 8, "unet.channel_mult": [1, 2], "unet.attention_resolutions": [4],
                      "unet.num_heads": 1, "diffusion.diffusion_steps": 50,
                      "diffusion.schedule_sampler": "loss-second-moment", "vae.channel_mult": [1, 2],
                      "vae.latent_channels": 2, "vae.kl_warmup_steps": 4, "train.max_steps": 2,
                      "train.save_every_steps": 0, "train.save_every_minutes": 0, "train.ema_rate": [0.99]})


def test_diffusion_training_and_resume(tmp_path, exp):
    def make(steps):
        torch.manual_seed(0)
        exp.train.max_steps = steps
        diffusion = build_diffusion(exp)
        task = DiffusionTask(diffusion, make_t_sampler(exp.diffusion.schedule_sampler, diffusion))
        return Trainer(UNet(exp.unet), task, ToyDataset(8), exp, tmp_path / "unet", resume="auto", progress=False,
                       device="cpu")

    result = make(2).run()
    assert result["step"] == 2 and any("loss_q0" in r for r in checkpoint.read_metrics(tmp_path / "unet"))
    assert {"loss", "mse", "vb"} <= set(result)
    tr = make(3)
    assert tr.step == 2
    assert tr.run()["step"] == 3
    exp2, ema_state = checkpoint.load_run(tmp_path / "unet")
    UNet(exp2.unet).load_state_dict(ema_state)


def test_vae_training(tmp_path, exp):
    torch.manual_seed(0)
    result = Trainer(VAE(exp.vae), VAETask(exp.vae), ToyDataset(8), exp, tmp_path / "vae", progress=False,
                     device="cpu").run()
    assert result["step"] == 2 and {"recon", "kl"} <= set(result) and result["dead_units"] is not None
