"""irislib VAE: latent shapes, gradients, reparameterisation with a generator, sampling, activations."""
import pytest
import torch

from irislib.config import VAEConfig
from irislib.models.prior import GaussianMixturePrior
from irislib.models.vae import LOGVAR_RANGE, VAE



def small_vae(size=32, channels=1, latent_type="spatial", **kw) -> VAE:
    torch.manual_seed(0)
    cfg = VAEConfig(image_size=size, in_channels=channels, base_channels=32, channel_mult=[1, 2, 2],
                    latent_type=latent_type, latent_channels=4, latent_dim=16, **kw)
    return VAE(cfg)


@pytest.mark.parametrize("size,channels,latent_type,latent_shape", [
    (32, 1, "spatial", (4, 8, 8)), (64, 3, "spatial", (4, 16, 16)),
    (32, 3, "vector", (16,)), (64, 1, "vector", (16,)),
])
def test_shapes(size, channels, latent_type, latent_shape):
    vae = small_vae(size, channels, latent_type)
    x = torch.rand(2, channels, size, size) * 2 - 1
    recon, mean, logvar = vae(x)
    assert vae.latent_shape == latent_shape
    assert recon.shape == x.shape
    assert mean.shape == logvar.shape == (2, *latent_shape)
    assert vae.decode(mean).shape == x.shape


def test_320px_vector_latent_stays_small():
    cfg = VAEConfig(image_size=320, base_channels=32, channel_mult=[1, 2, 2, 4], latent_type="vector")
    vae = VAE(cfg)
    assert sum(p.numel() for p in vae.parameters()) < 10_000_000  # the flat map is capped before the Linear heads


@pytest.mark.parametrize("latent_type", ["spatial", "vector"])
def test_gradients_reach_every_parameter(latent_type):
    """After one step (residual branches start at zero, like guided-diffusion's) every parameter gets a gradient."""
    vae = small_vae(latent_type=latent_type)
    opt = torch.optim.SGD(vae.parameters(), lr=0.1)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    for _ in range(2):
        opt.zero_grad()
        recon, mean, logvar = vae(x, generator=torch.Generator().manual_seed(0))
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
        ((recon - x).pow(2).mean() + kl).backward()
        opt.step()
    missing = [n for n, p in vae.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_reparameterisation_uses_generator():
    vae = small_vae().eval()
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        a = vae(x, generator=torch.Generator().manual_seed(5))[0]
        b = vae(x, generator=torch.Generator().manual_seed(5))[0]
        c = vae(x, generator=torch.Generator().manual_seed(6))[0]
        mean, logvar = vae.encode(x)
        z = vae.reparameterize(mean, logvar, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, c)
    expected = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(z, expected)


def test_logvar_is_clamped():
    vae = small_vae()
    with torch.no_grad():
        vae.logvar_head.bias.fill_(1e4)
        _, logvar = vae.encode(torch.zeros(1, 1, 32, 32))
    assert logvar.max().item() == LOGVAR_RANGE[1]


def test_sample_shapes_determinism_and_prior():
    vae = small_vae(latent_type="vector").eval()
    a = vae.sample(3, generator=torch.Generator().manual_seed(1))
    b = vae.sample(3, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 1, 32, 32) and torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1
    prior = GaussianMixturePrior(2, vae.latent_numel)
    with pytest.raises(ValueError, match="not fitted"):
        vae.sample(2, prior=prior)
    # A prior concentrated far from N(0, I) must change the images, reproducibly.
    latents = torch.randn(64, vae.latent_numel, generator=torch.Generator().manual_seed(2)) * 0.01 + 3.0
    prior.fit(latents, generator=torch.Generator().manual_seed(0))
    c = vae.sample(3, generator=torch.Generator().manual_seed(1), prior=prior)
    d = vae.sample(3, generator=torch.Generator().manual_seed(1), prior=prior)
    assert torch.equal(c, d) and not torch.allclose(a, c)
    with pytest.raises(ValueError, match="dim"):
        vae.sample(1, prior=GaussianMixturePrior(2, vae.latent_numel + 1))


def test_spatial_sample_with_prior_over_flattened_latent():
    vae = small_vae().eval()
    prior = GaussianMixturePrior(2, vae.latent_numel)  # 4 * 8 * 8 flattened
    prior.fit(torch.randn(32, vae.latent_numel, generator=torch.Generator().manual_seed(0)))
    assert vae.sample(2, generator=torch.Generator().manual_seed(0), prior=prior).shape == (2, 1, 32, 32)


def test_no_relu_anywhere():
    for latent_type in ("spatial", "vector"):
        kinds = {type(m) for m in small_vae(latent_type=latent_type).modules()}
        assert not kinds & {torch.nn.ReLU, torch.nn.ReLU6, torch.nn.LeakyReLU}
        assert torch.nn.SiLU in kinds
