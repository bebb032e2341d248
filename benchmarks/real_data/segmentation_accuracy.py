"""irislib's iris segmentation against hand-annotated pupil and limbus circles on real NIR frames (CASIA-IrisV1,
CASIA-Iris-Interval, MMU2; see docs/real_data.md for obtaining the data and for how the annotations were made).

Two segmenters: "crop", irislib.data.iris_crop.locate_eye (the iris-centred crop of camera frames, data.crop =
"iris"), and "biometrics", irislib.biometrics.normalize.fit_boundaries on the whole frame (irislib.metrics.
measure_pupil; what verify-dataset and the iris codes use). For each and each set: pupil and iris centre error
(distance between centres) and radius error (|r found - r annotated|), median and 95th percentile in px and as a
share of the annotated iris radius, over the frames where an eye was found; the share of all annotated frames
within 5 % (centre and radius errors both <= 0.05 x annotated iris radius; for the pupil measured against the iris
radius too) and within 10 %, the share skipped (no eye found), a count of failure modes and the worst frames. Only
numbers are written; the frames stay where they are (--overlays draws outside the repository only).

    python benchmarks/real_data/segmentation_accuracy.py --root ~/realiris --out docs/real_data/segmentation_baseline.md

About 3-4 minutes on one core for both segmenters and the three sets (160 frames). The annotations' own precision:
about +-1 px for pupils, +-1.5-2 px for the limbus, up to +-4 px for a few heavily occluded frames (their notes).
"""
from __future__ import annotations

import argparse
import csv
import datetime
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realsets import REPO, SETS, frame_path, load_grey, read_annotations  # noqa: E402

WITHIN = 0.05            # centre and radius error both <= WITHIN * annotated iris radius
LOOSE = 0.10             # a second, looser share: separates gross failures from errors near annotation precision
N_WORST = 8


def classify(a: dict, f) -> str:
    """A short guess at the failure mode of one located eye against its annotation."""
    if f is None:
        return "no eye found"
    ri = a["iris_r"]
    pc = math.hypot(f.pupil_cx - a["pupil_cx"], f.pupil_cy - a["pupil_cy"])
    if math.hypot(f.iris_cx - a["iris_cx"], f.iris_cy - a["iris_cy"]) > ri:
        return "not on the eye"
    if abs(f.pupil_r - ri) < 0.2 * ri and math.hypot(f.pupil_cx - a["iris_cx"], f.pupil_cy - a["iris_cy"]) < 0.3 * ri:
        return "iris taken for the pupil"
    if pc > 0.5 * a["pupil_r"]:
        return "pupil elsewhere"
    if abs(f.iris_r - a["pupil_r"]) < 0.25 * a["pupil_r"] and \
            math.hypot(f.iris_cx - a["pupil_cx"], f.iris_cy - a["pupil_cy"]) < 0.25 * a["pupil_r"]:
        return "pupil taken for the iris"          # e.g. the dark disc inside a ring of LED glints as the pupil
    if f.pupil_r < 0.75 * a["pupil_r"]:
        return "pupil too small"
    if f.pupil_r > 1.25 * a["pupil_r"]:
        return "pupil too large"
    d = f.iris_r - ri
    if abs(d) > WITHIN * ri:
        return f"limbus too {'large' if d > 0 else 'small'}"
    if math.hypot(f.iris_cx - a["iris_cx"], f.iris_cy - a["iris_cy"]) > WITHIN * ri:
        return "limbus centre off"
    if pc > WITHIN * ri or abs(f.pupil_r - a["pupil_r"]) > WITHIN * ri:
        return "pupil edge off"
    return "ok"


class _Circles:
    """pupil_cx/cy/r and iris_cx/cy/r of an irislib.biometrics Boundaries (pupil: its equal-area radius)."""
    def __init__(self, b):
        self.pupil_cx, self.pupil_cy, self.pupil_r = b.pupil_cx, b.pupil_cy, b.pupil_radius
        self.iris_cx, self.iris_cy, self.iris_r = b.iris_cx, b.iris_cy, b.iris_r


def locator(which: str):
    """The segmentation measured: "crop" = irislib.data.iris_crop.locate_eye (data.crop = "iris"), "biometrics" =
    irislib.biometrics.normalize.fit_boundaries on the whole frame (what verify-dataset and the iris codes use)."""
    if which == "crop":
        from irislib.data.iris_crop import locate_eye
        return locate_eye
    from irislib.biometrics.normalize import fit_boundaries
    return lambda img: (lambda b: None if b is None else _Circles(b))(fit_boundaries(img))


