"""A full disk while checkpointing (Colab's VM disk or Drive) ends in one line naming the folder, the free space and
what to do, with exit code 2, not a traceback (issue 9, defect 10). The run directory is a real, small tmpfs,
mounted in a private user + mount namespace (`unshare -rm`); the test is skipped where that is not allowed."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from irislib import checkpoint

REPO = Path(__file__).resolve().parents[2]
TRAIN = ["-m", "irislib.cli", "train-vae", "--preset", "tiny", "--data", "synthetic:8", "--quiet",
         "--set", "vae.channel_mult=1,2", "--set", "train.batch_size=4", "--set", "train.microbatch=4",
         "--set", "train.epochs=0", "--set", "train.max_steps=2", "--set", "train.save_every_steps=1",
         "--set", "train.sample_grid_images=0", "--set", "train.ema_rate=[]", "--set", "vae.prior=normal",
         "--set", "train.keep_last=1"]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _can_mount() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def sizes() -> dict[str, int]:
    """About the bytes of model.safetensors and trainer_state.pt of TRAIN's checkpoints (ema_rate=[]): the same
    VAE's weights, and AdamW's state after one step (the RNG states add a few KB)."""
    import io

    import torch
    from safetensors.torch import save

    from irislib import presets
    from irislib.models.vae import VAE
    exp = presets.get("tiny").override(["vae.channel_mult=1,2"])
    vae = VAE(exp.vae)
    opt = torch.optim.AdamW(vae.parameters())
    recon, _, _ = vae(torch.zeros(1, 1, 32, 32))
    recon.square().mean().backward()
    opt.step()
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    return {"model.safetensors": len(save(vae.state_dict())), "trainer_state.pt": len(buf.getvalue()) + 16384}


def _train_on_small_disk(tmp_path: Path, size: int) -> tuple[int, list[str], Path]:
    """Train into a tmpfs of `size` bytes: (exit code, stderr lines, a copy of the run directory afterwards)."""
    disk, after = tmp_path / "small", tmp_path / "after"
    disk.mkdir()
    cmd = " ".join([sys.executable, *[f"'{a}'" for a in TRAIN], "--out", f"{disk}/run"])
    script = (f"mount -t tmpfs -o size={size // 1024}k tmpfs {disk} || exit 99; {cmd}; echo RC=$? >&2; "
              f"cp -a {disk}/run {after}")  # the tmpfs is gone with the namespace: keep what the run left
    p = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=_env(), capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    rc = int(next(ln for ln in lines if ln.startswith("RC="))[3:])
    return rc, [ln for ln in lines if not ln.startswith("RC=")], after


@pytest.mark.slow
@pytest.mark.skipif(not _can_mount(), reason="needs `unshare -rm` to mount a small tmpfs")
@pytest.mark.parametrize("fails_at", ["model.safetensors of the 2nd checkpoint", "trainer_state.pt of the 1st"])
def test_a_full_disk_is_one_line_with_exit_code_2(tmp_path, sizes, fails_at):
    model, state = sizes["model.safetensors"], sizes["trainer_state.pt"]
    if fails_at.startswith("model"):   # step 1's checkpoint fits, step 2's model.safetensors does not
        size, kept = model + state + model // 2, "the previous checkpoint .*step_000001 is intact"
    else:                              # the first checkpoint's trainer_state.pt (torch.save) does not fit
        size, kept = model + state // 2, "no checkpoint was written yet"
    rc, err, run = _train_on_small_disk(tmp_path, size)
    assert rc == 2, err
    assert len(err) == 1 and not any("Traceback" in ln for ln in err), err  # one line, no traceback
    line = err[0]
    assert re.match(rf"irislib train-vae: error: no space left on device: writing checkpoint step_00000\d in "
                    rf"{tmp_path}/small/run/checkpoints failed with \d+\.\d MiB free; it needs about \d+\.\d MiB\. "
                    rf"Free space there .* then run again with --resume auto .*{kept}", line), line
    assert not [p for p in run.rglob("*") if ".tmp-" in p.name]  # the partial checkpoint was removed
    found = checkpoint.find_resume(run)  # and what was saved before still verifies
    assert (found.name if found else None) == ("step_000001" if fails_at.startswith("model") else None)
