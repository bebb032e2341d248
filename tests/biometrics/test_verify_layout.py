"""irislib.verify_dataset on real-set layouts and at real operating points: each folder holding images is one eye
(<subject>/<L|R>/<image> gives two identities per subject), a flat folder is refused, identities too small for a
genuine pair are left out and counted, and verification is reported at thresholds chosen on the impostor HDs
(FMR 1e-3 / 1e-4), the 0.34 copy threshold only for near-duplicates. Synthetic images only."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import irislib
from irislib.biometrics import figures
from irislib.config import ConfigError
from irislib.evaluation import verify
from irislib.evaluation.verify import error_rates, fmr_threshold


@pytest.fixture(scope="module")
def six_eyes():
    from irislib.data.synthetic import identity_set
    images, labels, _ = identity_set(6, 3, 128, seed=1)    # six different eyes, three captures each
    return images, labels


def _save(path: Path, im) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(im * 255).astype(np.uint8)).save(path)


@pytest.fixture
def scores(monkeypatch):
    """The (genuine, impostor) HDs, sorted, of every verify_dataset call while the test runs."""
    seen = []

    def spy(gen, imp):
        seen.append((np.sort(gen), np.sort(imp)))
        return error_rates(gen, imp)
    monkeypatch.setattr(verify, "error_rates", spy)
    return seen


def _run(folder, out, **kw):
    return irislib.verify_dataset(folder, out, figures=False, training="none", progress=False, **kw)


def test_left_and_right_eyes_of_a_subject_are_two_identities(six_eyes, tmp_path, scores):
    """Eyes 2j and 2j+1 as subject 100j's L and R: the same pairs, bit for bit, as the eyes laid out flat. Merging
    a subject's folder into one identity (as before) made its 3 x 3 L/R pairs genuine: 45 genuine pairs, not 18."""
    images, labels = six_eyes
    for k, (im, lab) in enumerate(zip(images, labels)):
        _save(tmp_path / "nested" / f"{1000 + lab // 2}" / "LR"[lab % 2] / f"{k}.png", im)
        _save(tmp_path / "flat" / f"e{lab}" / f"{k}.png", im)
    nested = _run(tmp_path / "nested", tmp_path / "r1")
    flat = _run(tmp_path / "flat", tmp_path / "r2")
    assert nested["identities"] == 6 and nested["subjects"] == 3 and flat["subjects"] == 6
    assert nested["genuine"]["n"] == 6 * 3 and nested["impostor"]["n"] == 18 * 17 // 2 - 18
    (g1, i1), (g2, i2) = scores
    assert np.array_equal(g1, g2) and np.array_equal(i1, i2)
    assert nested["d_prime"] == flat["d_prime"] and nested["eer"] == flat["eer"] and nested["d_prime"] > 3
    assert "18 images of 6 identities (one eye each, of 3 subjects" in (tmp_path / "r1" / "verify.md").read_text()


def test_eye_labels_name_each_folder_holding_images():
    files = ["1001/L/a.png", "1001/L/b.png", "1001/R/a.png", "1001/c.png", "1001/d.png", "s7/x.png"]
    labels, names, subjects = verify.eye_labels(files)
    assert names == ["1001/L", "1001/R", "1001", "s7"] and subjects == ["1001", "1001", "1001", "s7"]
    assert labels.tolist() == [0, 0, 1, 2, 2, 3]


