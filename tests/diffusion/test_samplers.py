"""Samplers against guided-diffusion step for step, and against the exact answer for Gaussian data."""
import math

import numpy as np
import pytest
import torch

from irislib.diffusion import plan, samplers, space_timesteps, strength_to_timestep, timestep_to_strength

SHAPE = (2, 1, 8, 8)


# --- guided-diffusion, step for step ---------------------------------------------------------------
@pytest.mark.parametrize("steps, sampler, eta, total", [
    ("ddim25", "ddim", 0.0, 1000), ("ddim25", "ddim", 0.5, 1000), ("25", "ddim", 0.5, 4000),
    ("250", "ddpm", 0.0, 1000), ("10,20,30", "ddpm", 0.0, 4000)])
def test_trajectories_match_peer(steps, sampler, eta, total, peer, ours, toy_model):
    """Same x_T and the same per-step noise stream (one generator vs the global RNG with the same seed)."""
    g = peer(steps=total, timestep_respacing=steps, learn_sigma=True)
    model = toy_model(num_timesteps=total)
    mine = list(samplers.iterate(model, ours(total), shape=SHAPE, steps=steps, sampler=sampler, eta=eta,
                                 generator=torch.Generator().manual_seed(7)))
    torch.manual_seed(7)
    x_T = torch.randn(SHAPE)
    loop = (g.ddim_sample_loop_progressive(model, SHAPE, noise=x_T, eta=eta, device="cpu") if sampler == "ddim"
            else g.p_sample_loop_progressive(model, SHAPE, noise=x_T, device="cpu"))
    theirs = [out["sample"] for out in loop]
    assert len(mine) == len(theirs) == g.num_timesteps
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_int_steps_at_strength_one_equal_the_peer_respacing(ours, toy_model):
    model = toy_model()
    out = samplers.denoise(model, ours(1000), shape=SHAPE, steps=25, generator=torch.Generator().manual_seed(0))
    ref = samplers.denoise(model, ours(1000), shape=SHAPE, steps="25", generator=torch.Generator().manual_seed(0))
    assert out.timesteps == ref.timesteps == sorted(space_timesteps(1000, "25"), reverse=True)
    torch.testing.assert_close(out.x, ref.x, rtol=0, atol=0)


# --- exact answers for Gaussian data -------------------------------------------------------------
MU, STD = 0.2, 0.8


