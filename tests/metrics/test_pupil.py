"""Pupil/iris geometry metrics vs known geometry: own drawings (independent of the data worker) and the generator."""
import math

import numpy as np
import pytest
import torch

from irislib.data import synthetic
from irislib.metrics import pupil as P
from irislib.metrics.pupil import fit_ellipse, measure_pupil


# ----------------------------------------------------------------------------------------------- own drawings
def draw_eye(seed, size=96, ss=4):
    """Anti-aliased (ss x ss supersampled) eye: dark pupil ellipse, textured grey iris, bright sclera, an upper eyelid
    with dark lashes, 1-2 saturated glints in the pupil, sensor noise -> (image [H, W] in [0, 1], geometry)."""
    rng = np.random.default_rng(seed)
    c = (np.arange(size * ss) + 0.5) / ss - 0.5                      # pixel centres at integers
    X, Y = np.meshgrid(c, c)
    icx, icy, ir = size / 2 + rng.uniform(-3, 3), size / 2 + rng.uniform(-3, 3), size * rng.uniform(0.33, 0.42)
    pr, q, ang = ir * rng.uniform(0.25, 0.6), rng.uniform(0.88, 1.0), rng.uniform(0, math.pi)
    a, b = pr / math.sqrt(q), pr * math.sqrt(q)
    pcx, pcy = icx + rng.uniform(-2, 2), icy + rng.uniform(-2, 2)
    u = (X - pcx) * math.cos(ang) + (Y - pcy) * math.sin(ang)
    v = -(X - pcx) * math.sin(ang) + (Y - pcy) * math.cos(ang)
    pupil = (u / a) ** 2 + (v / b) ** 2 <= 1
    iris = np.hypot(X - icx, Y - icy) <= ir
    th = np.arctan2(Y - icy, X - icx)
    texture = 0.04 * np.sin(37 * th + rng.uniform(0, 6)) + 0.03 * np.sin(0.7 * np.hypot(X - icx, Y - icy) + th)
    img = np.where(iris, rng.uniform(0.35, 0.5) + texture, 0.8)
    img = np.where(pupil, 0.07, img)
    lid = Y < icy - ir * rng.uniform(0.75, 0.95) + 0.005 * (X - icx) ** 2
    img = np.where(lid, 0.65, img)
    for x0 in rng.uniform(icx - ir, icx + ir, 10):                   # lashes: thin dark slanted strokes
        y0 = icy - ir * 0.8
        t = np.clip(((X - x0) * 0.3 + (Y - y0)) / 1.09, 0, 12)
        img = np.where(np.hypot(X - x0 - 0.3 * t, Y - y0 - t) < 0.5, 0.1, img)
    for _ in range(rng.integers(1, 3)):
        gx, gy = pcx + rng.uniform(-0.5, 0.5) * b, pcy + rng.uniform(-0.5, 0.5) * b
        img = np.where(np.hypot(X - gx, Y - gy) <= rng.uniform(1.0, 2.0), 1.0, img)
    img = img.reshape(size, ss, size, ss).mean(axis=(1, 3)) + rng.normal(0, 0.01, (size, size))
    geo = {"pupil": {"cx": pcx, "cy": pcy, "a": a, "b": b, "angle_deg": math.degrees(ang) % 180},
           "iris": {"cx": icx, "cy": icy, "r": ir}}
    return np.clip(img, 0, 1).astype(np.float32), geo


def test_fit_ellipse_recovers_parameters():
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 2 * math.pi, 80)
    cx, cy, a, b, ang = 40.3, 51.7, 17.0, 11.0, math.radians(30)
    x = cx + a * np.cos(t) * math.cos(ang) - b * np.sin(t) * math.sin(ang)
    y = cy + a * np.cos(t) * math.sin(ang) + b * np.sin(t) * math.cos(ang)
    got = fit_ellipse(x, y)
    assert np.allclose(got[:4], (cx, cy, a, b), atol=1e-6) and abs(got[4] - 30) < 1e-6
    assert np.abs(P.radial_residuals(x, y, got)).max() < 1e-6
    assert fit_ellipse(x[:5], y[:5]) is None                          # under-determined: no ellipse, no error


