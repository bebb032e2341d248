"""Checkpoint folders in a run directory: save, verify, find the newest good one, load, prune.

Layout: run_dir/config.json, run_dir/checkpoints/step_000123/{model.safetensors, ema_<rate>.safetensors,
trainer_state.pt, config.json, manifest.json}, run_dir/latest.json (pointer with sha256 of each file, written last).
A checkpoint is built in step_000123.tmp-<pid>/ and renamed into place only when complete, so a step_* folder
is never half-written; manifest.json (sha256 per file) still guards against later damage (truncated copies).
"""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import time
import warnings
from pathlib import Path

import torch

from ..config import ConfigError, Experiment
from .files import (TMP_TAG, fsync_dir, from_plain, load_tensors, save_state, save_tensors, sha256_file,
                    write_bytes, write_json)

CKPT_RE = re.compile(r"^step_(\d+)$")
MODEL_FILE, STATE_FILE, MANIFEST, POINTER = "model.safetensors", "trainer_state.pt", "manifest.json", "latest.json"
MODEL_SECTIONS = ("unet", "vae", "diffusion")


class CheckpointError(ValueError):
    """A checkpoint is damaged, incomplete or unsafe; the message names the file."""


def save(run_dir, state: dict, exp: Experiment, *, keep_last: int | None = None,
         milestone_every_steps: int | None = None) -> Path:
    """Write state = {"model": sd, "ema": {name: sd}, "trainer": plain dict with "step"} as a verified checkpoint.

    Returns the checkpoint folder. Older checkpoints beyond keep_last (+ milestones) are deleted afterwards.
    """
    run = Path(run_dir)
    root = run / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    step = int(state["trainer"]["step"])
    config_text = exp.to_json().encode()
    write_bytes(run / "config.json", config_text)
    _remove_unfinished(root)
    for p in run.iterdir():  # e.g. latest.json.tmp-123 left by a process killed while writing the pointer
        if TMP_TAG in p.name and p.is_file():
            p.unlink(missing_ok=True)
    name = f"step_{step:06d}"
    tmp = root / f"{name}{TMP_TAG}{os.getpid()}"
    tmp.mkdir()
    # Write every file, then the manifest of their hashes, then publish the folder by renaming it.
    save_tensors(tmp / MODEL_FILE, state["model"], {"step": str(step), "format": "irislib"})
    for key, sd in state.get("ema", {}).items():
        save_tensors(tmp / f"{key}.safetensors", sd, {"step": str(step), "format": "irislib"})
    save_state(tmp / STATE_FILE, state["trainer"])
    write_bytes(tmp / "config.json", config_text)
    files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
    write_json(tmp / MANIFEST, {"step": step, "files": files})
    final = _publish(tmp, root / name)
    verify(final)
    write_json(run / POINTER, {"step": step, "dir": f"checkpoints/{name}", "files": files, "time": time.time()})
    prune(run, keep_last if keep_last is not None else exp.train.keep_last,
          milestone_every_steps if milestone_every_steps is not None else exp.train.milestone_every_steps)
    return final


def write_config(run_dir, exp: Experiment) -> Path:
    """Write run_dir/config.json atomically (the run directory describes itself before the first checkpoint)."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    write_bytes(run / "config.json", exp.to_json().encode())
    return run / "config.json"


def _publish(tmp: Path, final: Path) -> Path:
    """Rename a finished temp folder into place (replacing an older folder of the same step)."""
    old = None
    if final.exists():
        old = final.with_name(f"{final.name}{TMP_TAG}old{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _remove_unfinished(root: Path) -> None:
    """Delete leftovers of writes that were killed (names containing .tmp-)."""
    for p in root.iterdir():
        if TMP_TAG in p.name:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def list_checkpoints(run_dir) -> list[tuple[int, Path]]:
    """(step, folder) of every published checkpoint in a run directory, newest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := CKPT_RE.match(p.name))]
    return sorted(found, reverse=True)


def verify(ckpt_dir) -> dict:
    """Check every file against manifest.json; return the manifest or raise CheckpointError naming the bad file."""
    ckpt = Path(ckpt_dir)
    manifest_path = ckpt / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"{ckpt} is incomplete: no {MANIFEST}")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{manifest_path} is damaged ({e})") from None
    for name in (MODEL_FILE, STATE_FILE, "config.json"):
        if name not in files:
            raise CheckpointError(f"{manifest_path} lists no {name}; the checkpoint is incomplete")
    for name, expected in files.items():
        path = ckpt / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise CheckpointError(f"{path} fails its sha256 check ({path.stat().st_size} bytes; "
                                  f"expected {expected[:12]}..., got {actual[:12]}...): truncated or altered")
    return manifest


