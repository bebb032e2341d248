"""Run a tiny CPU training for the subprocess tests (kill/resume, torchrun/DDP).

python worker.py RUN_DIR [--steps N] [--save-every K] [--resume auto|PATH|none] [--det] [--sleep S]
                 [--die-at-write N] [--mirror DIR]
--die-at-write NAME:K: SIGKILL this process inside the K-th atomic write of a file called NAME, after its temp
file is written and before it is renamed (a crash in the middle of a checkpoint save).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

from toy import ToyDataset, ToyNet, ToyTask, toy_exp  # noqa: E402

from irislib.checkpoint import files  # noqa: E402
from irislib.train import Trainer, distributed  # noqa: E402


def die_inside_write(spec: str) -> None:
    """Patch atomic_write so that its K-th write of NAME (spec "NAME:K") leaves the temp file and kills us."""
    name, k = spec.rsplit(":", 1)
    original, count = files.atomic_write, [0]

    def patched(path, write):
        count[0] += Path(path).name == name
        if Path(path).name == name and count[0] == int(k):
            tmp = files.tmp_path(Path(path))
            write(tmp)
            os.kill(os.getpid(), signal.SIGKILL)
        return original(path, write)

    files.atomic_write = patched


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--save-every", type=int, default=4)
    ap.add_argument("--resume", default="auto")
    ap.add_argument("--det", action="store_true", help="deterministic task (no noise, no per-call weights)")
    ap.add_argument("--sleep", type=float, default=0.0)
    ap.add_argument("--die-at-write", default="")
    ap.add_argument("--mirror", default="")
    args = ap.parse_args()
    if args.die_at_write:
        die_inside_write(args.die_at_write)
    torch.manual_seed(0)
    exp = toy_exp(max_steps=args.steps, save_every_steps=args.save_every, keep_last=100)
    task = ToyTask(noisy=not args.det, weighted=not args.det, sleep_s=args.sleep)
    trainer = Trainer(ToyNet(), task, ToyDataset(30), exp, args.run_dir,
                      resume=None if args.resume == "none" else args.resume, progress=False, device="cpu",
                      mirror_dir=args.mirror or None)
    print(f"READY {trainer.step}", flush=True)
    trainer.run()
    print(f"DONE {trainer.step}", flush=True)
    distributed.cleanup()


if __name__ == "__main__":
    main()
