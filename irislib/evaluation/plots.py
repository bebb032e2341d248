"""Figures for reports: sample grids side by side, metric distributions, metric vs strength (matplotlib, Agg)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import imageio

PLOT_METRICS = (("ellipse_residual", "ellipse-fit residual (/ radius)"), ("edge_width_px", "pupil edge width (px)"),
                ("pupil_iris_ratio", "pupil / iris radius"))
DARKNESS_METRICS = (("pupil_darkness", "pupil grey level (0-255)"), ("iris_pupil_contrast", "iris - pupil (grey levels)"))


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


def sample_rows(grids: dict, path: str | Path, names: list[str] | None = None, labels: dict | None = None,
                per_row: int = 8, tile: int | None = None) -> Path:
    """One row of `per_row` samples per method, its name on the left: tiles at least 128 px (64 px images are
    shown twice as big, nearest-neighbour), so a reader sees each pupil. The canvas is as wide as its widest row
    and its labels, so a viewer that fits it to the page does not shrink the eyes for blank space."""
    from PIL import Image, ImageDraw
    names = list(grids) if names is None else names
    tile = tile or max(int(grids[names[0]].shape[-1]), 128)
    font, gap, line_h = _font(18), 4, 22
    texts = {n: ((labels or {}).get(n) or n).split("\n") for n in names}
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    label_w = 16 + max(int(probe.textlength(t, font=font)) for lines in texts.values() for t in lines)
    columns = max(min(per_row, len(grids[n])) for n in names)
    mode = "RGB" if grids[names[0]].shape[1] == 3 else "L"
    canvas = Image.new(mode, (label_w + columns * (tile + gap), len(names) * (tile + gap)), 255)
    draw = ImageDraw.Draw(canvas)
    for r, name in enumerate(names):
        y = r * (tile + gap)
        for c, img in enumerate(np.round(imageio.to_numpy01(grids[name][:per_row]) * 255).astype(np.uint8)):
            canvas.paste(Image.fromarray(img).resize((tile, tile), Image.NEAREST), (label_w + c * (tile + gap), y))
        top = y + tile // 2 - line_h * len(texts[name]) // 2
        for k, line in enumerate(texts[name]):
            draw.text((8, top + line_h * k), line, fill="black", font=font)
    path = Path(path)
    canvas.save(path)
    return path


def metric_boxes(report: dict, path: str | Path) -> Path:
    """Per metric, a box per method (median, quartiles, 5-95 %) with the reference's interquartile range shaded:
    each method on its own line, so 16 methods stay readable."""
    plt = _pyplot()
    names = list(report["methods"])
    metrics = [(m, lbl) for m, lbl in PLOT_METRICS + DARKNESS_METRICS
               if any(report["methods"][n].get("values", {}).get(m) for n in names)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics) + 2.4, 0.32 * len(names) + 1.6),
                             sharey=True, squeeze=False)
    for ax, (metric, label) in zip(axes[0], metrics):
        data = [_finite(report["methods"][n].get("values", {}).get(metric, [])) for n in names]
        ax.boxplot([d if len(d) else [np.nan] for d in data], orientation="horizontal", whis=(5, 95), widths=0.6,
                   showfliers=False)
        ref = _finite(report.get("reference_values", {}).get(metric, []))
        if len(ref):
            ax.axvspan(*np.percentile(ref, [25, 75]), color="tab:green", alpha=0.2, label="reference IQR")
            ax.axvline(np.median(ref), color="tab:green", lw=1)
        _clip_outlying_rows(ax, names, data, ref)
        ax.set_xlabel(label, fontsize=9)
        ax.tick_params(labelsize=8)
    axes[0][0].set_yticks(range(1, len(names) + 1), names, fontsize=8)
    axes[0][0].invert_yaxis()
    axes[0][0].legend(fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def _clip_outlying_rows(ax, names: list[str], data: list[np.ndarray], ref: np.ndarray) -> None:
    """Scale the axis to the reference and the non-vanilla rows: a vanilla box far off to the right would squeeze
    every other box into a strip. A row reaching past the edge gets its median written there instead."""
    inner = [d for n, d in zip(names, data) if len(d) and not n.startswith("vanilla")] + ([ref] if len(ref) else [])
    if not inner:
        return
    lo = min(np.percentile(d, 5) for d in inner)
    hi = max(np.percentile(d, 95) for d in inner)
    pad = 0.08 * (hi - lo or abs(hi) or 1.0)
    ax.set_xlim(lo - pad, hi + pad)
    for row, d in enumerate(data, 1):
        if len(d) and np.median(d) > hi + pad:
            ax.annotate(f"median {np.median(d):.3g} ->", (0.99, row), xycoords=("axes fraction", "data"),
                        ha="right", va="center", fontsize=7, color="tab:red",
                        bbox=dict(facecolor="white", edgecolor="none", pad=1))


def strength_figure(report: dict, path: str | Path) -> Path:
    """Median of each metric against strength, one line per UNet and call budget (legend beside the plots)."""
    plt = _pyplot()
    metrics = PLOT_METRICS + tuple(d for d in DARKNESS_METRICS
                                   if any(r.get(f"{d[0]}_median") is not None for r in report["summary"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics) + 2.5, 3.2), squeeze=False)
    for ax, (metric, label) in zip(axes[0], metrics):
        for name, pts in strength_lines(report["summary"], f"{metric}_median").items():
            between = any(0 < x < 1 for x, _ in pts)   # only the draft and vanilla: markers, no implied trend
            ax.plot(*zip(*pts), "o-" if between else "o", label=name)
        ref = report.get("floors", {}).get(f"{metric}_median")
        if ref is not None:
            ax.axhline(ref, color="k", ls=":", lw=1, label="reference median")
        ax.set_xlabel("strength (0 = VAE draft, 1 = vanilla)", fontsize=8)
        ax.set_ylabel(f"median {label}", fontsize=8)
        ax.tick_params(labelsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    rows = -(-len(labels) // 4)   # the legend under the plots, 4 entries a row: no gap beside them
    fig.set_figheight(3.2 + 0.22 * rows)
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.22 * rows / fig.get_figheight() + 0.02, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def comparison_figure(report: dict, grids: dict, path: str | Path, reference=None) -> Path:
    """The report's figures: `path` (samples, one row per method, the reference on top when given), metrics.png
    and strength.png beside it."""
    path = Path(path)
    labels = {n: f"{n}\n{_calls(report['methods'][n])}" for n in grids}
    if reference is not None:
        grids, labels = {"reference": reference, **grids}, {"reference": "reference\n(held out)", **labels}
    sample_rows(grids, path, labels=labels)
    metric_boxes(report, path.with_name("metrics.png"))
    strength_figure(report, path.with_name("strength.png"))
    return path


def dataset_grid(folder: str | Path, path: str | Path, identities: int = 8, captures: int = 8) -> Path:
    """A dataset written by irislib.dataset (or any <identity>/<image> folder) as identities (rows) x captures
    (columns): along a row one eye, down a column different eyes. Identity folders with no image are left out;
    16-bit images are scaled by 65535, as they were written."""
    import torch
    folder = Path(folder)
    grids = {}
    for d in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")):
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in imageio.IMAGE_SUFFIXES)[:captures]
        if files:
            arr = np.stack([imageio.read_grey(f) * 2 - 1 for f in files]).astype(np.float32)
            grids[d.name] = torch.from_numpy(arr)[:, None]
        if len(grids) == identities:
            break
    if not grids:
        raise FileNotFoundError(f"no identity folders with images in {folder} (<identity>/<image>.png)")
    return sample_rows(grids, path, labels={k: f"identity {k}" for k in grids}, per_row=captures)


def _font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)   # Pillow >= 10.1 scales its built-in font
    except TypeError:
        return ImageFont.load_default()


def _calls(row: dict) -> str:
    return "no UNet calls" if not row["unet_calls"] else f"t0={row['t0']}, {row['unet_calls']} calls"


def _finite(values) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return v[np.isfinite(v)]
