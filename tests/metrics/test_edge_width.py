"""Edge width vs the mathematics: discs whose radial profile is an exact erf step, I(r) = p + c Phi((r - R) / sigma),
sampled at pixel centres; the true 10-90 % width is 2 * 1.2816 * sigma = 2.563 sigma. Required: within 10 % or
0.3 px of the truth, whichever is larger, for sigma 0.5-4 px, R 4-60 px, images 32-256 px."""
import math

import numpy as np
import pytest

from irislib.metrics import fit_erf_step, measure_pupil
from irislib.metrics.edge import WIDTH_PER_SIGMA, norm_cdf

SIGMAS = (0.5, 1.0, 2.0, 3.0, 4.0)
RADII = (4, 8, 15, 30, 60)
SIZES = (32, 64, 128, 256)
# Every disc that fits: the edge's 3 sigma and 2 px of iris inside the frame, the pupil at most 80 % of it.
CASES = [(n, r, s) for n in SIZES for r in RADII for s in SIGMAS if r + 3 * s + 2 <= n / 2 and r <= 0.4 * n]


def erf_disc(size, radius, sigma, pupil=0.1, iris=0.45, seed=0):
    """[size, size] image: exact erf edge around a sub-pixel-offset centre (pixel centres at integers)."""
    rng = np.random.default_rng(seed)
    cx, cy = (size - 1) / 2 + rng.uniform(-0.5, 0.5, 2)
    yy, xx = np.mgrid[:size, :size]
    return pupil + (iris - pupil) * norm_cdf((np.hypot(xx - cx, yy - cy) - radius) / sigma)


def tolerance(true_width):
    return max(0.1 * true_width, 0.3)


def test_norm_cdf_matches_math_erf():
    z = np.linspace(-6, 6, 241)
    exact = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in z])
    assert np.abs(norm_cdf(z) - exact).max() < 2e-7
    assert WIDTH_PER_SIGMA == pytest.approx(2 * 1.2815516, abs=1e-6)     # Phi^-1(0.9) - Phi^-1(0.1)


def test_fit_erf_step_recovers_parameters_from_noisy_samples():
    rng = np.random.default_rng(1)
    x = np.linspace(-8, 10, 200)
    y = 0.12 + 0.3 * norm_cdf((x - 0.7) / 1.6) + rng.normal(0, 0.005, x.size)
    f = fit_erf_step(x, y)
    assert f["p"] == pytest.approx(0.12, abs=0.003) and f["c"] == pytest.approx(0.3, abs=0.004)
    assert f["d0"] == pytest.approx(0.7, abs=0.03) and f["sigma"] == pytest.approx(1.6, rel=0.02)
    assert fit_erf_step(x, np.full_like(x, 0.4)) is None                    # no rise, no edge


@pytest.mark.parametrize("size,radius,sigma", CASES)
def test_edge_width_of_erf_disc(size, radius, sigma):
    m = measure_pupil(erf_disc(size, radius, sigma), strict=False)          # a very soft disc is no pupil
    true = WIDTH_PER_SIGMA * sigma
    assert abs(m.edge_width_px - true) <= tolerance(true), (m.edge_width_px, true)
    assert abs(m.edge_width_p90_px - true) <= tolerance(true), (m.edge_width_p90_px, true)  # uniform edge
    assert abs(m.pupil_radius - radius) <= 0.1, m.pupil_radius


def test_edge_width_table(capsys):
    """The validation table (true vs measured), printed with -s; every row must meet the tolerance."""
    rows = []
    for size, radius, sigma in CASES[::3]:                                   # a third of the grid, all sizes
        m = measure_pupil(erf_disc(size, radius, sigma, seed=1), strict=False)
        true = WIDTH_PER_SIGMA * sigma
        rows.append((size, radius, sigma, true, m.edge_width_px, m.found))
    with capsys.disabled():
        print("\n size    R  sigma  true 10-90  measured   error  found")
        for size, radius, sigma, true, got, found in rows:
            print(f"{size:5d} {radius:4d} {sigma:6.1f} {true:10.2f} {got:9.2f} {got - true:+7.2f}  {found}")
    assert len({r[0] for r in rows}) == len(SIZES)
    assert all(abs(got - true) <= tolerance(true) for _, _, _, true, got, _ in rows)


def test_edge_width_with_noise_and_texture():
    """Sensor noise and a textured iris plateau: still within the tolerance."""
    rng = np.random.default_rng(2)
    for sigma in (0.5, 2.0, 4.0):
        img = erf_disc(128, 20, sigma)
        yy, xx = np.mgrid[:128, :128]
        texture = 0.03 * np.sin(np.arctan2(yy - 64, xx - 64) * 29) * (np.hypot(xx - 64, yy - 64) > 20 + 3 * sigma)
        m = measure_pupil(img + texture + rng.normal(0, 0.01, img.shape), strict=False)
        true = WIDTH_PER_SIGMA * sigma
        assert abs(m.edge_width_px - true) <= tolerance(true), (sigma, m.edge_width_px, true)
