"""data.crop = "iris": the eye located in whole camera frames against the synthetic frames' exact geometry, frames
with no eye skipped, the crop list written and usable as data.crop_csv, and the options on the CLI and config."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from irislib import cli
from irislib.config import ConfigError, build_experiment
from irislib.data import folder as folder_mod
from irislib.data import iris_crop
from irislib.data.folder import FolderDataset, crop_resize
from irislib.data.iris_crop import IRIS_CROP_SCALE, locate_eye
from irislib.segmentation import Eye
from irislib.data.synthetic import SEED_STRIDE, generate, no_eye_frames, write_synthetic


@pytest.mark.parametrize("size, n", [((480, 640), 4), ((280, 320), 8)])
def test_located_iris_is_within_2_px_and_3_percent_of_the_truth(size, n):
    """The 500-frame figures are benchmarks/iris_crop_accuracy.py's; here a few frames of each kind, every one
    held to the issue's bars."""
    for i in range(n):
        img, geo = generate(7 * SEED_STRIDE + i, size, frame=True)
        found = locate_eye(np.round(img * 255) / 255)
        truth = geo["iris"]
        assert found is not None, f"frame {i}: no eye found"
        assert np.hypot(found.iris_cx - truth["cx"], found.iris_cy - truth["cy"]) <= 2, (i, found, truth)
        assert abs(found.iris_r / truth["r"] - 1) <= 0.03, (i, found, truth)
        # the square is centred on the iris (to half a pixel) and its side is IRIS_CROP_SCALE diameters
        assert abs(found.left + found.size / 2 - 0.5 - found.iris_cx) <= 0.5
        assert abs(found.top + found.size / 2 - 0.5 - found.iris_cy) <= 0.5
        assert abs(found.size - IRIS_CROP_SCALE * 2 * found.iris_r) <= 0.5


@pytest.mark.parametrize("kind", ["blank", "other scene", "closed eye"])
def test_frames_without_an_eye_are_not_taken_for_one(kind):
    assert locate_eye(no_eye_frames(280, 320, seed=3)[kind]) is None


def test_edge_padding_repeats_the_border_where_the_square_leaves_the_image():
    x = np.arange(12, dtype=np.float32).reshape(3, 4, 1) / 12
    out = crop_resize(x, (-2, -1, 5), 5)[0]
    assert np.allclose(out[0], out[1]) and np.allclose(out[1, :3], x[0, 0, 0]) and np.allclose(out[1:4, 2:], x[:, :3, 0])


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    write_synthetic(root / "set", 5, size=(240, 320), seed=11, frame=True)
    Image.fromarray(np.round(no_eye_frames(240, 320)["blank"] * 255).astype(np.uint8)).save(root / "set" / "blank.png")
    return root


