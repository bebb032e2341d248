"""Iris codes and the packed-bit matcher: self HD 0, rotation recovered, independent irises near 0.5,
packed popcount == the textbook loop == the torch SWAR kernel."""
import math

import numpy as np
import pytest

from irislib import biometrics as bm
from irislib.biometrics import match
from irislib.biometrics.match_torch import popcount64
from irislib.data.synthetic import generate, generate_capture
from irislib.metrics.image_ops import bilinear


@pytest.fixture(scope="module")
def eyes():
    out = [generate(s, 128) for s in range(12)]
    return np.stack([o[0] for o in out]), [bm.Boundaries.from_geometry(o[1]) for o in out]


def _random_codes(rng, n, cols=16, wpc=1, p_mask=0.9):
    bits = rng.random((n, cols, 64 * wpc)) < 0.5
    mask = rng.random((n, cols, 64 * wpc)) < p_mask
    return bm.pack(bits, mask), bits, mask


def test_pack_unpack_round_trip():
    codes, bits, mask = _random_codes(np.random.default_rng(0), 3, wpc=2)
    b2, m2 = bm.unpack(codes)
    assert np.array_equal(b2, bits) and np.array_equal(m2, mask) and codes.n_cols == 16


def test_packed_matcher_equals_reference_loop():
    rng = np.random.default_rng(1)
    a, ba, ma = _random_codes(rng, 4, wpc=2)
    b, bb, mb = _random_codes(rng, 5, wpc=2)
    mb[2] = False                                                   # no common bits -> NaN
    b = bm.pack(bb, mb)
    hd, sh = bm.hamming_matrix(a, b, max_shift=3)
    for i in range(4):
        for j in range(5):
            ref, s = bm.hamming_reference(ba[i], ma[i], bb[j], mb[j], max_shift=3)
            if j == 2:
                assert math.isnan(hd[i, j]) and math.isnan(ref)
            else:
                assert hd[i, j] == pytest.approx(ref, abs=1e-6) and sh[i, j] == s


def test_torch_kernel_and_lookup_popcount_agree_with_numpy(monkeypatch):
    import torch
    rng = np.random.default_rng(2)
    a, _, _ = _random_codes(rng, 6)
    b, _, _ = _random_codes(rng, 7)
    b.mask[3] = 0                                                   # no common bits: NaN in every backend
    hd, sh = bm.hamming_matrix(a, b, max_shift=4, backend="popcount")
    for backend in ("torch-popcount", "gemm"):
        hd_t, sh_t = bm.hamming_matrix(a, b, max_shift=4, backend=backend, device="cpu")
        assert np.array_equal(hd, hd_t, equal_nan=True) and np.array_equal(sh, sh_t), backend
    with pytest.raises(ValueError, match="backend"):
        bm.hamming_matrix(a, b, 2, backend="bogus")
    x = rng.integers(0, 2 ** 63, 100, dtype=np.uint64) * 2 + 1     # includes words with the top bit set
    ref = np.array([bin(int(v)).count("1") for v in x])
    assert np.array_equal(popcount64(torch.from_numpy(x.view(np.int64))).numpy(), ref)
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    assert np.array_equal(match.popcount_rows(x[:, None]), ref)


def test_iris_against_itself_is_zero(eyes):
    imgs, bnds = eyes
    codes, found = bm.encode_images(imgs, boundaries=bnds)
    hd, sh = bm.hamming_matrix(codes, codes)
    assert found.all() and np.all(np.diag(hd) == 0) and np.all(np.diag(sh) == 0)


def test_independent_irises_mean_hd_045_050(eyes):
    imgs, bnds = eyes
    hd, _ = bm.hamming_matrix(*[bm.encode_images(imgs, boundaries=bnds)[0]] * 2)
    st = bm.hd_stats(hd[np.triu_indices(len(imgs), 1)])
    assert st["n"] == 66 and 0.45 <= st["mean"] <= 0.50 and st["sd"] < 0.03


