"""Evaluation and the hybrid-vs-vanilla comparison report (JSON + figure), and the tiny end-to-end demo."""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import imageio, presets
from ..config import ConfigError, Experiment
from ..data import make_dataset
from ..jsonsafe import json_safe as _clean
from ..metrics import compare_sets, compute_kid, measure_set

PLOT_VALUES = ("ellipse_residual", "edge_width_px", "pupil_iris_ratio", "axis_ratio", "concentricity", "pupil_darkness",
               "iris_pupil_contrast")
HEADLINE_METRICS = ("ellipse_residual", "edge_width_px", "pupil_iris_ratio", "concentricity", "pupil_darkness",
                    "iris_pupil_contrast")
# Vanilla at more than equal calls (--vanilla-budgets): DDPM over a respaced chain of that many steps, "full" = T.
FULL_CHAIN = "full"


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


@dataclass
class Method:
    """One row of the comparison: which sampler, from which start, with how many UNet calls."""
    name: str
    sampler: object            # HybridSampler
    strength: float            # 0 = the VAE draft itself, 1 = pure noise
    steps: int                 # UNet calls per image (0 for the draft)
    unet: str = "shipped"      # which UNet: the one under test, or "full-chain" (the vanilla peer)
    sampler_name: str | None = None  # None: the report's sampler (ddim); budgets use ddpm, as guided-diffusion
    n: int | None = None       # images, when fewer than the report's n (the costly full-chain rows)


def _methods(main, peer, strengths, steps, peer_steps, budgets=(), budget_n=None) -> tuple[list[Method], list[str]]:
    """VAE drafts, vanilla (pure noise, a full-chain UNet) and hybrid at each strength, at each UNet-call count;
    then vanilla at each of `budgets` (DDPM over that many respaced steps, "full" = every timestep)."""
    notes, rows = [], [Method("vae_draft", main, 0.0, 0)]
    vanilla = peer or (main if main.max_strength >= 1 else None)
    if vanilla is None:
        notes.append("vanilla skipped: the UNet is truncated (max_strength < 1) and no full-chain UNet was given")
    for k in steps:
        if vanilla is not None:
            rows.append(Method(f"vanilla_{k}", vanilla, 1.0, k, "full-chain" if vanilla is peer else "shipped"))
        rows += [Method(f"hybrid_s{s:g}_{k}", main, float(s), k) for s in strengths]
    if peer is not None and main.max_strength < 1:   # truncated vs full-chain training, same hybrid starts
        rows += [Method(f"fullchain_hybrid_s{s:g}_{k}", peer, float(s), k, "full-chain")
                 for k in peer_steps for s in strengths]
    for b in budgets if vanilla is not None else ():
        if b != FULL_CHAIN and not (b.isdigit() and 0 < int(b) <= vanilla.diffusion.num_timesteps):
            raise ConfigError(f"--vanilla-budgets {b!r}: use DDPM step counts between 1 and "
                              f"{vanilla.diffusion.num_timesteps} (e.g. 250), or {FULL_CHAIN!r} for every timestep")
        calls = vanilla.diffusion.num_timesteps if b == FULL_CHAIN else int(b)
        rows.append(Method(f"vanilla_{b}", vanilla, 1.0, calls, "full-chain" if vanilla is peer else "shipped",
                           "ddpm", budget_n))
    return rows, notes


