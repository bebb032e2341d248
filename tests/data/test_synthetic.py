"""Synthetic irises: determinism, sizes, plausible ranges, and geometry that matches the drawn pixels."""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from irislib.data import FolderDataset
from irislib.data.synthetic import SEED_STRIDE, SyntheticIrisDataset, generate, write_synthetic

SEEDS = range(40)


@pytest.fixture(scope="module")
def eyes():
    return [generate(s, 128) for s in SEEDS]


def _grids(img):
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]].astype(np.float64)
    return xx, yy


def _pupil_rho(geo, xx, yy):
    """Normalised elliptic radius of each pixel w.r.t. the ground-truth pupil (1 = on the outline)."""
    p = geo["pupil"]
    ang = math.radians(p["angle_deg"])
    dx, dy = xx - p["cx"], yy - p["cy"]
    u, v = dx * math.cos(ang) + dy * math.sin(ang), -dx * math.sin(ang) + dy * math.cos(ang)
    return np.sqrt((u / p["a"]) ** 2 + (v / p["b"]) ** 2)


def _clear(geo, xx, yy, margin=3.0):
    """Pixels away from the glints and inside the eye opening by `margin` px (no eyelid, few lashes)."""
    ok = np.ones_like(xx, dtype=bool)
    for g in geo["glints"]:
        ok &= np.hypot(xx - g["x"], yy - g["y"]) > g["r"] + 2.5
    up, lo = geo["eyelids"]["upper"], geo["eyelids"]["lower"]
    ok &= yy > up["y0"] + up["c"] * (xx - up["x0"]) ** 2 + margin
    ok &= yy < lo["y0"] + lo["c"] * (xx - lo["x0"]) ** 2 - margin
    return ok


def test_deterministic_per_seed_and_seeds_differ():
    a, ga = generate(7, 64)
    b, gb = generate(7, 64)
    c, _ = generate(8, 64)
    assert np.array_equal(a, b) and ga == gb
    assert np.abs(a - c).mean() > 0.02


@pytest.mark.parametrize("size,shape", [(64, (64, 64)), (128, (128, 128)), (320, (320, 320)),
                                        ((480, 640), (480, 640))])
def test_sizes(size, shape):
    img, geo = generate(3, size)
    assert img.shape == shape and img.dtype == np.float32
    assert img.min() >= 0 and img.max() == 1.0            # glints saturate
    assert geo["size"] == list(shape)
    h, w = shape
    if h == w:   # a tight square crop: the iris fills 60-90 % of the width
        assert 0.6 <= 2 * geo["iris"]["r"] / w <= 0.9
    else:        # a full frame: iris diameter 1/3-1/2 of the height
        assert 1 / 3 <= 2 * geo["iris"]["r"] / h <= 1 / 2
    json.dumps(geo)                                         # plain JSON types


def test_channels_3_replicates_grey():
    grey, _ = generate(2, 64)
    rgb, _ = generate(2, 64, channels=3)
    assert rgb.shape == (64, 64, 3) and all(np.array_equal(rgb[..., k], grey) for k in range(3))
    with pytest.raises(ValueError, match="channels"):
        generate(2, 64, channels=2)
    with pytest.raises(ValueError, match="too small"):
        generate(2, 8)


def test_geometry_ranges(eyes):
    ratios, axis_ratios = [], []
    for _, geo in eyes:
        p, i = geo["pupil"], geo["iris"]
        assert p["a"] >= p["b"] > 0
        ratios.append(geo["pupil_iris_ratio"])
        axis_ratios.append(p["b"] / p["a"])
        assert geo["pupil_iris_ratio"] == pytest.approx(math.sqrt(p["a"] * p["b"]) / i["r"])
        assert math.hypot(p["cx"] - i["cx"], p["cy"] - i["cy"]) <= 0.05 * 2 * i["r"]   # decentration
        assert 1 <= len(geo["glints"]) <= 8
        for g in geo["glints"]:   # in or near the pupil
            assert math.hypot(g["x"] - p["cx"], g["y"] - p["cy"]) <= 1.2 * p["a"] + g["r"]
        up = geo["eyelids"]["upper"]
        assert up["y0"] < p["cy"] - p["a"]                  # the upper lid leaves the pupil visible
    assert 0.2 <= min(ratios) and max(ratios) <= 0.65 and np.std(ratios) > 0.05
    assert 0.9 <= min(axis_ratios) and max(axis_ratios) <= 1.0 and min(axis_ratios) < 0.97


