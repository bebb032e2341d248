"""Hybrid sampling's one start (irislib.generate.hybrid): strength 0 keeps the draft, strength 1 is pure-noise sampling, t0
matches the noise level, a refiner gets the drafts as its condition, and drafts follow VAE.sample's prior rules."""
import numpy as np
import pytest
import torch

from irislib.generate import hybrid
from irislib.config import ConfigError, DiffusionConfig, UNetConfig, VAEConfig
from irislib.diffusion import GaussianDiffusion, samplers
from irislib.models.prior import GaussianMixturePrior
from irislib.models.unet import UNet
from irislib.models.vae import VAE
from irislib.generate.sampler import HybridSampler, SampleConfig


def _unet(cond_channels=0):
    torch.manual_seed(0)
    unet = UNet(UNetConfig(image_size=16, num_channels=32, num_res_blocks=1, channel_mult=[1, 2],
                           attention_resolutions=[8], num_heads=2, cond_channels=cond_channels)).eval()
    for p in unet.parameters():  # non-zero output conv so the model really acts
        p.data.add_(0.02 * torch.randn_like(p))
    return unet


def _vae(prior="normal"):
    torch.manual_seed(1)
    return VAE(VAEConfig(image_size=16, base_channels=32, channel_mult=[1, 2], latent_channels=2, prior=prior)).eval()


@pytest.fixture(scope="module")
def nets():
    return _unet(), _vae(), GaussianDiffusion(DiffusionConfig(diffusion_steps=1000), learn_sigma=True)


def test_strength_zero_returns_the_vae_draft(nets):
    unet, vae, diffusion = nets
    drafts = hybrid.draw_drafts(vae, [0, 1, 2])
    out = hybrid.denoise_batch(unet, diffusion, [0, 1, 2], drafts, strength=0.0, steps=10)
    assert out.nfe == 0 and out.t0 == -1
    assert torch.equal(out.images, drafts) and torch.equal(out.drafts, drafts)


def test_strength_one_equals_pure_noise_sampling(nets):
    unet, vae, diffusion = nets
    with_drafts = hybrid.denoise_batch(unet, diffusion, [3, 4], hybrid.draw_drafts(vae, [3, 4]), strength=1.0, steps=8)
    pure = hybrid.denoise_batch(unet, diffusion, [3, 4], None, strength=1.0, steps=8)
    assert with_drafts.t0 == pure.t0 == diffusion.num_timesteps - 1
    assert torch.equal(with_drafts.images, pure.images)
    assert pure.nfe == 8


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("T", [1000, 4000])
def test_reported_t0_matches_requested_noise_level(nets, schedule, T):
    unet, vae, _ = nets
    diffusion = GaussianDiffusion(DiffusionConfig(diffusion_steps=T, noise_schedule=schedule), learn_sigma=True)
    sigma = np.sqrt(1.0 - diffusion.alphas_cumprod)  # noise std per timestep
    drafts = hybrid.draw_drafts(vae, [0])
    for strength in (0.1, 0.3, 0.5, 0.8):
        out = hybrid.denoise_batch(unet, diffusion, [0], drafts, strength=strength, steps=2)
        spacing = max(abs(sigma[min(out.t0 + 1, T - 1)] - sigma[out.t0]), abs(sigma[out.t0] - sigma[out.t0 - 1]))
        assert abs(sigma[out.t0] - strength) <= spacing, (strength, out.t0, sigma[out.t0])
        assert out.timesteps[0] == out.t0 and out.nfe == 2