def compare(unet_run, vae_run, out, strengths=(0.3, 0.5, 0.7), steps=(20,), n: int = 16, seed: int = 0,
            reference: str | None = None, sampler: str = "ddim", device: str = "auto", vanilla_unet=None,
            peer_steps=None, n_reference: int = 256, batch_size: int = 16, biometrics: bool = True,
            hd_threshold: float = 0.34, n_training: int = 512, vanilla_budgets=(), vanilla_n: int | None = None,
            rows_from=None, progress: bool = True) -> dict:
    """VAE drafts, vanilla (pure noise) and hybrid at several strengths, at equal UNet calls; JSON + figures in out.

    `vanilla_unet`: a full-chain UNet trained with the same budget, for vanilla sampling when `unet_run` is
    truncated, and for hybrid sampling at `peer_steps` (truncated vs full-chain training). The reference is a
    held-out set: for synthetic data, irises with another `synthetic_seed` than the training set's.
    `vanilla_budgets` ("250", "full"): vanilla rows at those DDPM budgets, on `vanilla_n` images (default n);
    `rows_from`: a report folder whose rows of those names are reused (their images, read from its grids, are
    measured again against this report's reference), not drawn again. `progress`: a line per row and a bar per
    batch on stderr.
    """
    from ..generate.sampler import HybridSampler, SampleConfig
    if vae_run is None:
        raise ConfigError("the comparison report needs the VAE run that drafts the shapes (--vae RUN)")
    if n < 1:
        raise ConfigError(f"n={n}: compare needs at least one image per method")
    steps = [int(k) for k in ([steps] if isinstance(steps, (int, str)) else steps)]
    main = HybridSampler.load(unet_run, vae_run, device)
    peer = None if vanilla_unet is None else HybridSampler.load(vanilla_unet, None, device).with_drafts_from(main)
    exp = main.experiment
    ref_spec, ref = held_out_reference(reference or exp.data.path, exp, n_reference)
    floors = reference_floors(ref)
    rows, grids = {}, {}
    drafts = main.drafts(list(range(seed, seed + n)))
    budgets = [str(b) for b in vanilla_budgets]
    methods, notes = _methods(main, peer, strengths, steps, peer_steps or steps[:1], budgets, vanilla_n)
    reused = reused_rows(rows_from, [m.name for m in methods if m.name in {f"vanilla_{b}" for b in budgets}],
                         dict(seed=seed, image_size=exp.unet.image_size, **_drawn_by(unet_run, vanilla_unet)))
    for i, m in enumerate(methods, 1):
        k, t = m.n or n, time.time()
        old_row, images = reused.get(m.name, (None, None))
        have = 0 if images is None else len(images)
        if have >= k:   # the images are the earlier report's; the figures are measured against this reference
            rows[m.name] = {"unet": old_row["unet"], "sampler": old_row.get("sampler", "ddpm"),
                            **_method_row(images, ref, floors["measures"], m.strength, old_row["t0"],
                                          old_row["unet_calls"], old_row["seconds"])}
            grids[m.name] = images
            notes.append(f"{m.name}: {len(images)} images read from {rows_from} (not drawn again), measured "
                         "against this report's reference")
            continue
        _say(progress, f"[{i}/{len(methods)}] {m.name}: drawing {k - have} images at {m.steps} UNet calls each")
        if m.steps == 0:
            new, t0, nfe = drafts, -1, 0   # -1: not noised, as the sampler reports strength 0
        else:   # per-image generators: seeds seed+have.. continue the reused images exactly
            res = m.sampler.sample(SampleConfig(n=k - have, strength=m.strength, steps=m.steps, sampler=m.sampler_name
                                                or sampler, seed=seed + have, batch_size=batch_size),
                                   drafts=drafts[have:k], progress=progress)
            new, t0, nfe = res.images.cpu(), res.t0, res.nfe
        if have:
            notes.append(f"{m.name}: {have} images read from {rows_from}, {k - have} drawn (seeds {seed + have}..)")
            new = torch.cat([images, new])
        seconds = time.time() - t + (old_row["seconds"] if have else 0.0)
        rows[m.name] = {"unet": m.unet, "sampler": m.sampler_name or sampler,
                        **_method_row(new, ref, floors["measures"], m.strength, t0, nfe, seconds)}
        grids[m.name] = new.cpu()
    report = {"settings": dict(unet_run=str(unet_run), vae_run=str(vae_run), vanilla_unet=_str(vanilla_unet),
                               steps=steps, n=n, seed=seed, sampler=sampler, reference=ref_spec,
                               n_reference=len(ref), strengths=list(strengths), image_size=exp.unet.image_size),
              "notes": notes, "floors": floors["summary"], "methods": rows, "summary": _summary_table(rows),
              "reference_values": {k: v.tolist() for k, v in floors["measures"].items() if k in PLOT_VALUES}}
    report["targets"] = check_targets(report)
    if biometrics:
        report["biometrics"] = biometric_section(grids, ref, main.experiment, Path(out) / "identity",
                                                 headline=_headline(rows), threshold=hd_threshold,
                                                 n_training=n_training)
    _write_report(Path(out), report, grids, ref)
    return report


