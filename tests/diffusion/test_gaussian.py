"""q(x_t | x_0), the posterior, p(x_{t-1} | x_t) and the training losses against guided-diffusion and maths."""
import itertools
import math

import numpy as np
import pytest
import torch

from irislib.diffusion.gaussian import discretized_gaussian_log_likelihood


def _images(n=6, c=1, size=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, size, size, generator=g) * 2 - 1
    x = torch.round((x + 1) * 127.5) / 127.5 - 1       # 8-bit levels, like real data
    x[0, :, 0, :] = -1.0                                 # hit both edge bins of the decoder likelihood
    x[0, :, 1, :] = 1.0
    return x


def _timesteps(num_timesteps, n=6):
    return torch.tensor([0, 1, 2, num_timesteps // 2, num_timesteps - 2, num_timesteps - 1][:n])


def test_q_sample_and_posterior_match_peer(peer, ours):
    g, o = peer(steps=4000, learn_sigma=True), ours(4000)
    x0, noise, t = _images(), torch.randn(6, 1, 8, 8), _timesteps(4000)
    torch.testing.assert_close(o.q_sample(x0, t, noise), g.q_sample(x0, t, noise), rtol=0, atol=0)
    x_t = o.q_sample(x0, t, noise)
    for a, b in zip(o.q_posterior_mean_variance(x0, x_t, t), g.q_posterior_mean_variance(x0, x_t, t)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(o.q_mean_variance(x0, t), g.q_mean_variance(x0, t)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_q_sample_has_the_right_moments(ours):
    d = ours(1000, noise_schedule="cosine")
    t = torch.full((200_000,), 300)
    x_t = d.q_sample(torch.full((200_000, 1), 0.5, dtype=torch.float64), t)
    ab = d.alphas_cumprod[300]
    assert x_t.mean().item() == pytest.approx(0.5 * math.sqrt(ab), abs=4 * math.sqrt((1 - ab) / 200_000))
    assert x_t.var().item() == pytest.approx(1 - ab, rel=0.02)


VARIANTS = [dict(learn_sigma=ls, predict_xstart=px, sigma_small=ss)
            for ls, px, ss in itertools.product([True, False], [False, True], [False, True]) if not (ls and ss)]


@pytest.mark.parametrize("flags", VARIANTS, ids=lambda f: "-".join(k for k, v in f.items() if v) or "eps-fixedlarge")
def test_p_mean_variance_matches_peer(flags, peer, ours, toy_model):
    g = peer(steps=1000, timestep_respacing="250", **flags)
    o = ours(1000, timestep_respacing="250", learn_sigma=flags["learn_sigma"],
             predict_xstart=flags["predict_xstart"], sigma_small=flags["sigma_small"])
    model = toy_model(learn_sigma=flags["learn_sigma"], num_timesteps=1000)
    x, t = torch.randn(6, 1, 8, 8), _timesteps(250)
    for clip in (True, False):
        a = o.p_mean_variance(model, x, t, clip_denoised=clip)
        b = g.p_mean_variance(model, x, t, clip_denoised=clip)
        for key in ("mean", "variance", "log_variance", "pred_xstart"):
            torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-6, msg=key)
    # The model saw original-scale timesteps, not chain indices.
    assert model.calls[0].tolist() == [o.timestep_map[i] for i in t.tolist()]


LOSS_VARIANTS = [dict(learn_sigma=ls, predict_xstart=px, use_kl=kl, rescale_learned_sigmas=rs, sigma_small=ss)
                 for ls, px, kl, rs, ss in itertools.product([True, False], [False, True], [False, True],
                                                             [False, True], [False, True])
                 if not (kl and rs) and not (ls and ss)]


@pytest.fixture
def exact_peer_decoder(monkeypatch):
    """Evaluate guided-diffusion's own decoder likelihood in float64: in float32 its bin mass cancels to the 1e-12
    floor in the tails (where ours, computed in log space, stays exact; see the decoder test below)."""
    import guided_diffusion.gaussian_diffusion as gd
    from guided_diffusion.losses import discretized_gaussian_log_likelihood as gd_ll

    def in_float64(x, *, means, log_scales):
        return gd_ll(x.double(), means=means.double(), log_scales=log_scales.double()).to(x.dtype)
    monkeypatch.setattr(gd, "discretized_gaussian_log_likelihood", in_float64)


@pytest.mark.parametrize("flags", LOSS_VARIANTS, ids=lambda f: "-".join(k for k, v in f.items() if v) or "plain")
def test_training_losses_match_peer(flags, peer, ours, toy_model, exact_peer_decoder):
    steps = 4000
    g = peer(steps=steps, **flags)
    o = ours(steps, **flags)
    x0, t, noise = _images(), _timesteps(steps), torch.randn(6, 1, 8, 8)
    model = toy_model(learn_sigma=flags["learn_sigma"], num_timesteps=steps)
    a = o.training_losses(model, x0, t, noise=noise)
    b = g.training_losses(model, x0, t, noise=noise)
    assert set(a) == set(b)
    if flags["learn_sigma"] and not flags["use_kl"]:
        assert set(a) == {"loss", "mse", "vb"}
    for key in b:
        assert a[key].shape == (6,)
        torch.testing.assert_close(a[key], b[key], rtol=2e-5, atol=1e-6, msg=key)


def test_training_losses_respaced_match_peer(peer, ours, toy_model, exact_peer_decoder):
    g, o = peer(steps=1000, timestep_respacing="ddim25", learn_sigma=True), ours(1000, timestep_respacing="ddim25")
    model = toy_model(num_timesteps=1000)
    x0, t, noise = _images(), _timesteps(25), torch.randn(6, 1, 8, 8)
    a, b = o.training_losses(model, x0, t, noise=noise), g.training_losses(model, x0, t, noise=noise)
    for key in ("loss", "mse", "vb"):
        torch.testing.assert_close(a[key], b[key], rtol=2e-5, atol=1e-6)
    assert model.calls[0].tolist() == [0, 40, 80, 480, 920, 960]


def test_vb_term_trains_only_the_variance(ours):
    d = ours(1000)
    out = torch.randn(4, 2, 8, 8, requires_grad=True)
    losses = d.training_losses(lambda x, t: out, _images(4), torch.tensor([0, 5, 500, 999]),
                               noise=torch.randn(4, 1, 8, 8))
    (grad,) = torch.autograd.grad(losses["vb"].sum(), out)
    assert grad[:, :1].abs().max() == 0 and grad[:, 1:].abs().max() > 0
    (grad,) = torch.autograd.grad(losses["mse"].sum(), out)
    assert grad[:, 1:].abs().max() == 0 and torch.isfinite(grad).all()


def test_decoder_likelihood_matches_peer_and_is_stable():
    from guided_diffusion.losses import discretized_gaussian_log_likelihood as gd_ll
    g = torch.Generator().manual_seed(3)
    x = _images(4, size=16)
    means = x + 0.02 * torch.randn(x.shape, generator=g)
    log_scales = torch.full_like(x, math.log(0.02))
    ours = discretized_gaussian_log_likelihood(x, means=means, log_scales=log_scales)
    torch.testing.assert_close(ours, gd_ll(x, means=means, log_scales=log_scales), rtol=1e-5, atol=1e-5)
    # Far into a tail the float32 CDF difference cancels in guided-diffusion; ours agrees with float64 there.
    x = torch.tensor([[0.5]])
    means, log_scales = x - 0.06, torch.full_like(x, math.log(0.01))   # 6 sigma away
    exact = gd_ll(x.double(), means=means.double(), log_scales=log_scales.double()).float()
    assert discretized_gaussian_log_likelihood(x, means=means, log_scales=log_scales).item() == pytest.approx(
        exact.item(), abs=1e-3)
    # Gradients stay finite everywhere, also where the 1e-12 floor applies.
    means = torch.tensor([[-1.0, 0.0, 0.3, 1.0]], requires_grad=True)
    x = torch.tensor([[1.0, 0.0, -0.9, -1.0]])
    ll = discretized_gaussian_log_likelihood(x, means=means, log_scales=torch.full_like(x, math.log(1e-3)))
    (grad,) = torch.autograd.grad(ll.sum(), means)
    assert torch.isfinite(grad).all() and ll.min().item() == pytest.approx(math.log(1e-12))


def test_posterior_is_the_bayes_posterior(ours):
    """q(x_{t-1} | x_t, x_0) from the tables equals the Gaussian conditioning of the joint (float64)."""
    d = ours(1000, noise_schedule="cosine")
    for t in (1, 10, 400, 998):
        ab_prev, beta = d.alphas_cumprod[t - 1], d.betas[t]
        # x_{t-1} = sqrt(ab_prev) x0 + sqrt(1-ab_prev) e1; x_t = sqrt(1-beta) x_{t-1} + sqrt(beta) e2.
        cov = np.array([[1 - ab_prev, math.sqrt(1 - beta) * (1 - ab_prev)],
                        [math.sqrt(1 - beta) * (1 - ab_prev), (1 - beta) * (1 - ab_prev) + beta]])
        var = cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1]
        coef_xt = cov[0, 1] / cov[1, 1]
        coef_x0 = math.sqrt(ab_prev) - coef_xt * math.sqrt(ab_prev * (1 - beta))
        assert d.posterior_variance[t] == pytest.approx(var, rel=1e-9)
        assert d.posterior_mean_coef2[t] == pytest.approx(coef_xt, rel=1e-9)
        assert d.posterior_mean_coef1[t] == pytest.approx(coef_x0, rel=1e-9)


def test_model_with_wrong_channels_is_explained(ours, toy_model):
    d = ours(1000, learn_sigma=True)
    with pytest.raises(ValueError, match="learn_sigma"):
        d.training_losses(toy_model(learn_sigma=False), _images(2), torch.tensor([1, 2]))


@pytest.mark.parametrize("predict_xstart, learn_sigma, sigma_small, use_kl, rescale", [
    (False, True, False, False, False), (True, False, True, False, False), (False, False, False, False, True),
    (False, True, False, True, True), (True, True, False, False, True)])
def test_mean_var_and_loss_kinds_are_the_peers(predict_xstart, learn_sigma, sigma_small, use_kl, rescale, peer, ours):
    """The enums carry guided-diffusion's member names, picked from the same flags (use_kl wins over rescale)."""
    flags = dict(predict_xstart=predict_xstart, sigma_small=sigma_small, use_kl=use_kl, rescale_learned_sigmas=rescale)
    g, o = peer(steps=100, learn_sigma=learn_sigma, **flags), ours(100, learn_sigma=learn_sigma, **flags)
    assert (o.model_mean_type.name, o.model_var_type.name, o.loss_type.name) == \
        (g.model_mean_type.name, g.model_var_type.name, g.loss_type.name)
