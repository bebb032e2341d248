"""Evaluation and the hybrid-vs-vanilla comparison report (JSON + figure), and the tiny end-to-end demo."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from . import hybrid, imageio, presets
from .config import ConfigError, Experiment
from .data import make_dataset
from .metrics import compare_sets, compute_kid, measure_set

PLOT_VALUES = ("ellipse_residual", "edge_width_px", "pupil_iris_ratio", "axis_ratio", "concentricity")


def reference_images(reference: str, image_size: int, n: int | None = None, data=None) -> np.ndarray:
    """Grey reference set [N, H, W] in [0, 1]: a folder (cropped/resized like training data, with `data`'s crop
    boxes and cache folder when given) or synthetic:N."""
    base = Experiment() if data is None else Experiment(data=dataclasses.replace(data))
    exp = base.override({"data.path": reference, "data.image_size": image_size})
    ds = make_dataset(exp.data)
    count = len(ds) if n is None else min(n, len(ds))
    return np.stack([((ds[i].mean(0) + 1) / 2).numpy() for i in range(count)])


def _as01(images) -> np.ndarray:
    """Grey float [N, H, W] in [0, 1] from tensors or arrays: [N, C, H, W], [N, H, W, 3] or [N, H, W], in [0, 1]
    or [-1, 1] (a minimum below 0 means [-1, 1], the models' range)."""
    x = images.detach().float().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, np.float32)
    if x.ndim == 4:  # channels first (C <= 4) or last
        x = x.mean(axis=1) if x.shape[1] <= 4 else x.mean(axis=-1)
    if x.ndim != 3:
        raise ValueError(f"images of shape {x.shape}: pass [N, H, W], [N, C, H, W] or [N, H, W, C]")
    return np.clip((x + 1) / 2 if x.min() < -1e-3 else x, 0.0, 1.0).astype(np.float32)


def evaluate(images_or_dir, reference: str = "synthetic:64", out=None, n_reference: int | None = 64) -> dict:
    """Pupil metrics of generated images vs a reference set: per-metric W1 distances, summaries, KID."""
    gen = imageio.load_images(images_or_dir) if isinstance(images_or_dir, (str, Path)) else _as01(images_or_dir)
    ref = reference_images(reference, gen.shape[-1], n_reference)
    report = compare_sets(gen, ref)
    kid_mean, kid_std = compute_kid(gen, ref, value_range=(0.0, 1.0))
    report["kid"] = {"mean": float(kid_mean), "std": float(kid_std), "extractor": "random-conv (offline)"}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(_clean(report), indent=2, allow_nan=False) + "\n")
    return report


