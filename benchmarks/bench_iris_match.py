"""Comparisons per second of the rotation-searched masked Hamming distance, and the 10k x 10k time they imply.

Backends on random codes (the cost does not depend on content): irislib's numpy popcount, its exact int8 GEMM
(torch; AMX/VNNI CPUs, CUDA) and torch SWAR popcount, a plain numpy loop over unpacked bits, and open-iris's
HammingDistanceMatcher (run in the open-iris venv when it exists). One comparison = one pair with its full
rotation search. Usage:
    python benchmarks/bench_iris_match.py                       # default code (16 x 128, +-8 columns)
    python benchmarks/bench_iris_match.py --open-iris-code      # open-iris's code (16 x 256, +-15 columns)
    python benchmarks/bench_iris_match.py --full --device cuda  # really match 10k x 10k
"""
from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

import machine   # benchmarks/machine.py: the CPU as torch and /proc/cpuinfo report it

from irislib.biometrics import IrisCodeSpec, hamming_matrix, hamming_reference, pack

ROOT = Path(__file__).resolve().parents[1]
OPEN_IRIS = Path(os.environ.get("IRISLIB_OPENIRIS_PYTHON", ROOT / ".venv-openiris" / "bin" / "python"))
OI_SCRIPT = """
import sys, time, numpy as np
from iris.io.dataclasses import IrisTemplate
from iris.nodes.matcher.hamming_distance_matcher import HammingDistanceMatcher
rng = np.random.default_rng(0); n = int(sys.argv[1])
t = [IrisTemplate(iris_codes=[rng.random((16, 256, 2)) < .5 for _ in range(2)],
                  mask_codes=[rng.random((16, 256, 2)) < .95 for _ in range(2)], iris_code_version="v0.1")
     for _ in range(n + 1)]
m = HammingDistanceMatcher(); s = time.perf_counter()
for k in range(n): m.run(t[k], t[k + 1])
print(n / (time.perf_counter() - s))
"""


def random_codes(rng, n, spec):
    bits = rng.random((n, spec.n_cols, spec.bits_per_col)) < 0.5
    return pack(bits, rng.random(bits.shape) < 0.95), bits


def rate(fn, pairs: int, min_s: float = 2.0) -> float:
    """Pairs per second of fn() (repeated until min_s seconds have passed)."""
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_s:
        fn()
        n += 1
    return n * pairs / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--open-iris-code", action="store_true", help="open-iris's 16 x 256 code and +-15 shifts")
    ap.add_argument("--probes", type=int, default=256)
    ap.add_argument("--gallery", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--full", action="store_true", help="also time a real 10k x 10k match (gemm backend)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec = IrisCodeSpec.open_iris() if args.open_iris_code else IrisCodeSpec()
    rng = np.random.default_rng(0)
    a, abits = random_codes(rng, args.probes, spec)
    b, bbits = random_codes(rng, args.gallery, spec)
    print(f"# {machine.describe()}, {os.cpu_count()} CPUs, numpy "
          f"{np.__version__}, threads {args.threads}, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}"
          f" UTC, load {os.getloadavg()[0]:.1f}")
    print(f"# code {spec.n_rows} x {spec.n_cols} x {len(spec.filters)} filters x 2 = {spec.bits_per_col * spec.n_cols}"
          f" bits, shifts +-{spec.max_shift}")
    rows = []
    for backend, dev, na, nb in (("gemm", args.device, args.probes, args.gallery),
                                 ("popcount", "cpu", min(64, args.probes), min(512, args.gallery)),
                                 ("torch-popcount", args.device, min(16, args.probes), min(256, args.gallery))):
        r = rate(lambda: hamming_matrix(a[:na], b[:nb], spec.max_shift, backend=backend, device=dev), na * nb)
        rows.append((f"irislib {backend} ({dev})", r))
    am, bm_ = abits.reshape(len(abits), spec.n_cols, -1), bbits.reshape(len(bbits), spec.n_cols, -1)
    rows.append(("plain numpy loop (unpacked)", rate(lambda: [hamming_reference(am[k], am[k] | True, bm_[k],
                 bm_[k] | True, spec.max_shift) for k in range(8)], 8)))
    if OPEN_IRIS.exists() and args.open_iris_code:
        out = subprocess.run([str(OPEN_IRIS), "-c", OI_SCRIPT, "200"], capture_output=True, text=True, check=True)
        rows.append(("open-iris HammingDistanceMatcher", float(out.stdout.strip())))
    for name, r in rows:
        print(f"| {name} | {r:,.0f} | {1e8 / r / 60:,.1f} min (extrapolated) |")
    if args.full:
        big_a, _ = random_codes(rng, 10_000, spec)
        big_b, _ = random_codes(rng, 10_000, spec)
        t0 = time.perf_counter()
        hamming_matrix(big_a, big_b, spec.max_shift, backend="gemm", device=args.device)
        print(f"| measured 10k x 10k gemm ({args.device}) | {1e8 / (time.perf_counter() - t0):,.0f} | "
              f"{(time.perf_counter() - t0) / 60:.1f} min (measured) |")


if __name__ == "__main__":
    main()
