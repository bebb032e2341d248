"""Image files of generated samples: tensors in [-1, 1] <-> 8/16-bit PNGs and grids (not run directories)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


def to_numpy01(images: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> float array [N, H, W] (grey) or [N, H, W, 3] in [0, 1]."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) / 2).numpy()
    return x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)


def to_pil(image01: np.ndarray, bit_depth: int = 8) -> Image.Image:
    """One [H, W] or [H, W, 3] image in [0, 1] -> PIL image (16-bit only for grey)."""
    if bit_depth == 16 and image01.ndim == 2:
        return Image.fromarray(np.round(image01 * 65535).astype(np.uint16))
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth={bit_depth}: use 8 or 16")
    return Image.fromarray(np.round(image01 * 255).astype(np.uint8))


def save_images(images: torch.Tensor, out_dir: str | Path, prefix: str = "sample", bit_depth: int = 8,
                start: int = 0) -> list[Path]:
    """Write one PNG per image as <prefix>_00000.png ...; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(to_numpy01(images)):
        path = out / f"{prefix}_{start + i:05d}.png"
        to_pil(img, bit_depth).save(path)
        paths.append(path)
    return paths


def tile(tiles: list[np.ndarray], nrow: int, pad: int = 2, top: int = 0) -> Image.Image:
    """Paste uint8 [H, W] or [H, W, 3] tiles `nrow` per row on a black canvas (`top` px left free for a title)."""
    if not tiles:
        raise ValueError("no images to tile; check that sampling produced any (n >= 1)")
    h, w = tiles[0].shape[:2]
    mode = "RGB" if any(t.ndim == 3 for t in tiles) else "L"
    cols = max(1, min(nrow, len(tiles)))
    rows = -(-len(tiles) // cols)
    grid = Image.new(mode, (cols * (w + pad) + pad, rows * (h + pad) + pad + top), 0)
    for i, t in enumerate(tiles):
        grid.paste(Image.fromarray(t).convert(mode), (pad + (i % cols) * (w + pad), top + pad + (i // cols) * (h + pad)))
    return grid


def make_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> Image.Image:
    """Tile [N, C, H, W] images in [-1, 1] into one 8-bit PIL image (about square by default)."""
    arr = np.round(to_numpy01(images) * 255).astype(np.uint8)
    return tile(list(arr), nrow or max(1, int(math.ceil(math.sqrt(len(arr))))), pad)


def with_caption(image: Image.Image, text: str) -> Image.Image:
    """`image` with one line of black text on a white strip below it (widened if the text is longer)."""
    from PIL import ImageDraw, ImageFont
    font = ImageFont.load_default()
    width = int(ImageDraw.Draw(Image.new("L", (1, 1))).textlength(text, font=font)) + 8
    out = Image.new(image.mode, (max(image.width, width), image.height + 16), 255 if image.mode == "L" else "white")
    out.paste(image, (0, 0))
    ImageDraw.Draw(out).text((4, image.height + 2), text, fill=0 if image.mode == "L" else "black", font=font)
    return out


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """make_grid and write it as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    make_grid(images, nrow).save(path)
    return path


def read_grey(path: str | Path) -> np.ndarray:
    """One image as grey float [H, W] in [0, 1]: 16-bit grey scaled by 65535, anything else to 8-bit luma."""
    with Image.open(path) as im:
        if im.mode.startswith("I"):  # 16-bit grey ("I;16", or "I" on older Pillow)
            return np.asarray(im).astype(np.float32) / 65535.0
        return np.asarray(im.convert("L")).astype(np.float32) / 255.0   # palette, alpha, colour: luma


def load_images(folder: str | Path, limit: int | None = None) -> np.ndarray:
    """Grey images of a folder (sorted, same size) as float [N, H, W] in [0, 1]; for evaluation."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    samples = [p for p in files if p.name.startswith("sample_")]  # a folder written by `irislib sample`
    files = samples or [p for p in files if "grid" not in p.stem and p.stem != "comparison"]
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    out = [read_grey(p) for p in files[:limit]]
    shapes = {a.shape for a in out}
    if len(shapes) > 1:
        raise ValueError(f"images in {folder} have different sizes {sorted(shapes)}; resize them to one size")
    return np.stack(out)