def _set_pass(root: Path, name: str, anns: list[dict]) -> dict:
    """{file: (found circles or None, seconds)} by the crop locator with its set-level second look
    (irislib.segmentation.fit_set, as data.crop=iris runs it on a folder), the set's median taken over the
    annotated frames (a random sample of the set's frames)."""
    from irislib.data.iris_crop import FoundEye
    from irislib.segmentation import find_eye, fit_set
    first, seconds = {}, {}
    for a in anns:
        img = load_grey(frame_path(root, name, a["file"]))
        t = time.perf_counter()
        first[a["file"]] = (*find_eye(img), img.shape)
        seconds[a["file"]] = time.perf_counter() - t
    t = time.perf_counter()
    fitted = fit_set(first, lambda f: load_grey(frame_path(root, name, f)))
    extra = (time.perf_counter() - t) / max(1, len(anns))
    return {f: (None if eye is None else FoundEye.from_eye(eye), seconds[f] + extra) for f, (eye, _) in fitted.items()}


def measure(root: Path, name: str, ann_path: Path, which: str = "crop") -> list[dict]:
    anns = read_annotations(ann_path)
    found = _set_pass(root, name, anns) if which == "set" else None
    find = None if which == "set" else locator(which)
    out = []
    for a in anns:
        if found is not None:
            f, dt = found[a["file"]]
        else:
            img = load_grey(frame_path(root, name, a["file"]))
            t = time.perf_counter()
            f = find(img)
            dt = time.perf_counter() - t
        row = {"set": name, "file": a["file"], "seconds": dt, "found": f is not None, "iris_r_ann": a["iris_r"],
               "notes": a["notes"], "mode": classify(a, f)}
        if f is not None:
            for k in ("pupil", "iris"):
                row[f"{k}_centre_px"] = math.hypot(getattr(f, f"{k}_cx") - a[f"{k}_cx"],
                                                   getattr(f, f"{k}_cy") - a[f"{k}_cy"])
                row[f"{k}_radius_px"] = abs(getattr(f, f"{k}_r") - a[f"{k}_r"])
                row[f"{k}_found"] = (getattr(f, f"{k}_cx"), getattr(f, f"{k}_cy"), getattr(f, f"{k}_r"))
        out.append(row)
        print(f"{which} {name} {a['file']}: {row['mode']} ({dt:.2f} s)", file=sys.stderr, flush=True)
    return out


def within(r: dict, k: str, share: float = WITHIN) -> bool:
    lim = share * r["iris_r_ann"]
    return r["found"] and r[f"{k}_centre_px"] <= lim and r[f"{k}_radius_px"] <= lim


def summary(rows: list[dict]) -> dict:
    found = [r for r in rows if r["found"]]
    s = {"n": len(rows), "skipped": 1 - len(found) / len(rows),
         "seconds": float(np.mean([r["seconds"] for r in rows]))}
    for k in ("pupil", "iris"):
        for q in ("centre", "radius"):
            v = np.array([r[f"{k}_{q}_px"] for r in found])
            rel = np.array([r[f"{k}_{q}_px"] / r["iris_r_ann"] for r in found])
            s[f"{k}_{q}"] = (np.median(v), np.percentile(v, 95), np.median(rel), np.percentile(rel, 95)) \
                if len(v) else (np.nan,) * 4
        s[f"{k}_within"] = np.mean([within(r, k) for r in rows])
    s["both_within"] = np.mean([within(r, "pupil") and within(r, "iris") for r in rows])
    s["both_loose"] = np.mean([within(r, "pupil", LOOSE) and within(r, "iris", LOOSE) for r in rows])
    return s


def worst_key(r: dict) -> float:
    if not r["found"]:
        return np.inf
    return max(r[f"{k}_{q}_px"] for k in ("pupil", "iris") for q in ("centre", "radius")) / r["iris_r_ann"]


def use_commit(commit: str) -> str:
    """Import irislib from a clean copy of its files at `commit` (git archive into a temporary folder; nothing in
    the checkout changes), so a baseline does not pick up uncommitted work in the tree. Returns the short hash."""
    import atexit
    import shutil
    import tarfile
    import tempfile
    short = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", commit], capture_output=True, text=True,
                           check=True).stdout.strip()
    tmp = tempfile.mkdtemp(prefix="irislib_at_")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    blob = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", short, "irislib"], capture_output=True,
                          check=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(blob)) as tar:
        tar.extractall(tmp, filter="data")
    sys.path.insert(0, tmp)
    for name in [m for m in sys.modules if m == "irislib" or m.startswith("irislib.")]:
        del sys.modules[name]
    return short


def git_state() -> str:
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "irislib"],
                               capture_output=True, text=True).stdout.strip()
        return head + (" with uncommitted changes under irislib/" if dirty else "")
    except Exception:
        return "unknown"


