"""irislib.dataset (synthetic identities x captures) and irislib.verify_dataset: layout, metadata, determinism,
resume after SIGKILL, refusal of other settings, and the verification report on sets with known answers."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import irislib
from irislib.config import ConfigError
from irislib.generate.dataset import COLUMNS
from irislib.evaluation.verify import error_rates, verify_dataset

KW = dict(identities=3, captures=2, steps=2, batch_size=2, device="cpu", progress=False)


ROOT = Path(__file__).resolve().parents[1]


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> Path:
    return irislib.dataset(tmp_path_factory.mktemp("a") / "set", "iris64-unet", "iris64-vae", **KW)


def test_layout_and_metadata(first):
    files = sorted(str(p.relative_to(first)) for p in first.rglob("*") if p.is_file())
    assert files == ["0001/0001_01.png", "0001/0001_02.png", "0002/0002_01.png", "0002/0002_02.png",
                     "0003/0003_01.png", "0003/0003_02.png", "metadata.csv", "settings.json"]
    with open(first / "metadata.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == COLUMNS and len(rows) == 6
    assert [(int(r["identity"]), int(r["capture"])) for r in rows] == [(i, c) for i in (1, 2, 3) for c in (1, 2)]
    for r in rows:
        assert Path(first / r["file"]).exists()
        assert 0.2 - 1e-9 <= float(r["pupil_iris_ratio"]) <= 0.7 + 1e-9
        assert abs(float(r["pupil_iris_ratio"]) - float(r["identity_pupil_iris_ratio"])) <= 0.15 + 1e-4
        assert abs(float(r["rotation_deg"])) <= 10 and len(json.loads(r["glints"])) >= 1
    assert len({r["identity_seed"] for r in rows}) == 3          # one seed per identity, shared by its captures
    settings = json.loads((first / "settings.json").read_text())
    assert settings["identities"] == 3 and settings["unet"] == "iris64-unet"
    assert settings["variation"]["dilation"] == 0.15
    with Image.open(first / "0002/0002_01.png") as im:
        assert im.size == (64, 64) and im.mode == "L"


def _rows(folder: Path) -> list[dict]:
    with open(folder / "metadata.csv") as f:
        return list(csv.DictReader(f))


def test_metadata_matches_the_pupil_fitted_on_the_written_images(first):
    """metadata.csv's pupil is where irislib's own pupil fit finds it on the PNGs read back. Tolerance: 0.25 px
    (radius and centre) and 0.01 (pupil/iris ratio), medians over the captures: the fit finds a boundary again to
    ~0.1 px through a capture's bilinear warp, blur and 8-bit rounding, and the lumpy pupils of 2-step draws add a
    little. When glint removal painted the iris ring next to the pupil dark, the fitted pupil here was 1.6 px
    larger (median; 2.4 px on the shipped 128 px pair) and the ratio 0.06 higher."""
    from irislib.metrics.pupil import measure_pupil
    rows = _rows(first)
    fits = [measure_pupil(np.asarray(Image.open(first / r["file"])), strict=False) for r in rows]
    radius = [m.pupil_radius - float(r["pupil_radius"]) for m, r in zip(fits, rows)]
    centre = [np.hypot(m.cx - float(r["pupil_cx"]), m.cy - float(r["pupil_cy"])) for m, r in zip(fits, rows)]
    ratio = [m.pupil_iris_ratio - float(r["pupil_iris_ratio"]) for m, r in zip(fits, rows)]
    assert np.median(np.abs(radius)) <= 0.25 and np.median(centre) <= 0.25, (radius, centre)
    assert np.median(np.abs(ratio)) <= 0.01, ratio


def test_settings_record_the_weights_the_device_and_the_units(first):
    """settings.json names what else the bytes depend on: the sha256 of the files sampling read (here the
    manifest's), the device type, and the variation's lengths both at 64 px scale and in this set's px."""
    from irislib import hub
    s = json.loads((first / "settings.json").read_text())
    entries = {e["name"]: e for e in hub.load_manifest()}
    assert s["weights_sha256"] == {"unet": entries["iris64-unet"]["sha256"], "vae": entries["iris64-vae"]["sha256"],
                                   "vae_prior": entries["iris64-vae"]["files"][0]["sha256"]}
    assert s["device"] == "cpu" and s["image_size"] == 64 and s["format"] == "irislib-dataset/2"
    assert s["variation_px"] == {"shift_px": 2.0, "defocus_px": [0.0, 0.4], "motion_px": [0.0, 0.8]}
    assert "at 64 px" in s["units"] and "metadata.csv" in s["units"]
    for r in _rows(first):
        assert max(abs(float(r["shift_x"])), abs(float(r["shift_y"]))) <= s["variation_px"]["shift_px"] + 1e-4
        assert float(r["defocus_sigma_px"]) <= s["variation_px"]["defocus_px"][1] + 1e-4


def _edited_copy(first: Path, folder: Path, **changes) -> Path:
    shutil.copytree(first, folder)
    settings = {**json.loads((folder / "settings.json").read_text()), **changes}
    (folder / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    return folder


@pytest.mark.parametrize("changes, message", [
    ({"device": "cuda"}, r"made on cuda \(now cpu, --device\); continuing would mix two models .*a new --out"),
    ({"weights_sha256": {"unet": "0" * 64}}, r"made with other UNet weights \(sha256 000000000000, now 3f2083a0a23b\)"),
    ({"format": "irislib-dataset/1"}, r"another irislib version \(format 'irislib-dataset/1'.*use a new --out"),
])
def test_a_folder_of_other_weights_device_or_format_is_refused(first, tmp_path, changes, message):
    folder = _edited_copy(first, tmp_path / "set", **changes)
    before = _tree(folder)
    with pytest.raises(ConfigError, match=message):
        irislib.dataset(folder, "iris64-unet", "iris64-vae", **KW)
    assert _tree(folder) == before


def test_resume_refuses_other_weights_behind_the_same_run_folder(tmp_path):
    """A run trained further (or a manifest entry republished) behind the name a set was started with: the set is
    refused before anything is written, naming the UNet's weights, instead of finishing with two models mixed."""
    from irislib.generate.loading import resolve_run
    unet, out = tmp_path / "unet", tmp_path / "set"
    shutil.copytree(resolve_run("iris64-unet"), unet)
    kw = dict(identities=1, captures=1, steps=1, device="cpu", progress=False)
    irislib.dataset(out, unet, "iris64-vae", **kw)
    shutil.rmtree(unet)
    shutil.copytree(resolve_run("iris64-unet-full"), unet)
    before = _tree(out)
    with pytest.raises(ConfigError, match=r"other UNet weights .*use a new --out, or the weights"):
        irislib.dataset(out, unet, "iris64-vae", **kw)
    assert _tree(out) == before


def test_cli_dataset_verify_writes_the_report_once(first, tmp_path, monkeypatch):
    """`irislib dataset --verify` still verifies (the CLI calls verify_dataset now, generate/ does not), and a
    re-run keeps a finished report."""
    from irislib.cli import main
    folder = tmp_path / "set"
    shutil.copytree(first, folder)
    calls = []

    def fake_verify(path, **kw):
        calls.append(Path(path))
        (Path(path) / "verify.json").write_text("{}")
    monkeypatch.setattr("irislib.evaluation.verify.verify_dataset", fake_verify)
    args = ["dataset", "--unet", "iris64-unet", "--vae", "iris64-vae", "--out", str(folder), "--identities", "3",
            "--captures", "2", "--steps", "2", "--batch-size", "2", "--device", "cpu", "--quiet", "--verify"]
    assert main(args) == 0 and main(args) == 0
    assert calls == [folder]


def test_deterministic(first, tmp_path):
    again = irislib.dataset(tmp_path / "set", "iris64-unet", "iris64-vae", **KW)
    assert _tree(again) == _tree(first)


def test_same_bytes_at_one_and_two_threads(first, tmp_path):
    """torch's reductions round differently with more threads; the identity's boundaries are fitted on its 8-bit
    image (as written), so the metadata does not move with them (it did: an ellipse angle in the 4th decimal)."""
    import torch
    threads = torch.get_num_threads()
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            out = irislib.dataset(tmp_path / f"t{t}", "iris64-unet", "iris64-vae", **KW)
            assert _tree(out) == _tree(first), f"{t} thread(s)"
    finally:
        torch.set_num_threads(threads)


def test_resume_after_sigkill(first, tmp_path):
    out = tmp_path / "set"
    code = (f"import irislib; irislib.dataset({str(out)!r}, 'iris64-unet', 'iris64-vae', identities=3, captures=2, "
            "steps=2, batch_size=2, device='cpu', progress=False)")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT)
    try:
        deadline = time.time() + 300
        while not (out / ".records" / "0001.json").exists():     # the first chunk is written, the second is not
            assert proc.poll() is None and time.time() < deadline, "the dataset run ended before it was cut off"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not (out / "metadata.csv").exists() and not (out / "0003" / "0003_02.png").exists()
    irislib.dataset(out, "iris64-unet", "iris64-vae", **KW)
    tree = _tree(out)
    assert tree == _tree(first)
    assert not any(Path(k).name.startswith(".") for k in tree)


def test_other_settings_refused(first, capsys):
    with pytest.raises(ConfigError, match="made with other settings .*identities"):
        irislib.dataset(first, "iris64-unet", "iris64-vae", **{**KW, "identities": 4})
    from irislib.cli import main
    assert main(["dataset", "--unet", "iris64-unet", "--vae", "iris64-vae", "--out", str(first), "--identities", "3", "--captures", "2", "--steps", "3",
                 "--batch-size", "2", "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "other settings (differs in steps)" in err


def test_error_rates_known_answers():
    gen, imp = [0.1, 0.2, 0.3, 0.36], [0.25, 0.4, 0.45, 0.5]
    r = error_rates(gen, imp)
    # t = 0.25: FMR 1/4, FNMR 2/4; t = 0.3: FMR 1/4, FNMR 1/4 -> EER 0.25 at HD 0.3.
    assert r["eer"] == pytest.approx(0.25) and r["eer_threshold"] == pytest.approx(0.3)
    # FMR <= 1e-3 means no impostor accepted: t < 0.25, FNMR 2/4.
    assert r["fnmr_at_fmr_1e-3"] == pytest.approx(0.5) and r["fnmr_at_fmr_1e-4"] == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    g, i = rng.normal(0.25, 0.05, 300), rng.normal(0.45, 0.02, 3000)
    r = error_rates(g, i)
    import pyeer.eer_stats as pyeer   # installed by the test extra: the peer must run, not skip
    thr, fmr, fnmr = pyeer.calculate_roc(g, i, ds_scores=True)
    assert r["eer"] == pytest.approx(pyeer.get_eer_values(fmr, fnmr)[-1], abs=1e-12)   # the same rule (FVC2000)


def test_verify_identity_set(tmp_path):
    from irislib.data.synthetic import identity_set
    images, labels, _ = identity_set(4, 3, 128, seed=1)   # at 64 px its genuine HD is ~0.42
    for k, (im, lab) in enumerate(zip(images, labels)):
        d = tmp_path / f"s{lab}"
        d.mkdir(exist_ok=True)
        Image.fromarray(np.round(im * 255).astype(np.uint8)).save(d / f"{k}.png")
    rep = irislib.verify_dataset(tmp_path, tmp_path / "report")
    assert rep["images"] == 12 and rep["identities"] == 4
    assert rep["genuine"]["n"] == 4 * 3 and rep["impostor"]["n"] == 12 * 11 // 2 - 12
    assert rep["genuine"]["mean"] < 0.34 < rep["impostor"]["mean"] and rep["d_prime"] > 2
    assert 0 <= rep["eer"] <= 0.2
    for name in ("verify.md", "verify.json", "hd_histograms.png", "det.png", "hd_vs_dilation.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    j = json.loads((tmp_path / "report" / "verify.json").read_text())
    assert {"d_prime", "eer", "fnmr_at_fmr_1e-3", "fnmr_at_fmr_1e-4", "genuine_hd_by_dilation_difference"} <= set(j)
    assert "d′" in (tmp_path / "report" / "verify.md").read_text()


def _write_set(root: Path, images, labels, prefix="s") -> None:
    for k, (im, lab) in enumerate(zip(images, labels)):
        d = root / f"{prefix}{lab}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(im * 255).astype(np.uint8)).save(d / f"{k}.png")


def test_verify_names_identities_that_are_one_eye_and_identities_copied_from_training(tmp_path):
    """Known answers: folder 'dup' holds the captures of s0 again (two identities, one eye); the training folder
    holds one capture of s2 (a memorised training eye). Every other pair is of different eyes."""
    from irislib.data.synthetic import identity_set
    images, labels, _ = identity_set(4, 3, 128, seed=1)
    _write_set(tmp_path / "set", images, labels)
    _write_set(tmp_path / "set", images[labels == 0][::-1], [0] * 3, prefix="dup")
    _write_set(tmp_path / "train", images[labels == 2][:1], [0])
    rep = irislib.verify_dataset(tmp_path / "set", tmp_path / "r", training=tmp_path / "train", figures=False)
    u = rep["uniqueness"]
    assert u["identity_pairs"] == 5 * 4 // 2 and u["pairs_below_threshold"] == 1
    assert {u["closest"]["a"], u["closest"]["b"]} == {"dup0", "s0"} and u["closest"]["hd"] < 0.05
    leak = rep["leakage"]
    assert leak["training_images"] == 1 and leak["identities_flagged"] == 1
    assert leak["flagged"][0]["identity"] == "s2" and leak["flagged"][0]["hd"] < 0.34
    assert leak["nearest_per_identity"]["n"] == 5
    md = (tmp_path / "r" / "verify.md").read_text()
    assert "dup0 and s0" in md or "s0 and dup0" in md
    assert "possibly memorised training eyes): 1" in md
    none = irislib.verify_dataset(tmp_path / "set", tmp_path / "r2", training="none", figures=False)
    assert none["leakage"] is None and "Not checked" in (tmp_path / "r2" / "verify.md").read_text()


def test_tissue_bend_moves_the_iris_off_the_rubber_sheet_the_matcher_undoes():
    """Pure rubber-sheet dilation is undone by the matcher's normalisation (genuine HD flat in the dilation
    difference); the bend is what makes HD rise with it, as on real eyes (Hollingsworth et al. 2009)."""
    from irislib import biometrics as bm
    from irislib.data.synthetic import generate
    from irislib.generate.dataset import warp_eye
    img, geom = generate(5, 128)
    bnd = bm.Boundaries.from_geometry(geom)
    ratio = bnd.pupil_radius / bnd.iris_r + 0.15
    base, _ = bm.encode_images(img[None], boundaries=[bnd])
    hds = []
    for bend in (0.0, 0.3):
        out, nb = warp_eye(img, bnd, ratio, 0.0, (0.0, 0.0), bend)
        assert nb.pupil_radius / nb.iris_r == pytest.approx(ratio)
        codes, _ = bm.encode_images(out[None], boundaries=[nb])
        hds.append(bm.hamming_pair(base, codes)[0])
    assert hds[0] < 0.2 and hds[1] > hds[0] + 0.05, hds
    with pytest.raises(ValueError, match="bend"):
        warp_eye(img, bnd, ratio, 0.0, (0.0, 0.0), 1.0)


@pytest.mark.parametrize("name", ["dataset", "verify-dataset"])
def test_commands_have_help(name, capsys):
    from irislib.cli import main
    with pytest.raises(SystemExit) as ex:
        main([name, "--help"])
    assert ex.value.code == 0 and "usage: irislib " + name in capsys.readouterr().out
