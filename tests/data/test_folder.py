"""FolderDataset: every format decodes to the right values, crops, errors, skipped files and the cache."""
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from irislib import cli
from irislib.config import ConfigError, DataConfig
from irislib.data import FolderDataset, SyntheticIrisDataset, make_dataset
from irislib.data import folder as folder_mod


def _halves(h, w, lo, hi, dtype=np.uint8):
    """[h, w] image: left half lo, right half hi (the centre crop keeps both halves, split in the middle)."""
    a = np.full((h, w), lo, dtype)
    a[:, w // 2:] = hi
    return a


def _side_means(x):
    """Mean of the left and right thirds of a [C, S, S] tensor (away from the Lanczos ringing at the middle)."""
    s = x.shape[-1]
    return x[..., : s // 3].mean().item(), x[..., -(s // 3):].mean().item()


def _load_one(tmp_path, name, save, size=32, channels=1):
    d = tmp_path / "imgs"
    d.mkdir()
    save(d / name)
    ds = FolderDataset(d, size, channels, progress=False)
    assert len(ds) == 1 and ds.files == [name]
    x = ds[0]
    assert x.dtype == torch.float32 and x.shape == (channels, size, size)
    return x


@pytest.mark.parametrize("name,h,w", [("casia.bmp", 280, 320), ("iitd.BMP", 240, 320), ("lamp.png", 480, 640)])
def test_grey_8bit_sizes(tmp_path, name, h, w):
    x = _load_one(tmp_path, name, lambda p: Image.fromarray(_halves(h, w, 40, 220)).save(p))
    left, right = _side_means(x)
    assert left == pytest.approx(40 / 255 * 2 - 1, abs=0.01) and right == pytest.approx(220 / 255 * 2 - 1, abs=0.01)


def test_colour_jpeg_640x480_to_grey_uses_luma(tmp_path):
    rgb = np.zeros((480, 640, 3), np.uint8)
    rgb[:, :320] = (200, 50, 10)
    rgb[:, 320:] = (20, 240, 120)
    x = _load_one(tmp_path, "thousand.JPG", lambda p: Image.fromarray(rgb).save(p, quality=95))
    luma = [0.299 * r + 0.587 * g + 0.114 * b for r, g, b in ((200, 50, 10), (20, 240, 120))]
    for got, want in zip(_side_means(x), luma):
        assert got == pytest.approx(want / 255 * 2 - 1, abs=0.03)


@pytest.mark.parametrize("name", ["deep.tif", "deep.png"])
def test_16bit_scaled_by_bit_depth(tmp_path, name):
    a = _halves(120, 160, 1000, 60000, np.uint16)
    x = _load_one(tmp_path, name, lambda p: Image.fromarray(a).save(p))
    left, right = _side_means(x)
    # 1000/65535 is nearly black; clipping to 255 would make both sides white.
    assert left == pytest.approx(1000 / 65535 * 2 - 1, abs=0.01)
    assert right == pytest.approx(60000 / 65535 * 2 - 1, abs=0.01)


def test_palette_png(tmp_path):
    def save(p):
        im = Image.fromarray(_halves(64, 64, 0, 1), mode="L").convert("P")
        im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
        im.save(p)
    x = _load_one(tmp_path, "pal.png", save, channels=3)
    left, right = x[:, :, :10].mean((1, 2)), x[:, :, -10:].mean((1, 2))
    assert torch.allclose(left, torch.tensor([1.0, -1.0, -1.0]), atol=0.01)
    assert torch.allclose(right, torch.tensor([-1.0, -1.0, 1.0]), atol=0.01)


def test_rgba_composited_on_black(tmp_path):
    rgba = np.full((64, 64, 4), 200, np.uint8)
    rgba[..., 3] = 255
    rgba[:, 32:, 3] = 0          # right half fully transparent
    rgba[:32, :32, 3] = 128      # top-left quarter half transparent
    x = _load_one(tmp_path, "alpha.png", lambda p: Image.fromarray(rgba, "RGBA").save(p), size=64)
    assert x[0, :, -10:].mean().item() == pytest.approx(-1.0, abs=0.01)
    assert x[0, 40:, :10].mean().item() == pytest.approx(200 / 255 * 2 - 1, abs=0.01)
    assert x[0, :10, :10].mean().item() == pytest.approx(200 * 128 / 255 / 255 * 2 - 1, abs=0.01)


def test_exif_rotation_applied(tmp_path):
    stored = np.zeros((60, 80), np.uint8)        # stored landscape, bright block at the stored top-left
    stored[:30, :40] = 255

    def save(p):
        exif = Image.Exif()
        exif[0x0112] = 6                          # "rotate 90 CW to display"
        Image.fromarray(stored).save(p, exif=exif.tobytes(), quality=95)
    x = _load_one(tmp_path, "rot.jpg", save, size=60)[0]
    # Displayed: 60 wide x 80 high, block at the top-right; the centre crop keeps rows 10..70.
    want = np.rot90(stored, k=-1)[10:70].astype(np.float32) / 255 * 2 - 1
    assert np.abs(x.numpy() - want).mean() < 0.05
    assert x[:20, -20:].mean() > 0.8 and x[:20, :20].mean() < -0.8     # unrotated would be the other way round


def test_channels_1_vs_3(tmp_path):
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 250, 100, 30
    Image.fromarray(rgb).save(tmp_path / "c.png")
    x1 = FolderDataset(tmp_path, 40, 1, progress=False)[0]
    x3 = FolderDataset(tmp_path, 40, 3, progress=False)[0]
    assert x1.shape == (1, 40, 40) and x3.shape == (3, 40, 40)
    assert torch.allclose(x3.mean((1, 2)), torch.tensor([250, 100, 30]) / 255 * 2 - 1, atol=2e-3)
    assert x1.mean().item() == pytest.approx((0.299 * 250 + 0.587 * 100 + 0.114 * 30) / 255 * 2 - 1, abs=2e-3)
    grey = tmp_path / "g"
    grey.mkdir()
    Image.fromarray(np.full((40, 40), 77, np.uint8)).save(grey / "g.png")
    g3 = FolderDataset(grey, 40, 3, progress=False)[0]
    assert torch.allclose(g3[0], g3[1]) and torch.allclose(g3[0], g3[2])


def test_centre_crop_and_csv_boxes(tmp_path):
    a = np.tile(np.arange(100, dtype=np.uint8) * 2, (60, 1))    # column j has value 2j
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(a).save(d / "sub" / "img.png")
    centre = FolderDataset(d, 60, progress=False)[0][0].numpy()
    assert np.allclose(centre, a[:, 20:80] / 255 * 2 - 1, atol=1e-3)
    csv = tmp_path / "boxes.csv"
    csv.write_text("file,left,top,size\nsub/img.png,5,10,40\n")
    boxed = FolderDataset(d, 40, crop_csv=csv, progress=False)
    assert np.allclose(boxed[0][0].numpy(), a[10:50, 5:45] / 255 * 2 - 1, atol=1e-3)
    assert boxed.crop_boxes[0] == {"left": 5, "top": 10, "size": 40, "height": 60, "width": 100}
    csv.write_text("file,left,top,size\nsub/img.png,80,0,40\n")   # runs off the right edge: its last column repeats
    off = FolderDataset(d, 40, crop_csv=csv, progress=False)[0][0].numpy()
    assert np.allclose(off[:, :20], a[:40, 80:] / 255 * 2 - 1, atol=1e-3)
    assert np.allclose(off[:, 20:], a[0, -1] / 255 * 2 - 1, atol=1e-3)


def test_crop_csv_errors(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,x,y\na.png,1,2\n")
    with pytest.raises(ValueError, match="bad.csv.*file,left,top,size"):
        FolderDataset(tmp_path, 8, crop_csv=bad)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        FolderDataset(tmp_path, 8, crop_csv=tmp_path / "nope.csv")


@pytest.mark.parametrize("row, refused", [
    ("inf,0,8", "line 2 left='inf' refused: it must be a finite number"),         # int(inf): OverflowError
    ("0,nan,8", "line 2 top='nan' refused: it must be a finite number"),
    ("0,0,big", "line 2 size='big' refused: it must be a finite number"),
    ("0,0,1e9", "line 2 size=1000000000 refused: more than 4x the larger side of the 10x8 frame"),  # MemoryError
    ("0,0,-3", "line 2 size=-3 refused: it must be positive"),
    ("1e6,0,8", "line 2 left=1000000, top=0 refused: the 8 px square lies outside the 10x8 frame")])
def test_crop_csv_numbers_that_are_no_box_are_one_error(tmp_path, row, refused):
    """A crop list from someone else: inf, nan, text, a huge or negative size, a box off the frame: one error
    naming the CSV, the line and the field (not an OverflowError or MemoryError from deep inside)."""
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(tmp_path / "a.png")
    boxes = tmp_path / "boxes.csv"
    boxes.write_text(f"file,left,top,size\na.png,{row}\n")
    with pytest.raises(ConfigError) as e:
        FolderDataset(tmp_path, 8, crop_csv=boxes, cache_dir=tmp_path / "c", progress=False)
    assert "\n" not in str(e.value) and str(e.value).startswith(f"crop CSV {boxes} {refused}"), str(e.value)
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("size", ["inf", "1e9"])
def test_cli_reports_a_bad_crop_csv_number_in_one_line(tmp_path, capsys, size):
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "boxes.csv").write_text(f"file,left,top,size\na.png,0,0,{size}\n")
    code = cli.main(["train-vae", "--out", str(tmp_path / "run"), "--data", str(tmp_path), "--set",
                     f"data.crop_csv={tmp_path / 'boxes.csv'}", "--set", f"data.cache_dir={tmp_path / 'c'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and err.startswith(f"irislib train-vae: error: crop CSV {tmp_path}"), err
    assert "line 2 size=" in err


@pytest.mark.parametrize("name, problem", [("../outside.png", "climbs out"), ("sub/../../outside.png", "climbs out"),
                                           ("{tmp}/outside.png", "absolute"), ("~/outside.png", "home folder"),
                                           ("..\\outside.png", "climbs out")])
def test_crop_csv_naming_files_outside_the_data_folder_is_refused(tmp_path, name, problem):
    """A crop list from someone else names files of the data folder only; the image cache is not written."""
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(data / "a.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "outside.png")
    csv = tmp_path / "boxes.csv"
    csv.write_text(f"file,left,top,size\na.png,0,0,8\n{name.format(tmp=tmp_path)},0,0,8\n")
    with pytest.raises(ValueError) as e:
        FolderDataset(data, 8, crop_csv=csv, progress=False)
    assert "\n" not in str(e.value) and "boxes.csv line 3 file=" in str(e.value) and problem in str(e.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.png", "boxes.csv", "data", "outside.png"]


def test_downscale_is_antialiased(tmp_path):
    checker = ((np.indices((256, 256)).sum(0) % 2) * 255).astype(np.uint8)     # 1-px checkerboard
    x = _load_one(tmp_path, "fine.png", lambda p: Image.fromarray(checker).save(p), size=32)
    assert abs(x.mean().item()) < 0.02 and x.std().item() < 0.02               # a nearest-neighbour pick aliases


def test_range_and_shape_random_images(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (50 + 10 * i, 70, 3), dtype=np.uint8)).save(tmp_path / f"r{i}.png")
    Image.fromarray(np.full((30, 30), 255, np.uint8)).save(tmp_path / "white.png")
    ds = FolderDataset(tmp_path, 24, 3, progress=False)
    xs = torch.stack([ds[i] for i in range(len(ds))])
    assert xs.shape == (4, 3, 24, 24) and xs.dtype == torch.float32
    assert xs.min() >= -1 and xs.max() <= 1 and ds[ds.files.index("white.png")].min() > 0.99


def test_bad_files_skipped_with_one_warning(tmp_path):
    Image.fromarray(np.full((40, 50), 100, np.uint8)).save(tmp_path / "good.png")
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "x.jpg")
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / "y.png")
    for name, keep in (("x.jpg", "trunc.jpg"), ("y.png", "trunc.png")):
        data = (tmp_path / name).read_bytes()
        (tmp_path / keep).write_bytes(data[: len(data) // 2])
        (tmp_path / name).unlink()
    (tmp_path / "zero.bmp").write_bytes(b"")
    (tmp_path / "notes.tiff").write_text("not an image")
    (tmp_path / "readme.txt").write_text("ignored: not an image extension")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = FolderDataset(tmp_path, 16, progress=False)
    assert ds.files == ["good.png"]
    assert len(caught) == 1
    msg = str(caught[0].message)
    for name in ("trunc.jpg", "trunc.png", "zero.bmp", "notes.tiff"):
        assert name in msg
    assert "readme.txt" not in msg and "4 unreadable" in msg


def test_empty_missing_and_unreadable_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere"):
        FolderDataset(tmp_path / "nothere", 32)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no readable image.*empty"):
        FolderDataset(empty, 32)
    (empty / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match="broken.png"):
        FolderDataset(empty, 32)


def test_cache_reused_and_rebuilt(tmp_path, monkeypatch):
    calls = []
    real = folder_mod.load_image
    monkeypatch.setattr(folder_mod, "load_image", lambda p, c: calls.append(p) or real(p, c))
    for i in range(3):
        Image.fromarray(np.full((20, 20), 50 * i, np.uint8)).save(tmp_path / f"i{i}.png")
    first = FolderDataset(tmp_path, 16, progress=False)
    assert len(calls) == 3
    cache_files = list((tmp_path / ".irislib_cache").iterdir())
    assert len(cache_files) == 1
    second = FolderDataset(tmp_path, 16, progress=False)
    assert len(calls) == 3 and torch.equal(first.data, second.data)        # no decoding on a cache hit
    # A changed file (new content and mtime) -> rebuild with the new pixels.
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(tmp_path / "i0.png")
    os.utime(tmp_path / "i0.png", ns=(1, 10 ** 18))
    changed = FolderDataset(tmp_path, 16, progress=False)
    assert len(calls) == 6 and changed[0].min() > 0.99
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "i3.png")   # added
    assert len(FolderDataset(tmp_path, 16, progress=False)) == 4 and len(calls) == 10
    (tmp_path / "i1.png").unlink()                                             # removed
    assert FolderDataset(tmp_path, 16, progress=False).files == ["i0.png", "i2.png", "i3.png"]
    assert len(calls) == 13
    FolderDataset(tmp_path, 8, progress=False)                                 # other size: its own file
    assert len(list((tmp_path / ".irislib_cache").iterdir())) == 2


def test_cache_dir_option(tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(data / "a.png")
    FolderDataset(data, 16, cache_dir=cache, progress=False)
    assert not (data / ".irislib_cache").exists()
    assert [p.suffix for p in cache.iterdir()] == [".safetensors"]


def test_make_dataset_dispatch(tmp_path):
    syn = make_dataset(DataConfig(path="synthetic:3", image_size=32))
    assert isinstance(syn, SyntheticIrisDataset) and len(syn) == 3 and syn[0].shape == (1, 32, 32)
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "a.png")
    real = make_dataset(DataConfig(path=str(tmp_path), image_size=16, channels=3))
    assert isinstance(real, FolderDataset) and real[0].shape == (3, 16, 16)
    for bad in ("synthetic:", "synthetic:abc", "synthetic:0", "synthetic:-4", "synthetic:2.5"):
        with pytest.raises(ConfigError, match="data.path.*synthetic:N"):
            make_dataset(DataConfig(path=bad))
