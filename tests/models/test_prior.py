"""GaussianMixturePrior: EM recovers a known mixture; samples reproduce its moments; state saves as buffers."""
import math

import pytest
import torch

from irislib.models.prior import GaussianMixturePrior

MEANS = torch.tensor([[-4.0, 0.0, 2.0], [3.0, 3.0, 0.0], [0.0, -5.0, -2.0]])
STDS = torch.tensor([[1.0, 0.5, 0.7], [0.6, 1.0, 0.8], [0.9, 0.4, 1.2]])
WEIGHTS = torch.tensor([0.5, 0.3, 0.2])


def draw_mixture(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    comp = torch.multinomial(WEIGHTS, n, replacement=True, generator=gen)
    return MEANS[comp] + STDS[comp] * torch.randn(n, 3, generator=gen)


def matched(prior: GaussianMixturePrior) -> torch.Tensor:
    """Fitted component index closest to each true component."""
    return torch.cdist(MEANS, prior.means).argmin(1)


def test_fit_recovers_means_weights_and_variances():
    n = 4000
    prior = GaussianMixturePrior(3, 3).fit(draw_mixture(n, 0), generator=torch.Generator().manual_seed(1))
    idx = matched(prior)
    assert sorted(idx.tolist()) == [0, 1, 2]
    # Within ~4 standard errors: mean se = std / sqrt(n w); weight se = sqrt(w (1 - w) / n).
    se_mean = STDS / (n * WEIGHTS[:, None]).sqrt()
    assert ((prior.means[idx] - MEANS).abs() < 4 * se_mean + 1e-3).all()
    se_w = (WEIGHTS * (1 - WEIGHTS) / n).sqrt()
    assert ((prior.weights[idx] - WEIGHTS).abs() < 4 * se_w).all()
    assert torch.allclose(prior.log_vars[idx].exp().sqrt(), STDS, rtol=0.1)
    assert bool(prior.fitted)


def test_sampling_reproduces_mean_and_variance():
    prior = GaussianMixturePrior(3, 3)
    with torch.no_grad():
        prior.weights.copy_(WEIGHTS)
        prior.means.copy_(MEANS)
        prior.log_vars.copy_(STDS.pow(2).log())
    n = 20000
    s = prior.sample(n, generator=torch.Generator().manual_seed(3))
    mean = (WEIGHTS[:, None] * MEANS).sum(0)
    var = (WEIGHTS[:, None] * (STDS ** 2 + MEANS ** 2)).sum(0) - mean ** 2
    assert s.shape == (n, 3)
    assert ((s.mean(0) - mean).abs() < 4 * (var / n).sqrt()).all()
    assert torch.allclose(s.var(0), var, rtol=0.05)
    assert torch.equal(s, prior.sample(n, generator=torch.Generator().manual_seed(3)))


def test_log_prob_matches_scipy_style_formula():
    prior = GaussianMixturePrior(3, 3).fit(draw_mixture(500, 4), generator=torch.Generator().manual_seed(0))
    x = torch.randn(5, 3)
    dens = torch.zeros(5, dtype=torch.float64)
    for w, mu, lv in zip(prior.weights.double(), prior.means.double(), prior.log_vars.double()):
        var = lv.exp()
        dens += w * torch.exp(-0.5 * ((x.double() - mu) ** 2 / var).sum(1)) / torch.sqrt((2 * math.pi * var).prod())
    assert torch.allclose(prior.log_prob(x).double(), dens.log(), atol=1e-4)


def test_state_dict_round_trip_and_reproducible_fit():
    x = draw_mixture(600, 5)
    a = GaussianMixturePrior(3, 3).fit(x, generator=torch.Generator().manual_seed(7))
    b = GaussianMixturePrior(3, 3).fit(x, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.means, b.means)
    c = GaussianMixturePrior(3, 3)
    c.load_state_dict(a.state_dict())
    assert set(a.state_dict()) == {"weights", "means", "log_vars", "fitted"}
    assert bool(c.fitted) and torch.equal(c.sample(4, torch.Generator().manual_seed(0)),
                                          a.sample(4, torch.Generator().manual_seed(0)))


def test_variance_floor_and_errors():
    x = torch.cat([torch.zeros(50, 2), torch.randn(50, 2)])  # half the points identical: a collapsing component
    prior = GaussianMixturePrior(2, 2).fit(x, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(prior.log_vars).all() and torch.isfinite(prior.log_prob(x)).all()
    with pytest.raises(ValueError, match="n_components=5"):
        GaussianMixturePrior(5, 2).fit(torch.randn(3, 2))
    with pytest.raises(ValueError, match="dimensions"):
        GaussianMixturePrior(2, 3).fit(torch.randn(10, 2))


def test_constant_latent_dimensions_do_not_change_the_fit():
    # Near-constant latent dimensions (a collapsed VAE channel) get variances at the floor, ~1e-16 of the data
    # scale; the expanded Mahalanobis form cancelled there and swamped the three real dimensions.
    x = draw_mixture(600, 0)
    plain = GaussianMixturePrior(3, 3).fit(x, generator=torch.Generator().manual_seed(1))
    padded = torch.cat([x, torch.full((len(x), 50), 3.7)], 1)
    fitted = GaussianMixturePrior(3, 53).fit(padded, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(fitted.weights, plain.weights, atol=1e-4)
    assert torch.allclose(fitted.means[:, :3], plain.means, atol=1e-3)
    assert torch.allclose(fitted.means[:, 3:], torch.full((3, 50), 3.7), atol=1e-5)
    assert torch.isfinite(fitted.log_prob(padded)).all()