def test_geometry_matches_pixels(eyes):
    for img, geo in eyes:
        xx, yy = _grids(img)
        p, i = geo["pupil"], geo["iris"]
        rho = _pupil_rho(geo, xx, yy)
        clear = _clear(geo, xx, yy)
        no_glint = _clear(geo, xx, yy, margin=-1e9)
        inside = no_glint & (rho < 1 - 1.2 / p["b"])                        # pupil shrunk by 1.2 px
        ring = clear & (rho > 1 + 1.2 / p["b"]) & (rho < 1 + 3.5 / p["b"])   # just outside the pupil edge
        d_iris = np.hypot(xx - i["cx"], yy - i["cy"])
        iris = clear & (rho > 1 + 3 / p["b"]) & (d_iris < i["r"] - 3)
        sclera = clear & (d_iris > i["r"] + 4) & (d_iris < i["r"] + 10) & (np.abs(yy - i["cy"]) < 0.3 * i["r"])
        assert inside.sum() > 20 and ring.sum() > 20
        pupil_mean, ring_mean = img[inside].mean(), img[ring].mean()
        assert pupil_mean < 0.16, geo["seed"]
        assert ring_mean > pupil_mean + 0.12, geo["seed"]
        # A 2 px error in the returned ellipse puts iris pixels inside or pupil pixels in the ring.
        assert np.mean(img[inside] > 0.22) < 0.01 and np.mean(img[ring] < 0.15) < 0.04, geo["seed"]
        if sclera.sum() >= 10:
            assert img[sclera].mean() > img[iris].mean() + 0.05, geo["seed"]
        for g in geo["glints"]:
            near = np.hypot(xx - g["x"], yy - g["y"]) <= g["r"] + 0.5
            assert img[near].max() >= 0.99


def _edge_width(img, geo, half=4.0):
    """10-90 % rise width (px) of the mean radial profile across the pupil edge (window +-half px), glints and
    lids masked."""
    xx, yy = _grids(img)
    p = geo["pupil"]
    dist = (_pupil_rho(geo, xx, yy) - 1) * math.sqrt(p["a"] * p["b"])        # ~signed px from the outline
    ok = _clear(geo, xx, yy)
    edges = np.arange(-half, half + 0.01, 0.25)
    bins = [ok & (dist >= lo) & (dist < lo + 0.25) for lo in edges[:-1]]
    prof = np.array([img[m].mean() for m in bins if m.any()])
    centres = np.array([lo + 0.125 for lo, m in zip(edges[:-1], bins) if m.any()])
    lo, hi = prof[:4].mean(), prof[-4:].mean()
    t10, t90 = lo + 0.1 * (hi - lo), lo + 0.9 * (hi - lo)
    i90 = int(np.argmax(prof >= t90))                           # first bin past 90 %
    i10 = int(np.nonzero(prof[:i90] <= t10)[0][-1])             # last bin under 10 % before it (robust to noise)
    x90 = np.interp(t90, prof[i90 - 1:i90 + 1], centres[i90 - 1:i90 + 1])
    x10 = np.interp(t10, prof[i10:i10 + 2], centres[i10:i10 + 2])
    return x90 - x10


def test_pupil_edge_sharp_and_blur_option_widens_it():
    for seed in (1, 2, 3):
        sharp, geo = generate(seed, 128)
        blurred, geo_b = generate(seed, 128, pupil_blur_px=3.0)
        assert _edge_width(sharp, geo) < 1.8                         # ~1 px, as in real NIR captures
        assert _edge_width(blurred, geo, half=min(9.0, 0.8 * geo["pupil"]["b"])) > 5.0
        assert geo_b["pupil"]["blur_px"] == 3.0
        xx, yy = _grids(sharp)
        rho = _pupil_rho(geo, xx, yy)
        b = geo["pupil"]["b"]
        ring = _clear(geo, xx, yy) & (rho > 1 + 1 / b) & (rho < 1 + 3 / b)
        assert blurred[ring].mean() < sharp[ring].mean() - 0.03      # the dark pupil bleeds into the iris
        far = rho > 1 + 12 / b
        assert np.abs(blurred[far] - sharp[far]).max() < 1e-4        # nothing else changes


