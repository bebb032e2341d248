"""Where the notebooks run: Colab detection, a guarded Drive mount, and default run/mirror folders.

In Colab a run writes to the fast local disk (/content/runs/<run>) and mirrors each checkpoint to Google Drive
(MyDrive/irislib/<run>), so a session that is cut off resumes from Drive with resume="auto". Elsewhere (Jupyter,
papermill, CI) nothing is mounted and the run folder is used as given.
"""
from __future__ import annotations

import ast
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..config import Experiment, Placement, build_experiment

COLAB_CONTENT = Path("/content")
DRIVE_MOUNT = Path("/content/drive")
ENV_OVERRIDE = "IRISLIB_ENV"  # "colab" or "local" forces detection (CI, tests)


@dataclass
class Env:
    """What setup() found: where we run, which device, and where runs and their Drive mirrors go."""
    in_colab: bool
    has_gpu: bool
    device: str                      # "cuda" or "cpu"
    gpu_name: str | None             # e.g. "Tesla T4"; None without a GPU
    drive_root: Path | None          # the mounted MyDrive/<drive_subdir> folder; None when Drive is not mounted
    runs_root: Path                  # local parent of run folders: /content/runs in Colab, ./runs elsewhere
    run_dir: Path | None = None      # the run folder setup() was asked about, resolved by default_paths()
    mirror_dir: Path | None = None   # its Drive mirror (None outside Colab)

    def paths(self, run: str | Path, mirror_dir: str | Path | None = "auto",
              smoke: bool = False) -> tuple[Path, Path | None]:
        """(local run folder, Drive mirror or None) for a run name or folder; see default_paths()."""
        return default_paths(run, mirror_dir=mirror_dir, env=self, smoke=smoke)

    def placement(self, run: str | Path, mirror_dir: str | Path | None = "auto", resume: str | None = "auto",
                  smoke: bool = False) -> Placement:
        """Where a training notebook's run goes: folders from paths(), resume "" = start fresh, CPU when smoke."""
        local, mirror = self.paths(run, mirror_dir, smoke=smoke)
        return Placement(local, mirror, device="cpu" if smoke else "auto", resume=resume or None)


def in_colab() -> bool:
    """True inside a Colab kernel ($IRISLIB_ENV=colab|local overrides the check)."""
    forced = os.environ.get(ENV_OVERRIDE, "").lower()
    if forced in ("colab", "local"):
        return forced == "colab"
    # Colab's kernel imports google.colab at start-up; importing it ourselves would give false positives
    # where the google-colab package is pip-installed locally (jupyter/notebook#5814).
    return "google.colab" in sys.modules


def mount_drive(path: str | Path = "/content/drive", force_remount: bool = False) -> Path | None:
    """Mount Google Drive in Colab and return MyDrive; a logged no-op (None) anywhere else."""
    if not in_colab():
        print("irislib.notebook.colab: not in Colab, Google Drive not mounted (runs stay on local disk)")
        return None
    path = Path(path)
    my_drive = path / "MyDrive"
    if my_drive.is_dir() and not force_remount:
        return my_drive
    from google.colab import drive  # only importable in Colab

    drive.mount(str(path), force_remount=force_remount)
    return my_drive


def _gpu() -> tuple[bool, str | None]:
    try:
        import torch
    except ImportError:
        return False, None
    if not torch.cuda.is_available():
        return False, None
    return True, torch.cuda.get_device_name(0)


