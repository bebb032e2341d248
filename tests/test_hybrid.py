"""Hybrid sampler: strength 0 keeps the draft, strength 1 is pure-noise sampling, t0 matches the noise level."""
import numpy as np
import pytest
import torch

from irislib import hybrid
from irislib.config import DiffusionConfig, UNetConfig, VAEConfig
from irislib.diffusion import GaussianDiffusion
from irislib.models.unet import UNet
from irislib.models.vae import VAE


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    unet = UNet(UNetConfig(image_size=16, num_channels=32, num_res_blocks=1, channel_mult=[1, 2],
                           attention_resolutions=[8], num_heads=2)).eval()
    for p in unet.parameters():  # non-zero output conv so the model really acts
        p.data.add_(0.02 * torch.randn_like(p))
    vae = VAE(VAEConfig(image_size=16, base_channels=32, channel_mult=[1, 2], latent_channels=2)).eval()
    diffusion = GaussianDiffusion(DiffusionConfig(diffusion_steps=1000), learn_sigma=True)
    return unet, vae, diffusion


def test_strength_zero_returns_the_vae_draft(nets):
    unet, vae, diffusion = nets
    out = hybrid.sample(unet, diffusion, seeds=[0, 1, 2], vae=vae, strength=0.0, steps=10)
    assert out.nfe == 0
    assert torch.equal(out.images, out.drafts)
    assert torch.equal(out.drafts, hybrid.draw_drafts(vae, [0, 1, 2]))


def test_strength_one_equals_pure_noise_sampling(nets):
    unet, vae, diffusion = nets
    with_vae = hybrid.sample(unet, diffusion, seeds=[3, 4], vae=vae, strength=1.0, steps=8)
    pure = hybrid.sample(unet, diffusion, seeds=[3, 4], vae=None, strength=1.0, steps=8)
    assert with_vae.t0 == pure.t0 == diffusion.num_timesteps - 1
    assert torch.equal(with_vae.images, pure.images)
    assert pure.nfe == 8


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("T", [1000, 4000])
def test_reported_t0_matches_requested_noise_level(nets, schedule, T):
    unet, vae, _ = nets
    diffusion = GaussianDiffusion(DiffusionConfig(diffusion_steps=T, noise_schedule=schedule), learn_sigma=True)
    sigma = np.sqrt(1.0 - diffusion.alphas_cumprod)  # noise std per timestep
    for strength in (0.1, 0.3, 0.5, 0.8):
        out = hybrid.sample(unet, diffusion, seeds=[0], vae=vae, strength=strength, steps=2)
        spacing = max(abs(sigma[min(out.t0 + 1, T - 1)] - sigma[out.t0]), abs(sigma[out.t0] - sigma[out.t0 - 1]))
        assert abs(sigma[out.t0] - strength) <= spacing, (strength, out.t0, sigma[out.t0])
        assert out.timesteps[0] == out.t0 and out.nfe == 2


def test_image_is_the_same_at_any_batch_size(nets):
    unet, vae, diffusion = nets
    batch = hybrid.sample(unet, diffusion, seeds=[5, 6, 7, 8], vae=vae, strength=0.6, steps=5, sampler="ddpm")
    alone = hybrid.sample(unet, diffusion, seeds=[7], vae=vae, strength=0.6, steps=5, sampler="ddpm")
    torch.testing.assert_close(batch.images[2:3], alone.images, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(batch.images[0], batch.images[1])


def test_given_images_are_the_start_and_shape_survives_low_strength(nets):
    unet, _, diffusion = nets
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    disc = torch.where((yy - 7.5) ** 2 + (xx - 7.5) ** 2 < 16, -1.0, 0.5)[None, None].repeat(2, 1, 1, 1)
    low = hybrid.sample(unet, diffusion, seeds=[0, 1], x_init=disc, strength=0.05, steps=4)
    high = hybrid.sample(unet, diffusion, seeds=[0, 1], x_init=disc, strength=0.9, steps=4)
    err_low, err_high = (low.images - disc).abs().mean(), (high.images - disc).abs().mean()
    assert err_low < 0.15 < err_high


def test_strength_below_one_without_a_start_is_a_clear_error(nets):
    unet, _, diffusion = nets
    with pytest.raises(ValueError, match="needs a VAE"):
        hybrid.sample(unet, diffusion, seeds=[0], strength=0.5, steps=4)
