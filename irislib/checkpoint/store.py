"""Checkpoint folders in a run directory: save, verify, find the newest good one, load, prune.

Layout: run_dir/config.json, run_dir/checkpoints/step_000123/{model.safetensors, ema_<rate>.safetensors,
trainer_state.pt, config.json, manifest.json}, run_dir/latest.json (pointer with sha256 of each file, written last).
A checkpoint is built in step_000123.tmp-<pid>/ and renamed into place only when complete, so a step_* folder
is never half-written; manifest.json (sha256 per file) still guards against later damage (truncated copies).
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import shutil
import time
import warnings
from pathlib import Path

import torch

from ..config import MODEL_SECTIONS, ConfigError, Experiment
from ..safepath import UnsafePathError, is_link, plain_name, unlinked
from .files import (OLD_TAG, TMP_TAG, disk_full_error, fsync_dir, from_plain, is_moved_aside,
                    leftover_removable, load_tensors, save_state, save_tensors, sha256_file, tmp_path, write_bytes,
                    write_json)

CKPT_RE = re.compile(r"^step_(\d+)$")
MODEL_FILE, STATE_FILE, MANIFEST, POINTER = "model.safetensors", "trainer_state.pt", "manifest.json", "latest.json"


class CheckpointError(ValueError):
    """A checkpoint is damaged, incomplete or unsafe; the message names the file."""


class UnsafeCheckpointError(CheckpointError, UnsafePathError):
    """latest.json or a manifest.json names a file outside its folder (a hostile or foreign run folder)."""


@contextlib.contextmanager
def _unsafe_is_damage():
    """safepath's refusal as a CheckpointError, so find_resume skips such a checkpoint like a damaged one."""
    try:
        yield
    except UnsafePathError as e:
        raise UnsafeCheckpointError(str(e)) from None


def own_path(path: Path, run: Path, where: str | None = None) -> Path:
    """`path` (run/...) if no folder or file from `run` down to it is a symbolic link (a run folder from Drive is
    untrusted: a linked checkpoints/ or step_* would make reads, writes and deletes land in another folder)."""
    with _unsafe_is_damage():
        return unlinked(path, run, where or f"{run} entry")


def run_of(folder) -> Path:
    """The run folder a checkpoint folder belongs to (run/checkpoints/step_N -> run), else `folder` itself."""
    folder = Path(folder)
    if CKPT_RE.match(folder.name) and folder.parent.name == "checkpoints":
        return folder.parent.parent
    return folder


def save(run_dir, state: dict, exp: Experiment, *, keep_last: int | None = None,
         milestone_every_steps: int | None = None) -> Path:
    """Write state = {"model": sd, "ema": {name: sd}, "trainer": plain dict with "step" (and "run_id")} as a
    verified checkpoint.

    Returns the checkpoint folder. Older checkpoints beyond keep_last (+ milestones) are deleted afterwards.
    A full disk raises DiskFullError (one line: folder, free space, what to do) and leaves no partial folder.
    """
    run = Path(run_dir)
    root = run / "checkpoints"
    step, run_id = int(state["trainer"]["step"]), state["trainer"].get("run_id")
    name = f"step_{step:06d}"
    config_text = exp.to_json().encode()
    list_checkpoints(run)  # refuses a linked checkpoints/ or step_* before anything is written or deleted
    with explain_disk_full(run, f"checkpoint {name}", state):
        root.mkdir(parents=True, exist_ok=True)
        if _read_bytes(run / "config.json") != config_text:   # once per run (the Trainer writes it at start)
            write_bytes(run / "config.json", config_text)
        clean_leftovers(root)
        for p in run.iterdir():  # e.g. latest.json.tmp-123 left by a process killed while writing the pointer
            if TMP_TAG in p.name and p.is_file() and leftover_removable(p):
                p.unlink(missing_ok=True)
    tmp = tmp_path(root / name)
    try:
        tmp.mkdir()
        files = _write_files(tmp, state, step, run_id, config_text)
    except BaseException as e:
        full = disk_full_error(root, e, f"checkpoint {name}", _state_bytes(state), _kept(run))
        shutil.rmtree(tmp, ignore_errors=True)  # frees the space the partial files took
        if full is not None:
            raise full from None
        raise
    final = _publish(tmp, root / name)
    verify(final)
    with explain_disk_full(run, "latest.json", state):
        write_json(run / POINTER, {"step": step, "dir": f"checkpoints/{name}", "files": files, "run_id": run_id,
                                   "time": time.time()})
    prune(run, keep_last if keep_last is not None else exp.train.keep_last,
          milestone_every_steps if milestone_every_steps is not None else exp.train.milestone_every_steps,
          known_good=final)
    return final


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _write_files(tmp: Path, state: dict, step: int, run_id, config_text: bytes) -> dict[str, str]:
    """Every file of a checkpoint into `tmp`, then the manifest of their hashes (last); returns {name: sha256}."""
    meta = {"step": str(step), "format": "irislib"}
    save_tensors(tmp / MODEL_FILE, state["model"], meta)
    for key, sd in state.get("ema", {}).items():
        save_tensors(tmp / f"{key}.safetensors", sd, meta)
    save_state(tmp / STATE_FILE, state["trainer"])
    write_bytes(tmp / "config.json", config_text)
    files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
    write_json(tmp / MANIFEST, {"step": step, "run_id": run_id, "files": files})
    return files


