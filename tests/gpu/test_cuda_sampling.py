"""Sampling on CUDA: per-image CUDA generators (image i is the same at any batch size), every sampler, hybrid
sampling from VAE drafts in fp32 and bf16, and evaluate() on images made on the GPU."""
from __future__ import annotations

import pytest
import torch

from gpu_device import DEVICE
from speed_helpers import randomized, tiny_unet_cfg

from irislib.config import DiffusionConfig, VAEConfig
from irislib.diffusion import GaussianDiffusion, samplers
from irislib.evaluation import report
from irislib.generate import hybrid
from irislib.models.unet import UNet
from irislib.models.vae import VAE
from irislib.train import speed

pytestmark = pytest.mark.gpu


def rel(a, b) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def build(device, size: int = 16):
    """A tiny randomized UNet and VAE at `size` px on `device`, and a 100-step diffusion."""
    torch.manual_seed(0)
    unet = randomized(UNet(tiny_unet_cfg(image_size=size, attention_resolutions=[size // 2]))).to(device).eval()
    vae = VAE(VAEConfig(image_size=size, base_channels=32, channel_mult=[1, 2], latent_channels=4)).to(device).eval()
    return unet, vae, GaussianDiffusion(DiffusionConfig(diffusion_steps=100), learn_sigma=True)


@pytest.fixture
def models(cuda):
    return build(cuda)


def test_generators_live_on_cuda_and_noise_is_per_image(cuda):
    gens = hybrid.generators([3, 5], cuda)
    assert all(g.device.type == cuda.type for g in gens)
    both = samplers.randn((2, 1, 4, 4), gens, cuda, torch.float32)
    alone = samplers.randn((1, 1, 4, 4), hybrid.generators([5], cuda), cuda, torch.float32)
    assert both.device.type == cuda.type and torch.equal(both[1], alone[0])


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++2m"])
def test_image_i_is_the_same_at_any_batch_size_on_cuda(models, sampler):
    unet, _, diffusion = models
    kw = dict(strength=1.0, steps=8, sampler=sampler, eta=1.0 if sampler == "ddim" else 0.0)
    batch = hybrid.denoise_batch(unet, diffusion, [0, 1, 2], **kw).images
    alone = hybrid.denoise_batch(unet, diffusion, [2], **kw).images
    again = hybrid.denoise_batch(unet, diffusion, [0, 1, 2], **kw).images
    assert batch.device == next(unet.parameters()).device == torch.device(DEVICE)   # cuda:0, or cpu in the dry run
    assert batch.shape == (3, 1, 16, 16)
    assert torch.allclose(batch[2], alone[0], atol=1e-4), (batch[2] - alone[0]).abs().max()
    assert torch.allclose(batch, again, atol=1e-6)  # same seeds, same images
    assert not torch.allclose(batch[0], batch[1], atol=1e-2)  # different seeds, different images


def test_hybrid_sampling_on_cuda_fp32_and_bf16_agree(models):
    unet, vae, diffusion = models
    seeds = list(range(4))
    drafts = hybrid.draw_drafts(vae, seeds, device=next(unet.parameters()).device)   # N(0, I): no prior fitted
    ref = hybrid.denoise_batch(unet, diffusion, seeds, drafts, strength=0.5, steps=5)
    assert ref.images.device == ref.drafts.device == next(unet.parameters()).device and ref.nfe == 5 and 0 < ref.t0 < 99
    assert ref.images.abs().max() <= 1 and torch.isfinite(ref.images).all()
    speed.fast_groupnorm(unet)
    with torch.autocast(next(unet.parameters()).device.type, dtype=torch.bfloat16):
        fast = hybrid.denoise_batch(unet, diffusion, seeds, drafts, strength=0.5, steps=5)
    speed.fast_groupnorm(unet, enabled=False)
    assert torch.isfinite(fast.images).all() and fast.t0 == ref.t0
    assert rel(fast.images, ref.images) < 5e-2


def test_evaluate_reads_images_made_on_cuda(cuda, tmp_path):
    unet, vae, diffusion = build(cuda, 32)  # the KID features need >= 32 px
    seeds = list(range(8))
    drafts = hybrid.draw_drafts(vae, seeds, device=next(unet.parameters()).device)
    images = hybrid.denoise_batch(unet, diffusion, seeds, drafts, strength=0.5, steps=3).images
    assert images.device == next(unet.parameters()).device
    out = report.evaluate(images, reference="synthetic:8", out=tmp_path, n_reference=8)
    assert "kid" in out and (tmp_path / "metrics.json").exists()
