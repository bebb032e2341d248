"""The found decision vs ground truth: synthetic irises (exact geometry) are found, at their true pupil; constructed
non-pupils (fuzzy blobs with grey halos, lumpy clovers, an iris without a pupil, noise, flat grey) are not."""
import math

import numpy as np
import pytest

from irislib.data import synthetic
from irislib.metrics import PUPIL_TESTS, measure_pupil, pupil_verdict

N_REAL, N_FAKE = 20, 6


def gblur(img, s):
    """Separable Gaussian blur, edge padded."""
    r = max(1, int(3 * s))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / s) ** 2)
    k /= k.sum()
    p = np.pad(img, r, mode="edge")
    p = np.apply_along_axis(lambda v: np.convolve(v, k, "valid"), 0, p)
    return np.apply_along_axis(lambda v: np.convolve(v, k, "valid"), 1, p)


def no_pupil(seed, size):
    """A synthetic eye whose pupil (and the glints in it) is painted over with iris texture from further out."""
    img, geo = synthetic.generate(seed, size)
    p, ir = geo["pupil"], geo["iris"]
    rp = math.sqrt(p["a"] * p["b"]) + 1.5
    yy, xx = np.mgrid[:size, :size].astype(float)
    rho, th = np.hypot(xx - p["cx"], yy - p["cy"]), np.arctan2(yy - p["cy"], xx - p["cx"])
    src = rp + 0.5 + rho / rp * max(1.0, min(rp, 0.8 * (ir["r"] - rp)))
    xi = np.clip(np.round(p["cx"] + src * np.cos(th)).astype(int), 0, size - 1)
    yi = np.clip(np.round(p["cy"] + src * np.sin(th)).astype(int), 0, size - 1)
    out = img.copy()
    out[rho <= rp] = img[yi[rho <= rp], xi[rho <= rp]]
    return out, p, rho


def halo_blob(seed, size):
    """The 32 px failure: a fuzzy dark blob (Gaussian, sigma >= 0.6 r) in a wider grey halo, no flat dark core."""
    rng = np.random.default_rng(seed)
    img, p, rho = no_pupil(seed, size)
    r = math.sqrt(p["a"] * p["b"])
    core = gblur((rho <= r * rng.uniform(0.5, 0.8)).astype(float), rng.uniform(0.6, 1.0) * r)
    halo = gblur((rho <= r * rng.uniform(1.2, 1.8)).astype(float), 0.5 * r)
    a = rng.uniform(0.45, 0.6) * core / core.max() + rng.uniform(0.2, 0.35) * halo
    return img * (1 - a) + a * 0.08


def lumpy(seed, size):
    """Three dark lumps around the pupil centre (a clover with a grey middle), softly blurred."""
    rng = np.random.default_rng(seed)
    img, p, _ = no_pupil(seed, size)
    r = math.sqrt(p["a"] * p["b"])
    yy, xx = np.mgrid[:size, :size].astype(float)
    a = np.zeros((size, size))
    for phi in rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(3) / 3 + rng.uniform(-0.3, 0.3, 3):
        cx, cy = p["cx"] + 0.75 * r * np.cos(phi), p["cy"] + 0.75 * r * np.sin(phi)
        a = np.maximum(a, (np.hypot(xx - cx, yy - cy) <= r * rng.uniform(0.4, 0.6)) * rng.uniform(0.6, 0.9))
    a = gblur(a, max(0.7, 0.12 * r))
    return img * (1 - a) + a * 0.08


def blurry_blob(seed, size):
    """A dark Gaussian spot (no edge at all) where the pupil was."""
    rng = np.random.default_rng(seed)
    img, p, rho = no_pupil(seed, size)
    a = rng.uniform(0.6, 0.9) * np.exp(-0.5 * (rho / (0.8 * math.sqrt(p["a"] * p["b"]))) ** 2)
    return img * (1 - a) + a * 0.08


def noise(seed, size):
    rng = np.random.default_rng(seed)
    return [rng.random((size, size)),                                             # white
            np.clip(0.45 + 1.5 * gblur(rng.standard_normal((size, size)), size / 16), 0, 1),   # smooth blobs
            np.clip(0.4 + 0.1 * rng.standard_normal((size, size)), 0, 1)][seed % 3]


def flat(seed, size):
    rng = np.random.default_rng(seed)
    return np.clip(rng.uniform(0.2, 0.7) + 0.01 * rng.standard_normal((size, size)), 0, 1)