def setup(run_dir: str | Path | None = None, drive_subdir: str = "irislib", mount: bool = True) -> Env:
    """Detect Colab and the GPU, mount Drive in Colab (if `mount`), resolve default run folders, and show a
    refused value (ConfigError) in this kernel as its one line (ui.one_line_errors)."""
    colab = in_colab()
    has_gpu, gpu_name = _gpu()
    drive_root = None
    if colab and mount:
        my_drive = mount_drive(DRIVE_MOUNT)
        drive_root = my_drive / drive_subdir if my_drive is not None else None
    runs_root = COLAB_CONTENT / "runs" if colab else Path("runs")
    env = Env(in_colab=colab, has_gpu=has_gpu, device="cuda" if has_gpu else "cpu", gpu_name=gpu_name,
              drive_root=drive_root, runs_root=runs_root)
    if run_dir is not None:
        env.run_dir, env.mirror_dir = env.paths(run_dir)
    from . import ui
    ui.one_line_errors()               # a refused form value: one line naming it, not a traceback
    where = "Colab" if colab else "local"
    print(f"irislib {where}: device={env.device}{f' ({gpu_name})' if gpu_name else ''}, "
          f"Drive={'mounted at ' + str(drive_root) if drive_root else 'not mounted'}")
    return env


def default_paths(run: str | Path, mirror_dir: str | Path | None = "auto", env: Env | None = None,
                  drive_subdir: str = "irislib", smoke: bool = False) -> tuple[Path, Path | None]:
    """(local run folder, mirror folder or None) for a run name or folder.

    In Colab a run on Drive (/content/drive/...) trains on /content/runs/<name> and mirrors to the Drive folder;
    a relative folder such as runs/vae trains on /content/runs/vae and mirrors to MyDrive/<drive_subdir>/runs/vae
    when Drive is mounted. Elsewhere the folder is used as given and there is no mirror. `mirror_dir` "auto" does
    the above, "" or "none" turns mirroring off, any other value is the mirror folder itself. A smoke run never
    touches Drive nor a real run folder: it runs in smoke_path(run) (runs/vae -> runs/smoke/vae) and "auto" means
    no mirror.
    """
    env = env or Env(in_colab=in_colab(), has_gpu=False, device="cpu", gpu_name=None, drive_root=None,
                     runs_root=COLAB_CONTENT / "runs" if in_colab() else Path("runs"))
    run = Path(run).expanduser()
    explicit = None if mirror_dir is None else str(mirror_dir)
    if explicit is not None and explicit.lower() not in ("auto", "", "none"):
        mirror: Path | None = Path(explicit).expanduser()
    else:
        mirror = None
    on_drive = DRIVE_MOUNT in run.parents
    if smoke:
        local, auto_mirror = smoke_path(run), None
    elif env.in_colab and on_drive:
        local = env.runs_root / run.name
        auto_mirror = run
    elif env.in_colab and not run.is_absolute():
        local = COLAB_CONTENT / run  # Colab's working folder
        root = env.drive_root or (DRIVE_MOUNT / "MyDrive" / drive_subdir if (DRIVE_MOUNT / "MyDrive").is_dir()
                                  else None)
        auto_mirror = root / run if root is not None else None
    else:
        local, auto_mirror = run, None
    if explicit is not None and explicit.lower() == "auto":
        mirror = auto_mirror
    return local, mirror


def smoke_path(path: str | Path) -> Path:
    """The smoke twin of a folder: runs/vae -> runs/smoke/vae, so a smoke run never lands in a real run folder."""
    path = Path(path)
    return path if "smoke" in path.parts else path.parent / "smoke" / path.name


SMOKE_ROOT = Path("runs/smoke")   # where a smoke 00/03/04 trains 2-step runs it cannot fetch (= 01/02's smoke folders)


def smoke_overrides(max_steps: int = 0) -> dict:
    """Typed config overrides of a smoke run: tiny synthetic data, fp32, a few steps, frequent saves (its CPU
    device is where it runs: Env.placement(smoke=True))."""
    return {"data.path": "synthetic:16", "image_size": 32, "train.precision": "fp32",
            "train.max_steps": max_steps or 2, "train.epochs": 0, "train.batch_size": 4, "train.microbatch": -1,
            "train.save_every_steps": 1, "train.save_every_minutes": 0.0, "train.log_every_steps": 1,
            "train.sample_every_steps": 0, "train.sample_grid_images": 4, "train.sample_grid_steps": 2,
            "data.num_workers": 0}


