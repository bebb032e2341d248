"""tests/train/worker.py's tiny training on CUDA, for the kill-and-resume GPU test.

python cuda_worker.py RUN_DIR [--steps N] [--save-every K] [--precision P] [--sleep S] [--die-at-write NAME:K]
                      [--device D]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from worker import die_inside_write  # noqa: E402  (also: one thread, deterministic algorithms)
from toy import ToyDataset, ToyNet, ToyTask, toy_exp  # noqa: E402

from irislib.train import Trainer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--save-every", type=int, default=4)
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--sleep", type=float, default=0.0)
    ap.add_argument("--die-at-write", default="")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    if args.die_at_write:
        die_inside_write(args.die_at_write)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.manual_seed(0)
    exp = toy_exp(max_steps=args.steps, save_every_steps=args.save_every, keep_last=100, precision=args.precision)
    trainer = Trainer(ToyNet(), ToyTask(sleep_s=args.sleep), ToyDataset(30), exp, args.run_dir, resume="auto",
                      progress=False, device=args.device)
    print(f"READY {trainer.step}", flush=True)
    trainer.run()
    print(f"DONE {trainer.step}", flush=True)


if __name__ == "__main__":
    main()
