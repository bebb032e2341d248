"""The Trainer with the real UNet + GaussianDiffusion and the real VAE (skipped until those modules exist)."""
from __future__ import annotations

import pytest
import torch

from toy import ToyDataset, toy_exp  # noqa: F401

from irislib import checkpoint
from irislib.config import DiffusionConfig, UNetConfig, VAEConfig
from irislib.train import DiffusionTask, Trainer, VAETask


def _exp(**kw):
    exp = toy_exp(batch_size=4, microbatch=2, max_steps=2, save_every_steps=0, ema_rate=[0.99], **kw)
    exp.unet = UNetConfig(image_size=8, num_channels=32, num_res_blocks=1, channel_mult=[1, 2],
                          attention_resolutions=[4], num_heads=1)
    exp.diffusion = DiffusionConfig(diffusion_steps=50, schedule_sampler="loss-second-moment")
    exp.vae = VAEConfig(image_size=8, base_channels=32, channel_mult=[1, 2], latent_channels=2, kl_warmup_steps=4)
    return exp


def test_diffusion_training_and_resume(tmp_path):
    unet = pytest.importorskip("irislib.models.unet")
    diff = pytest.importorskip("irislib.diffusion")
    resample = pytest.importorskip("irislib.diffusion.resample")
    exp = _exp()

    def make(steps):
        torch.manual_seed(0)
        exp.train.max_steps = steps
        diffusion = diff.GaussianDiffusion(exp.diffusion, learn_sigma=exp.unet.learn_sigma)
        task = DiffusionTask(diffusion, resample.make_t_sampler(exp.diffusion.schedule_sampler, diffusion))
        return Trainer(unet.UNet(exp.unet), task, ToyDataset(8), exp, tmp_path / "unet", resume="auto",
                       progress=False)

    result = make(2).run()
    assert result["step"] == 2 and "loss_q0" in str(checkpoint.read_metrics(tmp_path / "unet"))
    assert {"loss", "mse", "vb"} <= set(result)
    tr = make(3)
    assert tr.step == 2
    tr.run()
    exp2, ema_state = checkpoint.load_run(tmp_path / "unet")
    unet.UNet(exp2.unet).load_state_dict(ema_state)


def test_vae_training(tmp_path):
    vae = pytest.importorskip("irislib.models.vae")
    exp = _exp()
    torch.manual_seed(0)
    result = Trainer(vae.VAE(exp.vae), VAETask(exp.vae), ToyDataset(8), exp, tmp_path / "vae",
                     progress=False).run()
    assert result["step"] == 2 and {"recon", "kl"} <= set(result) and result["dead_units"] is not None