def training_experiment(preset: str, data: str, overrides=None, precision: str = "fp32", seed: int = 0,
                        max_steps: int = 0, epochs: int = 0, smoke: bool = False, crop: str = "auto") -> Experiment:
    """A training notebook's Experiment (what is trained) through config.build_experiment: the preset (tiny when
    smoke), then the form's typed values (max_steps/epochs 0 = the preset's), then `overrides`, then smoke settings."""
    form = {"train.precision": precision, "train.seed": seed, "data.crop": crop}
    if max_steps > 0:
        form["train.max_steps"] = max_steps
    if epochs > 0:
        form["train.epochs"] = epochs
    smoke_settings = smoke_overrides(max_steps) if smoke else {}
    return build_experiment("tiny" if smoke else preset, data=data,
                            overrides=[form, *parse_overrides(overrides), smoke_settings])


def parse_overrides(value) -> list[str]:
    """A notebook's `overrides` as a list of "key=value": a list, a "[...]" literal (papermill -p passes lists
    as text), or text with one override per line or separated by ";"."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise ValueError(f"overrides={value!r} is not a list literal; write "
                                 f"[\"train.lr=3e-4\", \"unet.num_channels=64\"] or train.lr=3e-4; ...") from None
        else:
            value = [part for line in text.splitlines() for part in line.split(";")]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"overrides={value!r}: give a list of \"key=value\" strings")
    return [str(v).strip() for v in value if str(v).strip()]


TRAINED_BY = {"unet": "02_train_diffusion.ipynb (or `irislib train-diffusion`)",
              "vae": "01_train_vae.ipynb (or `irislib train-vae`)"}


def ensure_run(ref: str | Path | None, kind: str, smoke: bool = False, root: str | Path = SMOKE_ROOT) -> Path | None:
    """A run folder to load: an existing folder as given, a manifest name fetched (sha256-checked) with
    irislib.hub.fetch_run; in a smoke run, a ref neither can serve is trained for 2 steps into root/kind instead.
    Anything else is one error saying what to train or which shipped name to use."""
    from .. import hub

    if ref is None or str(ref) == "":
        return None
    if Path(ref).is_dir():
        return Path(ref)
    try:
        return hub.fetch_run(str(ref), quiet=False)
    except hub.FetchError:             # a listed name whose sources all failed: its own message says why
        if not smoke:
            raise
    except hub.UnknownCheckpointError:
        if not smoke:
            raise FileNotFoundError(_no_such_run(str(ref), kind)) from None
    from ..train import pipeline
    from .. import presets

    exp = presets.get("tiny").override(smoke_overrides(2))
    train = pipeline.train_vae if kind == "vae" else pipeline.train_diffusion
    print(f"irislib.notebook.colab: smoke run: no {kind} run at {str(ref)!r}; "
          f"training a 2-step tiny one in {root}/{kind}")
    return train(exp, Path(root) / kind, resume="auto", progress=False, device="cpu")


def _no_such_run(ref: str, kind: str) -> str:
    from .. import hub

    shipped = ", ".join(repr(entry["name"]) for entry in hub.list_checkpoints() if entry["kind"] == kind)
    return (f"{ref!r} is neither a run folder nor a checkpoint name in checkpoints_manifest.json. Train the {kind} "
            f"run first with {TRAINED_BY[kind]} and run_dir={ref!r}, or use a shipped {kind} checkpoint: "
            f"{shipped or 'none listed'}")


def ensure_runs(unet_run: str, vae_run: str | None, smoke: bool = False,
                root: str | Path = SMOKE_ROOT) -> tuple[Path, Path | None]:
    """(UNet run folder, VAE run folder or None) via ensure_run."""
    return ensure_run(unet_run, "unet", smoke, root), ensure_run(vae_run, "vae", smoke, root)


def load_sampler(unet_run: str, vae_run: str | None, device: str = "auto", smoke: bool = False,
                 root: str | Path = SMOKE_ROOT):
    """A HybridSampler loaded (and verified) once from run folders or manifest names; CPU when smoke."""
    from ..generate.sampler import HybridSampler

    unet_dir, vae_dir = ensure_runs(unet_run, vae_run, smoke, root)
    sampler = HybridSampler.load(unet_dir, vae_dir, device="cpu" if smoke else device)
    drafts = f"VAE {vae_dir}" if vae_dir is not None else "no VAE (pure-noise sampling: strength 1 only)"
    print(f"loaded UNet {unet_dir} and {drafts} on {sampler.device} (max strength {sampler.max_strength:g})")
    return sampler


@dataclass(frozen=True)
class EvaluationPlan:
    """The sizes 04_evaluate runs at: the form's, or a few seconds' worth when smoke."""
    n: int
    steps: int
    strengths: list
    reference: str
    n_reference: int
    biometrics: bool
    device: str


def evaluation_plan(n: int, steps: int, strengths, reference: str, n_reference: int, device: str = "auto",
                    biometrics: bool = True, smoke: bool = False) -> EvaluationPlan:
    """The form's sizes, shrunk when smoke (at most 4 images, 4 steps, one strength, 8 reference irises from
    synthetic data, no biometric section, CPU); prints what smoke changed."""
    strengths = [float(v) for v in (ast.literal_eval(strengths) if isinstance(strengths, str) else strengths)]
    plan = EvaluationPlan(n, steps, strengths, reference, n_reference, biometrics, device)
    if not smoke:
        return plan
    small = EvaluationPlan(min(n, 4), min(steps, 4), strengths[:1], reference if reference.startswith("synthetic:")
                           else "synthetic:8", min(n_reference, 8), False, "cpu")
    changed = [f"{k} {getattr(plan, k)} -> {getattr(small, k)}" for k in plan.__dataclass_fields__
               if getattr(plan, k) != getattr(small, k)]
    print(f"smoke: {', '.join(changed) or 'nothing to shrink'}")
    return small


@dataclass(frozen=True)
class DatasetPlan:
    """Where and how big 05_synthetic_dataset writes: the form's values, or a few seconds' worth when smoke."""
    out: Path
    identities: int
    captures: int
    steps: int
    device: str
    n_training: int = 512            # training images the leakage check compares with


def dataset_plan(out_dir: str | Path, identities: int, captures: int, steps: int, device: str = "auto",
                 smoke: bool = False, env: Env | None = None) -> DatasetPlan:
    """In Colab a relative out_dir goes on Drive (MyDrive/irislib/<out_dir>), so a cut-off session continues the
    same dataset (irislib.dataset resumes); elsewhere it is used as given. Smoke: 3 identities x 2 captures,
    2 steps, CPU, in smoke_path(out_dir), never the real folder."""
    out = Path(out_dir).expanduser()
    env = env or Env(in_colab=in_colab(), has_gpu=False, device="cpu", gpu_name=None, drive_root=None,
                     runs_root=Path("runs"))
    if smoke:
        plan = DatasetPlan(smoke_path(Path("runs") / out if not out.is_absolute() else out), min(identities, 3),
                           min(captures, 2), min(steps, 2), "cpu", n_training=16)
        print(f"smoke: {plan.identities} identities x {plan.captures} captures, {plan.steps} steps, in {plan.out}")
        return plan
    if env.in_colab and not out.is_absolute():
        out = env.drive_root / out if env.drive_root is not None else COLAB_CONTENT / out
    print(f"dataset folder: {out}" + ("" if not env.in_colab or env.drive_root else " (Drive not mounted: lost "
                                                                                     "when the session ends)"))
    return DatasetPlan(out, identities, captures, steps, device)
