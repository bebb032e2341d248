"""Pupil metrics vs ground truth under the changes a generator makes: synthetic irises (exact geometry) as drawn,
with the pupil lightened, half hidden by an upper eyelid, or with glints on its boundary. For each variant: found
rate, centre and radius error, and pupil_darkness error against the pupil grey level we know or set.

found must mean "a dark, roughly elliptical region was found and fitted": a lighter pupil is still a pupil (its
lightness is pupil_darkness's business), and an eyelid over part of it hides part of the outline, nothing more.
Run with -s to see the table."""
import math

import numpy as np
import pytest

from irislib.data import synthetic
from irislib.metrics import measure_pupil

N = 30                      # images per variant and size
SIZES = (128, 64)


def true_coverage(geo, shape, shrink=0.0):
    """Anti-aliased coverage [H, W] of the true pupil ellipse shrunk by `shrink` px (1-px linear ramp)."""
    p = geo["pupil"]
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(float)
    dx, dy = xx - p["cx"], yy - p["cy"]
    t = math.radians(p["angle_deg"])
    phi = np.arctan2(-dx * math.sin(t) + dy * math.cos(t), dx * math.cos(t) + dy * math.sin(t))
    rad = p["a"] * p["b"] / np.hypot(p["b"] * np.cos(phi), p["a"] * np.sin(phi))
    return np.clip(0.5 - (np.hypot(dx, dy) - rad + shrink), 0, 1)


def true_level(img, geo):
    """The drawn pupil's grey level (0..255): median over the true ellipse shrunk by 1.5 px (the generator's edge
    blur stays out), true glints and 1.5 px around them left out. Geometry only, nothing measured."""
    yy, xx = np.mgrid[:img.shape[0], :img.shape[1]].astype(float)
    inside = true_coverage(geo, img.shape, 1.5) >= 1
    for g in geo["glints"]:
        inside &= np.hypot(xx - g["x"], yy - g["y"]) > g["r"] + 1.5
    return 255 * float(np.median(img[inside]))


def lighten(img, geo, delta):
    """Add delta inside the true pupil (its coverage, so the edge stays where it was)."""
    return np.clip(img + delta * true_coverage(geo, img.shape), 0, 1)


def eyelid(img, geo, k, rng, skin=None):
    """Bright-ish skin (level `skin`, else 0.5-0.75) above an upper-lid curve through the image that covers the
    pupil down to k pupil radii above its centre (k = 0: the top half); the curve comes down towards the sides like
    a real upper lid."""
    p = geo["pupil"]
    yy, xx = np.mgrid[:img.shape[0], :img.shape[1]].astype(float)
    lid = p["cy"] - k * math.sqrt(p["a"] * p["b"]) + rng.uniform(0, 0.3) / geo["iris"]["r"] * (xx - p["cx"]) ** 2
    skin = (rng.uniform(0.5, 0.75) if skin is None else skin) + 0.01 * rng.standard_normal(img.shape)
    cover = np.clip(0.5 + lid - yy, 0, 1)                       # 1-px anti-aliased lid edge
    return np.clip(img * (1 - cover) + cover * skin, 0, 1)


def boundary_glints(img, geo, rng):
    """1-2 saturated glints centred on the true pupil boundary (half on the pupil, half on the iris)."""
    p = geo["pupil"]
    yy, xx = np.mgrid[:img.shape[0], :img.shape[1]].astype(float)
    out = img.copy()
    for th in rng.uniform(0, 2 * math.pi, rng.integers(1, 3)):
        phi = th - math.radians(p["angle_deg"])
        r = p["a"] * p["b"] / math.hypot(p["b"] * math.cos(phi), p["a"] * math.sin(phi))
        gx, gy, gr = p["cx"] + r * math.cos(th), p["cy"] + r * math.sin(th), rng.uniform(1.25, 0.03 * img.shape[0])
        cover = np.clip(gr + 0.5 - np.hypot(xx - gx, yy - gy), 0, 1)
        out = out * (1 - cover) + cover
    return out


# variant -> (image maker, lightening added to the true level); eyelid/glint variants keep the drawn level
VARIANTS = {
    "as drawn": (lambda img, geo, rng: img, 0.0),
    "lighter +0.05": (lambda img, geo, rng: lighten(img, geo, 0.05), 0.05),
    "lighter +0.1": (lambda img, geo, rng: lighten(img, geo, 0.1), 0.1),
    "lighter +0.2": (lambda img, geo, rng: lighten(img, geo, 0.2), 0.2),
    "lid at 0.4 r": (lambda img, geo, rng: eyelid(img, geo, 0.4, rng), 0.0),
    "lid at 0.0 r": (lambda img, geo, rng: eyelid(img, geo, 0.0, rng), 0.0),
    "glints on edge": (lambda img, geo, rng: boundary_glints(img, geo, rng), 0.0),
}
# Lowest found rate per (variant, size) where it is not 0.95. A pupil lightened by 0.2 can be as light as a dark
# iris (0.25-0.32 against 0.28-0.48): some have no pupil edge left to find. At 64 px a pupil of 4-5 px lightened by
# 0.1 sometimes merges with the iris darkened under the lid. An eyelid at the centre leaves half a pupil, which
# segmentation can merge with the lid's shadow.
MIN_FOUND = {("lighter +0.2", 128): 0.4, ("lighter +0.2", 64): 0.3, ("lighter +0.1", 64): 0.85,
             ("lid at 0.4 r", 128): 0.8, ("lid at 0.4 r", 64): 0.7, ("lid at 0.0 r", 128): 0.6,
             ("lid at 0.0 r", 64): 0.5}
