"""Run folders from elsewhere (a shared Drive folder): latest.json and manifest.json naming files outside their
folder are refused in one line, and no file outside the run folder is read or written."""
import json
import warnings
from pathlib import Path

import pytest
import torch

from irislib import checkpoint, presets
from irislib.checkpoint import CheckpointError  # UnsafeCheckpointError is one; the tests run on older code too

SECRET = b"a file of the user's, outside every run folder"


@pytest.fixture
def run(tmp_path) -> Path:
    """tmp/runs/run: one verified checkpoint (step 2); tmp/secret.bin: a file outside it."""
    state = {"model": {"w": torch.ones(2, 2)}, "ema": {"ema_0.9": {"w": torch.full((2, 2), 2.0)}},
             "trainer": {"step": 2, "run_id": "r1"}}
    checkpoint.save(tmp_path / "runs" / "run", state, presets.get("tiny"))
    (tmp_path / "secret.bin").write_bytes(SECRET)
    return tmp_path / "runs" / "run"


def edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text and "refused" in text, text
    return text


def outside_names(run: Path) -> list[str]:
    secret = run.parents[1] / "secret.bin"
    return ["../../../../secret.bin", str(secret), "..\\..\\secret.bin"]


@pytest.mark.parametrize("which", [0, 1, 2])
def test_checkpoint_manifest_naming_outside_files_is_refused_before_reading(run, which):
    """On the old code verify() hashed the outside file (an oracle on its content) and passed."""
    ckpt = run / "checkpoints" / "step_000002"
    name = outside_names(run)[which]
    files = json.loads((ckpt / "manifest.json").read_text())["files"]
    edit_json(ckpt / "manifest.json", files={**files, name: checkpoint.sha256_file(run.parents[1] / "secret.bin")})
    with pytest.raises(CheckpointError) as e:
        checkpoint.verify(ckpt)
    assert f"{ckpt / 'manifest.json'} files={name!r} refused" in one_line(e)
    with pytest.warns(UserWarning, match="skipping damaged checkpoint.*refused"):
        assert checkpoint.find_resume(run) is None          # skipped like a damaged checkpoint


def test_a_symbolic_link_out_of_a_checkpoint_is_refused(run):
    ckpt = run / "checkpoints" / "step_000002"
    link = ckpt / "ema_0.9.safetensors"
    outside = run.parents[1] / "ema_elsewhere.safetensors"
    link.rename(outside)
    link.symlink_to(outside)                                  # same bytes, so its sha256 still matches
    with pytest.raises(CheckpointError, match=r"ema_0.9.safetensors' refused: it is a symbolic link \(to .*elsewhere"):
        checkpoint.verify(ckpt)


@pytest.mark.parametrize("change", [{"dir": "../../outside"}, {"dir": "/tmp"},
                                    {"files": {"../../../secret.bin": "0" * 64}}])
def test_latest_json_naming_outside_files_is_refused(run, change):
    edit_json(run / "latest.json", **change)
    with pytest.raises(CheckpointError) as e:
        checkpoint.run_id_of(run)
    assert f"{run / 'latest.json'} {next(iter(change))}" in one_line(e)
    with pytest.raises(CheckpointError, match="latest.json"):  # adding the prior rewrites latest.json: refused
        checkpoint.attach_prior(run, {"means": torch.zeros(2)})


def test_bare_run_manifest_naming_outside_files_is_refused(run, tmp_path):
    bare = checkpoint.write_bare_run(tmp_path / "bare", {"x": 1}, {"model.safetensors": {"w": torch.ones(1)}})
    edit_json(bare / "manifest.json", files={"model.safetensors": checkpoint.sha256_file(bare / "model.safetensors"),
                                             "../secret.bin": checkpoint.sha256_file(tmp_path / "secret.bin")})
    with pytest.raises(CheckpointError) as e:
        checkpoint.load_run(bare)
    assert "files='../secret.bin' refused" in one_line(e)


@pytest.mark.parametrize("name", ["../escape.safetensors", "{tmp}/escape.safetensors", "sub/x.safetensors"])
def test_write_bare_run_refuses_names_outside_the_run(tmp_path, name):
    before = sorted(tmp_path.parent.iterdir())
    with pytest.raises(CheckpointError, match="refused"):
        checkpoint.write_bare_run(tmp_path / "bare", {}, {"model.safetensors": {"w": torch.ones(1)},
                                                          name.format(tmp=tmp_path): {"w": torch.ones(1)}})
    assert sorted(tmp_path.parent.iterdir()) == before and not list(tmp_path.iterdir())   # nothing, anywhere


def test_a_run_folder_written_by_irislib_passes(run):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert checkpoint.read_pointer(run)["dir"] == "checkpoints/step_000002"
        assert checkpoint.run_id_of(run) == "r1"
        assert checkpoint.find_resume(run) == run / "checkpoints" / "step_000002"


def test_unlisted_weights_linking_out_of_a_run_are_refused(run, tmp_path):
    """Files read without being listed (an extra EMA file, a legacy prior) must not link out of the run either."""
    ckpt = run / "checkpoints" / "step_000002"
    outside = tmp_path / "weights_elsewhere.safetensors"
    outside.write_bytes((ckpt / "ema_0.9.safetensors").read_bytes())
    (ckpt / "ema_0.5.safetensors").symlink_to(outside)       # not in manifest.json: verify() does not see it
    (run / "prior.safetensors").symlink_to(outside)
    with pytest.raises(CheckpointError, match="ema_0.5.safetensors' refused: it is a symbolic link"):
        checkpoint.load(ckpt)
    with pytest.raises(CheckpointError, match="prior.safetensors' refused"):
        checkpoint.load_prior(run, ckpt_dir=run)
