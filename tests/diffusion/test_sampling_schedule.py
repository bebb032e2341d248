"""Sampling schedules (diffusion/sampling_schedule.py) against the maths: strength -> t0 by noise std, the step grid
below t0, and the respaced tables the samplers read, from alpha_bar computed here independently of irislib."""
import dataclasses
import math

import numpy as np
import pytest

from irislib.diffusion import plan


def alpha_bar(schedule: str, T: int) -> np.ndarray:
    """alpha_bar_t from the papers' formulas (Ho et al. linear betas; Nichol & Dhariwal cosine, beta <= 0.999)."""
    if schedule == "linear":
        betas = np.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T)
    else:
        f = [math.cos((i / T + 0.008) / 1.008 * math.pi / 2) ** 2 for i in range(T + 1)]
        betas = np.array([min(1 - f[i + 1] / f[i], 0.999) for i in range(T)])
    return np.cumprod(1 - betas)


@pytest.mark.parametrize("schedule, T", [("linear", 1000), ("cosine", 4000)])
@pytest.mark.parametrize("strength, steps", [(0.3, 5), (0.5, 4), (0.8, 7), (0.95, 20)])
def test_t0_is_the_timestep_nearest_strength_and_steps_spread_evenly_below_it(schedule, T, strength, steps, ours):
    ab = alpha_bar(schedule, T)
    s = plan(ours(T, noise_schedule=schedule), strength, steps)
    t0 = int(np.argmin(abs(np.sqrt(1 - ab) - strength)))    # strength is the noise std sqrt(1 - alpha_bar)
    assert s.t0 == t0 and not s.from_top
    # `steps` timesteps, t0 and 0 included, evenly spaced (rounded half to even, as guided-diffusion)
    assert s.timesteps == tuple(int(v) for v in np.round(np.linspace(0, t0, steps)))[::-1]
    assert list(s.indices) == list(range(steps - 1, -1, -1))
    # the tables the samplers read: alpha_bar at the visited timesteps, the next one down as "prev", 1 at the end
    visited = np.array(s.timesteps[::-1])
    np.testing.assert_allclose(s.alphas_cumprod, ab[visited], rtol=1e-10)
    np.testing.assert_allclose(s.alphas_cumprod_prev, np.append(1.0, ab[visited[:-1]]), rtol=1e-10)
    # the posterior of the respaced chain: beta' = 1 - ab / ab_prev, variance beta' (1 - ab_prev) / (1 - ab)
    ab_v, ab_prev = ab[visited], np.append(1.0, ab[visited[:-1]])
    np.testing.assert_allclose(s.chain.posterior_variance, (1 - ab_v / ab_prev) * (1 - ab_prev) / (1 - ab_v),
                               rtol=1e-8, atol=1e-15)


def test_ends_of_the_strength_range(ours):
    d = ours(1000)
    top = plan(d, 1.0, 10)
    assert top.t0 == 999 and top.from_top and len(top.timesteps) == 10 and top.timesteps[-1] == 0
    none = plan(d, 0.0, 10)
    assert none.chain is None and none.t0 == -1 and none.timesteps == () and list(none.indices) == []
    # fewer noise levels below t0 than steps: one call per level
    low = plan(d, 0.02, 50)
    t0 = int(np.argmin(abs(np.sqrt(1 - alpha_bar("linear", 1000)) - 0.02)))
    assert low.timesteps == tuple(range(t0, -1, -1))


def test_a_respacing_string_cuts_its_grid_at_the_step_nearest_strength(ours):
    ab = alpha_bar("linear", 1000)
    grid = list(range(0, 1000, 40))     # "ddim25": the integer stride that gives exactly 25 of 1000
    s = plan(ours(1000), 0.5, "ddim25")
    t0 = grid[int(np.argmin(abs(np.sqrt(1 - ab[grid]) - 0.5)))]
    assert s.t0 == t0 and s.timesteps == tuple(t for t in reversed(grid) if t <= t0) and not s.from_top
    assert plan(ours(1000), 1.0, "ddim25").t0 == 960 and plan(ours(1000), 1.0, "ddim25").from_top


def test_bad_plans_are_refused_and_a_schedule_is_frozen(ours):
    with pytest.raises(ValueError, match="max_strength=0.5"):
        plan(ours(1000, max_strength=0.5), 0.7, 5)     # a truncated UNet never saw that noise level
    assert plan(ours(1000, max_strength=0.5), 0.5, 5).t0 > 0
    for steps in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="steps="):
            plan(ours(1000), 0.5, steps)
    with pytest.raises(ValueError, match="strength=1.2"):
        plan(ours(1000), 1.2, 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan(ours(1000), 0.5, 5).t0 = 3