def _affine_moments(model, diffusion, sampler, steps, strength):
    """Exact output mean and variance of a deterministic sampler on Gaussian data.

    With the optimal Gaussian denoiser each step is affine, so x_out = alpha * x_start + c; two samples give
    alpha and c, and the start distribution (N(0, 1) noise, or the data noised to t0) gives the output moments.
    """
    x_init = torch.tensor([-1.0, 1.5], dtype=torch.float64).view(2, 1, 1, 1)
    out = samplers.denoise(model, diffusion, x_init=x_init, strength=strength, steps=steps, sampler=sampler,
                          generator=torch.Generator().manual_seed(3), clip_denoised=False)
    z = torch.randn(x_init.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    if strength >= 1:
        x_start, start_mean, start_var = z, 0.0, 1.0
    else:
        sigma = timestep_to_strength(diffusion, out.t0)
        a = math.sqrt(1 - sigma ** 2)
        x_start, start_mean, start_var = a * x_init + sigma * z, a * MU, a * a * STD ** 2 + sigma ** 2
    alpha = ((out.x[1] - out.x[0]) / (x_start[1] - x_start[0])).item()
    c = (out.x[0] - alpha * x_start[0]).item()
    return alpha * start_mean + c, alpha ** 2 * start_var


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_flow_samplers_converge_and_dpm_beats_ddim(schedule, strength, ours, gaussian_denoiser):
    d = ours(1000, learn_sigma=False, noise_schedule=schedule)
    model = gaussian_denoiser(d, MU, STD)
    err = {}
    for sampler in ("ddim", "dpm++2m"):
        for steps in (10, 20, 50, 200):
            mean, var = _affine_moments(model, d, sampler, steps, strength)
            assert abs(mean - MU) < 2e-3          # x_T ~ N(0, 1) instead of N(sqrt(ab) mu, ...) costs ~1e-3
            err[sampler, steps] = abs(var / STD ** 2 - 1)
    assert err["ddim", 10] > err["ddim", 20] > err["ddim", 50] > err["ddim", 200] and err["ddim", 200] < 0.025
    assert err["dpm++2m", 50] < 0.01 and err["dpm++2m", 200] < 0.002
    assert err["dpm++2m", 20] < err["ddim", 20] / 3   # second order pays off
    assert err["dpm++2m", 10] < err["ddim", 10]


N = 10_000   # i.i.d. elements: standard errors 0.008 (mean) and 1.4 % (relative variance)


@pytest.mark.parametrize("sampler, steps, strength", [
    ("ddpm", 100, 1.0), ("ddpm", 20, 0.5), ("ddim", 500, 1.0), ("ddim", 50, 0.5),
    ("dpm++2m", 50, 1.0), ("dpm++2m", 20, 0.5)])
def test_samples_have_the_data_distribution(sampler, steps, strength, ours, gaussian_denoiser):
    """Thousands of samples recover mean and variance within 4 standard errors, from noise and mid-chain."""
    d = ours(1000, learn_sigma=True, noise_schedule="cosine")
    model = gaussian_denoiser(d, MU, STD, learn_sigma=True)   # ddpm uses the exact learned variance
    x_init = MU + STD * torch.randn(1, 1, N, 1, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    out = samplers.denoise(model, d, x_init=x_init, strength=strength, steps=steps, sampler=sampler,
                          generator=torch.Generator().manual_seed(12), clip_denoised=False)
    assert out.nfe == steps
    x = out.x.flatten()
    assert abs(x.mean().item() - MU) < 4 * STD / math.sqrt(N)
    assert abs(x.var().item() / STD ** 2 - 1) < 4 * math.sqrt(2 / N)
    if strength < 1:   # mid-chain: output stays correlated with its own input, more so than with another one
        r = np.corrcoef(x.numpy(), x_init.flatten().numpy())[0, 1]
        assert 0.3 < r < 0.999


def test_dpm_is_ddim_when_every_step_is_first_order(ours, gaussian_denoiser):
    d = ours(1000, learn_sigma=False)
    x_init = torch.randn(4, 1, 2, 2, dtype=torch.float64)
    for learn_sigma in (False, True):   # the eps half of a learned-sigma output is what counts
        model = gaussian_denoiser(d, MU, STD, learn_sigma=learn_sigma)
        dd = ours(1000, learn_sigma=learn_sigma)
        ddim, dpm = ([samplers.denoise(model, dd, x_init=x_init, strength=0.7, steps=s, sampler=name,
                                      generator=torch.Generator().manual_seed(5), clip_denoised=False).x
                      for s in (3, 10)] for name in ("ddim", "dpm++2m"))
        torch.testing.assert_close(dpm[0], ddim[0], rtol=1e-12, atol=1e-12)   # first, into-0 and final steps
        assert (dpm[1] - ddim[1]).abs().max() > 1e-4                          # second order in between


# --- strength, t0 and the step grid --------------------------------------------------------------
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("total", [1000, 4000])
def test_t0_matches_the_requested_noise_level(schedule, total, ours, toy_model):
    d = ours(total, noise_schedule=schedule)
    sigma = d.sqrt_one_minus_alphas_cumprod
    for strength in (0.05, 0.3, 0.5, 0.7, 0.95, 0.999):
        t0 = strength_to_timestep(d, strength)
        spacing = max(sigma[min(t0 + 1, total - 1)] - sigma[t0], sigma[t0] - sigma[max(t0 - 1, 0)])
        assert abs(sigma[t0] - strength) <= spacing / 2 + 1e-12
        assert timestep_to_strength(d, t0) == pytest.approx(sigma[t0])
    out = samplers.denoise(toy_model(num_timesteps=total), d, x_init=torch.zeros(SHAPE), strength=0.5, steps=4)
    assert out.t0 == strength_to_timestep(d, 0.5) == out.timesteps[0] and out.timesteps[-1] == 0
    assert out.timesteps == sorted(space_timesteps(out.t0 + 1, "4"), reverse=True)


def test_string_steps_are_truncated_at_t0(ours, toy_model):
    d, model = ours(1000), toy_model()
    out = samplers.denoise(model, d, x_init=torch.zeros(SHAPE), strength=0.5, steps="ddim25")
    grid = space_timesteps(1000, "ddim25")
    assert out.t0 in grid and out.timesteps == [t for t in reversed(grid) if t <= out.t0]
    noise_levels = d.sqrt_one_minus_alphas_cumprod[grid]
    assert out.t0 == grid[int(np.argmin(abs(noise_levels - 0.5)))]   # nearest grid step in noise level
    assert [c[0].item() for c in model.calls] == out.timesteps and out.nfe == len(out.timesteps)


def test_strength_zero_returns_x_init(ours, toy_model):
    model, x_init = toy_model(), torch.randn(SHAPE)
    out = samplers.denoise(model, ours(1000), x_init=x_init, strength=0.0)
    assert out.x is x_init and out.nfe == 0 and out.t0 == -1 and out.timesteps == [] and model.calls == []
    assert list(samplers.iterate(model, ours(1000), x_init=x_init, strength=0.0)) == []


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++2m"])
def test_strength_one_is_pure_noise_sampling(sampler, ours, toy_model):
    model, d = toy_model(), ours(1000)
    a = samplers.denoise(model, d, shape=SHAPE, steps=8, sampler=sampler, eta=0.3,
                        generator=torch.Generator().manual_seed(4))
    b = samplers.denoise(model, d, x_init=torch.randn(SHAPE), strength=1.0, steps=8, sampler=sampler, eta=0.3,
                        generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a.x, b.x, rtol=0, atol=0)
    assert a.t0 == b.t0 == 999 and a.nfe == b.nfe == 8


@pytest.mark.parametrize("sampler, eta, strength", [("ddpm", 0.0, 1.0), ("ddim", 0.5, 1.0),
                                                    ("dpm++2m", 0.0, 0.6), ("ddpm", 0.0, 0.4)])
def test_image_i_is_the_same_at_any_batch_size(sampler, eta, strength, ours, toy_model):
    model, d = toy_model(), ours(1000)
    x_init = torch.randn(4, 1, 8, 8)
    four = samplers.denoise(model, d, x_init=x_init, strength=strength, steps=6, sampler=sampler, eta=eta,
                           generator=[torch.Generator().manual_seed(100 + i) for i in range(4)])
    for i in (0, 2):
        one = samplers.denoise(model, d, x_init=x_init[i:i + 1], strength=strength, steps=6, sampler=sampler,
                              eta=eta, generator=[torch.Generator().manual_seed(100 + i)])
        torch.testing.assert_close(one.x[0], four.x[i], rtol=1e-5, atol=1e-6)
    assert (four.x[0] - four.x[1]).abs().max() > 1e-3


def test_ddim_eta0_is_deterministic_and_iterate_yields_every_step(ours, toy_model):
    model, d = toy_model(), ours(1000)
    runs = [samplers.denoise(model, d, shape=SHAPE, steps=10, generator=torch.Generator().manual_seed(1))
            for _ in range(2)]
    torch.testing.assert_close(runs[0].x, runs[1].x, rtol=0, atol=0)
    # eta=0 uses no randomness after x_T: a generator that keeps drawing afterwards changes nothing.
    gen = torch.Generator().manual_seed(1)
    steps = samplers.iterate(model, d, shape=SHAPE, steps=10, generator=gen)
    xs = []
    for x in steps:
        torch.randn(5, generator=gen)
        xs.append(x)
    assert len(xs) == len(runs[0].timesteps) == runs[0].nfe == 10
    torch.testing.assert_close(xs[-1], runs[0].x, rtol=0, atol=0)
    # The stochastic samplers do use it.
    a, b = (samplers.denoise(model, d, shape=SHAPE, steps=10, sampler="ddpm", generator=torch.Generator()
                            .manual_seed(1)) for _ in range(2))
    torch.testing.assert_close(a.x, b.x, rtol=0, atol=0)


def test_nfe_counts_model_calls(ours, toy_model):
    d = ours(1000)
    for sampler in ("ddpm", "ddim", "dpm++2m"):
        for steps in (1, 7, 30):
            model = toy_model()
            out = samplers.denoise(model, d, x_init=torch.zeros(SHAPE), strength=0.8, steps=steps, sampler=sampler)
            assert out.nfe == steps == len(model.calls) == len(out.timesteps)
            assert [c[0].item() for c in model.calls] == out.timesteps
    # Fewer levels than steps below t0: one call per level.
    out = samplers.denoise(toy_model(), d, x_init=torch.zeros(SHAPE), strength=0.02, steps=50)
    assert out.nfe == out.t0 + 1 == len(set(out.timesteps))


def test_bad_arguments_are_explained(ours, toy_model):
    model, d = toy_model(), ours(1000)
    with pytest.raises(ValueError, match="sampler="):
        samplers.denoise(model, d, shape=SHAPE, sampler="euler")
    with pytest.raises(ValueError, match="x_init"):
        samplers.denoise(model, d, shape=SHAPE, strength=0.5)
    with pytest.raises(ValueError, match="one per image"):
        samplers.denoise(model, d, shape=SHAPE, generator=[torch.Generator()])
    with pytest.raises(ValueError, match="steps"):
        samplers.denoise(model, d, shape=SHAPE, steps=0)
    with pytest.raises(ValueError, match="strength"):
        samplers.denoise(model, d, shape=SHAPE, strength=-0.1)
    with pytest.raises(ValueError, match="strength"):
        samplers.denoise(model, d, shape=SHAPE, strength=1.5)
    with pytest.raises(ValueError, match="shape"):
        samplers.denoise(model, d)


# --- the sampler functions and their registry ------------------------------------------------------
@pytest.mark.parametrize("name", list(samplers.SAMPLERS))
def test_a_sampler_function_walks_a_plan_by_itself(name, ours, toy_model):
    """k-diffusion style: plan once, then sampler(predict, x, schedule, noise) yields x after each model call."""
    model, d = toy_model(), ours(1000)
    schedule = plan(d, 0.6, 5)
    x_init = torch.randn(SHAPE, generator=torch.Generator().manual_seed(8))
    stream = torch.Generator().manual_seed(9)          # the start noise, then each step's noise
    top = torch.full((2,), len(schedule.timesteps) - 1)
    x = schedule.chain.q_sample(x_init, top, torch.randn(SHAPE, generator=stream))
    with torch.no_grad():
        xs = list(samplers.SAMPLERS[name](lambda x_t, t: schedule.chain.p_mean_variance(model, x_t, t), x, schedule,
                                          lambda: torch.randn(SHAPE, generator=stream)))
    assert len(xs) == len(schedule.timesteps) == 5
    assert [c[0].item() for c in model.calls] == list(schedule.timesteps)   # original-scale timesteps, t0 first
    # the glue (plan, start, walk) gives the same numbers from one generator drawing the same stream
    glued = samplers.denoise(toy_model(), d, x_init=x_init, strength=0.6, steps=5, sampler=name,
                             generator=torch.Generator().manual_seed(9))
    assert glued.t0 == schedule.t0 and glued.timesteps == list(schedule.timesteps)
    torch.testing.assert_close(glued.x, xs[-1], rtol=0, atol=0)


def test_the_registry_is_the_one_list_of_sampler_names(monkeypatch, capsys):
    """CLI --sampler (both commands) and SampleConfig read SAMPLERS: a name added there is accepted everywhere."""
    from irislib import cli
    from irislib.config import ConfigError
    from irislib.generate.sampler import SampleConfig
    monkeypatch.setitem(samplers.SAMPLERS, "euler-test", samplers.ddim)
    parser = cli.build_parser()
    for command in (["sample", "--unet", "u", "--out", "o"], ["evaluate", "--out", "o"]):
        assert parser.parse_args([*command, "--sampler", "euler-test"]).sampler == "euler-test"
        with pytest.raises(SystemExit):
            parser.parse_args([*command, "--sampler", "heun"])
        assert "'ddpm', 'ddim', 'dpm++2m', 'euler-test'" in capsys.readouterr().err
    assert SampleConfig(sampler="euler-test").validate().sampler == "euler-test"
    with pytest.raises(ConfigError, match=r"sampler='heun' is not one of ddpm, ddim, dpm\+\+2m, euler-test"):
        SampleConfig(sampler="heun").validate()
