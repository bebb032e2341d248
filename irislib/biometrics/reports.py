"""The functions `irislib evaluate` calls: identity_report (uniqueness, leakage, genuine/impostor) and
quality_report (re-exported from quality), JSON-ready dicts with optional figures."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path, PurePosixPath

import numpy as np

from ..jsonsafe import json_safe
from .encode import IrisCodeSpec
from .figures import hd_histogram_figure, pairs_figure
from .identity import BIN_EDGES, encode_images, genuine_impostor, leakage, uniqueness


def subject_labels(files) -> np.ndarray:
    """Identity per file of a folder-per-subject layout (CASIA: <subject>/<eye>/<image>): the first folder of
    each relative path (FolderDataset.files) as integer labels in order of appearance."""
    names = [PurePosixPath(str(f)).parts[0] if len(PurePosixPath(str(f)).parts) > 1 else None for f in files]
    if any(n is None for n in names):
        raise ValueError("subject_labels needs files inside per-subject folders (<subject>/.../<image>); "
                         f"got e.g. {files[names.index(None)]!r}")
    index = {n: k for k, n in enumerate(dict.fromkeys(names))}
    return np.array([index[n] for n in names], np.int64)


def _grey(images) -> np.ndarray:
    x = np.asarray(images, np.float32)
    if x.ndim != 3:
        raise ValueError(f"images of shape {x.shape}: pass grey [N, H, W] in [0, 1]")
    return x


def identity_report(generated01, training01=None, threshold: float = 0.34, out_dir=None, *, training_labels=None,
                    spec: IrisCodeSpec = IrisCodeSpec(), device=None, max_listed: int = 50) -> dict:
    """Identity checks of generated irises [N, H, W] in [0, 1] against training irises [M, H, W] (optional):

    uniqueness (HD among generated: mean, sd, dof, near-duplicate pairs below `threshold`), leakage (nearest
    training image per sample; share below threshold flagged as memorised), and with training_labels (one identity
    per training image, e.g. subject_labels(files)) genuine vs impostor HDs and d'. With out_dir: identity.json,
    hd_histograms.png and leaked_pairs.png / near_duplicates.png. device "auto" matches on a CUDA GPU if present."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold={threshold}: a fractional Hamming distance in (0, 1), typically 0.32-0.35")
    gen = _grey(generated01)
    gcodes, gfound = encode_images(gen, spec)
    rep = {"threshold": threshold, "max_shift": spec.max_shift, "spec": _spec_dict(spec),
           "generated": {"n": len(gen), "encoded_share": float(gfound.mean())}}
    uni = uniqueness(gcodes, threshold, spec.max_shift, device)
    hists = {"generated-generated": uni.pop("histogram")}
    rep["uniqueness"] = {**uni, "pairs": uni["pairs"][:max_listed]}
    if training01 is not None:
        train = _grey(training01)
        tcodes, tfound = encode_images(train, spec)
        rep["training"] = {"n": len(train), "encoded_share": float(tfound.mean())}
        leak = leakage(gcodes, tcodes, threshold, spec.max_shift, device)
        hists["generated-training"] = leak.pop("histogram")
        leak.pop("nearest_index")
        rep["leakage"] = {**leak, "nearest_hd": [None if not np.isfinite(v) else float(v) for v in
                                                 leak["nearest_hd"]], "flagged": leak["flagged"][:max_listed]}
        if training_labels is not None:
            gi = genuine_impostor(tcodes, training_labels, threshold, spec.max_shift, device)
            hists["training genuine"], hists["training impostor"] = gi.pop("histogram_genuine"), \
                gi.pop("histogram_impostor")
            rep["training_genuine_impostor"] = gi
    rep["histograms"] = {"bin_edges": BIN_EDGES.tolist(), **{k: v.tolist() for k, v in hists.items()}}
    if out_dir is not None:
        rep["figures"] = _write(rep, gen, None if training01 is None else _grey(training01), hists, Path(out_dir))
    return rep


def _spec_dict(spec: IrisCodeSpec) -> dict:
    d = dataclasses.asdict(spec)
    d["filters"] = [dataclasses.asdict(f) for f in spec.filters]
    return d


def _write(rep: dict, gen, train, hists: dict, out: Path) -> dict:
    """identity.json and the figures in out; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    figs = {"hd_histograms": str(hd_histogram_figure(hists, rep["threshold"], out / "hd_histograms.png"))}
    dup = [(p["a"], p["b"], p["hd"]) for p in rep["uniqueness"]["pairs"]]
    figs["near_duplicates"] = str(pairs_figure(gen, gen, dup, out / "near_duplicates.png", ("generated", "generated")))
    if train is not None:
        leaked = [(f["generated"], f["training"], f["hd"]) for f in rep["leakage"]["flagged"]]
        figs["leaked_pairs"] = str(pairs_figure(gen, train, leaked, out / "leaked_pairs.png"))
    body = {k: v for k, v in rep.items() if k != "histograms"}
    (out / "identity.json").write_text(json.dumps(json_safe({**body, "figures": figs}), indent=1, allow_nan=False))
    return figs