def find_resume(run_dir, mirror_dir=None) -> Path | None:
    """Newest checkpoint that verifies, among run_dir and mirror_dir (local wins a tie); None if there is none.

    Damaged checkpoints are skipped with a warning naming the bad file.
    """
    candidates = []
    for rank, root in enumerate(r for r in (run_dir, mirror_dir) if r):
        candidates += [(step, -rank, path) for step, path in list_checkpoints(root)]
    for step, _, path in sorted(candidates, reverse=True):
        try:
            verify(path)
            return path
        except CheckpointError as e:
            warnings.warn(f"skipping damaged checkpoint: {e}; falling back to an older checkpoint", stacklevel=2)
    return None


def resolve(path, mirror_dir=None) -> Path | None:
    """A checkpoint folder from a run directory (newest good one) or a checkpoint folder itself."""
    p = Path(path)
    if (p / MANIFEST).is_file():
        return p
    if (p / "checkpoints").is_dir() or (p / POINTER).is_file() or (mirror_dir and Path(mirror_dir).is_dir()):
        return find_resume(p, mirror_dir)
    raise FileNotFoundError(f"{p} is neither a run directory (with checkpoints/) nor a checkpoint folder "
                            f"(with {MANIFEST}); pass resume='auto', a run directory or a checkpoint folder")


def load(ckpt_dir, map_location="cpu", *, verify_files: bool = True, trainer_state: bool = True) -> dict:
    """Load a checkpoint folder: {"model", "ema", "trainer", "exp", "step", "dir"}; never runs code from files."""
    ckpt = Path(ckpt_dir)
    manifest = verify(ckpt) if verify_files else {"step": None}
    out = {"dir": ckpt, "exp": Experiment.from_json(ckpt / "config.json"),
           "model": load_tensors(ckpt / MODEL_FILE, map_location),
           "ema": {p.stem: load_tensors(p, map_location) for p in sorted(ckpt.glob("ema_*.safetensors"))},
           "trainer": load_trainer_state(ckpt / STATE_FILE, map_location) if trainer_state else None}
    out["step"] = manifest["step"] if manifest["step"] is not None else out["trainer"]["step"]
    return out


def load_trainer_state(path, map_location="cpu") -> dict:
    """torch.load(weights_only=True) of trainer_state.pt; anything that is not plain data is refused."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if "Unsupported" in ln or "WeightsUnpickler" in ln]
        reason = (lines[0] if lines else str(e).strip().splitlines()[0])[:300]
        raise CheckpointError(f"{path} refused: it holds Python objects other than tensors and plain data, which "
                              f"could run code when loaded ({reason}). Nothing from it was executed; delete the "
                              f"checkpoint or resume from another one") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"{path} cannot be read ({e}); the checkpoint is damaged") from None
    return from_plain(state)


def check_compatible(saved: Experiment, requested: Experiment, sections=MODEL_SECTIONS, source="checkpoint") -> None:
    """Raise ConfigError naming each model field that differs between a checkpoint and the requested config."""
    a, b = saved.to_dict(), requested.to_dict()
    diffs = [f"{sec}.{k}: {source} has {a[sec][k]!r}, requested {b[sec][k]!r}"
             for sec in sections for k in a[sec] if a[sec][k] != b[sec].get(k)]
    if diffs:
        raise ConfigError(f"cannot resume from {source}: the model config differs ({'; '.join(diffs)}). "
                          f"Use the checkpoint's settings, or start a new run directory")


def prune(run_dir, keep_last: int, milestone_every_steps: int = 0) -> list[Path]:
    """Delete checkpoints beyond the newest keep_last, except milestones (step % milestone_every_steps == 0)."""
    removed = []
    for i, (step, path) in enumerate(list_checkpoints(run_dir)):
        milestone = milestone_every_steps > 0 and step % milestone_every_steps == 0
        if i >= max(1, keep_last) and not milestone:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def load_run_all(run_dir, checkpoint=None) -> tuple[Experiment, dict, dict]:
    """(exp, model_state, {rate: ema_state}) of a run's newest good checkpoint (or the given checkpoint folder).

    A bare run directory holding only config.json + model.safetensors (irislib.compat.import_guided) also works.
    """
    run = Path(run_dir)
    if checkpoint is None and not (run / "checkpoints").is_dir() and (run / MODEL_FILE).is_file():
        return Experiment.from_json(run / "config.json"), load_tensors(run / MODEL_FILE), {}
    ckpt = Path(checkpoint) if checkpoint else resolve(run)
    if ckpt is None:
        raise FileNotFoundError(f"{run_dir} has no usable checkpoint; train first or point at another run")
    data = load(ckpt, trainer_state=False)
    emas = {float(name[len("ema_"):]): sd for name, sd in data["ema"].items()}
    return data["exp"], data["model"], emas


def load_run(run_dir, use_ema: bool = True, checkpoint=None) -> tuple[Experiment, dict]:
    """(exp, state_dict) for sampling: the EMA of the first train.ema_rate when use_ema (and saved), else the raw
    weights, from the run's newest checkpoint that verifies."""
    exp, model, emas = load_run_all(run_dir, checkpoint)
    if use_ema and emas:
        rate = next((r for r in exp.train.ema_rate if r in emas), max(emas))
        return exp, emas[rate]
    return exp, model