def _drawn_by(unet_run, vanilla_unet) -> dict:
    """The settings that say which UNet drew the vanilla rows: the full-chain peer if given, else the main UNet."""
    return {"vanilla_unet": _str(vanilla_unet)} if vanilla_unet is not None else {"unet_run": str(unet_run),
                                                                                  "vanilla_unet": None}


def _say(progress: bool, text: str) -> None:
    """One progress line on stderr (a report draws for minutes; tqdm bars below show each batch)."""
    if progress:
        import sys
        print(text, file=sys.stderr, flush=True)


def reused_rows(report_dir, names: list[str], expect: dict | None = None) -> dict:
    """{name: (row, images)} of `names` found in an earlier report folder (report.json + grid_<name>.png), e.g.
    the shipped report's full-chain vanilla rows, which cost an hour of CPU to draw; {} when report_dir is None.
    `expect`: settings the earlier report must share (seed, vanilla UNet, size), else its rows are not this run's."""
    if report_dir is None or not names:
        return {}
    path = Path(report_dir) / "report.json"
    if not path.is_file():
        raise ConfigError(f"--rows-from {report_dir}: no report.json there; give a folder an earlier "
                          "`irislib evaluate` wrote")
    old = json.loads(path.read_text())
    differ = [f"{k}={old['settings'].get(k)!r} (here {v!r})" for k, v in (expect or {}).items()
              if old["settings"].get(k) != v]
    if differ:
        raise ConfigError(f"--rows-from {report_dir}: its rows were drawn with other settings: {', '.join(differ)}; "
                          "drop --rows-from to draw them, or give matching flags")
    out = {}
    for name in names:
        grid = Path(report_dir) / f"grid_{name}.png"
        if name in old["methods"] and grid.is_file():
            row = old["methods"][name]
            out[name] = (row, _split_grid(grid, row["generated"]["n_images"]))
    return out