def test_a_flat_folder_is_refused_in_one_line(six_eyes, tmp_path, capsys):
    for k in range(3):
        _save(tmp_path / "flat" / f"{k}.png", six_eyes[0][k])
    with pytest.raises(ConfigError, match=r"3 images directly in the folder .*<folder>/<subject>/<L\|R>/<image>"):
        _run(tmp_path / "flat", tmp_path / "r")
    from irislib.cli import main
    assert main(["verify-dataset", str(tmp_path / "flat"), "--training", "none", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "<folder>/<eye>/<image>" in err


def test_images_beside_subfolders_are_their_folders_identity_and_top_images_are_left_out(six_eyes, tmp_path):
    """s0 holds eye 0's captures and a subfolder x with eye 1's: two identities. A grid.png at the top is no
    identity's: left out and named."""
    images, labels = six_eyes
    where = {0: "s0", 1: "s0/x", 2: "s2"}
    for k, (im, lab) in enumerate(zip(images, labels)):
        if lab in where:
            _save(tmp_path / "set" / where[lab] / f"{k}.png", im)
    _save(tmp_path / "set" / "grid.png", images[0])
    rep = _run(tmp_path / "set", tmp_path / "r")
    assert rep["identities"] == 3 and rep["subjects"] == 2 and rep["genuine"]["n"] == 3 * 3
    assert rep["images"] == 9 and rep["left_out_top_images"] == ["grid.png"]
    assert "in no identity's folder): grid.png" in (tmp_path / "r" / "verify.md").read_text()


def test_identities_with_too_few_images_are_left_out_and_counted(six_eyes, tmp_path):
    images, labels = six_eyes
    for k, (im, lab) in enumerate(zip(images, labels)):
        if lab < 3:
            _save(tmp_path / "set" / f"s{lab}" / f"{k}.png", im)
    _save(tmp_path / "set" / "lone" / "0.png", images[labels == 4][0])
    rep = _run(tmp_path / "set", tmp_path / "r")
    assert rep["identities"] == 3 and rep["images"] == 9 and rep["identities_too_few_images"] == 1
    assert rep["too_few_images"] == {"lone": 1} and rep["impostor"]["n"] == 9 * 8 // 2 - 9
    assert "Identities left out with fewer than 2 images (no genuine pair): 1 (lone: 1)" in \
        (tmp_path / "r" / "verify.md").read_text()
    from irislib.cli import main
    assert main(["verify-dataset", str(tmp_path / "set"), "--out", str(tmp_path / "r1"), "--training", "none",
                 "--quiet", "--min-images", "1"]) in (0, None)
    kept = json.loads((tmp_path / "r1" / "verify.json").read_text())
    assert kept["identities"] == 4 and kept["identities_too_few_images"] == 0
    assert kept["impostor"]["n"] == 10 * 9 // 2 - 9
    with pytest.raises(ConfigError, match="--min-images 0"):
        _run(tmp_path / "set", tmp_path / "r2", min_images=0)


def test_threshold_at_fmr_is_the_impostor_order_statistic():
    """2,000 distinct impostor HDs: FMR <= 1e-3 allows 2 accepted, so the threshold is the 2nd lowest impostor,
    whatever genuine HDs lie between it and the 3rd (chosen on the impostors alone); FMR 1e-4 allows none: the
    zero-FMR point just below the lowest. FNMR there is a plain count of genuine HDs above the threshold."""
    imp = 0.30 + np.arange(2000) * 1e-4
    s = np.sort(imp)
    gen = [0.1, 0.2, s[1], s[1] + 5e-5, 0.35, 0.5]      # s[1] accepted (HD <= t); s[1] + 5e-5 is not
    r = error_rates(gen, np.random.default_rng(0).permutation(imp))
    assert r["threshold_at_fmr_1e-3"] == s[1] and r["fmr_at_fmr_1e-3"] == 2 / 2000
    assert r["fnmr_at_fmr_1e-3"] == np.sum(np.array(gen) > s[1]) / len(gen) == 3 / 6
    assert r["threshold_at_fmr_1e-4"] == np.nextafter(s[0], -np.inf) and r["fmr_at_fmr_1e-4"] == 0
    assert r["fnmr_at_fmr_1e-4"] == 4 / 6                   # s[1] and above are rejected
    tied = imp.copy()
    tied[2] = tied[1]                                       # 3 impostors at s[1]: FMR 3/2000 there
    assert fmr_threshold(tied, 1e-3) == s[0]


def test_fmr_threshold_on_tied_scores_is_the_largest_impostor_hd_within_the_target():
    rng = np.random.default_rng(1)
    for n in (999, 1000, 4321):
        imp = np.round(rng.normal(0.45, 0.03, n) * 64) / 64       # a 1/64 grid: many ties, as masked HDs
        within = [v for v in np.unique(imp) if np.sum(imp <= v) / n <= 1e-3]
        want = max(within) if within else np.nextafter(imp.min(), -np.inf)
        assert fmr_threshold(imp, 1e-3) == want, n


def test_verify_md_headline_is_the_fmr_operating_point_and_0_34_the_copy_threshold(six_eyes, tmp_path, scores,
                                                                                    monkeypatch):
    """135 impostor pairs: FMR 1e-3 is measured only as the zero-FMR point, below the lowest impostor HD. The
    histogram draws both lines, each named."""
    images, labels = six_eyes
    for k, (im, lab) in enumerate(zip(images, labels)):
        _save(tmp_path / "set" / f"s{lab}" / f"{k}.png", im)
    legends, plot = [], figures.hd_histogram_plot

    def spy(*a, **k):
        fig = plot(*a, **k)
        legends.append([t.get_text() for t in fig.axes[0].get_legend().get_texts()])
        return fig
    monkeypatch.setattr(figures, "hd_histogram_plot", spy)
    rep = irislib.verify_dataset(tmp_path / "set", tmp_path / "r", training="none", progress=False)
    assert legends == [["genuine (n=18)", "impostor (n=135)", "copy threshold 0.34",
                        f"FMR 1e-3 threshold {rep['threshold_at_fmr_1e-3']:.3f}"]]
    gen, imp = scores[0]
    t = rep["threshold_at_fmr_1e-3"]
    assert t == fmr_threshold(imp, 1e-3) == np.nextafter(float(imp[0]), -np.inf) and rep["copy_threshold"] == 0.34
    assert rep["fnmr_at_fmr_1e-3"] == np.mean(gen > t) and rep["fmr_at_fmr_1e-3"] == 0
    md = (tmp_path / "r" / "verify.md").read_text().splitlines()
    head = next(k for k, ln in enumerate(md) if ln.startswith("**"))
    assert md[head].startswith(f"**Verification at FMR 1e-3: accept HD < {imp[0]:.3f}, the zero-FMR point**")
    copy = next(k for k, ln in enumerate(md) if ln.startswith("Copy threshold HD 0.34"))
    assert head < copy and "the copy threshold's FNMR" in md[copy] and "not a verification operating point" in md[copy]
    table = md[md.index("| d′ | EER (at HD) | FNMR at FMR 1e-3 (at HD) | FNMR at FMR 1e-4 (at HD) |") + 2]
    assert "0.34" not in table and any("closer than the copy threshold HD 0.34" in ln for ln in md)


def test_headline_with_enough_impostors_is_the_impostor_order_statistic():
    imp = 0.30 + np.arange(2000) * 1e-4
    gen = [0.1, 0.2, imp[1], 0.35, 0.5]
    rep = {**error_rates(gen, imp), "d_prime": 5.0, "copy_threshold": 0.34, "fnmr_at_copy_threshold": 0.4,
           "fmr_at_copy_threshold": 0.0}
    lines = verify._operating_lines(rep, lambda v, d=3: f"{v:.{d}f}")
    assert lines[0] == "**Verification at FMR 1e-3: accept HD <= 0.300** (the FMR 1e-3 threshold, chosen on the " \
                       "impostor HDs): FNMR 40.00 % there, FMR 0.100 %."
    assert lines[4].endswith("| 40.00 % (HD <= 0.300) | 60.00 % (HD < 0.300, the zero-FMR point) |")


def test_dilation_figure_draws_the_operating_threshold_it_is_given():
    ax = figures.dilation_plot([0.0, 0.1], [0.2, 0.3], 0.42546, "FMR 1e-3 threshold").axes[0]
    assert "FMR 1e-3 threshold HD 0.425" in [t.get_text() for t in ax.get_legend().get_texts()]
    ax = figures.dilation_plot([0.0, 0.1], [0.2, 0.3], float("nan")).axes[0]   # no threshold: none drawn
    assert not any("threshold" in t.get_text() for t in ax.get_legend().get_texts())


def test_an_image_with_no_plausible_eye_is_listed_with_the_reason(six_eyes, tmp_path):
    """A frame segmentation rejects is left out of the pairs and named in verify.json and verify.md with why, and
    every score that was computed is in scores.npz."""
    from irislib.data.synthetic import no_eye_frames
    images, labels = six_eyes
    for k, (im, lab) in enumerate(zip(images, labels)):
        _save(tmp_path / "set" / f"e{lab}" / f"{k}.png", im)
    _save(tmp_path / "set" / "e0" / "blank.png", no_eye_frames(128, 128, seed=4)["blank"])
    rep = _run(tmp_path / "set", tmp_path / "r")
    assert rep["unencoded"] == ["e0/blank.png"] and rep["unencoded_why"]["e0/blank.png"].startswith("no pupil")
    assert "e0/blank.png (no pupil" in (tmp_path / "r" / "verify.md").read_text()
    saved = np.load(tmp_path / "r" / "scores.npz")
    assert len(saved["genuine"]) == rep["genuine"]["n"] == 6 * 3 and len(saved["impostor"]) == rep["impostor"]["n"]
