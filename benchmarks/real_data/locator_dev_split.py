"""A development / held-out split of the hand-annotated real frames (docs/real_data/annotations_<set>.csv) for
work on irislib.data.iris_crop.locate_eye: the locator is developed looking only at the development half and
judged on the held-out half, so its figures are not tuned to the frames that judge it.

The split is by subject (the eye folder with its L/R or _NN eye suffix removed: both eyes of one person fall on
the same side), seeded, half the subjects of each set on each side. It writes annotations_<set>.csv for each half
into OUT/dev and OUT/held (only the annotation rows: file names and numbers, no images), to be given to
benchmarks/real_data/segmentation_accuracy.py as --annotations:

    python benchmarks/real_data/locator_dev_split.py --out ~/realiris_work/split
    python benchmarks/real_data/segmentation_accuracy.py --root ~/realiris --annotations ~/realiris_work/split/dev \
        --out ~/realiris_work/dev.md
"""
from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SETS = ("casia1", "casia_interval", "mmu2")
SEED = 20261208


def subject(set_name: str, file: str) -> str:
    eye = file.split("/")[0]
    if set_name == "casia_interval":
        return re.sub(r"[LR]$", "", eye)           # S1001L, S1001R: one subject
    if set_name == "mmu2":
        return eye.split("_")[0]                  # 001_01, 001_02: one subject
    return eye                                    # casia1: one eye per subject


def split(set_name: str, rows: list[dict], seed: int = SEED) -> tuple[list[dict], list[dict]]:
    subjects = sorted({subject(set_name, r["file"]) for r in rows})
    rng = np.random.default_rng([seed, SETS.index(set_name)])
    dev = set(rng.permutation(subjects)[: (len(subjects) + 1) // 2].tolist())
    return [r for r in rows if subject(set_name, r["file"]) in dev], \
        [r for r in rows if subject(set_name, r["file"]) not in dev]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--annotations", default=str(REPO / "docs" / "real_data"))
    p.add_argument("--out", required=True, help="folder for dev/ and held/ annotation CSVs (outside the repository)")
    p.add_argument("--seed", type=int, default=SEED)
    a = p.parse_args(argv)
    out = Path(a.out).expanduser()
    for name in SETS:
        with open(Path(a.annotations) / f"annotations_{name}.csv", newline="") as fh:
            reader = csv.DictReader(fh)
            fields, rows = reader.fieldnames, list(reader)
        for half, part in zip(("dev", "held"), split(name, rows, a.seed)):
            (out / half).mkdir(parents=True, exist_ok=True)
            with open(out / half / f"annotations_{name}.csv", "w", newline="") as fh:
                w = csv.DictWriter(fh, fields, lineterminator="\n")
                w.writeheader()
                w.writerows(part)
            print(f"{name} {half}: {len(part)} frames, {len({subject(name, r['file']) for r in part})} subjects")


if __name__ == "__main__":
    main()
