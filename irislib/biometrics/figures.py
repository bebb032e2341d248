"""Figures of the identity checks: HD histograms with the match threshold, flagged pairs side by side, and the
verification report's DET curve and genuine HD against dilation difference."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .identity import BIN_EDGES


def hd_histogram_plot(histograms: dict, threshold: float, title: str = "Iris-code Hamming distances", *,
                      label: str = "threshold", marks: dict | None = None):
    """Density step histograms {name: counts over identity.BIN_EDGES} with the threshold as a dashed line
    (labelled `label`) and any `marks` {label: HD} as solid ones (non-finite ones are not drawn), as a matplotlib
    Figure."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.subplots()
    centres, width = (BIN_EDGES[:-1] + BIN_EDGES[1:]) / 2, BIN_EDGES[1] - BIN_EDGES[0]
    for name, counts in histograms.items():
        counts = np.asarray(counts, float)
        if counts.sum() > 0:
            ax.step(centres, counts / (counts.sum() * width), where="mid", label=f"{name} (n={int(counts.sum())})")
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"{label} {threshold:g}")
    for k, (name, hd) in enumerate((marks or {}).items()):
        if np.isfinite(hd):
            ax.axvline(hd, color=f"C{k + 2}", lw=1.2, label=f"{name} {hd:.3f}")
    ax.set(xlim=(0, 0.7), xlabel="fractional Hamming distance (best rotation)", ylabel="density", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def hd_histogram_figure(histograms: dict, threshold: float, path, title: str = "Iris-code Hamming distances", *,
                        label: str = "threshold", marks: dict | None = None) -> Path:
    """hd_histogram_plot saved as a PNG at path."""
    return _save(hd_histogram_plot(histograms, threshold, title, label=label, marks=marks), path)


def pairs_figure(left01, right01, pairs: list[tuple[int, int, float]], path, labels=("generated", "training"),
                 max_pairs: int = 8):
    """Rows of (left[i], right[j]) images with their HD, for pairs [(i, j, hd)]; "none flagged" when empty."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    pairs = list(pairs)[:max_pairs]
    n = max(1, len(pairs))
    fig, axes = plt.subplots(n, 2, figsize=(4.0, 2.0 * n), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    if not pairs:
        axes[0, 0].text(0.5, 0.5, "no pair below the threshold", ha="center", va="center")
    for row, (i, j, hd) in enumerate(pairs):
        axes[row, 0].imshow(left01[i], cmap="gray", vmin=0, vmax=1)
        axes[row, 1].imshow(right01[j], cmap="gray", vmin=0, vmax=1)
        axes[row, 0].set_title(f"{labels[0]} {i}", fontsize=8)
        axes[row, 1].set_title(f"{labels[1]} {j}  HD {hd:.3f}", fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def det_plot(fmr, fnmr, eer: float):
    """The DET curve (FNMR against FMR on log axes, rates clipped at 1e-6) with its EER point, as a matplotlib
    Figure. With no errors at the EER the curve would lie on the axes' edges and the EER dot off them: the axes say
    why they are empty instead."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(4.8, 4.0))
    ax = fig.subplots()
    ax.set(xscale="log", yscale="log", xlabel="FMR", ylabel="FNMR", title="DET curve", xlim=(1e-6, 1),
           ylim=(1e-6, 1))
    fmr, fnmr = np.asarray(fmr, float), np.asarray(fnmr, float)
    why = ("no genuine or no impostor pairs: no error rates to draw" if not len(fmr) else
           "no errors at any threshold:\ngenuine and impostor scores\ndo not overlap" if eer == 0 else None)
    if why:
        ax.text(0.5, 0.5, why, transform=ax.transAxes, ha="center", va="center", fontsize=9)
    else:
        ax.plot(np.maximum(fmr, 1e-6), np.maximum(fnmr, 1e-6), drawstyle="steps-post")
        ax.plot([eer], [eer], "o", label=f"EER {100 * eer:.2f} %")
        ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def _save(fig, path) -> Path:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return Path(path)


def det_figure(fmr, fnmr, eer: float, path) -> Path:
    """det_plot saved as a PNG at path."""
    return _save(det_plot(fmr, fnmr, eer), path)


def dilation_plot(ddil, genuine, threshold: float, label: str = "match threshold"):
    """Genuine HD against the pupil-dilation difference of each pair, the mean per 0.05 bin (5+ pairs) and the
    match threshold (dashed, labelled `label`; not drawn when not finite), as a matplotlib Figure."""
    from matplotlib.figure import Figure
    ddil, genuine = np.asarray(ddil, float), np.asarray(genuine, float)
    fig = Figure(figsize=(4.8, 3.6))
    ax = fig.subplots()
    ax.scatter(ddil, genuine, s=6, alpha=0.4, label="genuine pairs")
    edges = np.arange(0, max(float(ddil.max(initial=0)), 0.05) + 0.05, 0.05)
    idx = np.digitize(ddil, edges) - 1
    means = [(edges[k] + 0.025, genuine[idx == k].mean()) for k in range(len(edges) - 1) if (idx == k).sum() >= 5]
    if means:
        ax.plot(*zip(*means), "o-", color="C3", label="mean per 0.05 bin")
    if np.isfinite(threshold):
        ax.axhline(threshold, color="k", ls="--", lw=1, label=f"{label} HD {threshold:.3g}")
    ax.legend(fontsize=8, loc="upper left")
    ax.set(xlabel="pupil dilation difference |ratio a - ratio b|", ylabel="genuine HD",
           title="Genuine HD vs dilation difference")
    fig.tight_layout()
    return fig


def dilation_figure(ddil, genuine, threshold: float, path, label: str = "match threshold") -> Path:
    """dilation_plot saved as a PNG at path."""
    return _save(dilation_plot(ddil, genuine, threshold, label), path)
