"""Set-level pupil metrics: Wasserstein-1 vs scipy, measure_set/summarize/compare_sets on synthetic irises."""
import math

import numpy as np
import pytest
import torch

from irislib.data import synthetic
from irislib.metrics import compare_sets, measure_pupil, measure_set, metric_floors, summarize, wasserstein1


def test_wasserstein1_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n, m in ((1, 1), (5, 17), (37, 101), (200, 200)):
        a, b = rng.normal(size=n), rng.exponential(size=m) + rng.integers(0, 3, m)   # ties included
        assert wasserstein1(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12, abs=1e-12)
    a = rng.normal(size=50)
    assert wasserstein1(a, a + 2.5) == pytest.approx(2.5)                  # a shift moves every quantile
    assert wasserstein1(a, a[::-1]) == 0.0
    assert wasserstein1(np.r_[a, np.nan], a) == 0.0                        # NaN (not found) dropped
    assert math.isnan(wasserstein1([], a))


@pytest.fixture(scope="module")
def sets():
    clean = np.stack([synthetic.generate(s, 96)[0] for s in range(6)])
    other = np.stack([synthetic.generate(s, 96)[0] for s in range(50, 56)])
    blurred = np.stack([synthetic.generate(s, 96, pupil_blur_px=3)[0] for s in range(6)])
    return clean, other, blurred


def test_measure_set_accepts_batches_and_matches_single_images(sets):
    clean = sets[0]
    batch = torch.from_numpy(clean * 2 - 1)[:, None]                          # [N, 1, H, W] in [-1, 1]
    got = measure_set(batch)
    assert got["found"].all() and got["edge_width_px"].shape == (len(clean),)
    for i, img in enumerate(clean):
        m = measure_pupil(img)
        assert got["cx"][i] == pytest.approx(m.cx, abs=1e-3) and got["a"][i] == pytest.approx(m.a, abs=1e-3)
    as_list = measure_set(list(clean[:2]))
    assert np.allclose(as_list["b"], got["b"][:2], atol=1e-9)


def test_summarize_ignores_not_found():
    measures = {"found": np.array([True, True, False, True]),
                "edge_width_px": np.array([1.0, 2.0, np.nan, 4.0])}
    s = summarize(measures)
    assert s["found_rate"] == 0.75 and s["n_images"] == 4
    assert s["edge_width_px"] == {"mean": pytest.approx(7 / 3), "median": 2.0,
                                  "std": pytest.approx(np.std([1.0, 2.0, 4.0])), "n": 3}


def test_compare_sets_separates_blurred_pupils(sets):
    clean, other, blurred = sets
    ref = measure_set(clean)
    same = compare_sets(other, ref)
    bad = compare_sets(blurred, ref, strict=False)        # a 3 px blur is no pupil edge: measure the blobs anyway
    assert same["found_rate"] == {"generated": 1.0, "reference": 1.0}
    assert compare_sets(blurred, ref)["found_rate"]["generated"] <= 0.5
    assert same["w1"]["edge_width_px"] < 0.5 < 2.0 < bad["w1"]["edge_width_px"]
    assert bad["generated"]["edge_width_px"]["median"] > 2 * bad["reference"]["edge_width_px"]["median"]
    assert set(same["w1"]) >= {"ellipse_residual", "axis_ratio", "pupil_iris_ratio", "concentricity"}


def test_metric_floors_are_the_reference_values_and_split_half_noise(sets):
    clean, other, _ = sets
    ref = measure_set(np.concatenate([clean, other]))
    floors = metric_floors(ref)
    assert floors["n_reference"] == 12 and floors["found_rate"] == 1.0
    assert floors["median"]["edge_width_px"] == pytest.approx(np.median(ref["edge_width_px"]))
    # W1 floor: halves of one set are closer than the set is to a shifted copy of itself
    shifted = dict(ref, edge_width_px=ref["edge_width_px"] + 1.0)
    assert 0 < floors["w1"]["edge_width_px"] < 0.5 < compare_sets(shifted, ref)["w1"]["edge_width_px"]
    # Rescaling: floors for more generated images are smaller, as sqrt(1/n_gen + 1/n_ref)
    more = metric_floors(ref, n_generated=1200)
    ratio = math.sqrt((1 / 1200 + 1 / 12) / (2 / 12))
    assert more["w1"]["edge_width_px"] == pytest.approx(floors["w1"]["edge_width_px"] * ratio)


def lighten(img, geo, delta):
    """img + delta inside the true pupil ellipse (1-px anti-aliased edge): the pupil is lighter, nothing moves."""
    p = geo["pupil"]
    yy, xx = np.mgrid[:img.shape[0], :img.shape[1]].astype(float)
    dx, dy, t = xx - p["cx"], yy - p["cy"], math.radians(p["angle_deg"])
    phi = np.arctan2(-dx * math.sin(t) + dy * math.cos(t), dx * math.cos(t) + dy * math.sin(t))
    rad = p["a"] * p["b"] / np.hypot(p["b"] * np.cos(phi), p["a"] * np.sin(phi))
    return np.clip(img + delta * np.clip(0.5 - (np.hypot(dx, dy) - rad), 0, 1), 0, 1)


def test_compare_sets_reports_lighter_pupils_as_darkness_not_as_not_found(sets):
    """The hybrid samples' gap: pupils 0.05 lighter (12.75 grey levels) are all still found, and the W1 of
    pupil_darkness and iris_pupil_contrast, in grey levels, is that shift."""
    clean = sets[0]
    lighter = np.stack([lighten(img, synthetic.generate(s, 96)[1], 0.05) for s, img in enumerate(clean)])
    out = compare_sets(lighter, measure_set(clean))
    assert out["found_rate"] == {"generated": 1.0, "reference": 1.0}
    assert out["w1"]["pupil_darkness"] == pytest.approx(255 * 0.05, abs=1.0)
    assert out["w1"]["iris_pupil_contrast"] == pytest.approx(255 * 0.05, abs=2.0)
    assert out["w1"]["pupil_radius"] < 0.3 and out["w1"]["concentricity"] < 0.01      # geometry unchanged
