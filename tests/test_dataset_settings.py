"""irislib.dataset's settings are checked before anything is written; each capture has its own random stream; the
progress bar moves while identities are sampled; glint removal leaves the pupil's edge alone."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

import irislib
from irislib.config import ConfigError
from irislib.generate import dataset as ds
from irislib.generate.dataset import CaptureVariation

TINY = dict(identities=1, captures=1, steps=1, batch_size=1, device="cpu", progress=False)
PAIR = ("iris64-unet", "iris64-vae")

BAD = [  # (a bad value, what the one-line error must name)
    ({"seed": -1}, r"^seed \(--seed\)=-1: must be a whole number >= 0 and <= \d+"),
    ({"seed": 2 ** 62}, r"^seed \(--seed\)=4611686018427387904: .*below 2\*\*63"),
    ({"steps": 0}, r"^steps \(--steps\)=0: must be a whole number >= 1$"),
    ({"refine_steps": 0}, r"^refine_steps \(--refine-steps\)=0"),
    ({"identities": 2.5}, r"^identities \(--identities\)=2.5: must be a whole number >= 1$"),
    ({"captures": 0}, r"^captures \(--captures\)=0"),
    ({"batch_size": True}, r"^batch_size \(--batch-size\)=True"),
    ({"sampler": "euler"}, r"^sampler \(--sampler\)='euler': must be one of ddpm, ddim, dpm\+\+2m$"),
    ({"strength": 1.5}, r"^strength \(--strength\)=1.5: must be a number >= 0 and <= 1"),
    ({"strength": 0.9}, r"^strength \(--strength\)=0.9: above the UNet's max_strength 0.7"),
    ({"refine_strength": 1.0}, r"^refine_strength \(--refine-strength\)=1.0: must be a number >= 0 and < 1"),
    ({"variation": CaptureVariation(ratio_range=(0.7, 0.2))},
     r"^variation.ratio_range=\(0.7, 0.2\): must be a range \(low, high\) with 0 < low <= high <= 1, "
     r"e.g. \(0.2, 0.7\)"),
    ({"variation": CaptureVariation(defocus_px=(0.4, 0.0))}, r"^variation.defocus_px=\(0.4, 0.0\)"),
    ({"variation": CaptureVariation(motion_px=(-1.0, 0.8))}, r"^variation.motion_px=\(-1.0, 0.8\)"),
    ({"variation": CaptureVariation(noise_sd=(0.01,))}, r"^variation.noise_sd=\(0.01,\)"),
    ({"variation": CaptureVariation(eyelid_opening=(0.0, 1.0))}, r"^variation.eyelid_opening"),
    ({"variation": CaptureVariation(glints=(2, 1))}, r"^variation.glints=\(2, 1\)"),
    ({"variation": CaptureVariation(glints=(0.5, 2))}, r"^variation.glints=\(0.5, 2\)"),
    ({"variation": CaptureVariation(dilation=-0.1)}, r"^variation.dilation=-0.1: must be a number >= 0 and < 1"),
    ({"variation": CaptureVariation(rotation_deg=float("nan"))}, r"^variation.rotation_deg=nan"),
]


@pytest.mark.parametrize("bad, message", BAD, ids=[next(iter(b)) + str(i) for i, (b, _) in enumerate(BAD)])
def test_a_bad_setting_is_refused_before_anything_is_written(tmp_path, bad, message):
    out = tmp_path / "set"
    with pytest.raises(ConfigError, match=message) as err:
        irislib.dataset(out, *PAIR, **{**TINY, **bad})
    assert len(str(err.value).splitlines()) == 1
    assert not out.exists()


def test_after_refused_settings_the_corrected_call_writes_the_set(tmp_path):
    """A refused call leaves no settings.json behind, so the corrected one is not taken for another set's."""
    out = tmp_path / "set"
    for bad, _ in BAD:
        with pytest.raises(ConfigError):
            irislib.dataset(out, *PAIR, **{**TINY, **bad})
    irislib.dataset(out, *PAIR, **TINY)
    assert (out / "metadata.csv").is_file() and (out / "0001" / "0001_01.png").is_file()