def test_pupil_lobes_deform_the_outline():
    for seed in (4, 5, 6):
        base, geo = generate(seed, 128)
        lobed, geo_l = generate(seed, 128, pupil_lobes=0.15)
        p = geo["pupil"]
        assert geo_l["pupil"]["lobes"] == 0.15 and geo_l["pupil"]["cx"] == p["cx"]
        xx, yy = _grids(base)
        th = np.arctan2(yy - p["cy"], xx - p["cx"])
        rho = _pupil_rho(geo, xx, yy)
        lobe = np.cos(3 * (th - math.radians(p["lobe_phase_deg"])))
        no_glint = _clear(geo, xx, yy, margin=-1e9)
        out = no_glint & (lobe > 0.9) & (rho > 1.03) & (rho < 1.10)       # inside the bulges only when lobed
        inn = _clear(geo, xx, yy) & (lobe < -0.9) & (rho > 0.90) & (rho < 0.97)   # pinched in when lobed
        assert out.sum() > 3 and inn.sum() > 3
        assert lobed[out].mean() < 0.2 < base[out].mean()
        assert base[inn].mean() < 0.2 < lobed[inn].mean()
        d_iris = np.hypot(xx - geo["iris"]["cx"], yy - geo["iris"]["cy"])
        assert np.abs(lobed - base)[d_iris > geo["iris"]["r"] + 6].max() < 1e-6   # skin and sclera unchanged


def test_dataset_items_match_generate():
    ds = SyntheticIrisDataset(4, 32, seed=2)
    assert len(ds) == 4
    x = ds[3]
    img, geo = generate(2 * SEED_STRIDE + 3, 32)
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32
    assert torch.allclose(x[0], torch.from_numpy(img * 2 - 1), atol=1e-3)
    assert ds.geometry(3) == geo and ds.geometry(-1) == geo
    assert torch.equal(SyntheticIrisDataset(4, 32, seed=2)[1], ds[1])
    assert not torch.equal(SyntheticIrisDataset(4, 32, seed=3)[1], ds[1])
    assert SyntheticIrisDataset(2, 32, channels=3)[0].shape == (3, 32, 32)
    with pytest.raises(IndexError):
        ds[4]


def test_write_synthetic_round_trip(tmp_path):
    paths = write_synthetic(tmp_path / "syn", 3, size=48, seed=1)
    assert [p.name for p in paths] == ["iris_00000.png", "iris_00001.png", "iris_00002.png"]
    records = json.loads((tmp_path / "syn" / "geometry.json").read_text())
    assert [r["file"] for r in records] == [p.name for p in paths]
    img, geo = generate(1 * SEED_STRIDE + 2, 48)
    assert records[2]["pupil"] == pytest.approx(geo["pupil"])
    with Image.open(paths[2]) as im:
        assert im.mode == "L" and np.array_equal(np.asarray(im), np.round(img * 255).astype(np.uint8))
    ds = FolderDataset(tmp_path / "syn", 48, progress=False)                 # geometry.json is not an image
    assert ds.files == [p.name for p in paths]
    assert torch.allclose(ds[2][0], torch.from_numpy(np.round(img * 255) / 255 * 2 - 1).float(), atol=1e-3)


def test_make_dataset_synthetic_seed_draws_other_eyes():
    from irislib.config import DataConfig
    from irislib.data import make_dataset
    a = make_dataset(DataConfig(path="synthetic:2", image_size=32))
    b = make_dataset(DataConfig(path="synthetic:2", image_size=32, synthetic_seed=1))
    assert torch.equal(a[0], make_dataset(DataConfig(path="synthetic:2", image_size=32))[0])
    assert not torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])