def test_image_is_the_same_at_any_batch_size(nets):
    unet, vae, diffusion = nets
    sampler = HybridSampler(unet, diffusion, vae)
    batch = sampler.sample(SampleConfig(n=4, seed=5, strength=0.6, steps=5, sampler="ddpm"))
    alone = sampler.sample(SampleConfig(n=1, seed=7, strength=0.6, steps=5, sampler="ddpm"))
    torch.testing.assert_close(batch.drafts[2:3], alone.drafts, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch.images[2:3], alone.images, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(batch.images[0], batch.images[1])


def test_given_images_are_the_start_and_shape_survives_low_strength(nets):
    unet, _, diffusion = nets
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    disc = torch.where((yy - 7.5) ** 2 + (xx - 7.5) ** 2 < 16, -1.0, 0.5)[None, None].repeat(2, 1, 1, 1)
    low = hybrid.denoise_batch(unet, diffusion, [0, 1], disc, strength=0.05, steps=4)
    high = hybrid.denoise_batch(unet, diffusion, [0, 1], disc, strength=0.9, steps=4)
    err_low, err_high = (low.images - disc).abs().mean(), (high.images - disc).abs().mean()
    assert err_low < 0.15 < err_high


def test_a_start_without_drafts_is_a_clear_error(nets):
    unet, _, diffusion = nets
    with pytest.raises(ValueError, match="strength=0.5 < 1 needs drafts"):
        hybrid.denoise_batch(unet, diffusion, [0], None, strength=0.5, steps=4)
    with pytest.raises(ValueError, match="refiner needs drafts"):
        hybrid.denoise_batch(_unet(cond_channels=1), diffusion, [0], None, strength=1.0, steps=2)


def test_a_refiner_is_conditioned_on_exactly_the_drafts(nets):
    _, vae, diffusion = nets
    refiner, seeds = _unet(cond_channels=1), [2, 9]
    drafts = hybrid.draw_drafts(vae, seeds)
    out = hybrid.denoise_batch(refiner, diffusion, seeds, drafts, strength=1.0, steps=3)
    # one level down: pure noise from the per-image generators, the drafts as model_kwargs["cond"]
    ref = samplers.denoise(refiner, diffusion, shape=(2, 1, 16, 16), strength=1.0, steps=3,
                           generator=hybrid.generators(seeds, "cpu", salt=1), model_kwargs={"cond": drafts})
    assert torch.equal(out.images, ref.x.clamp(-1, 1))
    other = hybrid.denoise_batch(refiner, diffusion, seeds, -drafts, strength=1.0, steps=3)
    assert (other.images - out.images).abs().max() > 1e-3   # the condition really reaches the UNet
    through = HybridSampler(refiner, diffusion, vae).sample(SampleConfig(n=2, seed=2, strength=1.0, steps=3,
                                                                         batch_size=1))
    assert through.drafts is not None and not torch.equal(through.drafts[0], through.drafts[1])


# --- drafts ------------------------------------------------------------------------------------------------
def test_drafts_decode_one_latent_per_seed(nets):
    _, vae, _ = nets
    # normal prior: z_i ~ N(0, I) from generator 2 * seed_i (salt 0), decoded together and clamped
    zs = torch.cat([torch.randn((1, *vae.latent_shape), generator=torch.Generator().manual_seed(2 * s))
                    for s in (4, 7)])
    assert torch.equal(hybrid.draw_drafts(vae, [4, 7]), vae.decode(zs).clamp(-1, 1))
    # a fitted prior: the same per-seed generators, latents from the mixture
    prior = GaussianMixturePrior(2, vae.latent_numel)
    prior.fit(3.0 + torch.randn(64, vae.latent_numel, generator=torch.Generator().manual_seed(0)),
              generator=torch.Generator().manual_seed(0))
    zp = torch.cat([prior.sample(1, generator=torch.Generator().manual_seed(2 * s)) for s in (4, 7)])
    drafts = hybrid.draw_drafts(vae, [4, 7], prior=prior)
    assert torch.equal(drafts, vae.decode(zp.reshape(2, *vae.latent_shape)).clamp(-1, 1))
    assert (drafts - hybrid.draw_drafts(vae, [4, 7])).abs().max() > 1e-3
    with pytest.raises(ValueError, match="2 generators for 3 images"):
        vae.sample(3, generator=hybrid.generators([1, 2], "cpu"))


def test_unfitted_prior_is_one_error_naming_the_run(nets):
    unet, _, diffusion = nets
    gmm = _vae(prior="gmm")
    unfitted = GaussianMixturePrior(2, gmm.latent_numel)
    cfg = SampleConfig(n=1, strength=0.5, steps=2)
    for prior in (None, unfitted):   # no prior.safetensors, or a prior that was never fitted
        sampler = HybridSampler(unet, diffusion, gmm, prior, {"unet_run": "runs/u", "vae_run": "runs/my-vae"})
        with pytest.raises(ConfigError, match=r"runs/my-vae has vae.prior=gmm but no fitted prior.*"
                                              r"irislib train-vae --config runs/my-vae/config.json --out runs/my-vae"):
            sampler.sample(cfg)
    # draw_drafts and VAE.sample agree on an unfitted prior object
    for draw in (lambda: hybrid.draw_drafts(gmm, [0], prior=unfitted), lambda: gmm.sample(1, prior=unfitted)):
        with pytest.raises(ValueError, match="GaussianMixturePrior is not fitted"):
            draw()
    # vae.prior=normal legitimately drafts from N(0, I), and pure-noise sampling needs no drafts at all
    assert HybridSampler(unet, diffusion, _vae("normal")).sample(cfg).drafts.shape == (1, 1, 16, 16)
    assert HybridSampler(unet, diffusion, gmm).sample(SampleConfig(n=1, strength=1.0, steps=2)).drafts is None
