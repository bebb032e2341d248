"""Bare run directories: config.json + model.safetensors (+ extra files) at the top level, no training state.

The hub's downloads (`hub.fetch_run`) and guided-diffusion imports (`compat.import_guided`) are written here, like
a trained checkpoint: built in a temp folder beside the target, listed with their sha256 in manifest.json, then
swapped in by rename, so a reader sees the old run or the new one, never a mix.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from .files import TMP_TAG, save_tensors, sha256_file, tmp_path, write_bytes, write_json
from .store import MANIFEST, MODEL_FILE, _publish, check_names

Source = Path | dict   # a verified file to link or copy in, or a state dict to save as safetensors


def write_bare_run(run_dir, config: dict, files: dict[str, Source], *, metadata: dict[str, str] | None = None,
                   source: str | None = None) -> Path:
    """Write `files` (name -> source) and config.json as the run directory `run_dir`, replacing what was there.

    `source` (e.g. the manifest sha256 it came from) is kept in manifest.json, so a reader can tell whose files
    it holds. Returns run_dir."""
    run = Path(run_dir)
    if MODEL_FILE not in files:
        raise ValueError(f"a bare run needs {MODEL_FILE} (got {', '.join(files) or 'no files'})")
    check_names(run, files, f"files of the bare run {run}")  # names from a manifest: each must stay in the run
    run.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(run)
    try:
        tmp.mkdir()
        for name, src in files.items():
            _put(src, tmp / name, metadata)
        write_bytes(tmp / "config.json", (json.dumps(config, indent=2) + "\n").encode())
        hashes = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
        write_json(tmp / MANIFEST, {"kind": "bare", "source": source, "files": hashes})
        _publish(tmp, run)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return run


def _put(src: Source, dst: Path, metadata: dict[str, str] | None) -> None:
    if isinstance(src, dict):
        save_tensors(dst, {k: v for k, v in src.items() if isinstance(v, torch.Tensor)}, metadata)
        return
    try:
        os.link(src, dst)   # a verified cache file beside the run: no second copy of a large file
    except OSError:
        shutil.copyfile(src, dst)


def bare_run_is_current(run_dir, expected: dict[str, tuple[Path, str]], source: str | None = None) -> bool:
    """True if run_dir is a bare run of `source` holding each name as the given verified file (the same
    hard-linked inode) or a copy with the given sha256. A re-downloaded cache file has a new inode, so a run
    still linked to the old one is rebuilt."""
    run = Path(run_dir)
    try:
        manifest = json.loads((run / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("kind") != "bare" or manifest.get("source") != source:
        return False
    for name, (src, sha) in expected.items():
        dst = run / name
        if not dst.is_file() or TMP_TAG in dst.name:
            return False
        if not (os.path.samefile(src, dst) or sha256_file(dst) == sha.lower()):
            return False
    return True


def is_bare_run(run_dir) -> bool:
    """A run directory holding weights at its top level instead of checkpoints/ (a download or an import)."""
    run = Path(run_dir)
    return not (run / "checkpoints").is_dir() and (run / MODEL_FILE).is_file()