def _rotate(img, bnd, deg):
    """Image rotated by deg (from +x towards +y) about the pupil centre, and the rotated boundaries."""
    t = math.radians(deg)
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]].astype(float)
    dx, dy = xx - bnd.pupil_cx, yy - bnd.pupil_cy
    src = bilinear(img, bnd.pupil_cx + dx * math.cos(t) + dy * math.sin(t),
                   bnd.pupil_cy - dx * math.sin(t) + dy * math.cos(t))
    ox, oy = bnd.iris_cx - bnd.pupil_cx, bnd.iris_cy - bnd.pupil_cy
    new = bm.Boundaries(bnd.pupil_cx, bnd.pupil_cy, bnd.pupil_a, bnd.pupil_b, bnd.pupil_angle_deg + deg,
                        bnd.pupil_cx + ox * math.cos(t) - oy * math.sin(t),
                        bnd.pupil_cy + ox * math.sin(t) + oy * math.cos(t), bnd.iris_r)
    return np.nan_to_num(src, nan=float(np.median(img))), new


def test_rotated_copy_found_by_rotation_search(eyes):
    imgs, bnds = eyes
    spec = bm.IrisCodeSpec()
    col_deg = 360 / spec.n_cols
    rot, rb = _rotate(imgs[0], bnds[0], 5 * col_deg)                 # five code columns
    codes, _ = bm.encode_images(np.stack([imgs[0], rot]), spec, [bnds[0], rb])
    hd, sh = bm.hamming_pair(codes[0], codes[1], spec.max_shift)        # gallery = probe rolled by sh
    assert hd < 0.08 and sh == 5
    assert bm.hamming_matrix(codes[1], codes[0], max_shift=0)[0][0, 0] > 0.4     # no search: no match


@pytest.mark.parametrize("cols", [0.25, 2.5, -3.25, 5.75])
@pytest.mark.parametrize("fitted", [False, True], ids=["known", "fitted"])
def test_rotation_between_code_columns(eyes, cols, fitted):
    """A rotation between code columns lands on a nearest column, and the HD grows with the rest r (in columns)
    but stays a match: the finest filter's carrier spans 2 columns (4 strip columns), so its phase bits drift
    smoothly, about 0.45 r of HD (measured 0.09-0.25 at r = 0.25-0.5). Boundaries: rotated ground truth, or each
    image's own fit (the pipeline's segmentation)."""
    imgs, bnds = eyes
    spec = bm.IrisCodeSpec()
    for k in range(3):
        rot, rb = _rotate(imgs[k], bnds[k], cols * 360 / spec.n_cols)
        codes, found = bm.encode_images(np.stack([imgs[k], rot]), spec, None if fitted else [bnds[k], rb])
        hd, sh = bm.hamming_pair(codes[0], codes[1], spec.max_shift)
        rest = abs(cols - round(cols))
        assert found.all() and abs(sh - cols) <= 0.5, (k, sh)
        assert hd <= 0.06 + 0.45 * rest, (k, hd)


def test_capture_rotation_recovered_from_fitted_boundaries():
    """Two captures of one synthetic identity (other dilation, eyelids, blur), boundaries from irislib's fits."""
    (a, ga), (b, gb) = generate_capture(3, 0, 128), generate_capture(3, 2, 128)
    codes, found = bm.encode_images(np.stack([a, b]))
    hd, sh = bm.hamming_pair(codes[0], codes[1])
    assert found.all() and hd < 0.34
    assert abs(sh - gb["rotation_deg"] / (360 / 128)) <= 1.0