@contextlib.contextmanager
def explain_disk_full(run, what: str, state: dict | None = None):
    """Context: a full-disk failure while writing `what` into run directory `run` becomes one DiskFullError line
    (state: the checkpoint being written, for the space it needs)."""
    try:
        yield
    except Exception as e:
        full = disk_full_error(Path(run), e, what, _state_bytes(state or {}), _kept(Path(run)))
        if full is None:
            raise
        raise full from None


def _kept(run: Path) -> str:
    found = list_checkpoints(run)
    return f"the previous checkpoint {found[0][1]} is intact" if found else "no checkpoint was written yet"


def _state_bytes(obj) -> int:
    """Bytes of the tensors in a (nested) state: about what one checkpoint needs on disk."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_state_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_state_bytes(v) for v in obj)
    return 0


def write_config(run_dir, exp: Experiment) -> Path:
    """Write run_dir/config.json atomically (the run directory describes itself before the first checkpoint)."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    write_bytes(run / "config.json", exp.to_json().encode())
    return run / "config.json"


def _publish(tmp: Path, final: Path) -> Path:
    """Rename a finished temp folder into place. An older folder of the same step is first moved aside (never
    under a temp name), so a kill between the two renames leaves it for clean_leftovers to put back."""
    old = None
    if final.exists():
        old = tmp_path(final, OLD_TAG)
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def clean_leftovers(root: Path) -> None:
    """Put back checkpoints a killed _publish left moved aside, then delete unfinished writes (names with .tmp-)
    that are this writer's, a dead writer's on this machine, or untouched for an hour: never the in-flight
    temporary folder of another live writer (two sessions sharing a Drive mirror)."""
    if is_link(root):
        return                                   # never delete in the folder a link points at
    restore_moved_aside(root)
    for p in sorted(root.iterdir()):
        if (TMP_TAG in p.name or OLD_TAG in p.name) and leftover_removable(p):
            if p.is_dir() and not is_link(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)        # a file, or a link itself (never what it points at)


def restore_moved_aside(root: Path) -> list[Path]:
    """Rename back every checkpoint folder that _publish moved aside and whose writer died before the new copy
    took its name: it is the only copy of that step. Only the folder's writer should call this (it holds the
    run directory or the mirror), never a reader."""
    restored = []
    for p in sorted(Path(root).iterdir()) if Path(root).is_dir() and not is_link(root) else []:
        final = p.with_name(p.name.split(OLD_TAG)[0].split(TMP_TAG)[0])
        if is_link(p) or is_link(final):
            continue                             # a link never becomes (or replaces) a checkpoint
        if p.is_dir() and is_moved_aside(p) and not final.exists() and leftover_removable(p):
            os.replace(p, final)
            restored.append(final)
            warnings.warn(f"restored {final} from {p.name}, left by a save killed while replacing it", stacklevel=2)
    return restored


def recover(run_dir) -> list[Path]:
    """Before resuming a run directory or mirror (as its writer): restore checkpoints a killed save moved aside."""
    return restore_moved_aside(Path(run_dir) / "checkpoints")


