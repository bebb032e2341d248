"""irislib.checkpoint: atomic verified checkpoints, fallback on damage, refusal of code payloads, Drive mirror."""
from __future__ import annotations

import json
import os
import pickle
import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from toy import ToyDataset, ToyNet, ToyTask, toy_exp  # noqa: E402,F401

from irislib import checkpoint  # noqa: E402
from irislib.checkpoint import CheckpointError  # noqa: E402
from irislib.config import ConfigError, Experiment  # noqa: E402
from irislib.train import Trainer  # noqa: E402


def _train(run_dir, steps=8, save_every=4, resume="auto", mirror_dir=None, **kw):
    torch.manual_seed(0)
    exp = toy_exp(max_steps=steps, save_every_steps=save_every, keep_last=10, **kw)
    tr = Trainer(ToyNet(), ToyTask(), ToyDataset(12), exp, run_dir, resume=resume, progress=False, device="cpu",
                 mirror_dir=mirror_dir)
    tr.run()
    return tr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 8-step run with checkpoints at steps 4 and 8 (copied per test before damaging it)."""
    run = tmp_path_factory.mktemp("run") / "run"
    _train(run)
    return run


def _copy(src: Path, dst: Path) -> Path:
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_layout_pointer_and_round_trip(trained):
    pointer = json.loads((trained / "latest.json").read_text())
    assert pointer["step"] == 8 and pointer["dir"] == "checkpoints/step_000008"
    ckpt = trained / pointer["dir"]
    names = {"model.safetensors", "ema_0.9.safetensors", "ema_0.99.safetensors", "trainer_state.pt", "config.json"}
    assert set(pointer["files"]) == names
    for name, digest in pointer["files"].items():
        assert checkpoint.sha256_file(ckpt / name) == digest
    assert (trained / "config.json").read_text() == (ckpt / "config.json").read_text()
    assert not [p for p in trained.rglob("*") if ".tmp-" in p.name]
    # trainer state loads with plain torch.load(weights_only=True), numpy RNG stored as plain lists
    state = torch.load(ckpt / "trainer_state.pt", weights_only=True)
    assert state["step"] == 8 and isinstance(state["rng"][0]["numpy"][1], list)
    exp, model, emas = checkpoint.load_run_all(trained)
    assert exp.train.max_steps == 8 and set(emas) == {0.9, 0.99}
    net = ToyNet()
    net.load_state_dict(model)
    _, ema_sd = checkpoint.load_run(trained)  # EMA of the first rate
    assert all(torch.equal(ema_sd[k], emas[0.9][k]) for k in ema_sd)
    _, raw = checkpoint.load_run(trained, use_ema=False)
    assert all(torch.equal(raw[k], model[k]) for k in raw) and not torch.equal(raw["conv1.weight"],
                                                                                  ema_sd["conv1.weight"])


def test_truncated_newest_falls_back_with_warning(trained, tmp_path):
    run = _copy(trained, tmp_path / "run")
    bad = run / "checkpoints/step_000008/model.safetensors"
    bad.write_bytes(bad.read_bytes()[:-50])
    with pytest.warns(UserWarning, match=r"step_000008/model\.safetensors fails its sha256 check"):
        found = checkpoint.find_resume(run)
    assert found == run / "checkpoints/step_000004"
    # The Trainer resumes from step 4 and trains on to 8 again.
    with pytest.warns(UserWarning, match="falling back"):
        tr = _train(run)
    assert tr.step == 8 and checkpoint.verify(run / "checkpoints/step_000008")


def test_flipped_byte_is_detected(trained, tmp_path):
    run = _copy(trained, tmp_path / "run")
    path = run / "checkpoints/step_000008/trainer_state.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"trainer_state\.pt fails its sha256 check"):
        checkpoint.verify(run / "checkpoints/step_000008")
    with pytest.raises(CheckpointError, match="sha256"):
        checkpoint.load(run / "checkpoints/step_000008")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_with_code_payload_is_refused(trained, tmp_path):
    run = _copy(trained, tmp_path / "run")
    ckpt = run / "checkpoints/step_000008"
    marker = tmp_path / "payload_ran"
    (ckpt / "trainer_state.pt").write_bytes(pickle.dumps({"step": 8, "evil": _Payload(str(marker))}))
    # Re-sign the manifest and pointer so the file passes the hash check: only the loader can stop it now.
    manifest = json.loads((ckpt / "manifest.json").read_text())
    manifest["files"]["trainer_state.pt"] = checkpoint.sha256_file(ckpt / "trainer_state.pt")
    (ckpt / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"trainer_state\.pt refused.*Nothing from it was executed"):
        checkpoint.load(ckpt)
    with pytest.raises(CheckpointError, match="refused"):
        _train(run)
    assert not marker.exists(), "the pickle payload ran"
    # Control: the same pickle does run its payload under a plain pickle.load, so the test can fail.
    pickle.loads((ckpt / "trainer_state.pt").read_bytes())
    assert marker.exists()


def test_config_mismatch_is_refused_naming_the_field(trained, tmp_path):
    run = _copy(trained, tmp_path / "run")
    exp = toy_exp(max_steps=8, keep_last=10)
    exp.unet.num_channels = 64
    with pytest.raises(ConfigError, match=r"unet\.num_channels: .* has 128, requested 64"):
        Trainer(ToyNet(), ToyTask(), ToyDataset(12), exp, run, resume="auto", progress=False, device="cpu")
    exp.unet.num_channels = 128
    exp.train.lr = 5e-3  # training fields may change on resume
    Trainer(ToyNet(), ToyTask(), ToyDataset(12), exp, run, resume="auto", progress=False, device="cpu")


def test_fresh_run_refuses_to_overwrite_and_missing_auto_starts_fresh(trained, tmp_path):
    with pytest.raises(FileExistsError, match="resume='auto'"):
        Trainer(ToyNet(), ToyTask(), ToyDataset(12), toy_exp(max_steps=8), trained, progress=False, device="cpu")
    tr = Trainer(ToyNet(), ToyTask(), ToyDataset(12), toy_exp(max_steps=8), tmp_path / "new", resume="auto",
                 progress=False, device="cpu")
    assert tr.step == 0
    with pytest.raises(FileNotFoundError, match="neither a run directory"):
        Trainer(ToyNet(), ToyTask(), ToyDataset(12), toy_exp(max_steps=8), tmp_path / "x",
                resume=tmp_path / "nothing", progress=False, device="cpu")


def test_keep_last_and_milestones(tmp_path):
    torch.manual_seed(0)
    exp = toy_exp(max_steps=12, save_every_steps=2, keep_last=2, milestone_every_steps=4)
    Trainer(ToyNet(), ToyTask(), ToyDataset(12), exp, tmp_path / "run", progress=False, device="cpu").run()
    steps = sorted(s for s, _ in checkpoint.list_checkpoints(tmp_path / "run"))
    assert steps == [4, 8, 10, 12]


def test_shared_tensors_are_saved(tmp_path):
    w = torch.randn(3, 3)
    checkpoint.files.save_tensors(tmp_path / "m.safetensors", {"a": w, "b": w, "c": w[0]})
    out = checkpoint.files.load_tensors(tmp_path / "m.safetensors")
    assert torch.equal(out["a"], w) and torch.equal(out["b"], w) and torch.equal(out["c"], w[0])


def test_mirror_copies_and_resumes_alone(tmp_path):
    run, mirror = tmp_path / "local", tmp_path / "drive"
    _train(run, steps=8, save_every=4, mirror_dir=str(mirror))
    assert sorted(s for s, _ in checkpoint.list_checkpoints(mirror)) == [4, 8]
    assert json.loads((mirror / "latest.json").read_text())["step"] == 8
    for _, path in checkpoint.list_checkpoints(mirror):
        checkpoint.verify(path)
    assert (mirror / "metrics.jsonl").read_text() == (run / "metrics.jsonl").read_text()
    import shutil
    shutil.rmtree(run)  # the Colab VM is gone; only Drive is left
    torch.manual_seed(1)
    exp = toy_exp(max_steps=12, save_every_steps=4, keep_last=10)
    tr = Trainer(ToyNet(), ToyTask(), ToyDataset(12), exp, run, resume="auto", progress=False, device="cpu",
                 mirror_dir=mirror)
    assert tr.step == 8
    ref = checkpoint.load(mirror / "checkpoints/step_000008")["model"]
    assert all(torch.equal(tr.model.state_dict()[k], ref[k]) for k in ref)
    tr.run()
    assert [r["step"] for r in checkpoint.read_metrics(run)] == list(range(1, 13))
    assert sorted(s for s, _ in checkpoint.list_checkpoints(mirror)) == [4, 8, 12]


def test_failing_mirror_warns_and_training_continues(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the mirror folder should be")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tr = _train(tmp_path / "run", mirror_dir=str(blocker))
    assert tr.step == 8 and checkpoint.find_resume(tmp_path / "run").name == "step_000008"
    assert any("mirror copy" in str(w.message) and "training continues" in str(w.message) for w in caught)


def test_run_directory_extras(tmp_path):
    from PIL import Image
    path = checkpoint.write_sample_grid(tmp_path, 12, Image.new("L", (4, 4), 200))
    assert path == tmp_path / "samples/step_000012.png" and Image.open(path).getpixel((0, 0)) == 200
    assert checkpoint.load_prior(tmp_path) is None
    # A bare run directory (config.json + model.safetensors, as written before checkpoint.bare) loads too.
    exp = toy_exp()
    exp.to_json(tmp_path / "bare.json")
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare/config.json").write_text((tmp_path / "bare.json").read_text())
    checkpoint.files.save_tensors(tmp_path / "bare/model.safetensors", ToyNet().state_dict())
    got_exp, state = checkpoint.load_run(tmp_path / "bare")
    assert got_exp.train.lr == exp.train.lr and set(state) == set(ToyNet().state_dict())


# --- issue 9: pruning never loses the last good checkpoint; one run per folder; a re-save killed mid-publish -------

def _damage(ckpt: Path) -> None:
    model = ckpt / "model.safetensors"
    model.write_bytes(model.read_bytes()[:-50])


def _trainer(run_dir, resume="auto", mirror_dir=None, **kw):
    torch.manual_seed(0)
    return Trainer(ToyNet(), ToyTask(), ToyDataset(12), toy_exp(**kw), run_dir, resume=resume, progress=False,
                   device="cpu", mirror_dir=mirror_dir)


def test_pruning_after_a_damaged_newest_keeps_the_last_good_checkpoint(trained, tmp_path):
    run = _copy(trained, tmp_path / "run")  # steps 4 and 8
    _damage(run / "checkpoints/step_000008")
    with pytest.warns(UserWarning, match="falling back"):
        tr = _trainer(run, max_steps=6, keep_last=1)  # resumes step 4, saves step 6 with keep_last=1
    assert tr.step == 4
    tr.run()
    # step 6 (newest good) is kept and step 4 (older) pruned; the damaged step 8 is newer, so it is left alone.
    assert sorted(s for s, _ in checkpoint.list_checkpoints(run)) == [6, 8]
    with pytest.warns(UserWarning, match="step_000008"):
        assert checkpoint.find_resume(run).name == "step_000006"


def test_prune_deletes_nothing_when_no_checkpoint_verifies(trained, tmp_path):
    run = _copy(trained, tmp_path / "run")
    for _, path in checkpoint.list_checkpoints(run):
        _damage(path)
    assert checkpoint.prune(run, keep_last=1) == []
    assert len(checkpoint.list_checkpoints(run)) == 2
    with pytest.raises(CheckpointError, match="none of them verifies"), pytest.warns(UserWarning):
        _trainer(run, max_steps=8)  # resume='auto' does not bury them under a silent fresh start


def test_fresh_run_into_a_mirror_with_checkpoints_is_refused(tmp_path):
    mirror = tmp_path / "drive"
    _train(tmp_path / "vm1", steps=8, save_every=2, mirror_dir=str(mirror))  # run A: steps 2..8 on Drive
    before = sorted(p.name for p in (mirror / "checkpoints").iterdir())
    with pytest.raises(FileExistsError, match=r"mirror .*drive already holds checkpoints .*newest step 8\);"
                                              r" to continue that run pass resume='auto'.*new mirror folder "
                                              r"\(--mirror DIR, mirror_dir=\) for a fresh run"):
        _trainer(tmp_path / "vm2", resume=None, max_steps=2, mirror_dir=str(mirror))  # a new VM, "start fresh"
    assert sorted(p.name for p in (mirror / "checkpoints").iterdir()) == before
    assert not (mirror / ".mirror.lock").exists()  # the refused trainer handed the mirror back
    # resume='auto' on the new VM continues run A from the mirror, under A's run id.
    tr = _trainer(tmp_path / "vm2", max_steps=10, save_every_steps=2, mirror_dir=str(mirror))
    assert tr.step == 8 and tr.run_id == checkpoint.run_id_of(mirror) == checkpoint.run_id_of(tmp_path / "vm1")
    tr.run()
    assert checkpoint.run_id_of(tmp_path / "vm2") == tr.run_id


def test_run_ids_keep_two_runs_apart(tmp_path):
    a, b, mirror_b = tmp_path / "a", tmp_path / "b", tmp_path / "drive_b"
    _train(a, steps=4, save_every=2)
    _train(b, steps=8, save_every=4, mirror_dir=str(mirror_b))
    id_a, id_b = checkpoint.run_id_of(a), checkpoint.run_id_of(b)
    assert id_a and id_b and id_a != id_b
    manifest = json.loads((b / "checkpoints/step_000008/manifest.json").read_text())
    assert manifest["run_id"] == id_b == json.loads((mirror_b / "latest.json").read_text())["run_id"]
    # a's run directory with b's mirror: resume='auto' would mix two runs (b's step 8 is newer than a's 4).
    with pytest.raises(ConfigError, match=rf"belongs to run {id_b}, but run directory .*a holds checkpoints of "
                                          rf"run {id_a}.*new run directory"):
        _trainer(a, max_steps=10, mirror_dir=str(mirror_b))
    # Named explicitly, another run's checkpoint continues into a clean run directory, keeping its id ...
    tr = _trainer(tmp_path / "c", resume=str(mirror_b), max_steps=10)
    assert tr.step == 8 and tr.run_id == id_b
    # ... but never into a folder that holds a third run.
    with pytest.raises(ConfigError, match=rf"{id_b}.*holds checkpoints of run {id_a}"):
        _trainer(a, resume=str(b), max_steps=10)
    with pytest.raises(ConfigError, match=rf"mirror .*drive_b holds checkpoints of run {id_b}.*new mirror folder "
                                          r"\(--mirror DIR"):
        _trainer(tmp_path / "d", resume=str(a), max_steps=10, mirror_dir=str(mirror_b))


KILL_IN_PUBLISH = """
import os, signal, sys, torch
from irislib import checkpoint
from irislib.config import Experiment
real = os.replace
def replace(src, dst):
    real(src, dst)
    if ".old-" in str(dst) or ".tmp-old" in str(dst):  # the old folder is moved aside, the new one not yet in place
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
ckpt = sys.argv[1]
data = checkpoint.load(ckpt)
checkpoint.save(sys.argv[2], {"model": data["model"], "ema": data["ema"], "trainer": data["trainer"]},
                data["exp"], keep_last=10)