# Half a pupil fixes its centre less well (an arc of 180 degrees): median centre error below 1 px, not 0.5.
MAX_CENTRE = {("lid at 0.0 r", 128): 1.0, ("lid at 0.0 r", 64): 2.5}
# At 64 px a half-hidden pupil of ~5 px radius is the measured weak spot: centre 1.8 px, radius 1.2 px off, darkness
# within 3 grey levels in 78 % (stated bars with some margin, not targets met).
MAX_RADIUS = {("lid at 0.0 r", 64): 1.5}
MIN_WITHIN_3 = {("lid at 0.0 r", 64): 0.7}


@pytest.fixture(scope="module")
def table():
    """{(variant, size): {found, centre, radius, darkness}}: found rate, then median |error| over the found
    images (centre px, equal-area radius px, pupil_darkness grey levels), and the share of found images with
    |darkness error| <= 3 grey levels. Seeds 20000+ are used nowhere else."""
    out = {}
    for size in SIZES:
        drawn = [synthetic.generate(20000 + s, size) for s in range(N)]
        for name, (make, delta) in VARIANTS.items():
            rows = []
            for s, (img, geo) in enumerate(drawn):
                m, p = measure_pupil(make(img, geo, np.random.default_rng(s))), geo["pupil"]
                rows.append((m.found, math.hypot(m.cx - p["cx"], m.cy - p["cy"]),
                             m.pupil_radius - math.sqrt(p["a"] * p["b"]),
                             m.pupil_darkness - (true_level(img, geo) + 255 * delta)))
            found = np.array([r[0] for r in rows])
            err = np.abs(np.array([r[1:] for r in rows])[found]) if found.any() else np.full((1, 3), np.nan)
            out[name, size] = {"found": found.mean(), "centre": np.median(err[:, 0]),
                               "radius": np.median(err[:, 1]), "darkness": np.median(err[:, 2]),
                               "darkness_within_3": np.mean(err[:, 2] <= 3)}
    return out


def test_validation_table(table, capsys):
    with capsys.disabled():
        print(f"\n{'variant':15s} {'size':>4s} {'found':>6s} {'centre px':>9s} {'|radius| px':>11s} "
              f"{'|darkness| grey':>15s} {'<=3 grey':>8s}")
        for (name, size), r in table.items():
            print(f"{name:15s} {size:4d} {r['found']:6.2f} {r['centre']:9.2f} {r['radius']:11.2f} "
                  f"{r['darkness']:15.2f} {r['darkness_within_3']:8.2f}")
    for (name, size), r in table.items():
        assert r["found"] >= MIN_FOUND.get((name, size), 0.95), (name, size, r)
        assert r["centre"] < MAX_CENTRE.get((name, size), 0.5), (name, size, r)
        assert r["radius"] < MAX_RADIUS.get((name, size), 0.5), (name, size, r)
        assert r["darkness"] < 1.5 and r["darkness_within_3"] >= MIN_WITHIN_3.get((name, size), 0.9), (name, size, r)


def test_pupil_darkness_tracks_the_lightening(table):
    """Lightening is no longer reported as "not found": found stays, and the darkness moves by what was added."""
    for size in SIZES:
        assert table["lighter +0.1", size]["found"] >= table["as drawn", size]["found"] - 0.05
    img, geo = synthetic.generate(20000, 128)
    base = measure_pupil(img)
    for delta in (0.05, 0.1):
        m = measure_pupil(lighten(img, geo, delta))
        assert m.found and m.pupil_darkness - base.pupil_darkness == pytest.approx(255 * delta, abs=1.5)
        assert base.iris_pupil_contrast - m.iris_pupil_contrast == pytest.approx(255 * delta, abs=2.0)


def test_eyelid_is_occlusion_not_outline():
    """Rays that end on a lid (skin at 0.7, brighter than any iris) are marked occluded, not counted as outliers or
    as pupil: a lid at 0.4 r hides an arc of 2 acos(0.4) = 132 degrees (37 % of the rays) and a few beside it."""
    pairs = []
    for s in range(6):
        img, geo = synthetic.generate(20100 + s, 128)
        pairs.append((measure_pupil(img), measure_pupil(eyelid(img, geo, 0.4, np.random.default_rng(s), 0.7))))
    assert np.median([clean.occluded_fraction for clean, _ in pairs]) < 0.03
    lid = [(clean, m) for clean, m in pairs if m.found and clean.found]
    assert len(lid) >= 5
    for clean, m in lid:
        # lid rays leave the fit (as occluded, or as rays without a valid edge), not as outliers of the ellipse
        assert 0.25 < 1 - m.ray_fraction < 0.6 and m.outlier_fraction < 0.15, (clean, m)
        assert abs(m.pupil_darkness - clean.pupil_darkness) < 1.5, (clean, m)