def _clean(o):
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None (strict JSON has no NaN)."""
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        o = o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o


def compare(unet_run, vae_run, out, strengths=(0.3, 0.5, 0.7), steps: int = 20, n: int = 16, seed: int = 0,
            reference: str | None = None, sampler: str = "ddim", device: str = "auto") -> dict:
    """Vanilla (pure noise) vs hybrid at several strengths, equal UNet calls, same model; JSON + figure in out."""
    from .pipeline import check_pair, load_unet, load_vae, resolve_device
    if vae_run is None:
        raise ConfigError("the comparison report needs the VAE run that drafts the shapes (--vae RUN)")
    if n < 1:
        raise ConfigError(f"n={n}: compare needs at least one image per method")
    dev = resolve_device(device)
    unet, diffusion, exp = load_unet(unet_run, dev)
    vae, prior = load_vae(vae_run, dev)
    check_pair(unet_run, unet, vae_run, vae)
    ref = reference_images(reference or exp.data.path, exp.unet.image_size, max(n, 32), data=exp.data)
    ref_measures = measure_set(ref)
    seeds = list(range(seed, seed + n))
    rows, grids = {}, {}
    drafts = hybrid.draw_drafts(vae, seeds, prior=prior, device=dev)
    methods = [("vae_draft", 0.0), ("vanilla", 1.0)] + [(f"hybrid_s{s:g}", float(s)) for s in strengths]
    for name, strength in methods:
        t = time.time()
        if name == "vae_draft":
            images, t0, nfe = drafts, -1, 0  # -1: not noised, as the sampler reports strength 0
        else:
            res = hybrid.sample(unet, diffusion, seeds=seeds, x_init=None if strength >= 1 else drafts,
                                strength=strength, steps=steps, sampler=sampler,
                                cond=drafts if unet.cond_channels else None)
            images, t0, nfe = res.images, res.t0, res.nfe
        rows[name] = _method_row(images, ref, ref_measures, strength, t0, nfe, time.time() - t)
        grids[name] = images.cpu()
    report = {"settings": dict(unet_run=str(unet_run), vae_run=str(vae_run), steps=steps, n=n, seed=seed,
                               sampler=sampler, reference=reference or exp.data.path, strengths=list(strengths)),
              "methods": rows, "summary": _summary_table(rows),
              "reference_values": {k: v.tolist() for k, v in ref_measures.items() if k in PLOT_VALUES}}
    _write_report(Path(out), report, grids, ref)
    return report


def _method_row(images, ref, ref_measures, strength, t0, nfe, seconds) -> dict:
    gen = _as01(images)
    measures = measure_set(gen)
    kid_mean, kid_std = compute_kid(gen, ref, value_range=(0.0, 1.0))
    return {"strength": strength, "t0": t0, "unet_calls": nfe, "seconds": round(seconds, 2),
            "kid": float(kid_mean), "kid_std": float(kid_std), **compare_sets(measures, ref_measures),
            "values": {k: v.tolist() for k, v in measures.items() if k in PLOT_VALUES}}


def _summary_table(rows: dict) -> list[dict]:
    """One flat line per method: medians of the key metrics and their W1 distance to the reference."""
    table = []
    for name, row in rows.items():
        gen = row["generated"]
        line = {"method": name, "strength": row["strength"], "t0": row["t0"], "unet_calls": row["unet_calls"],
                "found_rate": gen["found_rate"], "kid": round(row["kid"], 4)}
        for m in ("ellipse_residual", "edge_width_px", "pupil_iris_ratio"):
            line[f"{m}_median"] = gen[m]["median"]
            line[f"{m}_w1"] = row["w1"].get(m)
        table.append(line)
    return table


def markdown_table(report: dict) -> str:
    """The summary as a Markdown table (for the README and the demo's report.md)."""
    cols = ["method", "strength", "t0", "unet_calls", "found_rate", "ellipse_residual_median",
            "ellipse_residual_w1", "edge_width_px_median", "edge_width_px_w1", "pupil_iris_ratio_w1", "kid"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in report["summary"]:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _write_report(out: Path, report: dict, grids: dict, ref: np.ndarray) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(_clean(report), indent=2, allow_nan=False) + "\n")
    (out / "report.md").write_text(markdown_table(report) + "\n")
    for name, images in grids.items():
        imageio.save_grid(images, out / f"grid_{name}.png", nrow=8)
    from .plots import comparison_figure
    comparison_figure(report, grids, out / "comparison.png")


def demo(out: str | Path = "demo_out", quick: bool = False) -> Path:
    """Full pipeline at tiny scale on synthetic irises: train VAE, train diffusion, hybrid-sample, compare."""
    from .pipeline import sample, train_diffusion, train_vae
    out = Path(out)
    vae_steps, unet_steps, n = (4, 4, 8) if quick else (400, 1000, 32)
    base = presets.get("tiny").override({"data.path": "synthetic:256", "train.epochs": 0,
                                         "train.save_every_steps": 250})
    if quick:
        base = base.override({"train.sample_grid_images": 4, "train.sample_grid_steps": 2})
    vae_exp = base.override({"train.max_steps": vae_steps, "train.lr": 1e-3, "train.batch_size": 16,
                             "train.microbatch": 16})
    unet_exp = base.override({"train.max_steps": unet_steps, "train.microbatch": 8})
    vae_run = train_vae(vae_exp, out / "vae_run", resume="auto", progress=not quick)
    unet_run = train_diffusion(unet_exp, out / "unet_run", resume="auto", progress=not quick)
    sample(unet_run, vae_run, out=out / "samples", n=n, strength=0.5, steps=20)
    report = compare(unet_run, vae_run, out / "report", strengths=(0.3, 0.5, 0.7), steps=20, n=n,
                     reference="synthetic:256")
    print(markdown_table(report))
    return out / "report"