def list_checkpoints(run_dir) -> list[tuple[int, Path]]:
    """(step, folder) of every published checkpoint in a run directory, newest first; UnsafeCheckpointError if
    checkpoints/ or a step_* in it is a symbolic link."""
    run = Path(run_dir)
    root = own_path(run / "checkpoints", run)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), own_path(p, run)) for p in root.iterdir() if (m := CKPT_RE.match(p.name))]
    return sorted(((step, p) for step, p in found if p.is_dir()), reverse=True)


def verify(ckpt_dir) -> dict:
    """Check every file against manifest.json; return the manifest or raise CheckpointError naming the bad file."""
    ckpt = Path(ckpt_dir)
    manifest_path = own_path(ckpt / MANIFEST, run_of(ckpt))
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
    check_listed(ckpt, files)
    return manifest


def check_listed(folder: Path, files: dict[str, str]) -> None:
    """Raise CheckpointError naming the first file of `files` (name -> sha256) in `folder` that is missing or
    differs; every name is checked to be a file of `folder` before any is read."""
    check_names(folder, files, f"{Path(folder) / MANIFEST} files")
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise CheckpointError(f"{path} fails its sha256 check ({path.stat().st_size} bytes; "
                                  f"expected {expected[:12]}..., got {actual[:12]}...): truncated or altered")


def check_names(folder: Path, files, where: str) -> None:
    """Raise UnsafeCheckpointError unless every key of `files` is a file directly in `folder` (no '..', no
    absolute path), with no symbolic link from the run folder down to it (checkpoints/, step_*, the file)."""
    if not isinstance(files, dict):
        raise CheckpointError(f"{where}: expected a mapping of file names to sha256, got {type(files).__name__}")
    run = run_of(folder)
    with _unsafe_is_damage():
        for name in files:
            plain_name(name, where)
            own_path(Path(folder) / name, run, where)


def read_pointer(run_dir) -> dict | None:
    """run_dir/latest.json with its "dir" and "files" checked (a run folder from Drive is untrusted); None when it
    is missing or not JSON (checkpoints are found by listing checkpoints/, the pointer only adds information)."""
    path = own_path(Path(run_dir) / POINTER, Path(run_dir))
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    ckpt = doc.get("dir")
    if ckpt is not None and not (isinstance(ckpt, str) and re.fullmatch(r"checkpoints/step_\d+", ckpt)):
        raise UnsafeCheckpointError(f"{path} dir={ckpt!r} refused: it must be checkpoints/step_N inside the run "
                                    f"folder; delete {path} (the checkpoints are found without it)")
    if "files" in doc:
        check_names(Path(run_dir) / (ckpt or "."), doc["files"], f"{path} files")
    return doc


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
        if json.loads((p / MANIFEST).read_text()).get("kind") == "bare":
            raise CheckpointError(f"{p} holds weights only (a download or an import, no training state), so "
                                  f"training cannot resume from it; train into a new run folder instead")
        return p
    if (p / "checkpoints").is_dir() or (p / POINTER).is_file() or (mirror_dir and Path(mirror_dir).is_dir()):
        return find_resume(p, mirror_dir)
    raise FileNotFoundError(f"{p} is neither a run directory (with checkpoints/) nor a checkpoint folder "
                            f"(with {MANIFEST}); pass resume='auto', a run directory or a checkpoint folder")


def load(ckpt_dir, map_location="cpu", *, verify_files: bool = True, trainer_state: bool = True) -> dict:
    """Load a checkpoint folder: {"model", "ema", "trainer", "exp", "step", "run_id", "dir"}; never runs code
    from files."""
    ckpt = Path(ckpt_dir)
    manifest = verify(ckpt) if verify_files else {"step": None}
    emas = sorted(ckpt.glob("ema_*.safetensors"))  # listed or not: none may link out of the folder
    check_names(ckpt, dict.fromkeys([MODEL_FILE, STATE_FILE, "config.json"] + [p.name for p in emas]), f"{ckpt} files")
    out = {"dir": ckpt, "exp": Experiment.from_json(ckpt / "config.json"),
           "model": load_tensors(ckpt / MODEL_FILE, map_location),
           "ema": {p.stem: load_tensors(p, map_location) for p in emas},
           "trainer": load_trainer_state(ckpt / STATE_FILE, map_location) if trainer_state else None}
    out["step"] = manifest["step"] if manifest["step"] is not None else out["trainer"]["step"]
    out["run_id"] = manifest.get("run_id") if verify_files else checkpoint_run_id(ckpt)
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


