"""data.crop = "iris" against ground truth: synthetic camera frames (irislib synth --frame) with the eye at a random
position and scale, and frames with no eye that must be skipped.

For each frame size: the share of frames whose located iris centre is within 2 px and diameter within 3 % of the
truth (target: >= 98 %), the error percentiles, the misses listed, and seconds per frame (locating only).
Usage (about 10 minutes for the default on one core of the 2-core CPU):
    python benchmarks/iris_crop_accuracy.py --n 500 --sizes 640x480,320x280 > docs/iris_crop/accuracy.md
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from irislib.data.iris_crop import locate_eye
from irislib.data.synthetic import SEED_STRIDE, generate, no_eye_frames


def accuracy(n: int, h: int, w: int, seed: int = 1) -> dict:
    errs, misses, seconds = [], [], 0.0
    for i in range(n):
        img, geo = generate(seed * SEED_STRIDE + i, (h, w), frame=True)
        img = np.round(img * 255) / 255                                         # as an 8-bit frame on disk
        t = time.perf_counter()
        found = locate_eye(img)
        seconds += time.perf_counter() - t
        truth = geo["iris"]
        if found is None:
            misses.append((i, "no eye found", np.nan, np.nan))
            continue
        ce = float(np.hypot(found.iris_cx - truth["cx"], found.iris_cy - truth["cy"]))
        de = float(abs(found.iris_r / truth["r"] - 1))
        errs.append((ce, de))
        if ce > 2 or de > 0.03:
            misses.append((i, "off", ce, de))
    e = np.array(errs) if errs else np.zeros((0, 2))
    return {"n": n, "ok": n - len(misses), "centre_px": np.percentile(e[:, 0], [50, 90, 99]) if len(e) else None,
            "diameter_pct": 100 * np.percentile(e[:, 1], [50, 90, 99]) if len(e) else None,
            "misses": misses, "seconds_per_frame": seconds / n}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--sizes", default="640x480,320x280")
    args = p.parse_args(argv)
    print("| frame | frames | within 2 px and 3 % | centre error px p50 / p90 / p99 | diameter error % p50 / p90 / "
          "p99 | s / frame |\n|---|---|---|---|---|---|")
    details = []
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        r = accuracy(args.n, h, w)
        c, d = r["centre_px"], r["diameter_pct"]
        print(f"| {w}x{h} | {r['n']} | {r['ok']} ({100 * r['ok'] / r['n']:.1f} %) | "
              f"{c[0]:.2f} / {c[1]:.2f} / {c[2]:.2f} | {d[0]:.2f} / {d[1]:.2f} / {d[2]:.2f} | "
              f"{r['seconds_per_frame']:.2f} |", flush=True)
        details.append((size, r["misses"]))
        for name, img in no_eye_frames(h, w).items():
            details.append((f"{size} {name}", "skipped (no eye found)" if locate_eye(img) is None else "FOUND AN EYE"))
    print()
    for what, misses in details:
        if isinstance(misses, str):
            print(f"- {what}: {misses}")
        else:
            listed = "; ".join(f"frame {i}: {why}" + ("" if why != "off" else f" (centre {ce:.1f} px, diameter "
                                                                             f"{100 * de:.1f} %)")
                               for i, why, ce, de in misses)
            print(f"- {what} misses: {listed or 'none'}")


if __name__ == "__main__":
    main()
