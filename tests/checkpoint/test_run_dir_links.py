"""Symbolic links inside a run folder from elsewhere (a shared Drive folder) are refused: a linked checkpoints/,
step_*, latest.json, metrics.jsonl or samples/ would make irislib read, hash, write or delete the files of the
folder it points at (the user's own runs). Each test checks that folder is byte-identical afterwards."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from irislib import checkpoint, presets
from irislib.checkpoint import CheckpointError, mirror, store
from irislib.checkpoint.files import host_name
from irislib.config import ConfigError
from irislib.train import pipeline

TINY = {"data.path": "synthetic:8", "train.batch_size": 4, "train.microbatch": 4, "train.epochs": 0,
        "train.sample_grid_images": 0, "train.save_every_steps": 2, "train.keep_last": 3}


def state(step: int, run_id: str) -> dict:
    return {"model": {"w": torch.full((2, 2), float(step))}, "ema": {"ema_0.9": {"w": torch.ones(2, 2)}},
            "trainer": {"step": step, "run_id": run_id}}


@pytest.fixture
def victim(tmp_path) -> Path:
    """tmp/my_run: the user's own run, checkpoints at steps 2, 4 and 6."""
    run = tmp_path / "my_run"
    for step in (2, 4, 6):
        checkpoint.save(run, state(step, "mine"), presets.get("tiny"), keep_last=3)
    return run


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry below `folder` (None for a folder) with its bytes: what must not change."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in folder.rglob("*")}


def shared_with_link(tmp_path: Path, victim: Path, which: str) -> tuple[Path, Path]:
    """(shared run, the link in it): its checkpoints/ links to the victim's, or its step_000002 to one of the
    victim's checkpoints."""
    shared = tmp_path / "shared_run"
    if which == "checkpoints":
        shared.mkdir()
        link = shared / "checkpoints"
        link.symlink_to(victim / "checkpoints", target_is_directory=True)
    else:
        (shared / "checkpoints").mkdir(parents=True)
        link = shared / "checkpoints" / "step_000002"
        link.symlink_to(victim / "checkpoints" / "step_000006", target_is_directory=True)
    return shared, link


def refused(e, link: Path) -> None:
    """The one-line refusal (a pytest.ExceptionInfo or an exception) names the link."""
    text = str(getattr(e, "value", e))
    assert "\n" not in text and f"'{link}' refused: it is a symbolic link" in text, text


def attempt(fn, *args, **kwargs) -> Exception | None:
    """The ConfigError (CheckpointError, UnsafePathError) fn raised, or None: the victim is checked first."""
    try:
        fn(*args, **kwargs)
    except (ConfigError, CheckpointError) as e:
        return e
    return None


@pytest.mark.parametrize("which", ["checkpoints", "step"])
def test_load_run_refuses_a_linked_folder_and_hashes_nothing_outside(tmp_path, victim, which, monkeypatch):
    """On the old code load_run(shared) loaded the victim's step 6, hashing its files."""
    shared, link = shared_with_link(tmp_path, victim, which)
    hashed = []
    monkeypatch.setattr(store, "sha256_file", lambda p, *a: hashed.append(Path(p)) or checkpoint.sha256_file(p))
    with pytest.raises(CheckpointError) as e:
        checkpoint.load_run(shared)
    refused(e, link)
    assert hashed == []
    with pytest.raises(CheckpointError, match="symbolic link"):
        checkpoint.find_resume(tmp_path / "elsewhere", mirror_dir=shared)   # a mirror is listed the same way


@pytest.mark.parametrize("which", ["checkpoints", "step"])
def test_save_and_prune_neither_write_nor_delete_through_a_link(tmp_path, victim, which):
    """On the old code saving step 8 with keep_last 1 into the shared run wrote it into the victim's
    checkpoints/ and deleted the victim's steps 2, 4 and 6."""
    shared, link = shared_with_link(tmp_path, victim, which)
    before = snapshot(victim)
    saving = attempt(checkpoint.save, shared, state(8, "theirs"), presets.get("tiny"), keep_last=1)
    pruning = attempt(checkpoint.prune, shared, keep_last=1)
    assert snapshot(victim) == before
    refused(saving, link)
    refused(pruning, link)


def dead_writer_tag() -> str:
    pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                             text=True).stdout)
    return f"{pid}@{host_name()}-abc123"


