"""Real iris images from a folder: decode any common format, square-crop, resize, scale to [-1, 1], cache.

Decoding rules (CASIA 320x280 BMP/JPEG, 640x480, IITD 320x240, 16-bit TIFF/PNG, palette, RGBA, EXIF-rotated JPEG):
- EXIF orientation is applied first (PIL.ImageOps.exif_transpose); crop boxes refer to the upright image.
- 16-bit images are scaled by 65535 (their bit depth), 8-bit ones by 255; float TIFFs are taken as [0, 1].
- Alpha is composited on black (transparent pixels become 0), palette images are expanded first.
- Colour -> grey uses ITU-R 601 luma (as PIL's "L"); grey -> 3 channels repeats the channel.
- Resizing uses PIL's Lanczos filter, which widens with the scale factor, so downscaling is anti-aliased.
"""
from __future__ import annotations

import ast
import csv
import hashlib
import inspect
import json
import math
import os
import sys
import tokenize
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from ..config import ConfigError
from ..safepath import relative_name

IMAGE_EXTENSIONS = (".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff")
CACHE_DIRNAME = ".irislib_cache"
CACHE_VERSION = "3"          # bump when preprocessing changes, so old caches are rebuilt (3: black borders not padded)
PROGRESS_MIN_FILES = 64      # show a progress bar when decoding at least this many files
POOL_MIN_FILES = 64          # data.crop=iris locates on all cores from this many frames
MAX_LISTED = 50              # files named in the skipped-files warning
MAX_BOX_SIDES = 4            # a crop CSV box's side may be at most this many times its frame's larger side


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _to_float(im: Image.Image) -> np.ndarray:
    """PIL image -> float32 [H, W] or [H, W, 3] in [0, 1], scaled by the image's own bit depth."""
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
    elif im.mode in ("La", "RGBa"):
        im = im.convert("LA" if im.mode == "La" else "RGBA")
    elif im.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("L" if im.mode == "1" else "RGB")
    arr = np.asarray(im)
    if arr.dtype == np.uint8:
        x = arr.astype(np.float32) / 255.0
    elif arr.dtype.kind == "u" and arr.dtype.itemsize == 2:     # I;16, I;16B, I;16L
        x = arr.astype(np.float32) / 65535.0
    elif arr.dtype.kind == "i":                                  # mode "I": 16-bit data in 32-bit ints
        top = 65535.0 if arr.max() <= 65535 else float(2 ** 31 - 1)
        x = np.clip(arr.astype(np.float64) / top, 0, 1).astype(np.float32)
    elif arr.dtype.kind == "f":                                  # mode "F": assume [0, 1], else 16-bit scale
        x = arr.astype(np.float32)
        x = np.clip(x if np.nanmax(x) <= 1.0 else x / 65535.0, 0, 1)
    else:
        raise ValueError(f"unsupported pixel type {arr.dtype} (mode {im.mode})")
    if x.ndim == 3 and x.shape[2] in (2, 4):                     # alpha: composite on black
        x = x[..., :-1] * x[..., -1:]
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[..., 0]
    return x


def load_image(path: str | Path, channels: int = 1) -> np.ndarray:
    """Decode one file to float32 [H, W, channels] in [0, 1] (EXIF rotation applied, alpha on black)."""
    with Image.open(path) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        x = _to_float(im)
    if channels == 1:
        x = _luma(x) if x.ndim == 3 else x
        return x[..., None]
    return x if x.ndim == 3 else np.repeat(x[..., None], 3, axis=2)


def centre_box(h: int, w: int) -> tuple[int, int, int]:
    """The largest centred square (left, top, size) of an h x w image."""
    size = min(h, w)
    return (w - size) // 2, (h - size) // 2, size


BLACK = 2 / 255                # a border row or column whose every pixel is at most this is no scene ...
BORDER_LINES = 4               # ... in a band of at most this many lines (a camera's blanking), not a black region


