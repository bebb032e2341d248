"""A subject-disjoint training / held-out split of the three real sets, as folders irislib trains on: the 128 px
pair on real frames (docs/real_data.md section 7). Copies ROOT/<set>/<eye>/<frame> to OUT/train/<set>-<eye>/ or
OUT/held/<set>-<eye>/, a seeded HELD share of each set's subjects held out (both eyes of a person on one side), so
no eye of the reference is ever trained on. OUT must be outside the repository: the copies are the owners' images.

    python benchmarks/real_data/training_split.py --root ~/realiris --out ~/realiris_work/real128
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from locator_dev_split import subject  # noqa: E402
from realsets import REPO, SETS, eyes  # noqa: E402

SEED = 20261209
HELD = 0.1


def held_subjects(name: str, ids: list[str], seed: int = SEED) -> set[str]:
    subjects = sorted({subject(name, f"{e}/x") for e in ids})
    rng = np.random.default_rng([seed, SETS.index(name)])
    return set(rng.permutation(subjects)[:max(1, round(HELD * len(subjects)))].tolist())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    root, out = Path(a.root).expanduser(), Path(a.out).expanduser().resolve()
    if out == REPO or REPO in out.parents:
        sys.exit(f"--out {out} is inside the repository; the copies are real eyes: put them elsewhere")
    counts = {}
    for name in SETS:
        by_eye = eyes(root, name)
        held = held_subjects(name, list(by_eye))
        for eye, files in by_eye.items():
            side = "held" if subject(name, f"{eye}/x") in held else "train"
            dest = out / side / f"{name}-{eye}"
            dest.mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copy2(root / name / f, dest / Path(f).name)
            c = counts.setdefault(f"{name} {side}", [0, 0])
            c[0], c[1] = c[0] + 1, c[1] + len(files)
    print(json.dumps({k: {"eyes": v[0], "frames": v[1]} for k, v in sorted(counts.items())}, indent=1))


if __name__ == "__main__":
    main()
