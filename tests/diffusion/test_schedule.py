"""Beta schedules and respacing against guided-diffusion and against their definitions."""
import math

import numpy as np
import pytest

from irislib.config import ConfigError
from irislib.diffusion import space_timesteps
from irislib.diffusion.schedule import get_named_beta_schedule

TABLES = ["betas", "alphas_cumprod", "alphas_cumprod_prev", "alphas_cumprod_next", "sqrt_alphas_cumprod",
          "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
          "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
          "posterior_mean_coef1", "posterior_mean_coef2"]


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [1000, 4000, 5000])
def test_schedules_match_peer(schedule, steps):
    from guided_diffusion.gaussian_diffusion import get_named_beta_schedule as gd_schedule
    ours = get_named_beta_schedule(schedule, steps)
    assert ours.dtype == np.float64 and ours.shape == (steps,)
    np.testing.assert_allclose(ours, gd_schedule(schedule, steps), rtol=0, atol=1e-12)


def test_schedules_follow_their_definitions():
    lin = get_named_beta_schedule("linear", 4000)
    assert lin[0] == pytest.approx(0.25e-4) and lin[-1] == pytest.approx(0.25 * 0.02)   # scale = 1000 / 4000
    cos = get_named_beta_schedule("cosine", 1000)
    f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2   # noqa: E731
    np.testing.assert_allclose(np.cumprod(1 - cos)[:500], [f((i + 1) / 1000) / f(0) for i in range(500)], rtol=1e-9)
    assert cos.max() == pytest.approx(0.999)   # capped at the last step


def test_unknown_schedule_names_the_field():
    with pytest.raises(ConfigError, match="diffusion.noise_schedule"):
        get_named_beta_schedule("quadratic", 1000)
    with pytest.raises(ConfigError, match="diffusion.diffusion_steps"):
        get_named_beta_schedule("linear", 20)   # betas would reach 1
    assert get_named_beta_schedule("cosine", 20).max() < 1


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [1000, 4000, 5000])
def test_tables_match_peer(schedule, steps, peer, ours):
    g, o = peer(steps=steps, noise_schedule=schedule, learn_sigma=True), ours(steps, noise_schedule=schedule)
    for name in TABLES:
        np.testing.assert_allclose(getattr(o, name), getattr(g, name), rtol=0, atol=1e-12, err_msg=name)
    assert o.num_timesteps == g.num_timesteps == steps
    assert o.timestep_map.tolist() == list(range(steps))


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [1000, 4000])
@pytest.mark.parametrize("respacing", ["250", "ddim25", "10,20,30"])
def test_respaced_tables_match_peer(schedule, steps, respacing, peer, ours):
    g = peer(steps=steps, noise_schedule=schedule, timestep_respacing=respacing, learn_sigma=True)
    o = ours(steps, noise_schedule=schedule, timestep_respacing=respacing)
    assert o.timestep_map.tolist() == list(g.timestep_map)
    for name in TABLES:
        np.testing.assert_allclose(getattr(o, name), getattr(g, name), rtol=0, atol=1e-12, err_msg=name)
    # The same chain built by respacing the full diffusion.
    full = ours(steps, noise_schedule=schedule)
    r = full.respaced(space_timesteps(steps, respacing))
    np.testing.assert_array_equal(r.alphas_cumprod, o.alphas_cumprod)
    # Respacing keeps alpha_bar at the kept steps.
    np.testing.assert_allclose(o.alphas_cumprod, full.alphas_cumprod[o.timestep_map], rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("steps", [1000, 4000, 37])
@pytest.mark.parametrize("counts", ["250", "ddim25", "ddim10", "10,20,30", "5", "1", "3,0,2"])
def test_space_timesteps_matches_peer(steps, counts):
    from guided_diffusion.respace import space_timesteps as gd_space
    try:
        expected = sorted(gd_space(steps, counts))
    except ValueError:
        with pytest.raises(ValueError, match="steps"):
            space_timesteps(steps, counts)
        return
    assert space_timesteps(steps, counts) == expected


def test_respacing_composes_and_rejects_bad_input(ours):
    d = ours(1000, timestep_respacing="250")
    twice = d.respaced([0, 10, 249])   # indices into the 250-step chain
    assert twice.timestep_map.tolist() == [d.timestep_map[0], d.timestep_map[10], 999]
    np.testing.assert_allclose(twice.alphas_cumprod, ours(1000).alphas_cumprod[twice.timestep_map], rtol=1e-12)
    with pytest.raises(ValueError, match="respaced"):
        d.respaced([250])
    with pytest.raises(ConfigError, match="diffusion.timestep_respacing"):
        ours(1000, timestep_respacing="ddimx")