TITLES = {"crop": "irislib.data.iris_crop.locate_eye (one frame at a time)",
          "set": "irislib.segmentation.fit_set (data.crop = \"iris\" on a folder: locate_eye, then a second look at "
                 "frames whose iris is far from the set's median size)",
          "biometrics": "irislib.biometrics.normalize.fit_boundaries on the whole frame, one frame at a time (the "
                        "iris codes' segmentation; verify-dataset adds fit_set's second look to it)"}


def tables(results: dict[str, list[dict]]) -> list[str]:
    fmt = lambda t: f"{t[0]:.1f} / {t[1]:.1f} px ({100 * t[2]:.1f} / {100 * t[3]:.1f} %)"
    lines = ["| set | frames | skipped | pupil centre | pupil radius | iris centre | iris radius | pupil within 5 % "
             "| iris within 5 % | both within 5 % | both within 10 % | s / frame |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, rows in results.items():
        s = summary(rows)
        lines.append(f"| {name} | {s['n']} | {100 * s['skipped']:.1f} % | {fmt(s['pupil_centre'])} | "
                     f"{fmt(s['pupil_radius'])} | {fmt(s['iris_centre'])} | {fmt(s['iris_radius'])} | "
                     f"{100 * s['pupil_within']:.0f} % | {100 * s['iris_within']:.0f} % | "
                     f"{100 * s['both_within']:.0f} % | {100 * s['both_loose']:.0f} % | {s['seconds']:.2f} |")
    lines += ["", "| set | " + " | ".join(MODES) + " |", "|---|" + "---|" * len(MODES)]
    for name, rows in results.items():
        lines.append(f"| {name} | " + " | ".join(str(sum(r["mode"] == m for r in rows)) for m in MODES) + " |")
    return lines


def report(results: dict[str, dict[str, list[dict]]], argv: list[str], source: str) -> str:
    from irislib.data import iris_crop
    lines = ["# Iris segmentation on real NIR frames against hand annotations", "",
             f"irislib {source}, {datetime.date.today().isoformat()} (iris crop LOCATOR_VERSION "
             f"{getattr(iris_crop, 'LOCATOR_VERSION', '?')}), against the hand annotations in "
             "docs/real_data/annotations_<set>.csv (how they were made and their precision: docs/real_data.md).", "",
             "Command: `python benchmarks/real_data/segmentation_accuracy.py " + " ".join(argv) + "`", "",
             "Errors are over the frames where an eye was found: median / 95th percentile, in px and (in brackets) as "
             "a share of the annotated iris radius. Centre error: distance between the found and the annotated "
             "centre; radius error: |r found - r annotated| (pupil: equal-area radius). Within 5 %: the share of all "
             "annotated frames (skipped ones count as failures) whose centre and radius errors are both <= 0.05 x "
             "the annotated iris radius (for the pupil, too, measured against the iris radius); within 10 % the same "
             "at 0.10, which separates gross failures from errors near the annotations' own precision (MMU2's 5 % "
             "is 2.8 px, about its limbus annotation precision).", "",
             "Failure modes (second table; a guess from the numbers, per frame, the first that applies): no eye "
             "found; not on the eye (iris centre off by more than the iris radius); iris taken for the pupil; pupil "
             "elsewhere; pupil taken for the iris (the found limbus is the annotated pupil: something inside the "
             "pupil was taken for it, e.g. the dark disc inside a ring of LED glints); pupil too small / too large "
             "(by 25 %); limbus too large / too small / centre off (by 5 % of the iris radius); pupil edge off; ok."]
    for which, res in results.items():
        lines += ["", f"## {TITLES[which]}", ""] + tables(res)
    for which, res in results.items():
        for name, rows in res.items():
            lines += ["", f"### {which}, {name}: worst frames", "",
                      "| frame | what | pupil centre / radius px | iris centre / radius px | annotated iris r | notes |",
                      "|---|---|---|---|---|---|"]
            for r in sorted(rows, key=worst_key, reverse=True)[:N_WORST]:
                if r["found"]:
                    p = f"{r['pupil_centre_px']:.1f} / {r['pupil_radius_px']:.1f}"
                    i = f"{r['iris_centre_px']:.1f} / {r['iris_radius_px']:.1f}"
                else:
                    p = i = "-"
                lines.append(f"| {r['file']} | {r['mode']} | {p} | {i} | {r['iris_r_ann']:.1f} | {r['notes']} |")
    return "\n".join(lines) + "\n"


MODES = ("no eye found", "not on the eye", "iris taken for the pupil", "pupil elsewhere", "pupil taken for the iris",
         "pupil too small",
         "pupil too large", "limbus too large", "limbus too small", "limbus centre off", "pupil edge off", "ok")


def write_frames(path: Path, results: dict[str, dict[str, list[dict]]]) -> None:
    keys = ("segmenter", "set", "file", "found", "mode", "pupil_centre_px", "pupil_radius_px", "iris_centre_px", "iris_radius_px",
            "iris_r_ann", "found_pupil_cx", "found_pupil_cy", "found_pupil_r", "found_iris_cx", "found_iris_cy",
            "found_iris_r", "seconds")
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, keys, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for which, res in results.items():
            for r in (r for rows in res.values() for r in rows):
                d = dict(r, segmenter=which)
                for k in ("pupil", "iris"):
                    for q, v in zip(("cx", "cy", "r"), r.get(f"{k}_found", ("",) * 3)):
                        d[f"found_{k}_{q}"] = v
                w.writerow({k: (f"{d[k]:.2f}" if isinstance(d.get(k), float) else d.get(k, "")) for k in keys})


def draw_overlays(root: Path, ann_dir: Path, results: dict[str, list[dict]], out: Path, which: str) -> None:
    """Contact sheets (12 frames each, 1x) of the frames whose mode is not ok: annotation pupil red / iris green,
    found pupil yellow / iris cyan."""
    from PIL import Image, ImageDraw
    from realsets import outside_repo
    out = outside_repo(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in results.items():
        ann = {r["file"]: r for r in read_annotations(ann_dir / f"annotations_{name}.csv")}
        bad = [r for r in rows if r["mode"] != "ok"]
        for k in range(0, len(bad), 12):
            tiles = []
            for r in bad[k:k + 12]:
                g = load_grey(frame_path(root, name, r["file"]))
                im = Image.fromarray((g * 255).astype(np.uint8)).convert("RGB")
                d = ImageDraw.Draw(im)
                a = ann[r["file"]]
                circles = [((a["pupil_cx"], a["pupil_cy"], a["pupil_r"]), (255, 50, 50)),
                           ((a["iris_cx"], a["iris_cy"], a["iris_r"]), (50, 255, 50))]
                if r["found"]:
                    circles += [(r["pupil_found"], (255, 255, 0)), (r["iris_found"], (0, 220, 255))]
                for (cx, cy, rad), col in circles:
                    d.ellipse((cx - rad, cy - rad, cx + rad, cy + rad), outline=col)
                d.text((2, 2), f"{r['file']}: {r['mode']}", fill=(255, 255, 0))
                tiles.append(im)
            W, H = max(t.width for t in tiles), max(t.height for t in tiles)
            sheet = Image.new("RGB", (4 * (W + 4), ((len(tiles) + 3) // 4) * (H + 4)), (30, 30, 30))
            for j, t in enumerate(tiles):
                sheet.paste(t, ((j % 4) * (W + 4), (j // 4) * (H + 4)))
            sheet.save(out / f"{which}_{name}_not_ok_{k // 12}.png")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="~/realiris", help="folder holding casia1/, casia_interval/, mmu2/")
    p.add_argument("--sets", default=",".join(SETS))
    p.add_argument("--segmenters", default="crop,biometrics",
                   help="crop: irislib.data.iris_crop.locate_eye; biometrics: irislib.biometrics.normalize."
                        "fit_boundaries on the whole frame (verify-dataset's)")
    p.add_argument("--annotations", default=str(REPO / "docs" / "real_data"),
                   help="folder of annotations_<set>.csv")
    p.add_argument("--out", default="", help="markdown report (default: stdout)")
    p.add_argument("--frames-csv", default="", help="per-frame numbers (default: next to --out, _frames.csv)")
    p.add_argument("--at-commit", default="", help="measure irislib as committed at this commit (e.g. HEAD), "
                   "from a clean temporary copy, instead of the working tree")
    p.add_argument("--overlays", default="", help="also draw annotated (pupil red, iris green) and found (pupil "
                   "yellow, iris cyan) circles on the frames that are not ok, into this folder OUTSIDE the "
                   "repository (images of real eyes must not enter it)")
    a = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    source = f"at commit {use_commit(a.at_commit)} (a clean copy)" if a.at_commit else \
        f"from the working tree at commit {git_state()}"
    import irislib
    print(f"irislib from {Path(irislib.__file__).parent}", file=sys.stderr)
    root = Path(a.root).expanduser()
    results = {which: {name: measure(root, name, Path(a.annotations) / f"annotations_{name}.csv", which)
                       for name in a.sets.split(",")} for which in a.segmenters.split(",")}
    shown = [("~/realiris" if v == a.root and str(root) == str(Path("~/realiris").expanduser()) else v)
             for v in argv]
    text = report(results, shown, source)
    if a.overlays:
        for which, res in results.items():
            draw_overlays(root, Path(a.annotations), res, Path(a.overlays).expanduser(), which)
    if a.out:
        Path(a.out).write_text(text)
        frames = Path(a.frames_csv) if a.frames_csv else Path(a.out).with_name(Path(a.out).stem + "_frames.csv")
        write_frames(frames, results)
        print(f"wrote {a.out} and {frames}", file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