def _split_grid(path: Path, count: int) -> torch.Tensor:
    """The images of a grid written by imageio.save_grid (8 per row, 2 px padding) -> [N, 1, H, W] in [-1, 1]."""
    grid = np.asarray(imageio.Image.open(path).convert("L"), dtype=np.float32) / 127.5 - 1
    cols = min(8, count)
    side = (grid.shape[1] - 2) // cols - 2
    tiles = [grid[2 + (i // cols) * (side + 2):, 2 + (i % cols) * (side + 2):][:side, :side] for i in range(count)]
    return torch.from_numpy(np.stack(tiles))[:, None]


def _headline(rows: dict) -> str:
    """The method the identity checks look at: hybrid at strength 0.5 with the fewest calls, else the first."""
    hybrid = [k for k in rows if k.startswith("hybrid_")]
    mid = [k for k in hybrid if rows[k]["strength"] == 0.5]
    return min(mid or hybrid or list(rows), key=lambda k: rows[k]["unet_calls"])


def run_data(data):
    """A loaded run's DataConfig with its image cache moved into irislib's own cache: a run folder is untrusted
    input (docs/design.md, threat model), so evaluating it must not write where its config.json points."""
    from ..hub import default_cache_dir
    return dataclasses.replace(data, cache_dir=str(default_cache_dir() / "data"))


def training_images(exp: Experiment, n: int) -> np.ndarray:
    """The first n training images [N, H, W] in [0, 1], cropped and resized as in training."""
    ds = make_dataset(run_data(exp.data))
    return np.stack([((ds[i].mean(0) + 1) / 2).numpy() for i in range(min(n, len(ds)))])


def biometric_section(grids: dict, ref: np.ndarray, exp: Experiment, out: Path, headline: str,
                      threshold: float = 0.34, n_training: int = 512) -> dict:
    """ISO/IEC 29794-6 quality per method (share passing all BIQT-Iris thresholds, component medians) and iris-code
    identity checks of the headline method: uniqueness among samples, leakage against training images."""
    from ..biometrics import identity_report, quality_report
    quality = {"reference": _quality_summary(quality_report(ref))}
    for name, images in grids.items():
        quality[name] = _quality_summary(quality_report(_as01(images)))
    ident = identity_report(_as01(grids[headline]), training_images(exp, n_training), threshold, out_dir=out)
    keep = ("threshold", "generated", "training", "uniqueness", "leakage", "figures")
    return {"quality": quality, "identity_method": headline, "identity": {k: ident[k] for k in keep if k in ident}}


def _quality_summary(q: dict) -> dict:
    return {"found_share": q["found_share"], "pass_all_biqt_share": q["pass_all_biqt_share"],
            **{c: {"median": v["p50"], **({"pass_share": v["pass_share"]} if "pass_share" in v else {})}
               for c, v in q["components"].items()}}


def _str(v):
    return None if v is None else str(v)


def held_out_reference(spec: str, exp: Experiment, n: int) -> tuple[str, np.ndarray]:
    """The reference images [N, H, W] in [0, 1] and how they were drawn. A synthetic reference uses the next
    synthetic_seed after the training set's, so no reference iris was trained on."""
    data = run_data(exp.data)
    if str(spec).startswith("synthetic:"):
        data.synthetic_seed = exp.data.synthetic_seed + 1
        spec_text = f"{spec} (synthetic_seed={data.synthetic_seed}, held out from training)"
    else:
        spec_text = str(spec)
    return spec_text, reference_images(spec, exp.unet.image_size, n, data=data)


def reference_floors(ref: np.ndarray) -> dict:
    """Each metric on the reference itself: medians, and W1/KID between its two halves (what a perfect
    generator would score with this many images)."""
    measures = measure_set(ref)
    half = len(ref) // 2
    split = compare_sets({k: v[:half] for k, v in measures.items()}, {k: v[half:] for k, v in measures.items()})
    kid_mean, _ = compute_kid(ref[:half], ref[half:], value_range=(0.0, 1.0))
    summary = summarize_measures(measures)
    summary.update({f"{m}_w1": split["w1"][m] for m in ("ellipse_residual", "edge_width_px", "pupil_iris_ratio")})
    summary["ellipse_residual_p90"] = _p90(measures["ellipse_residual"])
    summary["n"] = len(ref)
    summary["kid"] = float(kid_mean)
    return {"measures": measures, "summary": summary}


def summarize_measures(measures: dict) -> dict:
    """found_rate and the medians of the headline metrics."""
    from ..metrics import summarize
    s = summarize(measures)
    return {"found_rate": s["found_rate"], **{f"{m}_median": s[m]["median"] for m in HEADLINE_METRICS if m in s}}


# (metric, kind, value): "x" = at most value times the reference's, "abs" = at most value, "near" = within value
# of the reference's. Set before the samples were drawn; met or missed, never tuned.
TARGETS = (("ellipse_residual_median", "x", 1.3), ("ellipse_residual_p90", "x", 1.3), ("edge_width_px_median", "x", 1.3),
           ("pupil_iris_ratio_w1", "abs", 0.03), ("pupil_darkness_median", "near", 5.0), ("found_rate", "near", 0.03),
           ("kid", "abs", 0.01))


def check_targets(report: dict, max_calls: int = 20) -> list[dict]:
    """Targets for hybrid rows at <= max_calls UNet calls: ellipse residual (median and 90th percentile) and edge
    width within 1.3x the reference's, pupil/iris-ratio W1 <= 0.03, pupil darkness within 5 grey levels and found
    rate within 0.03 of the reference's, KID <= 0.01."""
    floors, out = report["floors"], []
    for row in report["summary"]:
        if not row["method"].startswith("hybrid_") or row["unet_calls"] > max_calls:
            continue
        for key, kind, value in TARGETS:
            got, ref = row.get(key), floors.get(key)
            if kind != "abs" and ref is None:
                continue   # a metric this report does not have
            limit = value * ref if kind == "x" else value
            target = f"within {value:g} of {ref:.4g}" if kind == "near" else f"<= {limit:.4g}"
            dist = abs(got - ref) if kind == "near" and got is not None else got
            ok = dist is not None and np.isfinite(dist) and dist <= limit
            out.append({"method": row["method"], "metric": key, "value": got, "target": target, "met": bool(ok)})
    return out


def _method_row(images, ref, ref_measures, strength, t0, nfe, seconds) -> dict:
    gen = _as01(images)
    measures = measure_set(gen)
    kid_mean, kid_std = compute_kid(gen, ref, value_range=(0.0, 1.0))
    return {"strength": strength, "t0": t0, "unet_calls": nfe, "seconds": round(seconds, 2),
            "seconds_per_image": round(seconds / max(len(gen), 1), 3),
            "kid": float(kid_mean), "kid_std": float(kid_std), **compare_sets(measures, ref_measures),
            "values": {k: v.tolist() for k, v in measures.items() if k in PLOT_VALUES}}


def _summary_table(rows: dict) -> list[dict]:
    """One flat line per method: found rate, medians of the key metrics, W1 to the reference, KID."""
    table = []
    for name, row in rows.items():
        gen = row["generated"]
        line = {"method": name, "unet": row["unet"], "strength": row["strength"], "t0": row["t0"],
                "unet_calls": row["unet_calls"], "n": gen["n_images"], "found_rate": gen["found_rate"],
                "kid": row["kid"], "seconds_per_image": row.get("seconds_per_image")}
        for m in HEADLINE_METRICS:
            if m in gen:
                line[f"{m}_median"] = gen[m]["median"]
                line[f"{m}_w1"] = row["w1"].get(m)
        line["ellipse_residual_p90"] = _p90(row.get("values", {}).get("ellipse_residual"))
        table.append(line)
    return table


COLUMNS = ["method", "unet", "strength", "t0", "unet_calls", "n", "found_rate", "ellipse_residual_median",
           "ellipse_residual_p90", "edge_width_px_median", "pupil_iris_ratio_w1", "pupil_darkness_median",
           "iris_pupil_contrast_median", "kid", "seconds_per_image"]


# What a reader calls each column (the JSON keeps the metric keys). "pupil_darkness" is a grey level: it grows as
# the pupil gets lighter.
COLUMN_LABELS = {"unet": "UNet", "unet_calls": "UNet calls", "n": "images", "found_rate": "found",
                 "ellipse_residual_median": "ellipse residual median", "ellipse_residual_p90": "ellipse residual p90",
                 "edge_width_px_median": "edge width px", "pupil_iris_ratio_w1": "pupil/iris W1",
                 "pupil_darkness_median": "pupil grey level", "iris_pupil_contrast_median": "iris - pupil grey",
                 "kid": "KID", "seconds_per_image": "s / image"}
METRIC_LABELS = {"ellipse_residual": "ellipse residual (/ radius)", "edge_width_px": "edge width (px)",
                 "pupil_iris_ratio": "pupil/iris radius", "axis_ratio": "axis ratio", "concentricity": "concentricity",
                 "pupil_darkness": "pupil grey level (0-255)", "iris_pupil_contrast": "iris - pupil (grey levels)"}


def markdown_evaluation(report: dict) -> str:
    """`evaluate(images)`'s result as a table a person reads: each metric's median here and in the reference,
    the W1 between them, then found rates and KID."""
    gen, ref = report["generated"], report["reference"]
    lines = ["| metric | generated median | reference median | W1 |", "|---|---|---|---|"]
    for key, w1 in report["w1"].items():
        g, r = gen.get(key, {}).get("median"), ref.get(key, {}).get("median")
        lines.append(f"| {METRIC_LABELS.get(key, key)} | {_fmt(g)} | {_fmt(r)} | {_fmt(w1)} |")
    found, kid = report["found_rate"], report["kid"]
    lines += ["", f"pupil found in {_fmt(found['generated'])} of the generated images, {_fmt(found['reference'])} "
              f"of the reference; KID {_fmt(kid['mean'])} +- {_fmt(kid['std'])} ({kid['extractor']})"]
    return "\n".join(lines)


def _p90(values) -> float | None:
    v = np.asarray(values if values is not None else [], dtype=float)
    v = v[np.isfinite(v)]
    return float(np.percentile(v, 90)) if v.size else None


def markdown_table(report: dict) -> str:
    """The summary as a Markdown table, with the reference's own values (the floors) as the first row."""
    lines = ["| " + " | ".join(COLUMN_LABELS.get(c, c) for c in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    floor = {"method": "reference (floor)", "unet": "", "strength": "", "t0": "", "unet_calls": "",
             **report.get("floors", {})}
    for row in [floor] + report["summary"]:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines)


def markdown_report(report: dict) -> str:
    """report.md: settings, the table, the targets met or missed, notes."""
    st = report["settings"]
    parts = [f"# Comparison report ({st['image_size']} px, {st['n']} images per method, reference {st['reference']}, "
             f"{st['n_reference']} images)", "", markdown_table(report), "",
             "Floors: the first row is the reference measured the same way (medians), with W1 and KID between its "
             "two halves: no generator can be expected to score below them with this many images.", ""]
    if report.get("targets"):
        parts += ["## Targets (hybrid, <= 20 UNet calls; the reference's value from the first row)", "", "| method | metric | value | target | met |",
                  "|---|---|---|---|---|"]
        parts += [f"| {t['method']} | {t['metric']} | {_fmt(t['value'])} | {t['target']} | "
                  f"{'yes' if t['met'] else '**no**'} |" for t in report["targets"]]
    parts += [""] + [f"- {note}" for note in report.get("notes", [])]
    if report.get("biometrics"):
        parts += [""] + markdown_biometrics(report["biometrics"])
    return "\n".join(parts) + "\n"


QUALITY_COLUMNS = ("grey_scale_utilisation", "iris_pupil_contrast", "iris_sclera_contrast", "pupil_iris_ratio",
                   "iris_pupil_concentricity", "pupil_boundary_circularity", "margin_adequacy", "usable_iris_area")


def markdown_biometrics(bio: dict) -> list[str]:
    """ISO quality (median and share passing per component) per method, and the identity checks."""
    cols = [c for c in QUALITY_COLUMNS if c in bio["quality"]["reference"]]
    lines = ["## ISO/IEC 29794-6 quality (median, share passing the BIQT-Iris / ISO value)", "",
             "| method | found | pass all BIQT | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 3)]
    for name, q in bio["quality"].items():
        cells = [f"{_fmt(q[c]['median'])} ({_fmt(q[c].get('pass_share'))})" for c in cols]
        lines.append(f"| {name} | {_fmt(q['found_share'])} | {_fmt(q['pass_all_biqt_share'])} | "
                     + " | ".join(cells) + " |")
    ident = bio["identity"]
    uni, leak = ident["uniqueness"], ident.get("leakage", {})
    lines += ["", f"## Identity checks ({bio['identity_method']}, fractional Hamming distance, threshold "
              f"{ident['threshold']})", "",
              f"- uniqueness (generated vs generated): {_count(uni)}; {uni.get('near_duplicate_pairs', 'n/a')} "
              "near-duplicate pairs below the threshold",
              f"- leakage (each sample's nearest of {ident.get('training', {}).get('n', 'n/a')} training irises): "
              f"{_count(leak.get('nearest', {}))}; flagged as possibly memorised: {_fmt(leak.get('flagged_share'))}"
              f" of the encoded; not encoded (no pupil or limbus found): {len(leak.get('unencoded', []))}",
              "- figures: identity/hd_histograms.png, identity/leaked_pairs.png"]
    return lines


def _count(stats: dict) -> str:
    keys = [k for k in ("mean", "sd", "dof") if k in stats]
    return ", ".join(f"HD {k} {_fmt(stats[k])}" for k in keys) if keys else "n/a"


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _write_report(out: Path, report: dict, grids: dict, ref: np.ndarray) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(_clean(report), indent=2, allow_nan=False) + "\n")
    (out / "report.md").write_text(markdown_report(report))
    for name, images in grids.items():
        imageio.save_grid(images, out / f"grid_{name}.png", nrow=8)
    imageio.save_grid(torch.from_numpy(ref[:64] * 2 - 1)[:, None], out / "grid_reference.png", nrow=8)
    from .plots import comparison_figure, sample_rows
    comparison_figure(report, grids, out / "comparison.png", reference=torch.from_numpy(ref[:8] * 2 - 1)[:, None])
    rows = headline_rows(report)
    sample_rows({"reference": torch.from_numpy(ref[:8] * 2 - 1)[:, None], **grids}, out / "headline.png",
                names=["reference"] + rows, labels={n: _headline_label(report, n) for n in rows})


def headline_rows(report: dict) -> list[str]:
    """The README's picture: VAE drafts, vanilla at its longest chain, hybrid at <= 20 calls (strength 0.5 if
    drawn, fewest calls)."""
    methods = report["methods"]
    vanilla = [k for k in methods if k.startswith("vanilla_")]
    rows = ["vae_draft"] + ([max(vanilla, key=lambda k: methods[k]["unet_calls"])] if vanilla else [])
    hybrid = [k for k in methods if k.startswith("hybrid_") and methods[k]["unet_calls"] <= 20]
    mid = [k for k in hybrid if methods[k]["strength"] == 0.5] or hybrid
    return rows + ([max(mid, key=lambda k: methods[k]["unet_calls"])] if mid else [])


def _headline_label(report: dict, name: str) -> str:
    row = report["methods"][name]
    if name == "vae_draft":
        return "VAE drafts"
    kind = "vanilla (pure noise)" if row["strength"] >= 1 else f"hybrid, strength {row['strength']:g}"
    return f"{kind}\n{row['unet_calls']} {row.get('sampler', 'ddim')} calls"


SHIPPED = {"unet": "iris128-unet", "vae": "iris128-vae", "vanilla_unet": "iris128-unet-full"}
# The shipped 128 px report (in a clone of the repository): the demo shows its full-chain vanilla rows, which take
# an hour of CPU to draw, instead of drawing them again.
SHIPPED_REPORT = Path(__file__).resolve().parents[2] / "docs" / "report128"


def demo(out: str | Path = "demo_out", quick: bool = False) -> Path:
    """The 128 px claim from the shipped pair, plus a short training that shows training and resume.

    1. train a tiny VAE and UNet for a few steps, stop, and resume them to twice the steps (32 px, CPU);
    2. hybrid-sample the shipped 128 px pair and compare VAE drafts, vanilla and hybrid at equal UNet calls
       against held-out synthetic irises (report.md, comparison.png, headline.png, grids), with vanilla at its
       full chain read from the shipped report (docs/report128) when this is a clone that has it.
    `quick` (the tests): the same steps with 2 images, 2 UNet calls and no identity checks.
    """
    from ..train.pipeline import sample, train_diffusion, train_vae
    out = Path(out)
    steps, n, calls = (2, 2, 2) if quick else (20, 16, 20)
    base = presets.get("tiny").override({"data.path": "synthetic:64", "train.epochs": 0, "train.save_every_steps": 10,
                                         "train.sample_grid_images": 4, "train.sample_grid_steps": 2,
                                         "train.log_every_steps": 1})
    _say(True, f"demo 1/3: training a tiny 32 px VAE and UNet to {steps} steps, then resuming both to {2 * steps}")
    for total in (steps, 2 * steps):   # the second call resumes from the first's checkpoint
        train_vae(base.override({"train.max_steps": total}), out / "train" / "vae_run", resume="auto",
                  progress=not quick)
        train_diffusion(base.override({"train.max_steps": total}), out / "train" / "unet_run", resume="auto",
                        progress=not quick)
    _say(True, f"demo 2/3: {n} hybrid samples from the shipped 128 px pair -> {out / 'samples'}")
    sample(SHIPPED["unet"], SHIPPED["vae"], out=out / "samples", n=n, strength=0.5, steps=calls, progress=not quick)
    full = (SHIPPED_REPORT / "report.json").is_file()
    _say(True, "demo 3/3: the comparison report (VAE drafts, vanilla and hybrid at equal calls"
         + (f"; vanilla at its full chain read from {SHIPPED_REPORT})" if full else ")"))
    report = compare(SHIPPED["unet"], SHIPPED["vae"], out / "report", strengths=(0.5, 0.7), steps=(calls,),
                     n=n, reference="synthetic:256", vanilla_unet=SHIPPED["vanilla_unet"],
                     n_reference=16 if quick else 64, biometrics=not quick, n_training=128,
                     vanilla_budgets=("full",) if full else (), rows_from=SHIPPED_REPORT if full else None,
                     progress=not quick)
    if not full:
        report["notes"].append(f"vanilla at its full chain not shown: the shipped report ({SHIPPED_REPORT}) is not "
                               "in this install; a clone of the repository has it")
        (out / "report" / "report.md").write_text(markdown_report(report))
    print(markdown_table(report))
    return out / "report"