def _scene_span(line_max: np.ndarray) -> tuple[int, int]:
    """First and last index of the lines inside a black border band of at most BORDER_LINES each side."""
    lit = np.flatnonzero(line_max > BLACK)
    if not len(lit):
        return 0, len(line_max) - 1
    first, last = int(lit[0]), int(lit[-1])
    return (first if first <= BORDER_LINES else 0), (last if len(line_max) - 1 - last <= BORDER_LINES
                                                      else len(line_max) - 1)


def scene_extent(x: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """((first row, last row), (first column, last column)) of [H, W, C] without its black border lines."""
    m = x.max(axis=2) if x.ndim == 3 else x
    return _scene_span(m.max(axis=1)), _scene_span(m.max(axis=0))


def crop_resize(x: np.ndarray, box: tuple[int, int, int], image_size: int) -> np.ndarray:
    """Square crop (left, top, size) of [H, W, C], Lanczos-resized -> [C, S, S]; every crop mode uses it, so a crop
    list written by data.crop=iris and given back as data.crop_csv gives the same images. Where the square leaves
    the image the nearest edge pixel of the scene is repeated: an iris near the frame's edge keeps skin, not a black
    bar. Black rows and columns along the frame's border (MMU2's first and last rows) are not scene."""
    left, top, size = box
    h, w, c = x.shape
    (r0, r1), (c0, c1) = scene_extent(x)
    ys, xs = np.clip(np.arange(top, top + size), r0, r1), np.clip(np.arange(left, left + size), c0, c1)
    crop = x[ys[:, None], xs[None, :]].astype(np.float32)
    if size != image_size:
        out = (image_size, image_size)
        chans = [Image.fromarray(np.ascontiguousarray(crop[..., k])).resize(out, Image.Resampling.LANCZOS)
                 for k in range(c)]                                  # float ("F") images keep 16-bit precision
        crop = np.stack([np.asarray(im) for im in chans], axis=2)
    return np.clip(crop, 0, 1).transpose(2, 0, 1)                 # [C, S, S]


class CsvBox(NamedTuple):
    box: tuple[int, int, int]     # left, top, size
    line: int                     # its line in the CSV, for errors


def _csv_px(row: dict, key: str, where: str) -> int:
    """Field `key` of a crop CSV row as whole px; inf, nan or text is refused (int(inf) would raise OverflowError)."""
    raw = row.get(key)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"{where} {key}={raw!r} refused: it must be a finite number of pixels; fix that row")
    return int(round(value))


def check_csv_box(box: tuple[int, int, int], h: int, w: int, where: str) -> None:
    """A crop CSV box must overlap its h x w frame and be at most MAX_BOX_SIDES times its larger side (a huge size
    would try to allocate size^2 pixels: MemoryError)."""
    left, top, size = box
    if size > MAX_BOX_SIDES * max(h, w):
        raise ConfigError(f"{where} size={size} refused: more than {MAX_BOX_SIDES}x the larger side of the {w}x{h} "
                          f"frame; fix that row")
    if not (-size < left < w and -size < top < h):
        raise ConfigError(f"{where} left={left}, top={top} refused: the {size} px square lies outside the {w}x{h} "
                          f"frame; fix that row")