def test_iris_crop_skips_frames_without_an_eye_and_writes_its_crop_list(frames, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = FolderDataset(frames / "set", 64, crop="iris", cache_dir=tmp_path / "cache", progress=False)
    msgs = [str(w.message) for w in caught if "skipped" in str(w.message)]
    assert len(msgs) == 1 and "skipped 1 frame(s) where no eye was found" in msgs[0] and "blank.png" in msgs[0]
    assert len(ds) == 5 and [f for f, _ in ds.skipped] == ["blank.png"] and ds.skipped[0][1].startswith("no eye found (data.crop=iris): ")
    truth = {g["file"]: g["iris"] for g in json.loads((frames / "set" / "geometry.json").read_text())}
    with open(ds.crops_csv) as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == ds.files and {"left", "top", "size", "iris_cx", "pupil_r"} <= set(rows[0])
    for r in rows:
        t = truth[r["file"]]
        assert np.hypot(float(r["iris_cx"]) - t["cx"], float(r["iris_cy"]) - t["cy"]) <= 2
        assert float(r["scale"]) == pytest.approx(64 / int(r["size"]), abs=1e-5)
    # the list, given back as data.crop_csv, crops the same squares (the frame it has no row for is centre-cropped,
    # with a warning, as any file missing from a crop CSV)
    with pytest.warns(UserWarning, match="1 image.s. have no row in crop CSV"):
        again = FolderDataset(frames / "set", 64, crop="csv", crop_csv=ds.crops_csv, cache_dir=tmp_path / "c2",
                              progress=False)
    boxes = {f: (b["left"], b["top"], b["size"]) for f, b in zip(again.files, again.crop_boxes)}
    assert all(boxes[f] == (b["left"], b["top"], b["size"]) for f, b in zip(ds.files, ds.crop_boxes))
    assert all(np.array_equal(ds.data[k], again.data[again.files.index(f)]) for k, f in enumerate(ds.files))
    # cached: a second open gives the same tensors (and the same one-line skip warning)
    with pytest.warns(UserWarning, match="blank.png"):
        cached = FolderDataset(frames / "set", 64, crop="iris", cache_dir=tmp_path / "cache", progress=False)
    assert np.array_equal(cached.data, ds.data)


def test_a_folder_where_most_frames_have_no_eye_stops_with_one_error(tmp_path):
    for k, (name, img) in enumerate(no_eye_frames(240, 320).items()):
        Image.fromarray(np.round(img * 255).astype(np.uint8)).save(tmp_path / f"{k}.png")
    write_synthetic(tmp_path / "one", 1, size=(240, 320), seed=11, frame=True)
    with pytest.raises(ValueError, match=r"data.crop=iris found no eye in 3 of 4 images .*data.crop=centre.*crop_csv"):
        FolderDataset(tmp_path, 64, crop="iris", cache_dir=tmp_path / ".c", progress=False)


def test_crop_option_in_config_cli_and_synth(tmp_path, capsys):
    exp = build_experiment("tiny", overrides=["data.crop=iris"])
    assert exp.data.crop == "iris"
    with pytest.raises(ConfigError, match="data.crop='square'"):
        build_experiment("tiny", overrides=["data.crop=square"])
    with pytest.raises(ConfigError, match="data.crop=csv needs data.crop_csv"):
        build_experiment("tiny", overrides=["data.crop=csv"])
    args = cli.build_parser().parse_args(["train-vae", "--out", str(tmp_path / "r"), "--crop", "iris"])
    assert cli.experiment_from_args(args).data.crop == "iris"
    assert cli.main(["synth", "--out", str(tmp_path / "f"), "--n", "2", "--frame", "320x280"]) in (0, None)
    geo = json.loads((tmp_path / "f" / "geometry.json").read_text())
    assert geo[0]["size"] == [280, 320] and Image.open(tmp_path / "f" / geo[0]["file"]).size == (320, 280)
    with pytest.raises(SystemExit):
        cli.main(["synth", "--out", str(tmp_path / "g"), "--frame", "640"])
    assert "give WIDTHxHEIGHT" in capsys.readouterr().err


def test_crop_list_given_back_gives_identical_images_for_an_eye_at_the_frame_edge(tmp_path):
    """An eye near the frame's left edge: its square leaves the frame, and crop=csv with the list crop=iris wrote
    pads it as crop=iris does (edge pixels repeated, not black bars)."""
    img, geo = generate(7 * SEED_STRIDE, (240, 320), frame=True)
    c0 = int(geo["iris"]["cx"] - 1.1 * geo["iris"]["r"])      # cut the frame so the iris is 1.1 radii from the edge
    assert c0 > 0
    (tmp_path / "set").mkdir()
    Image.fromarray(np.round(img[:, c0:] * 255).astype(np.uint8)).save(tmp_path / "set" / "edge.png")
    iris = FolderDataset(tmp_path / "set", 64, crop="iris", cache_dir=tmp_path / "c1", progress=False)
    assert iris.files == ["edge.png"] and iris.crop_boxes[0]["left"] < 0
    again = FolderDataset(tmp_path / "set", 64, crop="csv", crop_csv=iris.crops_csv, cache_dir=tmp_path / "c2",
                          progress=False)
    assert again.crop_boxes[0]["left"] == iris.crop_boxes[0]["left"]
    assert again.data.numpy().tobytes() == iris.data.numpy().tobytes()


def test_an_iris_cache_from_another_locator_version_is_rebuilt(tmp_path, monkeypatch):
    """A cache whose boxes an older locate_eye found is not reused: the crops would differ from today's."""
    write_synthetic(tmp_path / "set", 2, size=(240, 320), seed=11, frame=True)
    calls = []
    eye = Eye(160.0, 120.0, 15.0, 15.0, 0.0, 160.0, 120.0, 40.0)
    monkeypatch.setattr(folder_mod, "_locate_one", lambda p: calls.append(p) or (eye, "", (240, 320)))

    def build():
        return FolderDataset(tmp_path / "set", 32, crop="iris", cache_dir=tmp_path / "cache", progress=False)
    with monkeypatch.context() as older:
        older.setattr(iris_crop, "LOCATOR_VERSION", "older", raising=False)
        build()
    build()
    assert len(calls) == 4                  # located again with the current locator
    build()
    assert len(calls) == 4                  # and that cache is reused


UNGUARDED = """import irislib.data.folder as F
F.POOL_MIN_FILES = 2                        # the few frames below go to the pool, as a big folder would
ds = F.FolderDataset({root!r}, 32, crop="iris", cache_dir={cache!r}, progress=False)
print(len(ds), ds.crops_csv)
"""


@pytest.mark.slow
def test_a_script_without_a_main_guard_builds_an_iris_dataset(frames, tmp_path, monkeypatch):
    """Spawned workers re-import the main script; one that builds the data set at its top level, unguarded, gets
    threads instead, with one line saying why, and the same crops as the process pool's."""
    script = tmp_path / "build.py"
    script.write_text(UNGUARDED.format(root=str(frames / "set"), cache=str(tmp_path / "threads")))
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert [p.suffix for p in sorted((tmp_path / "threads").iterdir())] == [".csv", ".safetensors"]
    why = [ln for ln in run.stderr.splitlines() if "not processes" in ln]
    assert len(why) == 1 and f"{script} builds the data set outside an `if __name__" in why[0], run.stderr
    with pytest.warns(UserWarning, match="blank.png"):                      # the script's cache, reused
        threads = FolderDataset(frames / "set", 32, crop="iris", cache_dir=tmp_path / "threads", progress=False)
    assert run.stdout.split() == ["5", str(threads.crops_csv)]
    monkeypatch.setattr(folder_mod, "POOL_MIN_FILES", 2, raising=False)
    with warnings.catch_warnings(record=True) as caught:      # pytest's own entry script is guarded: processes
        warnings.simplefilter("always")
        pool = FolderDataset(frames / "set", 32, crop="iris", cache_dir=tmp_path / "pool", progress=False)
    assert not [w for w in caught if "not processes" in str(w.message)]
    assert threads.crops_csv.read_text() == pool.crops_csv.read_text() and torch.equal(threads.data, pool.data)


def test_black_border_rows_are_not_repeated_into_bars():
    """MMU2 frames have black first and last rows: a square reaching past them repeats the nearest scene row
    instead, so the crop has no black bar; a frame with no such border crops as before."""
    rng = np.random.default_rng(0)
    scene = rng.uniform(0.3, 0.7, (10, 12, 1)).astype(np.float32)
    framed = np.concatenate([np.zeros((1, 12, 1), np.float32), scene[1:-1], np.zeros((1, 12, 1), np.float32)])
    out = crop_resize(framed, (2, -3, 8), 8)[0]            # rows -3..4: above the frame and the black row 0
    assert out.min() > 0.25 and np.allclose(out[:4], framed[1, 2:10, 0])
    assert np.allclose(out[4], framed[1, 2:10, 0]) and np.allclose(out[5:], framed[2:5, 2:10, 0])
    plain = crop_resize(scene, (2, -3, 8), 8)[0]
    assert np.allclose(plain[:4], scene[0, 2:10, 0]) and np.allclose(plain[4:], scene[1:5, 2:10, 0])
    wide = np.concatenate([np.zeros((5, 12, 1), np.float32), scene], 0)   # 5 black rows: a black region, kept
    assert np.allclose(crop_resize(wide, (2, 0, 8), 8)[0][:5], 0)