def test_recover_and_leftover_cleaning_never_act_through_a_link(tmp_path, victim):
    """A dead writer's leftovers in the victim (a moved-aside step 8, an unfinished step 10) are the victim's to
    clean; reached through a shared run's linked checkpoints/, the old code renamed one and deleted the other."""
    tag = dead_writer_tag()
    (victim / "checkpoints" / f"step_000008.old-{tag}").mkdir()
    (victim / "checkpoints" / f"step_000010.tmp-{tag}").mkdir()
    shared, _ = shared_with_link(tmp_path, victim, "checkpoints")
    before = snapshot(victim)
    checkpoint.recover(shared)
    store.clean_leftovers(shared / "checkpoints")
    assert snapshot(victim) == before


def test_a_linked_leftover_is_unlinked_not_restored_or_followed(tmp_path, victim):
    """A moved-aside name that is a link is not renamed into a checkpoint, and cleaning removes only the link."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    link = run / "checkpoints" / f"step_000002.old-{dead_writer_tag()}"
    link.symlink_to(victim / "checkpoints" / "step_000002", target_is_directory=True)
    before = snapshot(victim)
    assert checkpoint.recover(run) == []
    assert not (run / "checkpoints" / "step_000002").exists()
    store.clean_leftovers(run / "checkpoints")
    assert not link.is_symlink() and snapshot(victim) == before


def test_mirror_copy_refuses_a_mirror_whose_checkpoints_link_elsewhere(tmp_path, victim):
    """On the old code the copy landed in the victim's checkpoints/."""
    run = tmp_path / "run"
    ckpt = checkpoint.save(run, state(8, "r8"), presets.get("tiny"))
    shared, link = shared_with_link(tmp_path, victim, "checkpoints")
    before = snapshot(victim)
    copying = attempt(mirror.copy_checkpoint, run, ckpt, shared, checkpoint.read_pointer(run))
    assert snapshot(victim) == before
    refused(copying, link)


def test_mirror_copy_refuses_a_linked_file_of_the_run(tmp_path, victim):
    """A run folder's metrics.jsonl linking elsewhere would be copied to the mirror (e.g. onto Drive)."""
    run = tmp_path / "run"
    ckpt = checkpoint.save(run, state(8, "r8"), presets.get("tiny"))
    (run / "metrics.jsonl").symlink_to(victim / "latest.json")
    copying = attempt(mirror.copy_checkpoint, run, ckpt, tmp_path / "mirror", checkpoint.read_pointer(run))
    assert not (tmp_path / "mirror" / "metrics.jsonl").exists()
    refused(copying, run / "metrics.jsonl")


def test_a_linked_pointer_is_refused(tmp_path, victim):
    shared = tmp_path / "shared_run"
    shared.mkdir()
    (shared / "latest.json").symlink_to(victim / "latest.json")
    with pytest.raises(CheckpointError) as e:
        checkpoint.read_pointer(shared)
    refused(e, shared / "latest.json")


def test_metrics_and_sample_grids_are_never_written_through_a_link(tmp_path, victim):
    from PIL import Image
    run = tmp_path / "shared_run"
    run.mkdir()
    (run / "metrics.jsonl").symlink_to(victim / "config.json")
    (run / "samples").symlink_to(victim / "checkpoints", target_is_directory=True)
    before = snapshot(victim)
    appending = attempt(checkpoint.append_metrics, run, {"step": 1, "loss": 0.5})
    drawing = attempt(checkpoint.write_sample_grid, run, 1, Image.new("L", (4, 4)))
    assert snapshot(victim) == before
    refused(appending, run / "metrics.jsonl")
    refused(drawing, run / "samples")
    with pytest.raises(ConfigError, match="metrics.jsonl' refused"):
        checkpoint.read_metrics(run)                          # reading through it is refused too


def test_resuming_a_shared_run_whose_checkpoints_link_to_my_run_leaves_my_run_alone(tmp_path):
    """The reported case: train_vae(..., shared_run, resume="auto") with shared_run/checkpoints linking to
    my_run/checkpoints deleted my_run's step_000002/4/6 on the old code. Now it stops before touching them."""
    mine = tmp_path / "my_run"
    pipeline.train_vae(presets.get("tiny").override({**TINY, "train.max_steps": 6}), mine, progress=False)
    assert [s for s, _ in checkpoint.list_checkpoints(mine)] == [6, 4, 2]
    shared, link = shared_with_link(tmp_path, mine, "checkpoints")
    before = snapshot(mine)
    resuming = attempt(pipeline.train_vae, presets.get("tiny").override({**TINY, "train.max_steps": 12}), shared,
                       resume="auto", progress=False)
    assert snapshot(mine) == before
    refused(resuming, link)
