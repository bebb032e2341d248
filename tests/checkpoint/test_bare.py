"""Bare run directories (hub downloads, guided-diffusion imports): atomic, sha256-listed, verified on load."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from irislib import checkpoint
from irislib.checkpoint import CheckpointError
from irislib.config import Experiment

STATE = {"w": torch.arange(4.0), "b": torch.ones(2)}


def _config() -> dict:
    return Experiment().to_dict()


def test_a_bare_run_is_written_listed_and_loaded(tmp_path):
    run = checkpoint.write_bare_run(tmp_path / "run", _config(), {"model.safetensors": STATE}, source="abc")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["kind"] == "bare" and manifest["source"] == "abc"
    assert sorted(manifest["files"]) == ["config.json", "model.safetensors"]
    exp, state = checkpoint.load_run(run)
    assert exp.to_dict() == _config() and all(torch.equal(state[k], STATE[k]) for k in STATE)
    assert checkpoint.is_bare_run(run)


def test_a_damaged_bare_run_is_refused_naming_the_file(tmp_path):
    run = checkpoint.write_bare_run(tmp_path / "run", _config(), {"model.safetensors": STATE})
    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-2] + b"!!")
    with pytest.raises(CheckpointError, match=r"model\.safetensors fails its sha256 check"):
        checkpoint.load_run(run)


def test_rewriting_replaces_the_whole_run_and_leaves_no_temp_folders(tmp_path):
    src = tmp_path / "cached.safetensors"
    checkpoint.files.save_tensors(src, STATE)
    run = checkpoint.write_bare_run(tmp_path / "run", _config(), {"model.safetensors": STATE, "extra.bin": src})
    again = checkpoint.write_bare_run(run, _config(), {"model.safetensors": src}, source="v2")
    assert sorted(p.name for p in again.iterdir()) == ["config.json", "manifest.json", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cached.safetensors", "run"]   # no .tmp-/.old- left
    assert (again / "model.safetensors").samefile(src)                                   # linked, not copied


def test_is_current_only_for_the_same_source_and_files(tmp_path):
    src = tmp_path / "cached.safetensors"
    checkpoint.files.save_tensors(src, STATE)
    sha = checkpoint.sha256_file(src)
    run = checkpoint.write_bare_run(tmp_path / "run", _config(), {"model.safetensors": src}, source=sha)
    files = {"model.safetensors": (src, sha)}
    assert checkpoint.bare_run_is_current(run, files, source=sha)
    assert not checkpoint.bare_run_is_current(run, files, source="another manifest entry")
    assert not checkpoint.bare_run_is_current(run, {**files, "prior.safetensors": (src, sha)}, source=sha)
    assert not checkpoint.bare_run_is_current(tmp_path / "missing", files, source=sha)


def test_a_bare_run_needs_weights(tmp_path):
    with pytest.raises(ValueError, match="needs model.safetensors"):
        checkpoint.write_bare_run(tmp_path / "run", _config(), {"prior.safetensors": STATE})
    assert not Path(tmp_path / "run").exists()


def test_training_cannot_resume_from_a_bare_run(tmp_path):
    run = checkpoint.write_bare_run(tmp_path / "run", _config(), {"model.safetensors": STATE})
    with pytest.raises(CheckpointError, match="weights only .* cannot resume"):
        checkpoint.resolve(run)