"""


def test_a_resave_killed_between_the_two_renames_loses_nothing(trained, tmp_path):
    import subprocess
    run = _copy(trained, tmp_path / "run")
    digest = json.loads((run / "checkpoints/step_000008/manifest.json").read_text())["files"]
    p = subprocess.run([sys.executable, "-c", KILL_IN_PUBLISH, str(run / "checkpoints/step_000008"), str(run)],
                       capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert p.returncode == -9, p.stderr[-2000:]
    assert not (run / "checkpoints/step_000008").exists()  # killed with step 8 only under a temporary name
    with pytest.warns(UserWarning, match="restored .*step_000008"):
        tr = _trainer(run, max_steps=10, keep_last=10)
    assert tr.step == 8
    assert checkpoint.verify(run / "checkpoints/step_000008")["files"] == digest
    tr.run()  # the next save cleans the dead writer's leftovers
    assert not [p for p in (run / "checkpoints").iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_a_checkpoint_folder_given_as_the_run_loads_its_ema_weights(trained):
    folder = trained / "checkpoints" / "step_000008"
    _, from_folder = checkpoint.load_run(folder)
    _, from_run = checkpoint.load_run(trained)
    _, raw = checkpoint.load_run(trained, use_ema=False)
    assert all(torch.equal(from_folder[k], from_run[k]) for k in from_run)
    assert any(not torch.equal(from_folder[k], raw[k]) for k in raw)   # EMA, not the raw weights


def test_a_run_written_with_train_mirror_dir_and_device_resumes(tmp_path, monkeypatch):
    """Run directories from before the Placement split hold train.mirror_dir / train.device in every config.json
    (the run's and each checkpoint's, inside its sha256 manifest); they resume, and the keys are simply dropped."""
    legacy = Experiment.to_dict

    def old_layout(exp):   # what Experiment.to_dict wrote while the two were train.* fields
        d = legacy(exp)
        d["train"].update(mirror_dir="", device="cpu")
        return d

    with monkeypatch.context() as m:
        m.setattr(Experiment, "to_dict", old_layout)
        first = _train(tmp_path / "old", steps=4, save_every=2)
    for config in (tmp_path / "old" / "config.json", first.last_checkpoint / "config.json"):
        assert json.loads(config.read_text())["train"]["device"] == "cpu"
    tr = _trainer(tmp_path / "old", max_steps=6, save_every_steps=2, keep_last=10)
    assert tr.step == 4 and tr.run_id == first.run_id             # resumed, not restarted
    tr.run()
    assert json.loads((tmp_path / "old" / "latest.json").read_text())["step"] == 6
    assert "device" not in json.loads((tmp_path / "old" / "config.json").read_text())["train"]
