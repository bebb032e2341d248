"""The three real NIR development sets (kept outside the repository, e.g. ~/realiris) and the frames chosen for hand
annotation.

Layout (one folder per eye, see docs/real_data.md): ROOT/casia1/<eye>/NNN_S_K.jpg (CASIA-IrisV1),
ROOT/casia_interval/S1ssE/S1ssEkk.jpg (CASIA-Iris-Interval), ROOT/mmu2/<subject>_<eye>/<file>.bmp (MMU2).

The annotated frames are a seeded random choice (SEED), spread over eyes: casia1 52 frames of 52 different eyes;
casia_interval one frame of each of the 40 eyes plus a second frame of 12 of them; mmu2 40 eyes of 40 different
subjects plus 8 eyes behind glasses and 8 off-centre eyes picked by looking at every MMU2 frame (MMU2_GLASSES,
MMU2_OFF_CENTRE; the frame of each such eye is again the seeded random choice). `python select_frames.py` prints
the list; the annotation CSVs in docs/real_data/ hold the same frames and are the record (a copy with other frame
counts per eye draws other frames).

Only numbers and file names derived from the data go in the repository: never images, crops or overlays.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SETS = ("casia1", "casia_interval", "mmu2")
IMAGE_EXTS = {".jpg", ".jpeg", ".bmp", ".png", ".tif", ".tiff"}
SEED = 20240617
N_CASIA1 = 52
N_INTERVAL_SECOND = 12
N_MMU2_RANDOM = 40
# MMU2 eyes chosen by eye from a contact sheet of all 995 frames (the frame within each is drawn at random):
MMU2_GLASSES = ("008_01", "014_02", "015_02", "027_02", "034_02", "047_01", "051_02", "089_01")
MMU2_OFF_CENTRE = ("021_01", "022_02", "026_01", "030_02", "083_01", "084_02", "090_01", "098_02")

ANNOTATION_FIELDS = ("set", "file", "pupil_cx", "pupil_cy", "pupil_r", "iris_cx", "iris_cy", "iris_r",
                     "precision_px", "notes")
REPO = Path(__file__).resolve().parents[2]


def eyes(root: Path, name: str) -> dict[str, list[str]]:
    """eye folder -> its frames (paths relative to the set folder), sorted."""
    base = Path(root).expanduser() / name
    out = {}
    for d in sorted(p for p in base.iterdir() if p.is_dir()):
        files = sorted(f.relative_to(base).as_posix() for f in d.iterdir() if f.suffix.lower() in IMAGE_EXTS)
        if files:
            out[d.name] = files
    return out


def _eye_key(name: str, eye: str):
    return int(eye) if name == "casia1" else eye


def select(root: Path, name: str) -> list[tuple[str, str]]:
    """The annotated frames of one set: [(relative path, why chosen)] in annotation order."""
    rng = np.random.default_rng([SEED, SETS.index(name)])
    by_eye = eyes(root, name)
    ids = sorted(by_eye, key=lambda e: _eye_key(name, e))
    pick = lambda eye, n=1: [by_eye[eye][i] for i in sorted(rng.choice(len(by_eye[eye]), n, replace=False))]
    out = []
    if name == "casia1":
        for eye in sorted(rng.choice(ids, N_CASIA1, replace=False), key=lambda e: _eye_key(name, e)):
            out += [(f, "random") for f in pick(eye)]
    elif name == "casia_interval":
        second = set(rng.choice(ids, N_INTERVAL_SECOND, replace=False))
        for eye in ids:
            out += [(f, "random") for f in pick(eye, 2 if eye in second else 1)]
    else:
        special = set(MMU2_GLASSES) | set(MMU2_OFF_CENTRE)
        subjects = sorted({e.split("_")[0] for e in ids} - {e.split("_")[0] for e in special})
        chosen = []
        for s in rng.choice(subjects, N_MMU2_RANDOM, replace=False):
            own = [e for e in ids if e.startswith(s + "_")]
            chosen.append(own[rng.integers(len(own))])
        for eye in sorted(chosen):
            out += [(f, "random") for f in pick(eye)]
        for eye in MMU2_GLASSES:
            out += [(f, "glasses") for f in pick(eye)]
        for eye in MMU2_OFF_CENTRE:
            out += [(f, "off-centre") for f in pick(eye)]
    return out


def frame_path(root: Path, name: str, rel: str) -> Path:
    """The file of an annotated frame: ROOT/<set>/<rel>, or the same name with another image extension (a copy
    from the data owner may hold .bmp where the annotations name .jpg, or the reverse)."""
    p = Path(root).expanduser() / name / rel
    if p.exists():
        return p
    for ext in (".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".BMP", ".JPG"):
        q = p.with_suffix(ext)
        if q.exists():
            return q
    raise FileNotFoundError(f"{p} (nor the same name with another image extension): see docs/real_data.md for the "
                            "folder layout")


def load_grey(path: Path) -> np.ndarray:
    """A frame as irislib reads it: float32 [H, W] in [0, 1] (luma of RGB)."""
    from irislib.data.folder import load_image
    return load_image(path, 1)[..., 0]


def read_annotations(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ANNOTATION_FIELDS[2:8]:
            r[k] = float(r[k])
    return rows


def write_annotations(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, ANNOTATION_FIELDS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.1f}" if isinstance(r[k], float) else r[k]) for k in ANNOTATION_FIELDS})


def outside_repo(path: Path) -> Path:
    """Refuse to write derived images anywhere under the checkout (the data's terms forbid redistribution)."""
    p = Path(path).expanduser().resolve()
    if p == REPO or REPO in p.parents:
        raise SystemExit(f"{p} is inside the repository: images of real eyes must stay outside it")
    return p
