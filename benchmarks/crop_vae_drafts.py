"""What data.crop changes for a VAE trained on whole camera frames: its drafts, measured and shown side by side.

Give VAE runs trained on the same frames with different crops (e.g. `--crop iris` and `--crop centre`); for each,
32 drafts from its prior are measured with irislib's pupil metrics: how often a pupil and a limbus are found, where
the iris sits (centre offset from the image centre, in iris radii) and how big it is (iris radius / image side, and
its spread), the pupil's roundness (ellipse residual) and edge width, from the fitted dark region and limbus. The training images each run saw are measured
the same way as its reference. Writes a Markdown table to stdout and a figure of the drafts (one row per run).
Usage:
    python benchmarks/crop_vae_drafts.py runs/vae_iris runs/vae_centre --out docs/iris_crop/drafts.png
"""
from __future__ import annotations

import argparse

import numpy as np

from irislib.config import Experiment
from irislib.data import make_dataset
from irislib.evaluation import plots
from irislib.generate import hybrid
from irislib.generate.loading import load_vae
from irislib.metrics.distribution import measure_set

ROWS = (("found_rate", "a pupil found (strict tests)"), ("fitted_rate", "a dark region and a limbus fitted"), ("iris_offset", "iris centre offset / iris radius, median"),
        ("iris_size", "iris radius / image side, median"), ("iris_size_iqr", "... its interquartile range"),
        ("ellipse_residual", "pupil ellipse residual, median"), ("edge_width_px", "pupil edge width px, median"))


def summary(images) -> dict:
    """Where the eye is and how big: from the fitted dark region and limbus, found or not (a brief VAE's drafts
    are too soft-edged for the strict pupil tests, yet their geometry is what the crop changes)."""
    strict = measure_set(images, value_range=(-1.0, 1.0))
    m = measure_set(images, value_range=(-1.0, 1.0), strict=False)
    side = images.shape[-1]
    ok = np.isfinite(m["iris_radius"]) & np.isfinite(m["cx"])
    offset = np.hypot(m["iris_cx"] - (side - 1) / 2, m["iris_cy"] - (side - 1) / 2) / m["iris_radius"]
    size = m["iris_radius"] / side
    q1, q3 = np.nanpercentile(size[ok], [25, 75]) if ok.any() else (np.nan, np.nan)
    return {"found_rate": float(np.mean(strict["found"])), "fitted_rate": float(ok.mean()), "iris_offset": float(np.nanmedian(offset[ok])) if ok.any() else np.nan,
            "iris_size": float(np.nanmedian(size[ok])) if ok.any() else np.nan, "iris_size_iqr": float(q3 - q1),
            "ellipse_residual": float(np.nanmedian(m["ellipse_residual"][ok])) if ok.any() else np.nan,
            "edge_width_px": float(np.nanmedian(m["edge_width_px"][ok])) if ok.any() else np.nan}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="VAE run folders")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--out", default="drafts.png")
    args = p.parse_args(argv)
    cols, grids = {}, {}
    import torch
    for run in args.runs:
        vae, prior = load_vae(run)
        exp = Experiment.from_json(f"{run}/config.json")
        drafts = hybrid.draw_drafts(vae, list(range(args.n)), prior)
        data = make_dataset(exp.data)
        train = torch.stack([data[i] for i in range(min(args.n, len(data)))])
        name = f"{run} (crop {exp.data.crop})"
        cols[f"{name}: training images"], cols[f"{name}: drafts"] = summary(train), summary(drafts)
        grids[f"{exp.data.crop}: training"], grids[f"{exp.data.crop}: drafts"] = train[:8], drafts[:8]
    print("| | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for key, label in ROWS:
        print(f"| {label} | " + " | ".join(f"{c[key]:.3g}" for c in cols.values()) + " |")
    plots.sample_rows(grids, args.out)


if __name__ == "__main__":
    main()