def prune(run_dir, keep_last: int, milestone_every_steps: int = 0, known_good=None) -> list[Path]:
    """Delete checkpoints older than the newest one that verifies, keeping keep_last in all (that one included)
    and every milestone (step % milestone_every_steps == 0). Newer damaged checkpoints are left alone, and with no
    verifying checkpoint nothing is deleted: pruning never removes the last good one. `known_good` is a folder
    just verified (not hashed again)."""
    found = list_checkpoints(run_dir)
    good = next((i for i, (_, path) in enumerate(found) if _verifies(path, known_good)), None)
    if good is None:
        return []
    removed = []
    for i, (step, path) in enumerate(found[good:]):
        milestone = milestone_every_steps > 0 and step % milestone_every_steps == 0
        if i >= max(1, keep_last) and not milestone:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _verifies(path: Path, known_good) -> bool:
    if known_good is not None and Path(known_good) == path:
        return True
    try:
        verify(path)
        return True
    except CheckpointError:
        return False


def run_id_of(run_dir) -> str | None:
    """The run id a run directory (or mirror) holds checkpoints of: latest.json's, else its newest checkpoint's
    manifest's; None if it has no checkpoints (or only ones written before run ids existed)."""
    run = Path(run_dir)
    found = list_checkpoints(run)
    if not found:
        return None
    return (read_pointer(run) or {}).get("run_id") or checkpoint_run_id(found[0][1]) or None


def checkpoint_run_id(ckpt_dir) -> str | None:
    """The run id in a checkpoint folder's manifest (None for checkpoints older than run ids)."""
    path = own_path(Path(ckpt_dir) / MANIFEST, run_of(ckpt_dir))
    try:
        return json.loads(path.read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None


def load_run_all(run_dir, checkpoint=None) -> tuple[Experiment, dict, dict]:
    """(exp, model_state, {rate: ema_state}) of a run's newest good checkpoint (or the given checkpoint folder).

    A bare run directory (config.json + model.safetensors at the top level: checkpoint.bare) also works.
    """
    run = Path(run_dir)
    if checkpoint is None and CKPT_RE.match(run.name) and (run / MANIFEST).is_file():
        checkpoint = run                 # a checkpoint folder given as the run: its EMA weights, not the raw ones
    if checkpoint is None and not (run / "checkpoints").is_dir() and (run / MODEL_FILE).is_file():
        if (run / MANIFEST).is_file():   # a bare run (hub download, guided import) is checked like a checkpoint
            check_listed(run, json.loads((run / MANIFEST).read_text()).get("files", {}))
        check_names(run, dict.fromkeys([MODEL_FILE, "config.json"]), f"{run} files")
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
        return exp, emas[ema_choice(exp.train.ema_rate, emas)]
    return exp, model


def ema_choice(rates, saved) -> float:
    """The EMA rate sampling uses: the first of train.ema_rate that was saved, else the largest saved."""
    return next((r for r in rates if r in saved), max(saved))


def sampling_weights_file(run: Path) -> Path:
    """The file load_run(run) takes the sampling weights from (what a dataset's settings.json hashes): a bare run's
    model (a download or an import), else the newest good checkpoint's chosen EMA, or its raw model."""
    run = Path(run)
    if not CKPT_RE.match(run.name) and not (run / "checkpoints").is_dir() and (run / MODEL_FILE).is_file():
        return run / MODEL_FILE
    ckpt = resolve(run)
    if ckpt is None:
        raise FileNotFoundError(f"{run} has no usable checkpoint; train first or point at another run")
    emas = {float(p.stem[len("ema_"):]): p for p in ckpt.glob("ema_*.safetensors")}
    if not emas:
        return ckpt / MODEL_FILE
    return emas[ema_choice(json.loads((ckpt / "config.json").read_text())["train"]["ema_rate"], emas)]
