"""The VAE prior lives in the checkpoint it was fitted on: listed in its manifest, verified, mirrored, kill-safe."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from toy import ToyDataset, ToyNet, ToyTask, toy_exp  # noqa: E402

from irislib import checkpoint  # noqa: E402
from irislib.checkpoint import CheckpointError, artifacts  # noqa: E402
from irislib.train import Trainer  # noqa: E402

PRIOR = {"means": torch.arange(6.0).reshape(2, 3), "log_weights": torch.zeros(2)}


def _train(run_dir, steps=4, mirror_dir=None, **kw):
    torch.manual_seed(0)
    exp = toy_exp(max_steps=steps, save_every_steps=2, keep_last=10, **kw)
    Trainer(ToyNet(), ToyTask(), ToyDataset(12), exp, run_dir, resume="auto", progress=False, device="cpu",
            mirror_dir=mirror_dir).run()
    return Path(run_dir)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("prior") / "run")


@pytest.fixture
def run(trained, tmp_path):
    return Path(shutil.copytree(trained, tmp_path / "run"))


def _sha(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_prior_is_listed_in_the_newest_checkpoint_and_the_pointer(run):
    path = checkpoint.attach_prior(run, PRIOR)
    newest = run / "checkpoints" / "step_000004"
    assert path == newest / checkpoint.PRIOR_FILE
    assert checkpoint.verify(newest)["files"][checkpoint.PRIOR_FILE] == _sha(path)
    assert json.loads((run / "latest.json").read_text())["files"][checkpoint.PRIOR_FILE] == _sha(path)
    assert not (run / checkpoint.PRIOR_FILE).exists()          # nothing at the top level any more
    got = checkpoint.load_prior(run)
    assert set(got) == set(PRIOR) and all(torch.equal(got[k], PRIOR[k]) for k in PRIOR)


def test_a_tampered_prior_fails_verification_like_the_weights(run):
    path = checkpoint.attach_prior(run, PRIOR)
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    with pytest.raises(CheckpointError, match=r"prior\.safetensors fails its sha256 check"):
        checkpoint.verify(path.parent)


def test_a_kill_before_the_manifest_leaves_the_checkpoint_valid_and_the_prior_absent(run, monkeypatch):
    def killed(path, obj):
        raise KeyboardInterrupt("killed between the prior file and its manifest entry")
    monkeypatch.setattr(artifacts, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.attach_prior(run, PRIOR)
    newest = run / "checkpoints" / "step_000004"
    assert (newest / checkpoint.PRIOR_FILE).is_file()           # written (atomically) but not listed
    assert checkpoint.PRIOR_FILE not in checkpoint.verify(newest)["files"]
    assert checkpoint.load_prior(run) is None                   # an unlisted file is not trusted: fit again
    assert not [p for p in newest.iterdir() if ".tmp-" in p.name]


def test_a_later_checkpoint_without_a_prior_does_not_reuse_an_older_one(run):
    checkpoint.attach_prior(run, PRIOR)                         # fitted on step 4
    _train(run, steps=6)                                        # resumed: step 6 has other weights
    assert checkpoint.find_resume(run).name == "step_000006"
    assert checkpoint.load_prior(run) is None


def test_the_prior_is_mirrored_with_its_checkpoint(tmp_path):
    mirror = tmp_path / "drive"
    run = _train(tmp_path / "run", mirror_dir=str(mirror))
    checkpoint.attach_prior(run, PRIOR, mirror)
    copy = mirror / "checkpoints" / "step_000004" / checkpoint.PRIOR_FILE
    assert checkpoint.verify(copy.parent)["files"][checkpoint.PRIOR_FILE] == _sha(copy)
    assert json.loads((mirror / "latest.json").read_text())["files"][checkpoint.PRIOR_FILE] == _sha(copy)
    assert torch.equal(checkpoint.load_prior(mirror)["means"], PRIOR["means"])   # Drive alone samples like the VM


def test_a_mirror_of_another_run_is_left_alone(run, tmp_path):
    other = _train(tmp_path / "other")
    before = sorted(p.name for p in (other / "checkpoints" / "step_000004").iterdir())
    with pytest.warns(UserWarning, match="does not hold this run's checkpoints"):
        checkpoint.attach_prior(run, PRIOR, other)
    assert sorted(p.name for p in (other / "checkpoints" / "step_000004").iterdir()) == before


def test_a_run_written_before_priors_moved_still_loads_its_top_level_prior(run):
    checkpoint.files.save_tensors(run / checkpoint.PRIOR_FILE, PRIOR)   # the old layout, written by hand
    assert torch.equal(checkpoint.load_prior(run)["means"], PRIOR["means"])


def test_no_checkpoint_to_attach_to_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint that verifies"):
        checkpoint.attach_prior(tmp_path, PRIOR)
