"""Print the frames chosen for hand annotation in each real set (seeded; see realsets.select).

    python benchmarks/real_data/select_frames.py --root ~/realiris
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realsets import SETS, eyes, select  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="~/realiris")
    p.add_argument("--sets", default=",".join(SETS))
    args = p.parse_args(argv)
    for name in args.sets.split(","):
        chosen = select(Path(args.root).expanduser(), name)
        n_eyes = len({f.split("/")[0] for f, _ in chosen})
        print(f"# {name}: {len(chosen)} frames of {n_eyes} eyes (of {len(eyes(Path(args.root).expanduser(), name))})")
        for f, why in chosen:
            print(f"{name}/{f}\t{why}")


if __name__ == "__main__":
    main()
