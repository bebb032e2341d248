"""Figures for reports: sample grids side by side, metric distributions, metric vs strength (matplotlib, Agg)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import imageio

PLOT_METRICS = (("ellipse_residual", "ellipse-fit residual (/ radius)"), ("edge_width_px", "pupil edge width (px)"),
                ("pupil_iris_ratio", "pupil / iris radius"))


def _pyplot():
    import matplotlib
    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def strength_lines(summary: list[dict], key: str) -> dict[str, list[tuple[float, float]]]:
    """(strength, value) points per UNet and call budget, each from the VAE draft (strength 0) through that UNet's
    hybrids (and its vanilla row at 1), so the truncated and the full-chain UNet are separate lines."""
    drafts = [r for r in summary if not r["unet_calls"]]
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in summary:
        if r["unet_calls"]:
            groups.setdefault((r["unet"], r["unet_calls"]), []).append(r)
    return {f"{unet} UNet, {calls} calls": sorted((r["strength"], r[key]) for r in drafts + rows
                                                 if r.get(key) is not None)
            for (unet, calls), rows in groups.items()}


def comparison_figure(report: dict, grids: dict, path: str | Path) -> Path:
    """Row 1: a grid per method; row 2: metric histograms per method; row 3: medians vs strength."""
    plt = _pyplot()
    names = list(grids)
    fig = plt.figure(figsize=(3.2 * max(len(names), 3), 10))
    gs = fig.add_gridspec(3, max(len(names), len(PLOT_METRICS)))
    for i, name in enumerate(names):
        ax = fig.add_subplot(gs[0, i])
        ax.imshow(np.asarray(imageio.make_grid(grids[name][:16], nrow=4)), cmap="gray", vmin=0, vmax=255)
        row = report["methods"][name]
        ax.set_title(f"{name}\nt0={row['t0']}, {row['unet_calls']} UNet calls", fontsize=9)
        ax.axis("off")
    for j, (metric, label) in enumerate(PLOT_METRICS):
        ax = fig.add_subplot(gs[1, j])
        for name in names:
            vals = np.asarray(report["methods"][name].get("values", {}).get(metric, []), dtype=float)
            vals = vals[np.isfinite(vals)]
            if len(vals):
                ax.hist(vals, bins=12, histtype="step", label=name)
        ref = np.asarray(report.get("reference_values", {}).get(metric, []), dtype=float)
        if len(ref[np.isfinite(ref)]):
            ax.hist(ref[np.isfinite(ref)], bins=12, histtype="stepfilled", alpha=0.25, color="k", label="reference")
        ax.set_xlabel(label, fontsize=9)
        if j == 0:
            ax.legend(fontsize=7)
    for j, (metric, label) in enumerate(PLOT_METRICS):
        ax = fig.add_subplot(gs[2, j])
        for name, pts in strength_lines(report["summary"], f"{metric}_median").items():
            between = any(0 < x < 1 for x, _ in pts)   # only the draft and vanilla: markers, no implied trend
            ax.plot(*zip(*pts), "o-" if between else "o", label=name)
        ax.set_xlabel("strength (0 = VAE draft, 1 = vanilla)", fontsize=9)
        ax.set_ylabel(f"median {label}", fontsize=8)
        if j == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
