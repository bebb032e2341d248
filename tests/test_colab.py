"""irislib.notebook.colab: detection with a fake google.colab module, guarded Drive mount, default run/mirror
folders."""
import sys
import types
from pathlib import Path

import pytest
import torch

from irislib import presets
from irislib.config import ConfigError, Placement
from irislib.notebook import colab


@pytest.fixture
def local(monkeypatch):
    """Plain Python: no google.colab, no override."""
    monkeypatch.delenv(colab.ENV_OVERRIDE, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)


@pytest.fixture
def fake_colab(monkeypatch, tmp_path, local):
    """A google.colab module whose drive.mount creates MyDrive under a temp 'mount point'; /content -> tmp."""
    mounts = []

    def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
        mounts.append((mountpoint, force_remount))
        (Path(mountpoint) / "MyDrive").mkdir(parents=True, exist_ok=True)

    pkg = types.ModuleType("google.colab")
    pkg.drive = types.SimpleNamespace(mount=mount)
    monkeypatch.setitem(sys.modules, "google.colab", pkg)
    monkeypatch.setattr(colab, "COLAB_CONTENT", tmp_path / "content")
    monkeypatch.setattr(colab, "DRIVE_MOUNT", tmp_path / "content" / "drive")
    return mounts


def test_detection(local, monkeypatch):
    assert not colab.in_colab()
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert colab.in_colab()
    monkeypatch.setenv(colab.ENV_OVERRIDE, "local")
    assert not colab.in_colab()
    monkeypatch.delitem(sys.modules, "google.colab")
    monkeypatch.setenv(colab.ENV_OVERRIDE, "colab")
    assert colab.in_colab()


def test_mount_drive_is_a_logged_noop_outside_colab(local, capsys, tmp_path):
    assert colab.mount_drive(tmp_path / "drive") is None
    assert "not in Colab" in capsys.readouterr().out
    assert not (tmp_path / "drive").exists()


def test_mount_drive_in_colab_mounts_once(fake_colab, tmp_path):
    point = tmp_path / "content" / "drive"
    assert colab.mount_drive(point) == point / "MyDrive"
    assert colab.mount_drive(point) == point / "MyDrive"       # already mounted: no second OAuth prompt
    assert fake_colab == [(str(point), False)]
    colab.mount_drive(point, force_remount=True)
    assert fake_colab[-1] == (str(point), True)


def test_setup_in_colab_mounts_and_mirrors_to_drive(fake_colab, tmp_path, capsys):
    env = colab.setup(run_dir="runs/vae")
    content = tmp_path / "content"
    assert env.in_colab and env.drive_root == content / "drive" / "MyDrive" / "irislib"
    assert env.runs_root == content / "runs"
    assert env.run_dir == content / "runs" / "vae"
    assert env.mirror_dir == content / "drive" / "MyDrive" / "irislib" / "runs" / "vae"
    drive_run = content / "drive" / "MyDrive" / "exp" / "unet64"   # a run folder given as a Drive path
    assert env.paths(drive_run) == (content / "runs" / "unet64", drive_run)
    assert env.paths("x", mirror_dir="none") == (content / "x", None)
    assert "irislib Colab" in capsys.readouterr().out


def test_setup_headless_keeps_paths_and_reports_device(local, monkeypatch):
    env = colab.setup(run_dir="/tmp/r")
    assert (env.in_colab, env.drive_root, env.run_dir, env.mirror_dir) == (False, None, Path("/tmp/r"), None)
    assert env.device == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Tesla T4")
    env = colab.setup()
    assert (env.has_gpu, env.device, env.gpu_name) == (True, "cuda", "Tesla T4")


def test_default_paths_explicit_mirror_outside_colab(local, tmp_path):
    assert colab.default_paths("runs/a") == (Path("runs/a"), None)
    assert colab.default_paths("runs/a", mirror_dir=tmp_path / "m") == (Path("runs/a"), tmp_path / "m")
    assert colab.default_paths("runs/a", mirror_dir="") == (Path("runs/a"), None)


def test_smoke_overrides_make_a_valid_tiny_experiment():
    exp = presets.get("tiny").override(colab.smoke_overrides()).validate()
    assert (exp.train.max_steps, exp.data.path, exp.unet.image_size) == (2, "synthetic:16", 32)
    assert presets.get("tiny").override(colab.smoke_overrides(5)).train.max_steps == 5


def test_training_experiment_is_the_form_then_overrides_then_smoke():
    exp = colab.training_experiment("seed-64", "synthetic:32", "train.lr=3e-4; train.seed=9", precision="bf16",
                                    seed=1, max_steps=7, epochs=0)
    assert (exp.data.path, exp.train.precision, exp.train.max_steps, exp.train.lr) == ("synthetic:32", "bf16", 7, 3e-4)
    assert exp.train.seed == 9                                      # `overrides` win over the form
    assert exp.train.epochs == presets.get("seed-64").train.epochs   # 0 = the preset's value
    smoke = colab.training_experiment("seed-64", "synthetic:32", ["train.max_steps=50"], max_steps=3, smoke=True)
    assert (smoke.train.max_steps, smoke.data.path, smoke.unet.num_channels) == (3, "synthetic:16", 32)  # tiny
    with pytest.raises(ConfigError, match="train.precision"):
        colab.training_experiment("tiny", "synthetic:8", precision="fp8")


