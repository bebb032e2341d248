"""Other files of a run: sample grids (samples/step_000123.png) and the VAE's fitted prior.

The prior belongs to the weights it was fitted on, so it lives inside that checkpoint folder
(checkpoints/step_000123/prior.safetensors), listed with its sha256 in the folder's manifest.json and in
latest.json, verified with the weights, and copied to the mirror with them. Runs written before that kept it at
run_dir/prior.safetensors; it is still read from there (bare runs from the hub keep it there too).
"""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import torch

from .files import load_tensors, save_tensors, sha256_file, write_bytes, write_json
from .lock import MirrorLease, RunLockedError
from .store import MANIFEST, POINTER, check_names, find_resume, own_path, read_pointer, run_id_of, verify

PRIOR_FILE = "prior.safetensors"


def write_sample_grid(run_dir, step: int, image) -> Path:
    """Atomically save a PIL image as run_dir/samples/step_000123.png; returns the path."""
    path = own_path(Path(run_dir) / "samples" / f"step_{step:06d}.png", Path(run_dir))  # no linked samples/
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    write_bytes(path, buf.getvalue())
    return path


def add_file(ckpt_dir, name: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """Add (or replace) a safetensors file in a published checkpoint; returns its sha256.

    Order keeps the folder valid after a kill at any point: the file is written atomically first, then
    manifest.json (atomically) lists it, then latest.json if it points at this checkpoint. A file not yet listed is
    ignored by readers, so a kill before the manifest leaves the checkpoint as it was."""
    ckpt = Path(ckpt_dir)
    manifest = verify(ckpt)
    save_tensors(ckpt / name, tensors, metadata)
    sha = sha256_file(ckpt / name)
    write_json(ckpt / MANIFEST, {**manifest, "files": {**manifest["files"], name: sha}})
    doc = read_pointer(ckpt.parent.parent)
    if doc is not None and doc.get("dir") == f"checkpoints/{ckpt.name}":
        write_json(ckpt.parent.parent / POINTER, {**doc, "files": {**doc.get("files", {}), name: sha}})
    return sha


def attach_prior(run_dir, state: dict[str, torch.Tensor], mirror_dir=None) -> Path:
    """Save the fitted prior into the run's newest good checkpoint, then copy that checkpoint to the mirror.

    A mirror that holds another run's checkpoints, or is leased by another session, is left alone with a warning
    (the local checkpoint is complete either way)."""
    run = Path(run_dir)
    ckpt = find_resume(run)
    if ckpt is None:
        raise FileNotFoundError(f"{run} has no checkpoint that verifies; the prior is fitted on a saved VAE")
    add_file(ckpt, PRIOR_FILE, state, {"format": "irislib-prior"})
    if mirror_dir:
        _mirror_checkpoint(run, ckpt, Path(mirror_dir))
    return ckpt / PRIOR_FILE


def _mirror_checkpoint(run: Path, ckpt: Path, mirror: Path) -> None:
    from .mirror import copy_checkpoint   # mirror imports store; imported here to keep artifacts light
    if run_id_of(mirror) != run_id_of(run):
        warnings.warn(f"not copying {PRIOR_FILE} to {mirror}: it does not hold this run's checkpoints")
        return
    lease = MirrorLease(mirror)
    try:
        lease.acquire()
    except (RunLockedError, OSError) as e:
        warnings.warn(f"could not copy {PRIOR_FILE} to the mirror {mirror} ({e}); the local run has it")
        return
    try:
        copy_checkpoint(run, ckpt, mirror, json.loads((run / POINTER).read_text()))
    except OSError as e:
        warnings.warn(f"could not copy {PRIOR_FILE} to the mirror {mirror} ({e}); the local run has it")
    finally:
        lease.release()


def prior_path(run_dir, ckpt_dir=None) -> Path | None:
    """Where a run's prior is: in its checkpoint (when its manifest lists it), else the legacy/bare top level."""
    run = Path(run_dir)
    ckpt = Path(ckpt_dir) if ckpt_dir is not None else (find_resume(run) if (run / "checkpoints").is_dir() else None)
    if ckpt is not None:
        try:
            listed = PRIOR_FILE in json.loads((ckpt / MANIFEST).read_text()).get("files", {})
        except (OSError, ValueError):
            listed = False
        if listed:
            return ckpt / PRIOR_FILE
    legacy = run / PRIOR_FILE
    return legacy if legacy.is_file() else None


def load_prior(run_dir, ckpt_dir=None) -> dict[str, torch.Tensor] | None:
    """The prior's state dict, or None when the run has none (prior=normal, or not fitted yet)."""
    path = prior_path(run_dir, ckpt_dir)
    if path is None:
        return None
    check_names(path.parent, {path.name: None}, f"{path.parent} files")  # e.g. a legacy run's symbolic link
    return load_tensors(path)
