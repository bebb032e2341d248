"""Leakage of every hybrid sample of an `irislib evaluate` report against every training image, and a figure of
generated samples only, each shown only if its nearest training iris is above the copy threshold (docs/real_data.md
section 7). The training images are the run's training folder cropped as in training (data.crop=iris, its cache).

    python benchmarks/real_data/leakage_all.py --report ~/realiris_work/report_real128 \
        --training ~/realiris_work/real128/train --figure docs/real_data/real128_hybrid_samples.png

The report folder itself shows real eyes (its reference row, the leaked-pairs figure): keep it outside the
repository. The figure written here holds generated samples only.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from irislib import imageio
from irislib.biometrics import encode_images, leakage
from irislib.data.folder import FolderDataset
from irislib.evaluation.report import _split_grid


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--report", required=True)
    p.add_argument("--training", required=True, help="the training folder (camera frames, data.crop=iris)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--threshold", type=float, default=0.34)
    p.add_argument("--figure", help="PNG of generated samples above the threshold (headline method)")
    p.add_argument("--method", default="hybrid_s0.5_20", help="the method the figure shows")
    p.add_argument("--n-figure", type=int, default=16)
    a = p.parse_args(argv)
    report = Path(a.report).expanduser()
    methods = json.loads((report / "report.json").read_text())["methods"]
    ds = FolderDataset(Path(a.training).expanduser(), a.size, crop="iris", progress=False)
    train = (ds.data[:, 0].float().numpy() + 1) / 2
    tcodes, _ = encode_images(train)                         # once, for every method
    print(f"{len(train)} training images\n\n| method | samples | encoded | nearest training HD: min | median | "
          f"at or below {a.threshold} |\n|---|---|---|---|---|---|")
    keep = {}
    for name, row in methods.items():
        grid = report / f"grid_{name}.png"
        if "hybrid" not in name or not grid.is_file():
            continue
        images = (_split_grid(grid, row["generated"]["n_images"])[:, 0].numpy() + 1) / 2
        gcodes, _ = encode_images(images)
        near = np.asarray(leakage(gcodes, tcodes, a.threshold)["nearest_hd"], float)
        enc = np.isfinite(near)
        print(f"| {name} | {len(images)} | {int(enc.sum())} | {np.nanmin(near):.3f} | {np.nanmedian(near):.3f} | "
              f"{int((near[enc] <= a.threshold).sum())} |")
        keep[name] = (images, near)
    if a.figure and a.method in keep:
        images, near = keep[a.method]
        shown = [i for i in range(len(images)) if np.isfinite(near[i]) and near[i] > a.threshold][:a.n_figure]
        imageio.save_grid(torch.from_numpy(images[shown] * 2 - 1)[:, None], a.figure, nrow=8)
        print(f"\n{a.figure}: {len(shown)} samples of {a.method}, each nearest training HD > {a.threshold} "
              f"(lowest shown {near[shown].min():.3f})")


if __name__ == "__main__":
    main()
