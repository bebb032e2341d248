"""Figures of the identity checks: HD histograms with the match threshold, and flagged pairs side by side."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .identity import BIN_EDGES


def hd_histogram_figure(histograms: dict, threshold: float, path, title: str = "Iris-code Hamming distances"):
    """Density step histograms {label: counts over identity.BIN_EDGES} with the threshold as a dashed line."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    centres, width = (BIN_EDGES[:-1] + BIN_EDGES[1:]) / 2, BIN_EDGES[1] - BIN_EDGES[0]
    for label, counts in histograms.items():
        counts = np.asarray(counts, float)
        if counts.sum() > 0:
            ax.step(centres, counts / (counts.sum() * width), where="mid", label=f"{label} (n={int(counts.sum())})")
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set(xlim=(0, 0.7), xlabel="fractional Hamming distance (best rotation)", ylabel="density", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


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