def test_placement_is_where_it_runs_and_reaches_the_trainer_as_arguments(local, tmp_path, monkeypatch):
    from irislib.train import pipeline
    env = colab.setup()
    place = env.placement("runs/vae", mirror_dir=tmp_path / "m", resume="")
    assert place == Placement(Path("runs/vae"), tmp_path / "m", "auto", None)
    smoke = env.placement("runs/vae", smoke=True)
    assert (smoke.run_dir, smoke.mirror_dir, smoke.device, smoke.resume) == (Path("runs/smoke/vae"), None, "cpu", "auto")
    built = []   # what the notebooks' Train cell hands the Trainer: train_vae(exp, run_dir, **train_kwargs())
    monkeypatch.setattr(pipeline, "Trainer", lambda *a, **k: built.append(k) or _NoRun())
    pipeline.train_vae(presets.get("tiny").override({"vae.prior": "normal"}), tmp_path / "run", progress=False,
                       **place.train_kwargs())
    assert (built[0]["mirror_dir"], built[0]["device"], built[0]["resume"]) == (tmp_path / "m", "auto", None)


class _NoRun:
    is_main = True

    def run(self):
        return None


def test_parse_overrides_accepts_lists_and_papermill_text():
    want = ["train.lr=3e-4", "unet.channel_mult=1,2,2"]
    assert colab.parse_overrides(want) == want
    assert colab.parse_overrides(str(want)) == want                 # papermill -p passes lists as text
    assert colab.parse_overrides("train.lr=3e-4; unet.channel_mult=1,2,2\n") == want
    assert colab.parse_overrides("") == [] and colab.parse_overrides(None) == []
    with pytest.raises(ValueError, match="overrides"):
        colab.parse_overrides("[train.lr=3e-4")


def test_smoke_runs_never_touch_drive_nor_a_real_run_folder(fake_colab, tmp_path):
    env = colab.setup()
    assert env.paths("runs/u", smoke=True) == (Path("runs/smoke/u"), None)
    assert env.paths("runs/u", mirror_dir=tmp_path / "m", smoke=True) == (Path("runs/smoke/u"), tmp_path / "m")
    assert colab.smoke_path(tmp_path / "runs" / "smoke" / "u") == tmp_path / "runs" / "smoke" / "u"
    assert colab.smoke_path("u") == Path("smoke/u")


def test_ensure_runs_passes_folders_through_and_fetches_names(tmp_path, monkeypatch):
    from irislib import hub
    (tmp_path / "u").mkdir()
    fetched = []
    monkeypatch.setattr(hub, "fetch_run", lambda name, quiet=True: fetched.append(name) or tmp_path / name)
    assert colab.ensure_runs(str(tmp_path / "u"), "", smoke=False) == (tmp_path / "u", None)
    pair = colab.ensure_runs(str(tmp_path / "u"), "iris64-vae", smoke=False)
    assert pair == (tmp_path / "u", tmp_path / "iris64-vae")
    assert fetched == ["iris64-vae"]


@pytest.mark.parametrize("kind, words", [("unet", ["02_train_diffusion", "'tiny-synthetic-unet'"]),
                                         ("vae", ["01_train_vae", "'tiny-synthetic-vae'"])])
def test_a_missing_run_folder_says_what_to_run(tmp_path, kind, words):
    with pytest.raises(FileNotFoundError) as err:
        colab.ensure_run(str(tmp_path / "runs" / kind), kind)
    msg = str(err.value)
    assert all(w in msg for w in words) and "neither a run folder nor a checkpoint name" in msg
    assert "no checkpoint named" not in msg


def test_a_smoke_run_trains_what_it_cannot_fetch_into_the_smoke_folder(tmp_path, monkeypatch):
    from irislib.train import pipeline
    trained = []
    monkeypatch.setattr(pipeline, "train_vae", lambda exp, out, **k: trained.append((exp, out, k)) or out)
    assert colab.ensure_run("runs/vae", "vae", smoke=True, root=tmp_path / "smoke") == tmp_path / "smoke" / "vae"
    assert trained[0][0].train.max_steps == 2 and trained[0][0].data.path == "synthetic:16"
    assert trained[0][2]["device"] == "cpu"                          # a smoke run trains on the CPU


def test_evaluation_plan_shrinks_only_in_smoke(capsys):
    full = colab.evaluation_plan(16, 20, "[0.3, 0.5, 0.7]", "/data/iris", 256)
    assert (full.n, full.steps, full.strengths, full.n_reference, full.biometrics) == (16, 20, [0.3, 0.5, 0.7], 256, True)
    small = colab.evaluation_plan(16, 20, [0.3, 0.5, 0.7], "/data/iris", 256, smoke=True)
    assert small == colab.EvaluationPlan(4, 4, [0.3], "synthetic:8", 8, False, "cpu")
    assert "n 16 -> 4" in capsys.readouterr().out