def test_two_mostly_masked_unrelated_codes_do_not_match_on_a_few_common_bits():
    """The review's case: ~20 usable bits each, 2 in common at one rotation, equal there: HD 0 without a minimum
    overlap. With the default minimum (5 % of the code's bits) the pair is not scored, in every backend."""
    rng = np.random.default_rng(7)
    cols, bits_per_col = 128, 128                             # the default spec's 16384-bit layout
    bits = rng.random((2, cols, bits_per_col)) < 0.5
    mask = np.zeros_like(bits)
    for k in range(2):
        mask[k].flat[rng.choice(cols * bits_per_col, 20, replace=False)] = True
    mask[0, 5, :2] = mask[1, 5, :2] = True                    # two common bits at shift 0 ...
    bits[1, 5, :2] = bits[0, 5, :2]                           # ... that agree
    codes = bm.pack(bits, mask)
    a, b = codes[[0]], codes[[1]]
    loose, _ = bm.hamming_matrix(a, b, max_shift=0, backend="popcount", min_common=1)
    assert loose[0, 0] == 0.0                                 # what the review reproduced
    assert match.min_common_bits(cols * bits_per_col) == 820
    for backend in ("popcount", "gemm", "torch-popcount"):
        hd, _ = bm.hamming_matrix(a, b, max_shift=0, backend=backend, device="cpu")
        assert math.isnan(hd[0, 0]), backend
    assert math.isnan(bm.hamming_reference(bits[0], mask[0], bits[1], mask[1], 0, min_common=820)[0])


def test_an_empty_probe_or_gallery_gives_an_empty_result_in_every_backend():
    codes, _, _ = _random_codes(np.random.default_rng(3), 3)
    for backend in ("popcount", "gemm", "torch-popcount"):
        for p, g in ((codes, codes[[]]), (codes[[]], codes), (codes[[]], codes[[]])):
            hd, sh = bm.hamming_matrix(p, g, max_shift=2, backend=backend, device="cpu")
            assert hd.shape == sh.shape == (len(p), len(g)), backend
    assert bm.leakage(codes, codes[[]], max_shift=2)["flagged"] == []


def test_leakage_lists_unencoded_images_apart_from_the_flagged_share():
    """An image the encoder could not segment is neither a memorised identity nor a cleared one."""
    imgs = np.stack([np.zeros((128, 128)), generate(11, 128)[0], generate(12, 128)[0]])
    gen, found = bm.encode_images(imgs)
    train, _ = bm.encode_images(imgs[1:2])
    leak = bm.leakage(gen, train)
    assert found.tolist() == [False, True, True] and leak["unencoded"] == [0]
    assert leak["flagged_share"] == 0.5 and [f["generated"] for f in leak["flagged"]] == [1]


def test_normalised_scores_equal_the_textbook_loop_in_every_backend():
    """Daugman's normalisation 0.5 - (0.5 - HD) sqrt(n / n_ref), per rotation before the minimum: the packed
    matcher, the torch kernel and the int8 products agree with the plain loop; a pair with few common bits is
    pulled towards 0.5, one with more than n_ref pushed away from it."""
    rng = np.random.default_rng(5)
    a, ba, ma = _random_codes(rng, 4, wpc=2, p_mask=0.5)
    b, bb, mb = _random_codes(rng, 5, wpc=2, p_mask=0.5)
    n_ref = 400
    hd, sh = bm.hamming_matrix(a, b, max_shift=3, n_ref=n_ref, backend="popcount")
    for i in range(4):
        for j in range(5):
            ref, s = bm.hamming_reference(ba[i], ma[i], bb[j], mb[j], max_shift=3, n_ref=n_ref)
            assert hd[i, j] == pytest.approx(ref, abs=1e-6) and sh[i, j] == s
    for backend in ("torch-popcount", "gemm"):
        hd_t, sh_t = bm.hamming_matrix(a, b, max_shift=3, n_ref=n_ref, backend=backend, device="cpu")
        assert np.allclose(hd, hd_t, atol=1e-6) and np.array_equal(sh, sh_t), backend
    raw, _ = bm.hamming_pair(a[0:1], b[0:1], 0)
    bits = int(np.sum(ma[0] & mb[0]))
    few, _ = bm.hamming_pair(a[0:1], b[0:1], 0, n_ref=4 * bits)
    assert few == pytest.approx(0.5 - (0.5 - raw) * 0.5, abs=1e-6)    # sqrt(1/4): halfway to 0.5
