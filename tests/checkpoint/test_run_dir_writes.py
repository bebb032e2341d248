"""No code outside irislib/checkpoint/ writes into a run directory.

A Python audit hook sees every file opened for writing, every rename, link, mkdir, remove and shutil copy/rmtree in
this process (safetensors writes from Rust, but the atomic rename that publishes its file fires). While a test
watches some folders, each such event under them is recorded with the innermost irislib frame on the stack; the
test then drives every writer of run directories — VAE training with its prior and a Drive mirror, UNet training
with sample grids, a hub download, a guided-diffusion import — and asserts they all came from irislib/checkpoint/.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

import irislib
from irislib import checkpoint, compat, hub, imageio, presets
from irislib.train import pipeline

PACKAGE = Path(irislib.__file__).resolve().parent
_WATCHED: list[Path] = []
_SEEN: list[tuple[str, str, str]] = []          # (event, path, irislib module writing it)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PATH_EVENTS = {"os.rename": (0, 1), "os.link": (0, 1), "shutil.copyfile": (1,), "shutil.copytree": (1,),
                "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "shutil.rmtree": (0,),
                "os.truncate": (0,), "os.symlink": (1,)}


def _writer() -> str:
    """The innermost irislib module on the stack (relative to the package), or '<outside irislib>'."""
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.is_relative_to(PACKAGE):
            return path.relative_to(PACKAGE).as_posix()
        frame = frame.f_back
    return "<outside irislib>"


def _hook(event: str, args: tuple) -> None:
    if not _WATCHED:
        return
    if event == "open":
        path, mode, flags = args
        if isinstance(path, int) or not ((mode and any(c in mode for c in "wax+")) or (flags or 0) & _WRITE_FLAGS):
            return
        paths = [path]
    elif event in _PATH_EVENTS:
        paths = [args[i] for i in _PATH_EVENTS[event]]
    else:
        return
    for p in paths:
        if isinstance(p, (str, bytes, os.PathLike)):
            p = Path(os.fsdecode(p)).absolute()
            if any(_inside(p, root) for root in _WATCHED):
                _SEEN.append((event, str(p), _writer()))


def _inside(path: Path, root: Path) -> bool:
    """Under root, or under a sibling temp/moved-aside name of it (run.tmp-..., run.old-...) that becomes it."""
    if path.is_relative_to(root):
        return True
    return path.is_relative_to(root.parent) and path != root.parent and \
        path.relative_to(root.parent).parts[0].startswith(root.name + ".")


sys.addaudithook(_hook)   # hooks cannot be removed; it does nothing while no folder is watched


@pytest.fixture
def watch():
    """watch(*folders) starts recording writes under them; yields the record list; stops at teardown."""
    _SEEN.clear()

    def start(*folders):
        _WATCHED.extend(Path(f).absolute() for f in folders)
        return _SEEN
    yield start
    _WATCHED.clear()
    _SEEN.clear()


def _outside(seen) -> list[tuple[str, str, str]]:
    return [s for s in seen if not s[2].startswith("checkpoint/")]


@pytest.mark.slow
def test_training_a_pair_writes_only_through_checkpoint(tmp_path, watch, small_exp):
    vae_run, unet_run, mirror = tmp_path / "vae", tmp_path / "unet", tmp_path / "drive"
    seen = watch(vae_run, unet_run, mirror)
    pipeline.train_vae(small_exp({"train.max_steps": 2, "vae.prior": "gmm"}), vae_run, progress=False,
                       mirror_dir=mirror, device="cpu")
    pipeline.train_diffusion(small_exp({"train.max_steps": 2, "train.sample_every_steps": 1}), unet_run,
                             progress=False, device="cpu")
    assert checkpoint.load_prior(mirror) is not None            # the prior reached the mirror ...
    assert list(unet_run.glob("samples/*.png"))                 # ... and the sample grids were written
    assert {Path(p).name for _, p, _ in seen} >= {"config.json", "latest.json", "metrics.jsonl"}
    assert _outside(seen) == []


def test_a_hub_download_and_a_guided_import_write_only_through_checkpoint(tmp_path, watch, monkeypatch):
    monkeypatch.setenv("IRISLIB_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "cache" / "tiny-synthetic-vae" / "run"
    imported = tmp_path / "imported"
    seen = watch(run, imported)
    assert hub.fetch_run("tiny-synthetic-vae") == run
    cfg = compat.unet_config_from_flags({"image_size": 32, "num_channels": 32, "num_res_blocks": 1,
                                         "attention_resolutions": "16"}, in_channels=1)
    compat.import_guided(irislib.models.unet.UNet(cfg).state_dict(), {"image_size": 32, "num_channels": 32,
                         "num_res_blocks": 1, "attention_resolutions": "16"}, imported)
    assert checkpoint.load_prior(run) is not None and checkpoint.load_run(imported)[1]
    assert {Path(p).name for _, p, _ in seen} >= {"model.safetensors", "manifest.json"}
    assert _outside(seen) == []


def test_the_check_catches_a_write_from_outside_checkpoint(tmp_path, watch):
    run = tmp_path / "run"
    seen = watch(run)
    checkpoint.write_config(run, presets.get("tiny"))                       # allowed
    imageio.save_grid(torch.zeros(1, 1, 4, 4), run / "stray.png")           # not allowed: imageio writes directly
    (run / "by_hand.txt").write_text("a test writes here")                   # not irislib at all
    writers = {w for _, _, w in _outside(seen)}
    assert writers == {"imageio.py", "<outside irislib>"}
    assert any(w.startswith("checkpoint/") for _, _, w in seen)