def test_label_components_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:60, :70]
    r, th = np.hypot(xx - 35, yy - 30), np.arctan2(yy - 30, xx - 35)
    masks = [((r + 6 * th) % 12 < 5) & (r < 28)]                      # a spiral: worst case for propagation
    masks += [P.box_blur(rng.random((60, 70)), 2) > 0.5 + 0.02 * i for i in range(6)]
    for m in masks:
        lab, n = P.label_components(m)
        ref, n_ref = ndimage.label(m)
        assert n == n_ref and (lab[~m] == -1).all()
        assert len(set(zip(lab[m].tolist(), ref[m].tolist()))) == n  # same partition


def test_drawn_eyes_geometry_within_half_pixel():
    for seed in range(6):
        img, geo = draw_eye(seed)
        m, p = measure_pupil(img), geo["pupil"]
        assert m.found, seed
        assert abs(m.cx - p["cx"]) < 0.3 and abs(m.cy - p["cy"]) < 0.3, (seed, m)
        assert abs(m.a - p["a"]) < 0.5 and abs(m.b - p["b"]) < 0.5, (seed, m)
        assert m.ellipse_residual < 0.02 and m.edge_width_px < 2.5, (seed, m)
        assert abs(m.iris_radius - geo["iris"]["r"]) < 1.0, (seed, m)
        if p["a"] / p["b"] > 1.08:                                   # orientation is defined only for an ellipse
            assert abs((m.angle_deg - p["angle_deg"] + 90) % 180 - 90) < 6


def test_input_formats_agree():
    img, _ = draw_eye(3)
    ref = measure_pupil(img)
    variants = [img * 2 - 1, np.round(img * 255).astype(np.uint8), torch.from_numpy(img)[None],
                np.repeat(img[:, :, None], 3, axis=2)]
    for v in variants:
        m = measure_pupil(v)
        assert m.found and abs(m.cx - ref.cx) < 0.05 and abs(m.a - ref.a) < 0.1
    with pytest.raises(ValueError, match="one image"):
        measure_pupil(np.zeros((2, 2, 32, 32)))


def test_bad_images_give_not_found_without_raising():
    rng = np.random.default_rng(0)
    nan_img = np.full((64, 64), np.nan)
    for bad in (np.zeros((64, 64)), np.full((64, 64), 0.5), rng.random((64, 64)), nan_img, np.zeros((8, 8))):
        m = measure_pupil(bad)
        assert not m.found and math.isnan(m.cx) and math.isnan(m.ellipse_residual)


# ----------------------------------------------------------------------------------------------- the generator
SEEDS = range(20)


@pytest.fixture(scope="module")
def clean():
    return [synthetic.generate(s, 128) for s in SEEDS]


@pytest.fixture(scope="module")
def clean_measures(clean):
    return [measure_pupil(img) for img, _ in clean]


def smear(img, geo, seed):
    """Dark smear from the pupil into the iris over a 60-degree sector (what a bleeding diffusion pupil looks like)."""
    p = geo["pupil"]
    yy, xx = np.mgrid[:img.shape[0], :img.shape[1]]
    r, th = np.hypot(xx - p["cx"], yy - p["cy"]), np.arctan2(yy - p["cy"], xx - p["cx"])
    phi = np.random.default_rng(seed).uniform(-math.pi, math.pi)
    sector = np.abs((th - phi + math.pi) % (2 * math.pi) - math.pi) < math.radians(30)
    rp = math.sqrt(p["a"] * p["b"])
    alpha = np.clip(1 - (r - rp) / (0.6 * rp), 0, 1) * sector * (r >= rp - 1)
    return img * (1 - 0.8 * alpha) + 0.8 * alpha * 0.08


