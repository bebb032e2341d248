"""Dead units under the gear schedule: a small ReLU VAE vs the same VAE with SiLU (the seed's failure, reproduced).

Both train the same steps on synthetic irises under lr_schedule=gear at a learning rate high enough, at this scale,
to kill ReLU units (1e-2 for 10 epochs, then a third of it); the Trainer's probe logs the share of dead channels
per activation type (metrics.jsonl dead_units_relu / dead_units_silu). Writes the two curves as a PNG:
    python benchmarks/dead_units.py                       # docs/figures/dead_units.png, CPU, ~15 s on 1 thread
    python benchmarks/dead_units.py --steps 200 --out /tmp/dead.png
"""
from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import torch

from irislib import checkpoint, presets
from irislib.data import make_dataset
from irislib.models.vae import VAE
from irislib.train import Trainer
from irislib.train.tasks import VAETask

FIGURE = Path(__file__).resolve().parents[1] / "docs" / "figures" / "dead_units.png"
LR = 1e-2
GEAR_EPOCH, STEPS_PER_EPOCH = 10, 32 // 8  # the LR drops after 10 epochs of 32 images in batches of 8


def experiment(activation: str, steps: int, seed: int = 0):
    """The small VAE run: 16 px synthetic irises, 32 images, batch 8 (4 steps per epoch), gear [[0, LR], [10, LR/3]]."""
    return presets.get("tiny").override({
        "image_size": 16, "data.path": "synthetic:32", "vae.activation": activation, "vae.channel_mult": "1,2",
        "train.batch_size": 8, "train.microbatch": 8, "train.epochs": 0, "train.max_steps": steps,
        "train.lr": LR, "train.lr_schedule": "gear", "train.gear": f"[[0, {LR}], [{GEAR_EPOCH}, {LR / 3}]]",
        "train.ema_rate": "[]", "train.log_every_steps": 10, "train.save_every_steps": 0,
        "train.save_every_minutes": 0, "train.sample_grid_images": 0, "train.seed": seed})


def dead_unit_curve(activation: str, steps: int = 80, seed: int = 0, run_dir=None) -> list[tuple[int, float]]:
    """[(step, share of dead activation channels)] from step 0 (before training) to `steps`."""
    exp = experiment(activation, steps, seed)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(run_dir or tmp) / activation
        torch.manual_seed(seed)
        trainer = Trainer(VAE(exp.vae), VAETask(exp.vae), make_dataset(exp.data), exp, run, resume=None,
                          progress=False, device="cpu")
        key = f"dead_units_{activation}"
        curve = [(0, trainer.dead_units()[key])]
        trainer.run()
        return curve + [(r["step"], r[key]) for r in checkpoint.read_metrics(run)]


def plot(curves: dict[str, list[tuple[int, float]]], path, note: str = "") -> Path:
    """The curves (one per activation) as a PNG at `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, pts in curves.items():
        ax.plot(*zip(*pts), marker="o", ms=3, label=f"{name} VAE")
    drop = GEAR_EPOCH * STEPS_PER_EPOCH
    ax.axvline(drop, color="grey", ls=":", lw=1)
    ax.text(drop + 1, 0.01, f"gear: lr {LR:g} -> {LR / 3:.2g}", fontsize=7, color="grey")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("dead activation channels")
    ax.set_ylim(bottom=0)
    ax.set_title(f"ReLU vs SiLU VAE under the gear schedule{note}", fontsize=9)
    ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(FIGURE))
    args = ap.parse_args()
    torch.set_num_threads(1)
    curves = {act: dead_unit_curve(act, args.steps, args.seed) for act in ("relu", "silu")}
    for act, pts in curves.items():
        print(act, " ".join(f"{s}:{v:.3f}" for s, v in pts))
    print("wrote", plot(curves, args.out, f" ({platform.machine()} CPU, 1 thread, seed {args.seed})"))


if __name__ == "__main__":
    main()