def read_crop_csv(csv_path: str | Path) -> dict[str, CsvBox]:
    """CSV with header file,left,top,size (file relative to the data folder) -> {file: ((left, top, size), line)}.

    A crop list may come from someone else: a `file` that is absolute or climbs out with '..', or a number that is
    not finite or a size that is not positive, is refused (check_csv_box checks the box against its frame)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"crop CSV {csv_path} (data.crop_csv) does not exist; give a CSV with columns "
                                f"file,left,top,size or leave data.crop_csv empty for centre crops")
    boxes = {}
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = {"file", "left", "top", "size"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"crop CSV {csv_path} lacks column(s) {sorted(missing)}; the header must be "
                             f"file,left,top,size")
        for line, row in enumerate(reader, start=2):
            where = f"crop CSV {csv_path} line {line}"
            left, top, size = (_csv_px(row, k, where) for k in ("left", "top", "size"))
            if size <= 0:
                raise ConfigError(f"{where} size={size} refused: it must be positive; fix that row")
            name = relative_name((row["file"] or "").strip(), f"{where} file")
            boxes[Path(name).as_posix()] = CsvBox((left, top, size), line)
    return boxes


def scan_images(root: Path, skip: Path | None = None) -> list[tuple[str, int, int]]:
    """Sorted (relative posix path, size in bytes, mtime_ns) of image files under root (hidden names skipped)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (skip is None or here / d != skip))
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            p = here / name
            try:
                st = p.stat()
            except OSError:        # broken symlink: treat as unreadable below
                st = None
            found.append((p.relative_to(root).as_posix(), st.st_size if st else -1, st.st_mtime_ns if st else 0))
    return sorted(found)


def _skip_reason(path: Path, err: Exception) -> str:
    if path.exists() and path.stat().st_size == 0:
        return "empty file"
    if isinstance(err, UnidentifiedImageError):
        return "not a readable image"
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    return "truncated" if "truncated" in msg.lower() else f"{type(err).__name__}: {msg}"[:120]


def _warn_skipped(root: Path, skipped: list[list[str]]) -> None:
    if not skipped:
        return
    listed = ", ".join(f"{f} ({why})" for f, why in skipped[:MAX_LISTED])
    more = f", and {len(skipped) - MAX_LISTED} more" if len(skipped) > MAX_LISTED else ""
    no_eye = sum(why.startswith(NO_EYE) for _, why in skipped)
    what = "unreadable file(s)" if not no_eye else ("frame(s) where no eye was found" if no_eye == len(skipped)
                                                    else "file(s), unreadable or with no eye found,")
    warnings.warn(f"skipped {len(skipped)} {what} in {root}: {listed}{more}", stacklevel=3)


CROPS = ("auto", "centre", "iris", "csv")
MOST_FAIL = 0.5              # data.crop=iris stops when it finds no eye in more than this share of the frames


