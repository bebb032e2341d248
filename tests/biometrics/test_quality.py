"""Quality components on constructed eyes whose contrast, circularity, margins and grey levels are known."""
import math
import sys
import types

import numpy as np
import pytest

from irislib.biometrics import Boundaries, quality_components, quality_report
from irislib.biometrics import quality as q
from irislib.biometrics.normalize import iris_pixels

P, I, S = 30.0, 100.0, 200.0                      # 8-bit grey levels of pupil, iris, sclera


def _eye(h=128, w=160, cx=79.5, cy=63.5, rp=15.0, ri=40.0, pdx=0.0, a=None, b=None):
    """Hard-edged eye: sclera, iris disc, pupil disc (or ellipse a x b along x), grey levels P, I, S."""
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    img = np.full((h, w), S)
    img[np.hypot(xx - cx, yy - cy) < ri] = I
    a, b = (rp, rp) if a is None else (a, b)
    img[np.hypot((xx - cx - pdx) / a, (yy - cy) / b) < 1] = P
    return img / 255.0, Boundaries(cx + pdx, cy, a, b, 0.0, cx, cy, ri)


def test_contrasts_ratio_concentricity_with_known_boundaries():
    img, bnd = _eye(pdx=4.0)
    c = quality_components(img, bnd)
    w = (I - P) / (20 + P)
    assert c.iris_pupil_contrast == pytest.approx(100 * w / (0.75 + w), abs=1e-6)          # 65.12
    assert c.iris_sclera_contrast == pytest.approx(100 * (S - I) / (S + I - 2 * P), abs=1e-6)   # 41.67
    assert c.pupil_iris_ratio == pytest.approx(37.5) and c.iris_radius == 40.0
    assert c.iris_pupil_concentricity == pytest.approx(90.0)                                 # 4 px of 40
    assert c.usable_iris_area == pytest.approx(100.0) and c.grey_scale_utilisation == 0.0    # flat iris
    assert c.pupil_boundary_circularity == pytest.approx(100.0)


def test_fitted_boundaries_give_the_same_values():
    img, bnd = _eye(pdx=4.0)
    c = quality_components(img)                                    # irislib.metrics fits
    assert c.found
    assert c.pupil_iris_ratio == pytest.approx(37.5, abs=1.5)
    assert c.iris_pupil_concentricity == pytest.approx(90.0, abs=1.0)
    assert c.iris_pupil_contrast == pytest.approx(65.12, abs=1.0)
    assert c.iris_sclera_contrast == pytest.approx(41.67, abs=1.0)


def test_margin_adequacy():
    assert q.margin_adequacy(Boundaries.circles(79.5, 63.5, 15, 40), (128, 160)) == pytest.approx(100.0)
    # left margin (56 - 40) / 40 = 0.4 radii of the 0.6 asked; vertical (64 - 40) / 40 = 0.6 >= 0.2
    assert q.margin_adequacy(Boundaries.circles(55.5, 63.5, 15, 40), (128, 160)) == pytest.approx(100 * 0.4 / 0.6)
    assert q.margin_adequacy(Boundaries.circles(20, 63.5, 15, 40), (128, 160)) == 0.0      # iris cut off


def test_pupil_boundary_circularity_of_an_ellipse():
    img, bnd = _eye(a=16.0, b=14.0)
    eps = (16 - 14) / (16 + 14)                     # r(phi) ~ r0 (1 + eps cos 2 phi): RMS deviation eps / sqrt 2
    assert quality_components(img, bnd).pupil_boundary_circularity == pytest.approx(100 * (1 - eps / math.sqrt(2)),
                                                                                    abs=0.05)


