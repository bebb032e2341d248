"""What the leakage check flags: a synthetic iris against altered copies of itself, re-segmented and re-encoded.

For 6 irises at each size: a copy rotated by 10 degrees about the iris centre, blurred (sigma 1 and 2 px), and
noised (sd 0.08 of the grey range); the HD range over the 6 and how many fall below the 0.34 threshold (flagged).
Usage (seconds):  python benchmarks/copy_detection.py
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from irislib import biometrics as bm
from irislib.data.synthetic import generate
from irislib.data.synthetic_texture import gaussian_blur


def copies(img: np.ndarray, geo: dict, seed: int) -> dict[str, np.ndarray]:
    centre = (geo["iris"]["cx"] + 0.5, geo["iris"]["cy"] + 0.5)      # PIL's centre is in pixel-corner units
    turned = Image.fromarray(np.round(img * 255).astype(np.uint8)).rotate(10, Image.BILINEAR, center=centre)
    return {"rotated 10 deg": np.asarray(turned, np.float32) / 255, "blur sigma 1": gaussian_blur(img, 1),
            "blur sigma 2": gaussian_blur(img, 2),
            "noise sd 0.08": np.clip(img + np.random.default_rng(seed).normal(0, 0.08, img.shape), 0, 1)}


def main() -> None:
    print("| size | copy | HD min-max over 6 irises | flagged (HD < 0.34) |\n|---|---|---|---|")
    for size in (64, 128):
        hds: dict[str, list[float]] = {}
        for s in range(6):
            img, geo = generate(100 + s, size)
            base, _ = bm.encode_images(img[None])
            for name, copy in copies(img, geo, s).items():
                codes, _ = bm.encode_images(copy[None])
                hds.setdefault(name, []).append(bm.hamming_pair(base, codes)[0])
        for name, v in hds.items():
            v = np.array(v)
            print(f"| {size} px | {name} | {np.nanmin(v):.2f}-{np.nanmax(v):.2f} | {int((v < 0.34).sum())} of 6 |")


if __name__ == "__main__":
    main()