class FolderDataset(torch.utils.data.Dataset):
    """Iris images of a folder (recursive) as float32 [C, S, S] in [-1, 1]; preprocessed once, then cached.

    crop: "centre" (the largest centred square), "iris" (a square centred on the iris found in each frame, its
    side IRIS_CROP_SCALE iris diameters: camera frames), "csv" (boxes from crop_csv), "auto" (csv when crop_csv is
    given, else centre). Cache: one safetensors file per (size, channels, crop) under cache_dir (default
    <root>/.irislib_cache), rebuilt when any image is added, removed or changed (size or mtime) or the crop CSV
    changes. With "iris", the boxes and found geometry are also written next to it as <cache>.crops.csv, which
    can be hand-corrected and given back as crop_csv (crop "csv").
    """

    def __init__(self, root: str | Path, image_size: int = 64, channels: int = 1, crop_csv: str | Path = "",
                 cache_dir: str | Path = "", progress: bool | None = None, crop: str = "auto"):
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise FileNotFoundError(f"data folder {self.root} does not exist; set data.path to a folder of iris "
                                    f"images (or synthetic:N for built-in synthetic irises)")
        if not self.root.is_dir():
            raise ValueError(f"data.path {self.root} is a file; give the folder that holds the images")
        if channels not in (1, 3) or image_size <= 0:
            raise ValueError(f"channels={channels}, image_size={image_size}: use channels 1 or 3 and a positive size")
        self.image_size, self.channels = int(image_size), int(channels)
        self.crop = _crop_mode(crop, crop_csv)
        self.crop_csv = Path(crop_csv).expanduser() if self.crop == "csv" else None
        self.cache_path = self._cache_path(Path(cache_dir).expanduser() if cache_dir else None)
        sources = scan_images(self.root, skip=self.cache_path.parent)
        boxes = read_crop_csv(self.crop_csv) if self.crop_csv else None
        fingerprint = self._fingerprint(sources)
        cached = self._load_cache(fingerprint)
        if cached is None:
            cached = self._build(sources, boxes, progress)
            self._save_cache(fingerprint, *cached)
        self.data, self.files, self.skipped, self.crop_boxes = cached   # data: [N, C, S, S] float16
        _warn_skipped(self.root, self.skipped)
        if self.crop == "iris":
            self.crops_csv = self.cache_path.with_name(self.cache_path.name.replace(".safetensors", ".crops.csv"))
            _write_crops_csv(self.crops_csv, self.files, self.crop_boxes)

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.data[i].float()                                            # [C, S, S] in [-1, 1]

    # --- cache -------------------------------------------------------------------------------------
    def _cache_path(self, cache_dir: Path | None) -> Path:
        crop = self.crop if self.crop_csv is None else \
            f"csv-{hashlib.sha1(str(self.crop_csv.resolve()).encode()).hexdigest()[:8]}"
        name = f"{self.image_size}px_{self.channels}ch_{crop}.safetensors"
        if cache_dir is None:
            return self.root / CACHE_DIRNAME / name
        # A shared cache folder holds several data sets: prefix the folder's name and a hash of its path.
        tag = hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:8]
        return cache_dir / f"{self.root.resolve().name}-{tag}_{name}"

    def _fingerprint(self, sources) -> str:
        from .iris_crop import IRIS_CROP_SCALE, LOCATOR_VERSION
        iris = {"crop": "iris", "scale": IRIS_CROP_SCALE, "locator": LOCATOR_VERSION}   # new locator, new boxes
        settings = {"version": CACHE_VERSION, "image_size": self.image_size, "channels": self.channels,
                    **(iris if self.crop == "iris" else {}),
                    "crop_csv": hashlib.sha256(self.crop_csv.read_bytes()).hexdigest() if self.crop_csv else None}
        return hashlib.sha256(json.dumps([settings, sources]).encode()).hexdigest()

    def _load_cache(self, fingerprint: str):
        if not self.cache_path.is_file():
            return None
        try:
            with safe_open(str(self.cache_path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("fingerprint") != fingerprint:
                    return None
                data = f.get_tensor("images")
            return data, json.loads(meta["files"]), json.loads(meta["skipped"]), json.loads(meta["crop_boxes"])
        except Exception:     # unreadable or foreign cache file: rebuild it
            return None

    def _save_cache(self, fingerprint, data, files, skipped, crop_boxes) -> None:
        meta = {"fingerprint": fingerprint, "files": json.dumps(files), "skipped": json.dumps(skipped),
                "crop_boxes": json.dumps(crop_boxes), "root": str(self.root), "version": CACHE_VERSION}
        tmp = self.cache_path.with_name(f"{self.cache_path.name}.{os.getpid()}.tmp")
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            save_file({"images": data.contiguous()}, str(tmp), metadata=meta)
            os.replace(tmp, self.cache_path)        # atomic: readers never see half a file
        except OSError as e:
            tmp.unlink(missing_ok=True)
            warnings.warn(f"could not write the image cache {self.cache_path} ({e}); images will be decoded "
                          f"again next time. Set data.cache_dir to a writable folder.", stacklevel=3)

    # --- decoding ----------------------------------------------------------------------------------
    def _build(self, sources, boxes, progress):
        """Decode, crop and resize every source file; unreadable ones (and, cropping on the iris, frames where no
        eye is found) are collected, not raised."""
        s = self.image_size
        data = torch.empty((len(sources), self.channels, s, s), dtype=torch.float16)  # filled in place: low peak RAM
        files, skipped, crop_boxes, no_box = [], [], [], []
        show = progress if progress is not None else len(sources) >= PROGRESS_MIN_FILES
        located = _locate_all(self.root, sources, show) if self.crop == "iris" else {}
        for rel, _, _ in tqdm(sources, desc=f"caching {self.root.name}", unit="img", disable=not show):
            path = self.root / rel
            try:
                x = load_image(path, self.channels)                            # [H, W, C]
            except Exception as e:   # any decode failure (PIL raises many types): skip the file, report once
                skipped.append([rel, _skip_reason(path, e)])
                continue
            h, w = x.shape[:2]
            extra = {}
            if self.crop == "iris":
                eye, why = located.get(rel, (None, "not located"))
                if eye is None:
                    skipped.append([rel, f"{NO_EYE}: {why}"])
                    continue
                box, extra = eye.box(), {k: v for k, v in eye.row().items() if k not in ("left", "top", "size")}
                extra["scale"] = round(s / box[2], 5)             # training-image px per frame px
            else:
                box = self._box(boxes, rel, h, w, no_box)
            data[len(files)] = torch.from_numpy(crop_resize(x, box, s) * 2 - 1)
            files.append(rel)
            crop_boxes.append({"left": box[0], "top": box[1], "size": box[2], "height": h, "width": w, **extra})
        self._check_found(sources, skipped)
        if not files:
            listed = "; ".join(f"{f} ({why})" for f, why in skipped[:10])
            raise ValueError(f"no readable image in data folder {self.root} (searched recursively for "
                             f"{', '.join(IMAGE_EXTENSIONS)})" + (f"; unreadable: {listed}" if listed else ""))
        if no_box:
            warnings.warn(f"{len(no_box)} image(s) have no row in crop CSV {self.crop_csv} and were centre-cropped: "
                          f"{', '.join(no_box[:MAX_LISTED])}", stacklevel=4)
        return (data if len(files) == len(sources) else data[:len(files)].clone()), files, skipped, crop_boxes

    def _box(self, boxes, rel: str, h: int, w: int, no_box: list) -> tuple[int, int, int]:
        """The crop CSV's box for `rel` (checked against the frame), else the centre square (noted in no_box when
        a CSV is given)."""
        row = boxes.get(rel) if boxes is not None else None
        if row is None:
            if boxes is not None:
                no_box.append(rel)
            return centre_box(h, w)
        check_csv_box(row.box, h, w, f"crop CSV {self.crop_csv} line {row.line}")
        return row.box

    def _check_found(self, sources, skipped) -> None:
        """data.crop=iris on a folder where most frames show no eye stops with one error saying what to try."""
        no_eye = [f for f, why in skipped if why.startswith(NO_EYE)]
        if self.crop == "iris" and no_eye and len(no_eye) > MOST_FAIL * len(sources):
            raise ValueError(
                f"data.crop=iris found no eye in {len(no_eye)} of {len(sources)} images under {self.root} (e.g. "
                f"{', '.join(no_eye[:3])}): if they are already iris crops use data.crop=centre; if the eyes are "
                "very small, dark or covered, give boxes with data.crop=csv and data.crop_csv=FILE (columns "
                "file,left,top,size)")


NO_EYE = "no eye found (data.crop=iris)"
CROP_COLUMNS = ["file", "left", "top", "size", "scale", "iris_cx", "iris_cy", "iris_r", "pupil_cx", "pupil_cy",
                "pupil_r", "width", "height"]


def _crop_mode(crop: str, crop_csv) -> str:
    if crop not in CROPS:
        raise ValueError(f"data.crop={crop!r}: use centre (the centred square), iris (a square on the iris found in "
                         "each camera frame), csv (boxes from data.crop_csv) or auto")
    if crop == "csv" and not crop_csv:
        raise ValueError("data.crop=csv needs data.crop_csv: a CSV with columns file,left,top,size (data.crop=iris "
                         "writes one beside its cache that you can correct by hand)")
    return ("csv" if crop_csv else "centre") if crop == "auto" else crop


def _locate_one(path: str):
    """Worker: (segmentation.Eye or None, why none, frame shape) of one frame (grey); files that cannot be read
    give None too (the main loop reports those with their reason)."""
    from ..segmentation import find_eye
    try:
        grey = load_image(path, 1)[..., 0]
    except Exception:
        return None, "unreadable", (0, 0)
    return (*find_eye(grey), grey.shape)


def _is_main_guard(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in ("__name__ == '__main__'", "'__main__' == __name__")


def _spawn_reruns_caller() -> str | None:
    """The main script's path if a spawned worker would run this call again, else None.

    A spawned process re-imports the main script (python script.py or -m module) as __mp_main__; if its top-level
    code outside an `if __name__ == "__main__":` block is what builds the data set, every worker would build it and
    start a pool of its own (RuntimeError "...bootstrapping phase", BrokenProcessPool). A REPL, python -c and
    notebooks have no script to re-import; a script whose source cannot be read counts as unguarded."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None:                        # nothing to re-import
        return None
    frame = inspect.currentframe()
    while frame is not None and not (frame.f_globals is vars(main) and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None:                       # not called from the script's top level (a thread, atexit)
        return None
    try:
        with tokenize.open(path) as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return path
    guarded = any(_is_main_guard(n) and n.body[0].lineno <= frame.f_lineno <= n.body[-1].end_lineno
                  for n in ast.walk(tree))
    return None if guarded else path


def _locate_all(root: Path, sources, show: bool) -> dict:
    """{relative name: FoundEye or None} for every frame, on all cores for large folders (a 640x480 frame takes
    about 0.5 s on one core): worker processes, or threads where spawned processes would re-run an unguarded
    script (the locator is numpy on whole frames, which mostly runs without the GIL)."""
    paths = [str(root / rel) for rel, _, _ in sources]
    workers = min(os.cpu_count() or 1, 8) if len(paths) >= POOL_MIN_FILES else 1
    bar = dict(desc=f"finding the iris in {root.name}", unit="img", total=len(paths), disable=not show)
    if workers == 1:
        found = [_locate_one(p) for p in tqdm(paths, **bar)]
    elif (script := _spawn_reruns_caller()) is not None:
        from concurrent.futures import ThreadPoolExecutor
        warnings.warn(f"locating the iris on {workers} threads, not processes: {script} builds the data set outside "
                      f"an `if __name__ == \"__main__\":` block, which each worker process would run again",
                      stacklevel=4)
        with ThreadPoolExecutor(workers) as pool:
            found = list(tqdm(pool.map(_locate_one, paths), **bar))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            found = list(tqdm(pool.map(_locate_one, paths, chunksize=8), **bar))
    return _crop_boxes(root, sources, found)


def _crop_boxes(root: Path, sources, found) -> dict:
    """{name: (FoundEye, "") or (None, why)}: the found eyes, with a second look at those whose iris is far from
    the size of the others of their frame size (segmentation.fit_set)."""
    from ..segmentation import fit_set
    from .iris_crop import FoundEye
    names = [rel for rel, _, _ in sources]
    fitted = fit_set(dict(zip(names, found)), lambda n: load_image(root / n, 1)[..., 0])
    return {n: (None, why) if eye is None else (FoundEye.from_eye(eye), "") for n, (eye, why) in fitted.items()}


def _write_crops_csv(path: Path, files: list[str], boxes: list[dict]) -> None:
    """The iris crops as a CSV a person can check and correct, and give back as data.crop_csv."""
    import io
    buf = io.StringIO()
    wr = csv.DictWriter(buf, CROP_COLUMNS, lineterminator="\n", extrasaction="ignore")
    wr.writeheader()
    for f, b in zip(files, boxes):
        wr.writerow({"file": f, **b})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")     # per process: two writers never share a temp
    try:
        if not path.exists() or path.read_text(encoding="utf-8") != buf.getvalue():
            tmp.write_text(buf.getvalue(), encoding="utf-8")
            os.replace(tmp, path)                                  # atomic: a reader sees the old or new list
    except OSError as e:
        tmp.unlink(missing_ok=True)
        warnings.warn(f"could not write the crop list {path} ({e})", stacklevel=3)