FAKES = {"halo_blob": halo_blob, "lumpy": lumpy, "blurry_blob": blurry_blob,
         "no_pupil": lambda s, n: no_pupil(s, n)[0], "noise": noise, "flat": flat}


@pytest.fixture(scope="module")
def real():
    """{size: [(measurement, geometry)]} for synthetic irises not used elsewhere in the tests."""
    return {n: [(measure_pupil(img), geo) for img, geo in (synthetic.generate(5000 + s, n) for s in range(N_REAL))]
            for n in (32, 64, 128)}


@pytest.fixture(scope="module")
def fakes():
    return {(name, n): [measure_pupil(fn(7000 + s, n)) for s in range(N_FAKE)]
            for n in (32, 64, 128) for name, fn in FAKES.items()}


# Lowest found rate of the synthetic irises per size (at 32 px a pupil can be 2-4 px in radius and half hidden by
# glints: see test_synthetic_irises_are_found_at_their_pupil); at most one of six of each non-pupil at 64/128 px
# (32 px: test_non_pupils_at_32px_are_mostly_not_found).
MIN_REAL = {32: 0.55, 64: 0.95, 128: 0.95}


def test_found_table(real, fakes, capsys):
    """The found rates, printed with -s, against the bars above; noise and flat grey are never found."""
    sizes = (32, 64, 128)
    rows = {"synthetic": [np.mean([m.found for m, _ in real[n]]) for n in sizes]}
    rows.update({name: [np.mean([m.found for m in fakes[name, n]]) for n in sizes] for name in FAKES})
    with capsys.disabled():
        print("\nfound rate   " + "".join(f"{n:>7d}" for n in sizes))
        for name, rates in rows.items():
            print(f"{name:12s}" + "".join(f"{r:7.2f}" for r in rates))
    for n, rate in zip(sizes, rows.pop("synthetic")):
        assert rate >= MIN_REAL[n], (n, rate)
    for name, rates in rows.items():
        assert max(rates[1:]) <= 1 / 6 + 1e-9, (name, rates)
    assert not any(rows["noise"]) and not any(rows["flat"])


def at_pupil(m, geo):
    """Found means the true pupil (centre and radius within 1 px), not a lash clump or the whole iris."""
    p = geo["pupil"]
    return math.hypot(m.cx - p["cx"], m.cy - p["cy"]) < 1.0 and abs(m.pupil_radius - math.sqrt(p["a"] * p["b"])) < 1.0


@pytest.mark.parametrize("size,rate,misplaced", [(32, 0.55, 4), (64, 0.95, 0), (128, 0.95, 0)])
def test_synthetic_irises_are_found_at_their_pupil(real, size, rate, misplaced):
    """At 32 px a pupil can be 2-4 px in radius and half hidden by glints: segmentation then misses it, and a dark
    lash clump that passes every test is taken instead (known limit; 64 px is the size the claims are made at)."""
    found = [(m, g) for m, g in real[size] if m.found]
    right = sum(at_pupil(m, g) for m, g in found)
    assert right >= rate * N_REAL, [m.rejected for m, _ in real[size] if not m.found]
    assert len(found) - right <= misplaced


@pytest.mark.parametrize("size", [64, 128])
def test_non_pupils_are_not_found(fakes, size):
    for name in FAKES:
        assert sum(m.found for m in fakes[name, size]) <= 1, name           # at most one of six
    assert sum(m.found for name in FAKES for m in fakes[name, size]) <= 2


def test_non_pupils_at_32px_are_mostly_not_found(fakes):
    """At 32 px a pupil is ~4 px in radius and an eyelid fold can pass for one: a few slip through."""
    ms = [m for name in FAKES for m in fakes[name, 32]]
    assert np.mean([m.found for m in ms]) <= 0.25
    assert not any(m.found for name in ("noise", "flat") for m in fakes[name, 32])


def test_rejected_regions_say_why_and_strict_false_keeps_them():
    img = blurry_blob(7001, 64)
    m, loose = measure_pupil(img), measure_pupil(img, strict=False)
    assert not m.found and m.rejected and math.isnan(m.cx)
    assert not loose.found and loose.rejected == m.rejected and np.isfinite(loose.edge_width_px)
    assert set(m.rejected.split(",")) <= set(PUPIL_TESTS)
    assert pupil_verdict(loose, img.shape) == m.rejected