def test_grey_scale_utilisation_of_64_equally_used_levels():
    img, bnd = _eye()
    annulus, _, _ = iris_pixels(img.shape, bnd)
    n = annulus.sum() // 64 * 64
    levels = np.repeat(np.arange(80, 144), n // 64)[np.random.default_rng(0).permutation(n)]
    vals = np.full(annulus.sum(), 100)
    vals[:n] = levels
    img = img.copy()
    img[annulus] = vals / 255.0
    assert q.grey_scale_utilisation(levels / 255.0) == pytest.approx(6.0)
    assert quality_components(img, bnd).grey_scale_utilisation == pytest.approx(6.0, abs=0.02)


def test_usable_iris_area_with_an_eyelid():
    img, bnd = _eye()
    yy = np.mgrid[0:128, 0:160][0]
    lid = yy < 63.5 - 20                                          # bright skin over the top of the iris
    img = np.where(lid, 230 / 255, img)
    annulus, _, _ = iris_pixels(img.shape, bnd)
    truth = 100 * (1 - (annulus & lid).sum() / annulus.sum())
    assert quality_components(img, bnd).usable_iris_area == pytest.approx(truth, abs=2.0)


def _segment(r, d):
    """Area of the part of a disc of radius r beyond a line at distance d from its centre."""
    return r * r * math.acos(d / r) - d * math.sqrt(r * r - d * d) if d < r else 0.0


def test_usable_iris_area_of_an_iris_cut_by_the_frame():
    # Iris centre 14 px from the left edge (x = -0.5): a third of the 15-40 px annulus lies outside the image,
    # and what is not there cannot be used (a flat iris, no eyelid: the frame is the only occluder).
    img, bnd = _eye(cx=13.5)
    d = 13.5 + 0.5
    outside = (_segment(40, d) - _segment(15, d)) / (math.pi * (40 ** 2 - 15 ** 2))
    assert 0.30 < outside < 0.36
    c = quality_components(img, bnd)
    assert c.usable_iris_area == pytest.approx(100 * (1 - outside), abs=1.5)
    assert c.margin_adequacy == 0.0


def test_sharpness_flat_checkerboard_and_blur():
    assert q.sharpness(np.full((32, 32), 0.5)) == 0.0
    yy, xx = np.mgrid[0:32, 0:32]
    board = np.where(((yy // 4) + (xx // 4)) % 2 == 0, 0.6, 0.4)
    # In every 8x8 window the kernel (-1, central 4x4 +3) sees a 4x4 patch; power from a direct correlation:
    k = -np.ones((8, 8))
    k[2:6, 2:6] = 3
    x = board * 255
    resp = np.array([[np.sum(x[i:i + 8, j:j + 8] * k) for j in range(25)] for i in range(25)])
    power = np.mean(resp ** 2)
    assert q.sharpness(board) == pytest.approx(100 * power ** 2 / (power ** 2 + q.SHARPNESS_C ** 2))
    blurred = (board + np.roll(board, 1, 0) + np.roll(board, 1, 1) + np.roll(board, (1, 1), (0, 1))) / 4
    assert q.sharpness(blurred) < q.sharpness(board)


def test_quality_report_pass_shares():
    good, bnd = _eye()
    bad, bnd_bad = _eye(rp=32.0)                       # pupil/iris ratio 80: outside 20-70
    rep = quality_report(np.stack([good, bad]), [bnd, bnd_bad])
    comp = rep["components"]
    assert rep["n"] == 2 and rep["found_share"] == 1.0
    assert comp["pupil_iris_ratio"]["pass_share"] == 0.5 and comp["iris_radius"]["pass_share"] == 0.0
    assert comp["pupil_iris_ratio"]["threshold"] == ">= 20 and <= 70"
    with pytest.raises(ValueError, match="images01"):
        quality_report(np.zeros((4, 4)))


def _fake_iris_iqm(result: dict, seen: list):
    """A stand-in for iris-iqm's module: evaluate_array records its input and returns `result` as to_dict()."""
    def evaluate_array(img):
        seen.append(img)
        return types.SimpleNamespace(to_dict=lambda: dict(result))
    return types.SimpleNamespace(evaluate_array=evaluate_array)


BIQT_RESULT = {"error_code": 0, "iris_diameter": 200, "iris_pupil_ratio": 0.4, "usable_iris_area_percent": 80,
               "iso_iris_sclera_contrast": 37.4, "iso_iris_pupil_contrast": 78.4,
               "iso_pupil_boundary_circularity": 97.7, "iso_greyscale_utilization": 7.16, "iso_iris_pupil_concentricity": 93.6, "iso_margin_adequacy": 40.4,
               "iso_sharpness": 35.8}


def test_biqt_backend_takes_each_component_from_iris_iqm(monkeypatch):
    seen = []
    monkeypatch.setitem(sys.modules, "iris_iqm", _fake_iris_iqm(BIQT_RESULT, seen))
    c = q.biqt_components(np.full((256, 256), 0.5), capture_scale=2.0)
    assert seen[0].dtype == np.uint8 and seen[0].shape == (256, 256) and seen[0][0, 0] == 128   # 8-bit, as BIQT
    assert c.found and c.iris_radius == 200.0 and c.pupil_iris_ratio == pytest.approx(40.0)   # 100 px x 2
    assert (c.usable_iris_area, c.iris_sclera_contrast, c.iris_pupil_contrast, c.pupil_boundary_circularity,
            c.grey_scale_utilisation, c.iris_pupil_concentricity, c.margin_adequacy, c.sharpness) == \
        (80, 37.4, 78.4, 97.7, 7.16, 93.6, 40.4, 35.8)
    rep = quality_report(np.full((2, 256, 256), 0.5), backend="biqt")
    assert rep["found_share"] == 1.0 and rep["components"]["pupil_iris_ratio"]["mean"] == pytest.approx(40.0)
    monkeypatch.setitem(sys.modules, "iris_iqm", _fake_iris_iqm({**BIQT_RESULT, "error_code": -3}, seen))
    refused = q.biqt_components(np.zeros((128, 128)))
    assert not refused.found and math.isnan(refused.usable_iris_area)
    with pytest.raises(ValueError, match="takes no boundaries"):
        quality_report(np.zeros((1, 256, 256)), [None], backend="biqt")


def test_biqt_backend_without_iris_iqm_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "iris_iqm", None)            # import iris_iqm raises ImportError
    with pytest.raises(ImportError, match=r"needs iris-iqm \(pip install iris-iqm\)"):
        quality_report(np.zeros((1, 256, 256)), backend="biqt")


def test_biqt_backend_on_a_constructed_eye():
    pytest.importorskip("iris_iqm", reason="optional: pip install iris-iqm")
    img, _ = _eye(320, 320, 159.5, 159.5, 40.0, 100.0)
    c = q.biqt_components(img)
    assert c.found and c.pupil_iris_ratio == pytest.approx(40.0, abs=3) and c.iris_radius == pytest.approx(100, abs=6)
    assert c.iris_sclera_contrast == pytest.approx(100 * (S - I) / (S + I - 2 * P), abs=0.5)        # as ours: 41.7
    # BIQT takes its "iris" grey level for this one from a ring at 1.1-1.2 iris radii, i.e. the sclera: 81.9, not
    # the 65.1 of the iris next to the pupil (ours).
    assert c.iris_pupil_contrast == pytest.approx(q.iris_pupil_contrast(S, P), abs=0.5)
