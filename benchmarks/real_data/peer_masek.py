"""A peer iris matcher on the real NIR frames that `irislib verify-dataset` reads: the Python port of Libor Masek's
open-source iris recognition (Masek & Kovesi 2003), run from its own checkout outside this repository, so that
irislib's matcher can be compared against an independent one on the same frames and the same pairs.

The peer is github.com/Mayoogh/Iris-Recognition (a copy of AntiAegis/Iris-Recognition; MIT licence, "Copyright (c)
2018 Thuy Ng"), commit b95962d5a0294d8a6ca163a6c4c7c245dbb038c7. None of its code is in this repository: this script
only imports its modules from the folder given with --peer. Its pipeline (python/fnc/):

* segmentation (fnc/segment.py, fnc/boundary.py, fnc/line.py): pupil and limbus circles by a coarse-to-fine search
  of the integro-differential operator (circular contour sums over a grid of centres and radii, the radial
  derivative blurred, its maximum taken); the limbus only over the lateral arcs (60-120 and 240-300 degrees), its
  centre within 15 % of the pupil radius of the pupil's; upper and lower eyelids as the strongest straight line
  (Canny edges and a Radon transform, i.e. a linear Hough transform) above / below the pupil, masked; pixels darker
  than `eyelashes_thres` masked as eyelashes;
* normalisation (fnc/normalize.py): Daugman's rubber sheet, 20 radial x 240 angular samples (nearest pixel);
* encoding (fnc/encode.py): each ring convolved with one 1-D log-Gabor filter (wavelength 18 samples, sigma/f
  0.5), the phase quantised to 2 bits: a 20 x 480 template and noise mask;
* matching (fnc/matching.py calHammingDist): the fractional Hamming distance over the bits unmasked in both codes,
  the minimum over circular shifts of -8 ... +8 angular samples (2 bits each).

Parameters are the peer's own: fnc/extractFeature.py's module values (20 x 240, wavelength 18, mult 1, sigmaOnf
0.5) and its eyelash threshold, 80 grey levels (its default, tuned on CASIA-IrisV1 by eval_casia1.py), except for
MMU2, where its calculate_dist_mat_mmu2.py (commit "MMU2 optimal parameters") uses 10. CASIA-Iris-Interval gets the
CASIA value, 80 (the peer was never tuned on it). --eyelashes-thres overrides.

What this script does, for one set ROOT/<eye folder>/<frame> (each eye folder an identity, as verify-dataset):
segments and encodes every frame exactly as fnc/extractFeature.extractFeature does (the same calls in the same
order, done here step by step only to keep the circles; the first frame is checked against extractFeature itself),
single process (use_multiprocess=False), recording the frames it fails on (an exception) and the share of masked
bits; then every unordered pair of encoded frames with calHammingDist, genuine (same eye folder) or impostor; pairs
whose HD is NaN (no bit left unmasked) are counted and left out. It writes OUT/results.json (the summary printed to
stdout, plus every frame's circles, mask share, time or error) and OUT/scores.npz (the genuine and impostor HDs,
their frame-index pairs, the frame names). Summary: frames, encoded, genuine and impostor n / mean / sd (population
sd, as irislib's hd_stats and pyeer), d' = |mu_g - mu_i| / sqrt((sd_g^2 + sd_i^2) / 2), EER (pyeer's
get_eer_stats with ds_scores=True, when pyeer is importable; else the same FVC2000 definition computed here, and
the JSON says which; the script's own is always given as eer_own, as a check), FNMR at FMR 1e-3 and 1e-4 with the
threshold chosen on the impostor scores alone (the largest impostor HD t with FMR(t) = share of impostor HDs <= t
at most the target; when none is, just below the lowest impostor HD), and seconds per frame (wall and CPU).
With --annotations docs/real_data/annotations_<set>.csv it also scores the peer's circles against the hand
annotations: the share of annotated frames whose pupil / iris / both circles have centre and radius errors both
<= 5 % (and 10 %) of the annotated iris radius (the criterion of segmentation_accuracy.py).

OUT must be outside this repository (the script refuses one inside it); the frames are research data and nothing
here writes an image.

Setting up the peer (outside the repository; it only needs the package registry):

    mkdir -p /root/peer_masek
    git --git-dir=/work/.mirror/Mayoogh+Iris-Recognition/repo/.git archive HEAD python | tar -x -C /root/peer_masek
    python3 -m venv /root/peer_venv
    /root/peer_venv/bin/pip install numpy scipy opencv-python-headless scikit-image pyeer
    # measured with numpy 2.4.6, scipy 1.17.1, opencv-python-headless 5.1.0.95, scikit-image 0.26.0, pyeer 0.5.6

Its python/requirements.txt pins 2018 releases (numpy 1.14, scipy 1.1, opencv-python 3.4, scikit-image 0.14) that
do not install on Python 3.11; fnc/ imports only numpy, scipy (signal.fftconvolve, ndimage.convolve, io),
cv2.imread and skimage.transform.radon, so current releases were installed instead. No change to the peer's code
was needed: everything runs as it is under these versions (its one construct that current numpy could have broken,
`mask[np.meshgrid(...)] = nan` in fnc/segment.py, still indexes as it did, since np.meshgrid now returns a tuple).

Running it (one process, one thread, niced; about 0.2-0.5 s a frame to encode and 1.5 ms a pair to match on the
shared 2-core machine):

    for s in casia_interval casia1 mmu2; do
      OMP_NUM_THREADS=1 nice -n 19 /root/peer_venv/bin/python benchmarks/real_data/peer_masek.py \\
        --peer /root/peer_masek/python --root ~/realiris --set $s --out ~/realiris_work/peer_masek/$s \\
        --annotations docs/real_data/annotations_$s.csv
    done

After encoding, the codes are saved to OUT/codes.npz and codes.json; with --reuse-codes a later run on the same
frames and threshold goes straight to matching. --limit-eyes N runs on the first N eye folders only (a smoke test).

Results: docs/real_data/peer_masek.md.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")        # one thread, before numpy is imported

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
IMAGE_EXT = {".jpg", ".jpeg", ".bmp", ".png", ".tif", ".tiff"}
EYELASH_THRES = {"casia1": 80, "casia_interval": 80, "mmu2": 10}     # the peer's own; see the docstring
PEER_COMMIT = "b95962d5a0294d8a6ca163a6c4c7c245dbb038c7"     # Mayoogh/Iris-Recognition, extracted with git archive
FMR_TARGETS = (("1e-3", 1e-3), ("1e-4", 1e-4))


def inside_repo(p: Path) -> bool:
    p = p.expanduser().resolve()
    return any(p == r or r in p.parents for r in {REPO, Path("/work/main").resolve()})


def list_frames(folder: Path) -> list[tuple[str, str]]:
    """(eye folder, frame file name) for every image one level down, sorted."""
    out = []
    for eye in sorted(d for d in folder.iterdir() if d.is_dir()):
        out += [(eye.name, f.name) for f in sorted(eye.iterdir()) if f.suffix.lower() in IMAGE_EXT]
    return out


def stats(v) -> dict:
    v = np.asarray(v, float)
    if not len(v):
        return {"n": 0, "mean": float("nan"), "sd": float("nan")}
    return {"n": int(len(v)), "mean": float(v.mean()), "sd": float(v.std())}


def fmr_threshold(imp: np.ndarray, target: float) -> float:
    """The largest impostor HD t with (share of impostor HDs <= t) <= target; just below the lowest impostor when
    none is."""
    i = np.sort(imp)
    u = np.unique(i)
    ok = np.searchsorted(i, u, side="right") / len(i) <= target
    return float(u[ok][-1]) if ok.any() else float(np.nextafter(i[0], -np.inf))


def eer_fvc2000(gen: np.ndarray, imp: np.ndarray) -> tuple[float, float]:
    """FVC2000's EER (Maio et al. 2002) over every distinct score (and -inf) as threshold, accept HD <= t: of the
    two thresholds either side of the crossing, the one with the smaller FMR + FNMR; (EER, threshold)."""
    g, i = np.sort(gen), np.sort(imp)
    t = np.unique(np.concatenate([[-np.inf], g, i]))
    fmr = np.searchsorted(i, t, side="right") / len(i)
    fnmr = (len(g) - np.searchsorted(g, t, side="right")) / len(g)
    d = fmr - fnmr
    lo = int(np.flatnonzero(d <= 0)[-1])
    hi = lo if d[lo] == 0 or lo == len(d) - 1 else lo + 1
    k = hi if fmr[hi] + fnmr[hi] <= fmr[lo] + fnmr[lo] else lo
    return float((fmr[k] + fnmr[k]) / 2), float(t[k])


def error_rates(gen: np.ndarray, imp: np.ndarray) -> dict:
    out: dict = {}
    if not len(gen) or not len(imp):
        return {"eer": float("nan"), "eer_method": "none (no scores)"}
    g_st, i_st = stats(gen), stats(imp)
    den = math.sqrt((g_st["sd"] ** 2 + i_st["sd"] ** 2) / 2)
    out["d_prime"] = abs(g_st["mean"] - i_st["mean"]) / den if den > 0 else float("inf")
    out["eer_own"], out["eer_own_threshold"] = eer_fvc2000(gen, imp)
    try:
        from importlib.metadata import version
        from pyeer.eer_info import get_eer_stats
        st = get_eer_stats(gen, imp, ds_scores=True)
        out["eer"], out["eer_threshold"] = float(st.eer), float(st.eer_th)
        out["eer_method"] = f"pyeer {version('pyeer')} get_eer_stats(ds_scores=True)"
        out["pyeer_fmr1000"] = float(st.fmr1000)    # pyeer's own FNMR at its FMR 0.1 % operating point
        out["pyeer_decidability"] = float(st.decidability)
    except ImportError:
        out["eer"], out["eer_threshold"] = out["eer_own"], out["eer_own_threshold"]
        out["eer_method"] = "own FVC2000 computation (pyeer not importable)"
    for tag, x in FMR_TARGETS:
        thr = fmr_threshold(imp, x)
        out[f"threshold_at_fmr_{tag}"] = thr
        out[f"fnmr_at_fmr_{tag}"] = float(np.mean(gen > thr))
        out[f"fmr_at_fmr_{tag}"] = float(np.mean(imp <= thr))
    return out


def annotation_check(csv_path: Path, set_name: str, frames: list[dict]) -> dict:
    """The peer's circles against hand annotations: share of annotated frames within 5 % / 10 % of the annotated
    iris radius (centre distance and radius error both), pupil, iris, both, over the annotated frames in this run;
    a frame it failed on counts as a miss."""
    by_name = {f["file"]: f for f in frames}
    by_stem = {str(Path(k).with_suffix("")): v for k, v in by_name.items()}
    def rec(r):
        return by_name.get(r["file"]) or by_stem.get(str(Path(r["file"]).with_suffix("")))
    rows = [r for r in csv.DictReader(open(csv_path)) if r["set"] == set_name and rec(r) is not None]
    res = {"annotated": len(rows), "found": 0}
    ok = {(w, c): 0 for w in (0.05, 0.10) for c in ("pupil", "iris", "both")}
    err = {"pupil_centre": [], "pupil_r": [], "iris_centre": [], "iris_r": []}
    for r in rows:
        f = rec(r)
        if f.get("pupil") is None:
            continue
        res["found"] += 1
        R = float(r["iris_r"])
        e = {}
        for c in ("pupil", "iris"):
            x, y, rad = f[c]
            e[c] = (math.hypot(x - float(r[f"{c}_cx"]), y - float(r[f"{c}_cy"])), abs(rad - float(r[f"{c}_r"])))
            err[f"{c}_centre"].append(e[c][0] / R)
            err[f"{c}_r"].append(e[c][1] / R)
        for w in (0.05, 0.10):
            p = max(e["pupil"]) <= w * R
            i = max(e["iris"]) <= w * R
            ok[(w, "pupil")] += p
            ok[(w, "iris")] += i
            ok[(w, "both")] += p and i
    n = max(len(rows), 1)
    for (w, c), k in ok.items():
        res[f"{c}_within_{int(w * 100)}pct"] = k / n
    for k, v in err.items():
        res[f"median_{k}_err_over_iris_r"] = float(np.median(v)) if v else float("nan")
    return res


def save_codes(out: Path, recs: list, codes: list, thres: float, wall: float, cpu: float) -> None:
    """The templates and masks (0/1 as the peer makes them) and the frame records, so that --reuse-codes can go
    straight to matching."""
    ok = [c is not None for c in codes]
    shape = next((c[0].shape for c in codes if c is not None), (0, 0))
    np.savez_compressed(out / "codes.npz", ok=np.asarray(ok, bool),
                        templates=np.asarray([c[0] for c in codes if c is not None], bool).reshape(-1, *shape),
                        masks=np.asarray([c[1] for c in codes if c is not None], bool).reshape(-1, *shape))
    (out / "codes.json").write_text(json.dumps({"eyelashes_thres": thres, "encode_wall": wall, "encode_cpu": cpu,
                                                "frames": recs}) + "\n")


def load_codes(out: Path, frames: list, thres: float):
    """(recs, codes, encode wall s, encode CPU s) from save_codes, or None when absent or for other frames or
    another eyelash threshold."""
    try:
        meta = json.loads((out / "codes.json").read_text())
        z = np.load(out / "codes.npz")
    except (OSError, ValueError):
        return None
    if meta["eyelashes_thres"] != thres or [r["file"] for r in meta["frames"]] != [f"{e}/{n}" for e, n in frames]:
        return None
    it = iter(zip(z["templates"].astype(float), z["masks"].astype(float)))     # float 0/1, as the peer's arrays
    codes = [next(it) if k else None for k in z["ok"]]
    return meta["frames"], codes, meta["encode_wall"], meta["encode_cpu"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", required=True, type=Path, help="the peer's python/ folder (holding fnc/)")
    ap.add_argument("--root", type=Path, default=Path("~/realiris"), help="folder holding the sets")
    ap.add_argument("--set", required=True, help="set folder under --root: casia_interval, casia1, mmu2, ...")
    ap.add_argument("--out", required=True, type=Path, help="output folder, outside this repository")
    ap.add_argument("--eyelashes-thres", type=float, default=None,
                    help="eyelash grey-level threshold (default: the peer's, 80; 10 for mmu2)")
    ap.add_argument("--annotations", type=Path, default=None, help="hand annotations CSV to score the circles")
    ap.add_argument("--peer-commit", default=PEER_COMMIT,
                    help="the peer's commit, recorded as given (an extracted archive does not carry it)")
    ap.add_argument("--reuse-codes", action="store_true",
                    help="take the codes from OUT/codes.npz of an earlier run on the same frames, if there")
    ap.add_argument("--limit-eyes", type=int, default=None, help="only the first N eye folders (a smoke test)")
    a = ap.parse_args()

    if inside_repo(a.out):
        ap.error(f"--out {a.out} is inside the repository {REPO}: write outside it (e.g. ~/realiris_work/...)")
    folder = (a.root / a.set).expanduser()
    out = a.out.expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    peer = a.peer.expanduser().resolve()
    if not (peer / "fnc" / "extractFeature.py").is_file():
        ap.error(f"--peer {peer} has no fnc/extractFeature.py")
    thres = a.eyelashes_thres if a.eyelashes_thres is not None else EYELASH_THRES.get(a.set, 80)

    sys.path.insert(0, str(peer))
    import cv2
    cv2.setNumThreads(1)
    import fnc.extractFeature as xf      # the peer's modules
    from fnc.segment import segment
    from fnc.normalize import normalize
    from fnc.encode import encode
    from fnc.matching import calHammingDist

    frames = list_frames(folder)
    if a.limit_eyes:
        eyes = sorted({e for e, _ in frames})[: a.limit_eyes]
        frames = [f for f in frames if f[0] in eyes]
    n = len(frames)
    print(f"{a.set}: {n} frames, {len({e for e, _ in frames})} eyes, eyelashes_thres {thres}", file=sys.stderr)

    recs, codes = [], []
    t_enc0, c_enc0 = time.perf_counter(), time.process_time()
    cached = load_codes(out, frames, thres) if a.reuse_codes else None
    if cached is not None:
        recs, codes, enc_wall, enc_cpu = cached
        print(f"  reused the codes in {out / 'codes.npz'}", file=sys.stderr)
    for k, (eye, name) in enumerate(frames if cached is None else []):
        path = folder / eye / name
        rec = {"file": f"{eye}/{name}", "eye": eye}
        t0 = time.perf_counter()
        try:
            # fnc.extractFeature.extractFeature, step by step (same calls, same module parameters) to keep circles
            im = cv2.imread(str(path), 0)
            if im is None:
                raise OSError(f"cv2.imread could not read {path}")
            ciriris, cirpupil, imwithnoise = segment(im, thres, False)
            polar, noise = normalize(imwithnoise, ciriris[1], ciriris[0], ciriris[2], cirpupil[1], cirpupil[0],
                                     cirpupil[2], xf.radial_res, xf.angular_res)
            template, mask = encode(polar, noise, xf.minWaveLength, xf.mult, xf.sigmaOnf)
            if k == 0:       # the same as the peer's own entry point
                t2, m2, _ = xf.extractFeature(str(path), eyelashes_thres=thres, use_multiprocess=False)
                assert np.array_equal(t2, template) and np.array_equal(m2, mask), "differs from extractFeature"
            rec.update(pupil=[int(cirpupil[1]), int(cirpupil[0]), int(cirpupil[2])],     # x, y, r (frame px)
                       iris=[int(ciriris[1]), int(ciriris[0]), int(ciriris[2])],
                       masked_share=float(np.mean(mask != 0)))
            codes.append((template, mask))
        except Exception as e:     # noqa: BLE001 - a failure of the peer on this frame is a result
            rec.update(pupil=None, iris=None, error=f"{type(e).__name__}: {e}")
            codes.append(None)
        rec["seconds"] = time.perf_counter() - t0
        recs.append(rec)
        if (k + 1) % 50 == 0 or k + 1 == n:
            el = time.perf_counter() - t_enc0
            print(f"  encoded {k + 1}/{n}, {el / (k + 1):.2f} s/frame", file=sys.stderr, flush=True)
    if cached is None:
        enc_wall, enc_cpu = time.perf_counter() - t_enc0, time.process_time() - c_enc0
        save_codes(out, recs, codes, thres, enc_wall, enc_cpu)

    ok = [k for k in range(n) if codes[k] is not None]
    eye_of = [e for e, _ in frames]
    gen, imp, gp, ip = [], [], [], []
    nan_gen = nan_imp = 0
    t_m0, c_m0 = time.perf_counter(), time.process_time()
    n_pairs = len(ok) * (len(ok) - 1) // 2
    done = 0
    for ai, i in enumerate(ok):
        ti, mi = codes[i]
        for j in ok[ai + 1:]:
            tj, mj = codes[j]
            hd = calHammingDist(ti, mi, tj, mj)
            same = eye_of[i] == eye_of[j]
            if not np.isfinite(hd):
                nan_gen += same
                nan_imp += not same
            elif same:
                gen.append(hd)
                gp.append((i, j))
            else:
                imp.append(hd)
                ip.append((i, j))
        done += len(ok) - ai - 1
        if (ai + 1) % 50 == 0:
            el = time.perf_counter() - t_m0
            print(f"  matched {done}/{n_pairs} pairs, {el:.0f} s, ~{el / max(done, 1) * (n_pairs - done):.0f} s left",
                  file=sys.stderr, flush=True)
    match_wall, match_cpu = time.perf_counter() - t_m0, time.process_time() - c_m0
    gen, imp = np.asarray(gen, float), np.asarray(imp, float)

    summary = {
        "set": a.set, "folder": str(folder), "peer": str(peer), "peer_commit": a.peer_commit,
        "eyelashes_thres": thres,
        "params": {"radial_res": xf.radial_res, "angular_res": xf.angular_res, "minWaveLength": xf.minWaveLength,
                   "mult": xf.mult, "sigmaOnf": xf.sigmaOnf, "shifts": "-8..8 (calHammingDist)"},
        "frames": n, "eyes": len(set(eye_of)), "encoded": len(ok), "failed": n - len(ok),
        "failed_frames": [r["file"] for r in recs if r.get("error")],
        "genuine": stats(gen), "impostor": stats(imp),
        "nan_pairs": {"genuine": int(nan_gen), "impostor": int(nan_imp)},
        **error_rates(gen, imp),
        "masked_share_mean": float(np.mean([r["masked_share"] for r in recs if "masked_share" in r]))
        if ok else float("nan"),
        "seconds_per_frame": enc_wall / max(n, 1), "cpu_seconds_per_frame": enc_cpu / max(n, 1),
        "match_seconds": match_wall, "match_cpu_seconds": match_cpu,
        "ms_per_pair": 1000 * match_wall / max(n_pairs, 1),
        "versions": {m: __import__(m).__version__ for m in ("numpy", "scipy", "cv2", "skimage")},
        "python": sys.version.split()[0], "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if a.annotations:
        summary["annotations"] = {"csv": str(a.annotations), **annotation_check(a.annotations, a.set, recs)}
    (out / "results.json").write_text(json.dumps({**summary, "frames_detail": recs}, indent=1) + "\n")
    np.savez_compressed(out / "scores.npz", genuine=gen, impostor=imp,
                        genuine_pairs=np.asarray(gp, np.int32).reshape(-1, 2),
                        impostor_pairs=np.asarray(ip, np.int32).reshape(-1, 2),
                        files=np.asarray([r["file"] for r in recs]))
    print(json.dumps(summary, indent=1))
    print(f"wrote {out / 'results.json'} and {out / 'scores.npz'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