@pytest.mark.parametrize("flag, value", [("--seed", "-1"), ("--steps", "0"), ("--refine-strength", "1")])
def test_cli_refuses_a_bad_flag_in_one_line_before_writing(tmp_path, capsys, flag, value):
    from irislib.cli import main
    out = tmp_path / "set"
    assert main(["dataset", "--unet", PAIR[0], "--vae", PAIR[1], "--out", str(out), "--identities", "1",
                 "--captures", "1", "--device", "cpu", "--quiet", flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"({flag})={value}" in err
    assert not out.exists()


def test_capture_seeds_are_a_hash_of_identity_and_capture():
    """identity_seed * 1009 + c gave identity k's capture 1009 the stream of identity k + 1's first capture."""
    assert ds.capture_seed(5, 1009) != ds.capture_seed(6, 0)
    seeds = {ds.capture_seed(s, c) for s in range(40) for c in range(0, 3000, 7)}
    assert len(seeds) == 40 * len(range(0, 3000, 7)) and max(seeds) < 2 ** 63


def test_neighbouring_identities_get_other_variations_beyond_1009_captures(tmp_path, monkeypatch):
    """End to end: with 1,010 captures, identity 1's capture 1,010 and identity 2's capture 1 draw different
    variation parameters, and every capture's seed is its own. Rendering is replaced by one draw of the capture's
    rng, and files are written without fsync: 2,020 real renders and fsyncs took 15 s."""
    real, rendered = ds.render_capture, {}

    def first_draw(base, bnd, rng, var):
        if id(base) not in rendered:
            rendered[id(base)] = real(base, bnd, np.random.default_rng(0), var)
        image, rec = rendered[id(base)]
        return image, {**rec, "rotation_deg": float(rng.uniform())}
    monkeypatch.setattr(ds, "render_capture", first_draw)
    monkeypatch.setattr(ds, "_atomic_write", lambda path, data: path.write_bytes(data))
    out = irislib.dataset(tmp_path / "set", *PAIR, **{**TINY, "identities": 2, "captures": 1010, "batch_size": 2})
    with open(out / "metadata.csv") as f:
        rows = {(int(r["identity"]), int(r["capture"])): r for r in csv.DictReader(f)}
    assert rows[1, 1010]["rotation_deg"] != rows[2, 1]["rotation_deg"]
    assert len({r["capture_seed"] for r in rows.values()}) == 2 * 1010
    r = rows[2, 7]
    assert int(r["capture_seed"]) == ds.capture_seed(int(r["identity_seed"]), 6)   # what metadata.csv names


def test_the_bar_moves_while_identities_are_sampled_and_its_rate_matches_its_time(tmp_path, capsys, monkeypatch):
    """Before the first chunk's UNet calls end, stderr already says which identities are being sampled; the
    final line's rate times its elapsed time is the number of images (within tqdm's rounding to whole seconds)."""
    from irislib.generate import hybrid
    real, seen = hybrid.denoise_batch, []

    def watched(*args, **kwargs):
        seen.append(capsys.readouterr().err)          # what the user saw when this UNet batch started
        return real(*args, **kwargs)
    monkeypatch.setattr(hybrid, "denoise_batch", watched)
    irislib.dataset(tmp_path / "set", *PAIR, **{**TINY, "identities": 3, "captures": 2, "batch_size": 2,
                                                   "progress": True})
    assert "dataset: sampling identities 1-2" in seen[0] and "dataset: sampling identity 3" in seen[1]
    lines = [ln for ln in re.split(r"[\r\n]", "".join(seen) + capsys.readouterr().err) if ln.startswith("dataset")]
    last = re.search(r"6/6 \[(\d+):(\d+)<[^,]*, *([\d.]+)(s/img|img/s)\]", lines[-1])
    assert last, lines[-1]
    elapsed = 60 * int(last[1]) + int(last[2])
    rate = float(last[3]) if last[4] == "img/s" else 1 / float(last[3])
    assert elapsed - 0.05 <= 6 / rate < elapsed + 1.05, lines[-1]


def _eye_with_glints():
    from irislib.biometrics.normalize import Boundaries
    from irislib.data.synthetic import generate
    img, geom = generate(3, 128)
    bnd = Boundaries.from_geometry(geom)
    img = img.astype(np.float64)
    yy, xx = np.mgrid[0:128, 0:128]
    inner = np.hypot(xx - bnd.pupil_cx - 0.4 * bnd.pupil_radius, yy - bnd.pupil_cy) <= 2
    with_glint = img.copy()
    with_glint[inner] = 1.0                            # a glint well inside the pupil
    return img, with_glint, bnd, inner


def test_glint_removal_paints_glints_inside_the_pupil_and_nothing_at_its_edge():
    """The old removal also painted every iris pixel 1.5-2.5 px outside the pupil that was brighter than the pupil,
    growing the pupil the metadata records by 1.5-4 px."""
    from irislib.biometrics.normalize import fit_boundaries
    plain, img, bnd, glint = _eye_with_glints()
    out = ds._remove_glints(img, bnd)
    yy, xx = np.mgrid[0:128, 0:128]
    d = np.hypot(xx - bnd.pupil_cx, yy - bnd.pupil_cy)
    edge = d >= bnd.pupil_radius_at(np.arctan2(yy - bnd.pupil_cy, xx - bnd.pupil_cx)) - 1.5
    assert np.array_equal(out[edge], img[edge])
    assert out[glint].max() < 0.3 and np.count_nonzero(out != img) > 0
    # the pupil fitted on it stays where it was (painting the ring grew it 1.5-4 px); the painted glint moves
    # the fit's pupil level a little, hence 0.25 px
    assert fit_boundaries(out).pupil_radius == pytest.approx(fit_boundaries(plain).pupil_radius, abs=0.25)


def test_lengths_scale_with_the_image_size_as_settings_json_says():
    """variation_px at 128 px is twice the 64 px value, and the captures' shifts use that range."""
    from irislib.biometrics.normalize import Boundaries
    from irislib.data.synthetic import generate
    var = CaptureVariation()
    px = var.lengths_px(128)
    assert px == {"shift_px": 4.0, "defocus_px": [0.0, 0.8], "motion_px": [0.0, 1.6]}
    img, geom = generate(1, 128)
    bnd = Boundaries.from_geometry(geom)
    shifts = [ds.render_capture(img, bnd, np.random.default_rng(s), var)[1]["shift_x"] for s in range(12)]
    assert max(map(abs, shifts)) <= px["shift_px"] and max(map(abs, shifts)) > var.shift_px


def test_notebook_verifies_a_set_once(tmp_path, monkeypatch):
    """05_synthetic_dataset's verify step (ui.ensure_verified): a report when asked and none is there yet."""
    from irislib.notebook import ui
    calls = []

    def fake_verify(path, **kw):
        calls.append((Path(path), kw))
        (Path(path) / "verify.json").write_text("{}")
    monkeypatch.setattr("irislib.evaluation.verify.verify_dataset", fake_verify)
    assert ui.ensure_verified(tmp_path, False) is None and calls == []   # a notebook cell shows no result
    ui.ensure_verified(tmp_path, True, n_training=16, training="iris128-unet")
    ui.ensure_verified(tmp_path, True, n_training=16, training="iris128-unet")
    assert calls == [(tmp_path, {"n_training": 16, "training": "iris128-unet"})]


@pytest.mark.parametrize("emas", [{"ema_0.99": 3.0, "ema_0.999": 2.0}, {"ema_0.5": 4.0}, {}])
def test_the_file_hashed_for_settings_json_is_the_one_sampling_loads(tmp_path, emas):
    """A training run's newest checkpoint: its EMA of the first train.ema_rate saved (tiny: 0.999), else another
    EMA, else the raw model; the sha256 in settings.json is of the file checkpoint.load_run reads."""
    import torch
    from irislib import checkpoint, presets
    from irislib.checkpoint.files import load_tensors
    run = tmp_path / "run"
    for step in (2, 4):
        state = {"model": {"w": torch.full((2,), float(step))},
                 "ema": {k: {"w": torch.full((2,), v * step)} for k, v in emas.items()},
                 "trainer": {"step": step, "run_id": "r"}}
        checkpoint.save(run, state, presets.get("tiny"))
    path = checkpoint.sampling_weights_file(run)
    assert path.parent.name == "step_000004"
    assert torch.equal(load_tensors(path)["w"], checkpoint.load_run(run)[1]["w"])
