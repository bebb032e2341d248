"""Training-timestep samplers: uniform, and loss-second-moment importance sampling as guided-diffusion."""
import numpy as np
import pytest
import torch

from irislib.config import ConfigError
from irislib.diffusion import LossSecondMomentSampler, UniformSampler, make_t_sampler


def test_uniform_sampler(ours):
    s = make_t_sampler("uniform", ours(100))
    assert isinstance(s, UniformSampler)
    t, w = s.sample(20_000, "cpu", generator=torch.Generator().manual_seed(0))
    assert t.dtype == torch.long and t.min() >= 0 and t.max() <= 99 and torch.equal(w, torch.ones(20_000))
    counts = np.bincount(t.numpy(), minlength=100)
    chi2 = ((counts - 200) ** 2 / 200).sum()
    assert chi2 < 99 + 5 * np.sqrt(2 * 99)   # uniform: chi-square with 99 degrees of freedom
    again, _ = s.sample(20_000, "cpu", generator=torch.Generator().manual_seed(0))
    assert torch.equal(t, again)


def _fill(sampler, rounds, seed=0):
    """Feed losses that grow with t, in uneven batches, like a training run would."""
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        t = rng.integers(0, sampler.num_timesteps, size=int(rng.integers(1, 64)))
        losses = (1.0 + t / 10.0) * rng.uniform(0.5, 1.5, size=len(t))
        sampler.update(torch.from_numpy(t), torch.from_numpy(losses).float())
        yield t, losses


def test_loss_second_moment_matches_peer(ours, monkeypatch):
    from guided_diffusion.resample import LossSecondMomentResampler
    monkeypatch.setattr(np, "int", int, raising=False)   # the peer still spells the removed np.int
    d = ours(50)
    mine, peer = make_t_sampler("loss-second-moment", d), LossSecondMomentResampler(d)
    assert isinstance(mine, LossSecondMomentSampler)
    warm = False
    for t, losses in _fill(mine, 60):
        peer.update_with_all_losses(t.tolist(), torch.from_numpy(losses).float().tolist())
        np.testing.assert_allclose(mine.weights(), peer.weights(), rtol=1e-12)
        warm = warm or mine.warmed_up()
    assert warm and not np.allclose(mine.weights(), mine.weights()[0])


def test_loss_second_moment_warms_up_then_importance_samples(ours):
    s = make_t_sampler("loss-second-moment", ours(20, noise_schedule="cosine"))
    s.update(torch.arange(20), torch.ones(20))
    assert not s.warmed_up()
    np.testing.assert_array_equal(s.weights(), np.ones(20))   # uniform during warm-up
    for _ in range(10):
        s.update(torch.arange(20), torch.arange(1, 21).double())   # loss at t is t + 1
    assert s.warmed_up()
    p = s.weights() / s.weights().sum()
    expected = (np.arange(1, 21) / np.arange(1, 21).sum()) * (1 - 0.001) + 0.001 / 20
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    t, w = s.sample(50_000, "cpu", generator=torch.Generator().manual_seed(1))
    freq = np.bincount(t.numpy(), minlength=20) / 50_000
    np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(p.max() / 50_000))
    np.testing.assert_allclose(w.numpy(), 1 / (20 * p[t.numpy()]), rtol=1e-6)
    # Importance weights keep the objective: E_p[w * loss] equals the uniform mean of the loss.
    assert (w * (t + 1).float()).mean().item() == pytest.approx(np.arange(1, 21).mean(), rel=0.02)


def test_state_round_trips_through_weights_only_load(ours, tmp_path):
    d = ours(30, noise_schedule="cosine")
    a = make_t_sampler("loss-second-moment", d)
    list(_fill(a, 80))
    assert a.warmed_up()
    torch.save({"t_sampler": a.state_dict()}, tmp_path / "state.pt")
    loaded = torch.load(tmp_path / "state.pt", weights_only=True)["t_sampler"]
    b = make_t_sampler("loss-second-moment", d)
    b.load_state_dict(loaded)
    np.testing.assert_array_equal(a.weights(), b.weights())
    ta, wa = a.sample(64, "cpu", generator=torch.Generator().manual_seed(2))
    tb, wb = b.sample(64, "cpu", generator=torch.Generator().manual_seed(2))
    assert torch.equal(ta, tb) and torch.equal(wa, wb)
    # Later updates continue identically (counts and the rolling history were restored).
    for s in (a, b):
        s.update(torch.tensor([3, 3, 7]), torch.tensor([9.0, 8.0, 7.0]))
    np.testing.assert_array_equal(a.weights(), b.weights())
    with pytest.raises(ValueError, match="diffusion_steps"):
        make_t_sampler("loss-second-moment", ours(40)).load_state_dict(loaded)
    u = make_t_sampler("uniform", d)
    u.load_state_dict(torch.load(_save(u.state_dict(), tmp_path / "u.pt"), weights_only=True))


def _save(obj, path):
    torch.save(obj, path)
    return path


def test_unknown_sampler_names_the_field(ours):
    with pytest.raises(ConfigError, match="diffusion.schedule_sampler"):
        make_t_sampler("importance", ours(100))
