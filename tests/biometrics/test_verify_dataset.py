"""irislib.verify_dataset: FVC2000's EER (exactly pyeer's), leakage only against training images the user gave or a
shipped checkpoint's synthetic data (a hostile set's hidden run is never opened), its own report folder and
unreadable images left out, progress on stderr, and figures that say what they show."""
from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import irislib
from irislib.biometrics import figures
from irislib.evaluation.verify import CAPTIONS, error_rates

pyeer = pytest.importorskip("pyeer.eer_stats")   # installed by the test extra


@pytest.fixture(scope="module")
def eyes():
    from irislib.data.synthetic import identity_set
    images, labels, _ = identity_set(3, 2, 128, seed=1)
    return images, labels


def _write_set(root: Path, eyes) -> Path:
    for k, (im, lab) in enumerate(zip(*eyes)):
        d = root / f"s{lab}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(im * 255).astype(np.uint8)).save(d / f"{k}.png")
    return root


def test_eer_is_fvc2000s_not_the_closest_rates_on_a_hand_checked_case():
    gen, imp = [0.1, 0.2, 0.4], [0.3, 0.4, 0.4] + [0.5] * 7
    # t (accept HD <= t)   FMR    FNMR   FMR - FNMR   FMR + FNMR
    #   0.3                1/10   1/3    -0.233       0.433      the last t with FMR <= FNMR
    #   0.4                3/10   0      +0.300       0.300      the next: the rates cross between 0.3 and 0.4
    # FVC2000 takes the side with the smaller sum: EER = (3/10 + 0) / 2 = 0.15 at HD 0.4. argmin |FMR - FNMR|
    # took HD 0.3 (0.233 < 0.300): (1/10 + 1/3) / 2 = 0.2167, more errors of both kinds summed.
    r = error_rates(gen, imp)
    assert r["eer"] == pytest.approx(0.15, abs=1e-15) and r["eer_threshold"] == 0.4
    _, fmr, fnmr = pyeer.calculate_roc(np.array(gen), np.array(imp), ds_scores=True)
    assert pyeer.get_eer_values(fmr, fnmr)[3] == pytest.approx(0.15, abs=1e-15)


def test_eer_equals_pyeer_on_many_small_score_sets():
    """Hundreds of small seeded sets, half on a 1/32 grid (ties, as masked HDs have). pyeer leaves out the 'accept
    none' threshold, so when the rates cross next to it, it warns and returns 1; those few are checked by hand."""
    rng = np.random.default_rng(0)
    compared = 0
    for s in range(600):
        g = rng.normal(0.25, 0.08, rng.integers(1, 12))
        i = rng.normal(0.42, 0.05, rng.integers(1, 40))
        if s % 2:
            g, i = np.round(g * 32) / 32, np.round(i * 32) / 32
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, fmr, fnmr = pyeer.calculate_roc(g, i, ds_scores=True)
            ref = pyeer.get_eer_values(fmr, fnmr)[3]
        eer = error_rates(g, i)["eer"]
        if caught:      # the crossing is between 'accept none' (0, 1) and the lowest score's (fmr, fnmr)
            low = min(g.min(), i.min())
            first = (np.mean(i <= low), np.mean(g > low))
            assert sum(first) < 1 and eer == pytest.approx(sum(first) / 2, abs=1e-12), (g, i)
            continue
        compared += 1
        assert eer == pytest.approx(ref, abs=1e-12), (s, g, i)
    assert compared > 550


@pytest.fixture
def watch_opens():
    """(event, path) of every file opened or folder listed (audit events) while the test runs."""
    seen: list[tuple[str, str]] = []
    _HOOK_TARGET[:] = [seen]
    yield seen
    _HOOK_TARGET[:] = []


_HOOK_TARGET: list = []


def _audit(event, args):
    if _HOOK_TARGET and event in ("open", "os.scandir", "os.listdir") and args and isinstance(args[0], (str, Path)):
        _HOOK_TARGET[0].append((event, str(args[0])))


sys.addaudithook(_audit)


def test_a_run_folder_the_dataset_names_is_never_opened(eyes, tmp_path, monkeypatch, watch_opens):
    """A shared set whose settings.json names a hidden run of its own, whose config.json points at someone's
    photos: a plain verify_dataset reads none of them, caches nothing, and says why leakage was not checked."""
    monkeypatch.setenv("IRISLIB_CACHE", str(tmp_path / "cache"))
    private = tmp_path / "private_photos"
    private.mkdir()
    for k in range(4):
        Image.fromarray(np.round(eyes[0][k] * 255).astype(np.uint8)).save(private / f"me{k}.png")
    ds = _write_set(tmp_path / "shared", eyes)
    run = ds / ".run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": {"path": str(private), "image_size": 64}}))
    from safetensors.numpy import save_file
    save_file({"w": np.zeros(1, np.float32)}, str(run / "model.safetensors"))
    (ds / "settings.json").write_text(json.dumps({"unet": str(run)}))
    watch_opens.clear()          # what the test wrote above
    rep = irislib.verify_dataset(ds, tmp_path / "report", figures=False, progress=False)
    assert not [p for e, p in watch_opens if str(private) in p or (e == "open" and str(run) in p)]
    assert not (tmp_path / "cache").exists() or not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))
    assert rep["leakage"] is None
    md = (tmp_path / "report" / "verify.md").read_text()
    assert str(private) not in md and str(private) not in (tmp_path / "report" / "verify.json").read_text()
    assert "Not checked: settings.json names the UNet" in md and "is not opened" in md


