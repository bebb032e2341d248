"""KID: unbiased MMD^2 vs a brute-force double loop; near 0 for one distribution, > 0 for clean vs blurred irises."""
import numpy as np
import pytest
import torch

from irislib.data import synthetic
from irislib.metrics import RandomConvFeatures, compute_kid, kid, kid_floor, mmd2_unbiased
from irislib.metrics.pupil import box_blur



def brute_mmd2(x, y):
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written as the textbook double sums."""
    d = x.shape[1]
    k = lambda a, b: (float(np.dot(a, b)) / d + 1) ** 3
    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return sxx + syy - 2 * sxy


def test_mmd2_unbiased_matches_double_loop():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 5)), rng.normal(0.3, 1.2, size=(9, 5))
    got = mmd2_unbiased(torch.from_numpy(x), y)
    assert got == pytest.approx(brute_mmd2(x, y), rel=1e-10)


def test_kid_on_features_zero_vs_shifted():
    g = torch.Generator().manual_seed(0)
    a, b, c = torch.randn(300, 32, generator=g), torch.randn(300, 32, generator=g), torch.randn(300, 32, generator=g)
    same, same_std = kid(a, b, subsets=50, subset_size=100)
    diff, diff_std = kid(a, c + 0.4, subsets=50, subset_size=100)
    assert abs(same) < 2 * same_std
    assert diff > 5 * diff_std and diff > 20 * abs(same)
    assert kid(a, b, subsets=5, subset_size=50, generator=3) == kid(a, b, subsets=5, subset_size=50, generator=3)
    with pytest.raises(ValueError, match="feature sizes differ"):
        kid(a, c[:, :5])


def test_random_conv_features_fixed_and_channel_agnostic():
    x = torch.rand(3, 1, 48, 80, generator=torch.Generator().manual_seed(1))
    f1, f2 = RandomConvFeatures(size=64), RandomConvFeatures(size=64)
    grey, rgb = f1(x), f2(x.repeat(1, 3, 1, 1))
    assert grey.shape == (3, f1.dim) and f1.dim == 480
    assert torch.allclose(grey, rgb, atol=1e-5)                   # same seed -> same net; RGB of grey = grey
    assert not torch.allclose(grey, RandomConvFeatures(size=64, seed=1)(x))
    with pytest.raises(ValueError, match=">= 32"):
        f1(torch.rand(2, 1, 16, 16))


def test_compute_kid_clean_vs_blurred_irises():
    clean = np.stack([synthetic.generate(s, 64)[0] for s in range(32)])
    blurred = np.stack([box_blur(synthetic.generate(s, 64)[0].astype(np.float64), 2) for s in range(100, 116)])
    ext = RandomConvFeatures(size=64)
    same, same_std = compute_kid(clean[:16], clean[16:], ext, subsets=50, subset_size=12)
    diff, diff_std = compute_kid(clean[:16], blurred, ext, subsets=50, subset_size=12)
    assert abs(same) < 2 * same_std
    assert diff > 2.5 * diff_std and diff > 5 * same_std       # far outside the same-distribution spread
    signed = compute_kid(torch.from_numpy(clean[:16] * 2 - 1)[:, None], clean[16:] * 2 - 1, ext, subsets=50,
                         subset_size=12)                          # [-1, 1] input is detected and rescaled
    assert signed == pytest.approx((same, same_std), rel=1e-4, abs=1e-7)
    floor, floor_std = kid_floor(clean, ext, subsets=20, subset_size=12)    # halves of the reference
    assert abs(floor) < diff / 3 and floor_std >= 0
