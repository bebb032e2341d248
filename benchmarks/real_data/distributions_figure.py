"""The genuine and impostor Hamming-distance distributions of several verify-dataset reports in one figure, by the
same matcher: the real sets beside irislib's synthetic identities (docs/real_data.md section 6). Reads each
report's scores.npz and verify.json; the figure has no image in it, only the distributions.

    python benchmarks/real_data/distributions_figure.py --out docs/real_data/distributions.png \
        "CASIA-IrisV1=~/realiris_work/verify_new/casia1" ... "synthetic (irislib dataset)=~/realiris_work/verify_new/ds50"
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

BINS = np.linspace(0, 0.7, 71)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("reports", nargs="+", help="NAME=FOLDER of a verify-dataset report (with scores.npz)")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7.2, 4.2))
    ax = fig.subplots()
    rows = []
    for k, spec in enumerate(a.reports):
        name, folder = spec.split("=", 1)
        folder = Path(folder).expanduser()
        s, rep = np.load(folder / "scores.npz"), json.loads((folder / "verify.json").read_text())
        for kind, ls in (("genuine", "-"), ("impostor", "--")):
            ax.hist(s[kind], BINS, density=True, histtype="step", color=f"C{k}", ls=ls, lw=1.4,
                    label=name if kind == "genuine" else None)
        rows.append(f"| {name} | {rep['images']} | {rep['identities']} | {rep['genuine']['mean']:.3f} | "
                    f"{rep['impostor']['mean']:.3f} | {rep['impostor']['sd']:.3f} | {rep['d_prime']:.2f} | "
                    f"{100 * rep['eer']:.2f} % | {100 * rep['fnmr_at_fmr_1e-3']:.2f} % | {rep['encoded_share']:.3f} |")
    ax.plot([], [], "k-", label="genuine (same eye)")
    ax.plot([], [], "k--", label="impostor (different eyes)")
    ax.set(xlim=(0, 0.7), ylim=(0, 12), xlabel="fractional Hamming distance (best rotation)", ylabel="density",
           title="verify-dataset: genuine (solid), impostor (dashed; peaks near 35 cut off)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=110)
    print("| set | images | eyes | genuine mean | impostor mean | impostor sd | d' | EER | FNMR at FMR 1e-3 | "
          "encoded |\n|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