def test_leakage_against_a_shipped_name_uses_its_synthetic_data_and_names_it_as_given(eyes, tmp_path, monkeypatch):
    """settings.json naming a manifest checkpoint trained on synthetic:N: leakage against those images, made from
    the manifest's config (nothing fetched), named as given, not by a cache folder."""
    from irislib import hub
    cache = tmp_path / "cache"
    monkeypatch.setenv("IRISLIB_CACHE", str(cache))
    monkeypatch.setattr(hub, "fetch", lambda *a, **k: pytest.fail("fetched a checkpoint for its training data"))
    ds = _write_set(tmp_path / "set", eyes)
    (ds / "settings.json").write_text(json.dumps({"unet": "iris64-unet"}))
    rep = irislib.verify_dataset(ds, tmp_path / "r", figures=False, n_training=4, progress=False)
    leak = rep["leakage"]
    assert leak["training_images"] == 4 and leak["training"] == "the first 4 training images of iris64-unet " \
                                                                 "(synthetic:2048)"
    md = (tmp_path / "r" / "verify.md").read_text()
    assert "Against the first 4 training images of iris64-unet (synthetic:2048) (" in md and str(cache) not in md
    assert "Why these: settings.json names iris64-unet, which checkpoints_manifest.json records as trained on " \
           "synthetic:2048." in md
    # as the notebooks record it: the run folder hub.fetch_run makes in the cache (never opened: it is not there)
    (ds / "settings.json").write_text(json.dumps({"unet": str(cache / "iris64-unet" / "run")}))
    cached = irislib.verify_dataset(ds, tmp_path / "r1", figures=False, n_training=4, progress=False)
    assert cached["leakage"]["training"] == leak["training"] and str(cache) not in json.dumps(cached)
    given = irislib.verify_dataset(ds, tmp_path / "r2", figures=False, n_training=4, progress=False,
                                   training="synthetic:8")
    assert given["leakage"]["training_images"] == 4 and given["leakage"]["why"].startswith("given as the training data")
    assert given["leakage"]["training"].startswith("the first 4 of synthetic:8")


def test_a_second_run_into_a_report_folder_inside_the_set_reads_the_same_images(eyes, tmp_path):
    ds = _write_set(tmp_path / "set", eyes)
    (ds / "notes").mkdir()
    (ds / "notes" / "readme.txt").write_text("not an identity")
    first = irislib.verify_dataset(ds, ds / "report", progress=False)
    again = irislib.verify_dataset(ds, ds / "report", progress=False)
    assert again["images"] == first["images"] == 6 and again["identities"] == 3
    assert again["eer"] == first["eer"] and again["left_out_folders"] == ["report"]


def test_every_figure_in_verify_md_has_its_caption(eyes, tmp_path):
    rep = irislib.verify_dataset(_write_set(tmp_path / "set", eyes), tmp_path / "r", progress=False)
    names = [Path(p).name for p in rep["figures"].values()]
    assert rep["captions"] == {n: CAPTIONS[n] for n in names} and len(names) == 3
    lines = [ln for ln in (tmp_path / "r" / "verify.md").read_text().splitlines() if ln.strip()]
    shown = [k for k, ln in enumerate(lines) if ln.startswith("![")]
    assert len(shown) == 3
    for k in shown:
        name = lines[k].split("(")[1].rstrip(")")
        assert lines[k + 1] == f"*{name}: {CAPTIONS[name]}*"


def test_an_unreadable_image_is_left_out_and_named(eyes, tmp_path, caplog):
    ds = _write_set(tmp_path / "set", eyes)
    (ds / "s1" / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\nnot a png at all")
    good = (ds / "s0" / "0.png").read_bytes()
    (ds / "s2" / "cut.png").write_bytes(good[:len(good) // 2])
    with caplog.at_level(logging.WARNING, logger="irislib.evaluation.verify"):
        rep = irislib.verify_dataset(ds, tmp_path / "r", figures=False, progress=False)
    assert rep["images"] == 6 and rep["unreadable"] == ["s1/garbage.png", "s2/cut.png"]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("garbage.png" in m for m in warned) and any("cut.png" in m for m in warned)
    assert "s1/garbage.png, s2/cut.png" in (tmp_path / "r" / "verify.md").read_text()


def test_progress_is_shown_on_stderr(eyes, tmp_path, capsys):
    from irislib.cli import main
    ds = _write_set(tmp_path / "set", eyes)
    assert main(["verify-dataset", str(ds), "--out", str(tmp_path / "r"), "--training", "none"]) in (0, None)
    err = capsys.readouterr().err
    assert "encoding identity images" in err and "matching identity images" in err
    assert main(["verify-dataset", str(ds), "--out", str(tmp_path / "r"), "--training", "none", "--quiet"]) in (0, None)
    assert "encoding identity images" not in capsys.readouterr().err


def test_det_with_perfect_separation_says_why_it_is_empty():
    r = error_rates([0.1, 0.2, 0.25], [0.4, 0.45, 0.5])
    assert r["eer"] == 0
    texts = [t.get_text() for t in figures.det_plot(r["fmr"], r["fnmr"], r["eer"]).axes[0].texts]
    assert any("no errors at any threshold" in t and "do not overlap" in t for t in texts)
    r = error_rates([0.1, 0.2, 0.42], [0.3, 0.45, 0.5])
    ax = figures.det_plot(r["fmr"], r["fnmr"], r["eer"]).axes[0]
    assert not ax.texts and [t.get_text() for t in ax.get_legend().get_texts()] == ["EER 33.33 %"]


def test_dilation_threshold_line_is_labelled():
    ax = figures.dilation_plot([0.0, 0.1], [0.2, 0.3], 0.34).axes[0]
    assert "match threshold HD 0.34" in [t.get_text() for t in ax.get_legend().get_texts()]