def test_generator_geometry_within_one_pixel(clean, clean_measures):
    err = []
    for (img, geo), m in zip(clean, clean_measures):
        p, ir = geo["pupil"], geo["iris"]
        assert m.found
        err.append([m.cx - p["cx"], m.cy - p["cy"], m.a - p["a"], m.b - p["b"], m.iris_radius - ir["r"],
                    m.pupil_iris_ratio - geo["pupil_iris_ratio"],
                    m.concentricity - math.hypot(p["cx"] - ir["cx"], p["cy"] - ir["cy"]) / ir["r"]])
    err = np.abs(np.array(err))
    assert (err[:, :4] < 1.0).all(), err[:, :4].max(axis=0)                   # centre and semi-axes
    assert err[:, :2].mean() < 0.15 and err[:, 2:4].mean() < 0.4, err.mean(axis=0)
    assert np.median(err[:, 4]) < 0.3 and (err[:, 4] < 1.0).mean() >= 0.95    # limbus (eyelids hide some)
    assert np.median(err[:, 5]) < 0.01 and (err[:, 5] < 0.03).all()            # pupil/iris radius ratio
    assert np.median(err[:, 6]) < 0.01 and (err[:, 6] < 0.04).mean() >= 0.95   # concentricity


def test_deformed_pupils_score_clearly_worse(clean_measures):
    seeds = list(SEEDS)[:10]
    res_clean = np.median([clean_measures[s].ellipse_residual for s in seeds])
    w_clean = np.median([clean_measures[s].edge_width_px for s in seeds])
    # A +-15 % three-lobed outline is lumpy and a 3 px blur leaves a soft blob, not a pupil edge, so found is
    # mostly False; strict=False keeps their measurements, which must still score them worse.
    lobed = [measure_pupil(synthetic.generate(s, 128, pupil_lobes=0.15)[0], strict=False) for s in seeds]
    blurred = [measure_pupil(synthetic.generate(s, 128, pupil_blur_px=3)[0], strict=False) for s in seeds]
    assert res_clean < 0.012 and w_clean < 2.5
    assert all(np.isfinite(m.ellipse_residual) and np.isfinite(m.edge_width_px) for m in lobed + blurred)
    assert sum(m.found for m in blurred) <= 3          # only large pupils (rise <= 0.3 r) keep a pupil edge
    assert np.median([m.ellipse_residual for m in lobed]) > 4 * res_clean
    assert min(m.ellipse_residual for m in lobed) > max(clean_measures[s].ellipse_residual for s in seeds)
    assert np.median([m.edge_width_px for m in blurred]) > 2.5 * w_clean
    assert min(m.edge_width_px for m in blurred) > max(clean_measures[s].edge_width_px for s in seeds)


def test_own_degradations_score_worse(clean, clean_measures):
    seeds = list(SEEDS)[:10]
    boxed = [measure_pupil(P.box_blur(clean[s][0].astype(np.float64), 2), strict=False) for s in seeds]  # 5x5 box
    smeared = [measure_pupil(smear(*clean[s], seed=s), strict=False) for s in seeds]
    for s, mb, ms in zip(seeds, boxed, smeared):
        c = clean_measures[s]
        assert mb.edge_width_px > c.edge_width_px + 1.5, (s, c.edge_width_px, mb.edge_width_px)
        assert (ms.ellipse_residual > 2 * c.ellipse_residual
                             or ms.edge_width_p90_px > c.edge_width_p90_px + 2), (s, c, ms)


def test_generator_64px_mostly_within_one_pixel():
    """At 64 px a pupil can be 4-5 px in radius and half covered by glints: most, not all, are measured right."""
    err = []
    for s in range(12):
        img, geo = synthetic.generate(s, 64)
        m, p = measure_pupil(img), geo["pupil"]
        err.append(max(abs(m.cx - p["cx"]), abs(m.cy - p["cy"]), abs(m.a - p["a"]), abs(m.b - p["b"])))
    err = np.nan_to_num(np.array(err), nan=np.inf)
    assert np.median(err) < 0.4 and (err < 1.0).mean() >= 0.75, err
