"""Identity checks: leaked training copies (exact, blurred, noised) flagged, genuine/impostor separation, d'."""
import json
import math

import numpy as np
import pytest

from irislib import biometrics as bm
from irislib.data.synthetic import generate, identity_set
from irislib.data.synthetic_texture import gaussian_blur

BLUR_SIGMA_PX, NOISE_SD = 2.0, 0.08     # the strongest degradations still flagged at 128 px (HD ~0.21-0.30)


@pytest.fixture(scope="module")
def sets():
    train, labels, _ = identity_set(5, 3, 128, seed=7)
    rng = np.random.default_rng(0)
    fresh = np.stack([generate(900 + s, 128)[0] for s in range(6)])
    copies = np.stack([train[4], gaussian_blur(train[8], BLUR_SIGMA_PX),
                       np.clip(train[12] + rng.normal(0, NOISE_SD, train[12].shape), 0, 1)]).astype(np.float32)
    return train, labels, np.concatenate([fresh, copies])


def test_copies_flagged_as_leaked_and_fresh_samples_not(sets, tmp_path):
    train, labels, gen = sets
    rep = bm.identity_report(gen, train, threshold=0.34, out_dir=tmp_path, training_labels=labels)
    flagged = {(f["generated"], f["training"]) for f in rep["leakage"]["flagged"]}
    assert flagged == {(6, 4), (7, 8), (8, 12)}
    assert rep["leakage"]["flagged_share"] == pytest.approx(3 / 9)
    assert [f["hd"] for f in rep["leakage"]["flagged"]][0] == 0.0          # the exact copy, closest first
    assert rep["uniqueness"]["near_duplicate_pairs"] == 0 and 0.45 <= rep["uniqueness"]["mean"] <= 0.5
    gi = rep["training_genuine_impostor"]
    assert gi["genuine"]["n"] == 5 * 3 and gi["impostor"]["n"] == 105 - 15
    assert gi["genuine"]["mean"] < 0.36 < gi["impostor"]["mean"] and gi["d_prime"] > 3
    saved = json.loads((tmp_path / "identity.json").read_text())
    assert saved["leakage"]["flagged"][0]["training"] == 4
    for name in ("hd_histograms", "leaked_pairs", "near_duplicates"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000


def test_near_duplicates_among_generated(sets):
    _, _, gen = sets
    codes, _ = bm.encode_images(np.concatenate([gen[:3], gen[:1]]))
    uni = bm.uniqueness(codes, 0.34)
    assert uni["near_duplicate_pairs"] == 1 and uni["pairs"][0]["a"] == 0 and uni["pairs"][0]["b"] == 3
    assert uni["n"] == 6 and uni["samples_in_near_duplicates"] == 2


def _codes(seeds, blurred=()):
    """Codes of synthetic irises (ground-truth boundaries), then blurred copies of the irises at `blurred`."""
    out = [generate(s, 128) for s in seeds]
    imgs = [o[0] for o in out] + [gaussian_blur(out[k][0], BLUR_SIGMA_PX) for k in blurred]
    geo = [o[1] for o in out] + [out[k][1] for k in blurred]
    codes, found = bm.encode_images(np.stack(imgs), boundaries=[bm.Boundaries.from_geometry(g) for g in geo])
    assert found.all()
    return codes


def test_no_near_duplicates_among_1035_pairs_of_distinct_irises():
    uni = bm.uniqueness(_codes(range(1000, 1046)), 0.34)
    assert uni["n"] == 46 * 45 // 2 == 1035 and uni["near_duplicate_pairs"] == 0
    assert uni["samples_in_near_duplicates"] == 0 and uni["pairs"] == []
    assert 0.45 <= uni["mean"] <= 0.50 and uni["histogram"].sum() == 1035


def test_near_duplicates_counted_beyond_the_1000_pairs_listed():
    """Mode collapse: 46 copies of one iris (1035 pairs at HD 0), then an iris, 10 fresh ones and a blurred copy
    of that iris (its pair, HD ~0.25, is number 1036 by distance: counted and its two samples named, not listed)."""
    base = _codes([3000, 3001] + list(range(3002, 3012)), blurred=[1])
    codes = base[[0] * 46 + list(range(1, 13))]
    uni = bm.uniqueness(codes, 0.34)
    assert uni["n"] == 58 * 57 // 2 == 1653 and uni["near_duplicate_pairs"] == 1035 + 1
    assert uni["samples_in_near_duplicates"] == 46 + 2
    assert len(uni["pairs"]) == 1000 and {p["hd"] for p in uni["pairs"]} == {0.0}
    # Ordered by HD, then a, then b: pairs (a, b > a) with a < 37 number 45 + 44 + ... + 9 = 999.
    assert sum(45 - a for a in range(37)) == 999
    first, last = uni["pairs"][0], uni["pairs"][-1]
    assert (first["a"], first["b"], last["a"], last["b"]) == (0, 1, 37, 38)


def test_unencodable_image_never_matches():
    codes, found = bm.encode_images(np.stack([np.zeros((64, 64)), generate(1, 64)[0]]))
    assert not found[0] and found[1]
    assert math.isnan(bm.hamming_matrix(codes, codes)[0][0, 1])


def test_stats_and_d_prime_are_the_textbook_formulas():
    v = np.array([0.4, 0.5, 0.6, np.nan])
    st = bm.hd_stats(v)
    sd = np.std([0.4, 0.5, 0.6])
    assert st["n"] == 3 and st["mean"] == pytest.approx(0.5) and st["dof"] == pytest.approx(0.25 / sd ** 2)
    g, i = {"mean": 0.2, "sd": 0.03}, {"mean": 0.46, "sd": 0.04}
    assert bm.d_prime(g, i) == pytest.approx(0.26 / math.sqrt((0.03 ** 2 + 0.04 ** 2) / 2))


def test_subject_labels_and_argument_errors():
    files = ["001/L/a.bmp", "001/R/b.bmp", "007/L/c.bmp", "002/L/d.bmp"]
    assert bm.subject_labels(files).tolist() == [0, 0, 1, 2]
    with pytest.raises(ValueError, match="per-subject"):
        bm.subject_labels(["a.bmp"])
    with pytest.raises(ValueError, match="threshold"):
        bm.identity_report(np.zeros((2, 64, 64)), threshold=1.5)
    with pytest.raises(ValueError, match="labels"):
        bm.genuine_impostor(bm.encode_images(np.zeros((2, 64, 64)))[0], [0])
