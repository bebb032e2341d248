"""irislib's ISO/IEC 29794-6 quality components next to MITRE BIQT-Iris's (its Python port iris-iqm), same images.

Images: constructed eyes with known circles and grey levels, and irislib.data.synthetic eyes (exact geometry) at
128-480 px. For each component: the geometric truth where the image defines one, irislib on its own fits, irislib on
BIQT's circles (so that formula and segmentation differences can be told apart) and BIQT. Needs irislib and
iris-iqm (`pip install iris-iqm`, Apache-2.0) in one environment. BIQT's search takes ~10 s an image on one core.
Usage:
    python benchmarks/quality_vs_biqt.py > tables.md
"""
from __future__ import annotations

import math
import time

import numpy as np

from irislib.biometrics import Boundaries, quality_components
from irislib.biometrics.quality import BIQT_FIELDS as PAIRS   # our component -> (BIQT's field, factor)
from irislib.data.synthetic import generate


def constructed(size=320, cx=159.5, cy=159.5, rp=40.0, ri=100.0, a=None, b=None, seed=0):
    """Sclera 200, iris 100, pupil 30 (8-bit) with grey noise sd 3, pupil a x b along x; and its truth."""
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    img = np.full((size, size), 200.0)
    img[np.hypot(xx - cx, yy - cy) < ri] = 100.0
    a, b = (rp, rp) if a is None else (a, b)
    img[np.hypot((xx - cx) / a, (yy - cy) / b) < 1] = 30.0
    img += np.random.default_rng(seed).normal(0, 3, img.shape)
    eps = (a - b) / (a + b)                       # r(phi) ~ r0 (1 + eps cos 2 phi): RMS deviation eps / sqrt 2
    truth = {"iris_radius": ri, "pupil_iris_ratio": 100 * math.sqrt(a * b) / ri, "iris_pupil_concentricity": 100.0,
             "pupil_boundary_circularity": 100 * (1 - eps / math.sqrt(2)), "usable_iris_area": _inside_share(
                 Boundaries(cx, cy, a, b, 0.0, cx, cy, ri), size)}
    return np.clip(img, 0, 255) / 255, truth


def _annulus(bnd: Boundaries, xx, yy):
    t = math.radians(bnd.pupil_angle_deg)
    dx, dy = xx - bnd.pupil_cx, yy - bnd.pupil_cy
    u, v = dx * math.cos(t) + dy * math.sin(t), -dx * math.sin(t) + dy * math.cos(t)
    inside_pupil = np.hypot(u / bnd.pupil_a, v / bnd.pupil_b) < 1
    return (np.hypot(xx - bnd.iris_cx, yy - bnd.iris_cy) < bnd.iris_r) & ~inside_pupil


def _inside_share(bnd: Boundaries, size: int, visible=None) -> float:
    """100 x the share of the annulus on the image and, if given, `visible` there."""
    pad = int(bnd.iris_r) + 2
    yy, xx = np.mgrid[-pad:size + pad, -pad:size + pad].astype(float)
    ann = _annulus(bnd, xx, yy)
    on = (xx >= 0) & (xx < size) & (yy >= 0) & (yy < size)
    if visible is not None:
        on &= np.pad(visible, pad)
    return 100.0 * (ann & on).sum() / ann.sum()


def synthetic(seed: int, size: int):
    """A synthetic eye and its truth: geometry, and the annulus share between the lids and off the glints."""
    img, g = generate(seed, size)
    p, i = g["pupil"], g["iris"]
    bnd = Boundaries.from_geometry(g)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    up, lo = g["eyelids"]["upper"], g["eyelids"]["lower"]
    visible = (yy > up["y0"] + up["c"] * (xx - up["x0"]) ** 2) & (yy < lo["y0"] + lo["c"] * (xx - lo["x0"]) ** 2)
    for gl in g["glints"]:
        visible &= np.hypot(xx - gl["x"], yy - gl["y"]) > gl["r"]
    eps = (p["a"] - p["b"]) / (p["a"] + p["b"])
    truth = {"iris_radius": i["r"], "pupil_iris_ratio": 100 * g["pupil_iris_ratio"],
             "iris_pupil_concentricity": 100 * (1 - math.hypot(p["cx"] - i["cx"], p["cy"] - i["cy"]) / i["r"]),
             "pupil_boundary_circularity": 100 * (1 - eps / math.sqrt(2)),
             "usable_iris_area": _inside_share(bnd, size, visible)}
    return img, truth


def biqt(img01: np.ndarray):
    """BIQT-Iris's result for an image in [0, 1] (None and its message when it refuses or finds nothing)."""
    import iris_iqm
    r = iris_iqm.evaluate_array(np.round(np.clip(img01, 0, 1) * 255).astype(np.uint8))
    return (r, "") if r.error_code == 0 else (None, r.error_message)


def biqt_circles(r) -> Boundaries:
    f = r.features
    return Boundaries(f.pupil_center_x, f.pupil_center_y, f.pupil_diameter / 2, f.pupil_diameter / 2, 0.0,
                      f.iris_center_x, f.iris_center_y, f.iris_diameter / 2)


def measure(name: str, img, truth: dict) -> dict:
    """All four columns of one image, per component."""
    t = time.time()
    r, err = biqt(img)
    ours = quality_components(img).as_dict()
    on_biqt = quality_components(img, biqt_circles(r)).as_dict() if r is not None else {}
    on_biqt.pop("pupil_boundary_circularity", None)    # 100 by construction on given circles
    theirs = r.to_dict() if r is not None else {}
    row = {c: (truth.get(c, math.nan), ours[c], on_biqt.get(c, math.nan), k * theirs.get(field, math.nan))
           for c, (field, k) in PAIRS.items()}
    print(f"<!-- {name}: {time.time() - t:.1f} s{'; BIQT: ' + err if err else ''} -->", flush=True)
    return {"name": name, "row": row, "biqt_error": err}


def images():
    yield "constructed 320 centred", *constructed()
    yield "constructed 320 at the left edge (cx 110)", *constructed(cx=110.0)
    yield "constructed 320 elliptic pupil 48 x 36", *constructed(a=48.0, b=36.0)
    yield "constructed 320 dilated (pupil 70 of 100)", *constructed(rp=70.0)
    yield "constructed 256 centred", *constructed(256, 127.5, 127.5, 32.0, 80.0)
    for size, seeds in ((128, (0,)), (256, (0, 1, 2, 3)), (320, (0, 1)), (480, (0,))):
        for s in seeds:
            yield f"synthetic {size} seed {s}", *synthetic(s, size)


def fmt(v: float) -> str:
    return "–" if not np.isfinite(v) else f"{v:.1f}"


def table(results: list[dict]) -> str:
    out = []
    for c in PAIRS:
        out += [f"\n### {c} (BIQT: {PAIRS[c][0]})\n", "| image | truth | irislib | irislib on BIQT's circles | BIQT |",
                "|---|---|---|---|---|"]
        out += [f"| {r['name']} | " + " | ".join(fmt(v) for v in r["row"][c]) + " |" for r in results]
    return "\n".join(out)


def _median_abs(x, y) -> str:
    d = np.abs(np.asarray(x) - np.asarray(y))
    d = d[np.isfinite(d)]
    return f"{np.median(d):.1f} ({len(d)})" if len(d) else "–"


def summary(results: list[dict]) -> str:
    """Median absolute differences per component (over the images where both numbers exist, their count in
    brackets): each side from the truth, irislib from BIQT on each one's own segmentation, and on BIQT's circles."""
    out = ["| component | irislib - truth | BIQT - truth | irislib - BIQT | irislib on BIQT's circles - BIQT |",
           "|---|---|---|---|---|"]
    for c in PAIRS:
        truth, ours, on_biqt, theirs = np.array([r["row"][c] for r in results]).T
        out.append(f"| {c} | {_median_abs(ours, truth)} | {_median_abs(theirs, truth)} | "
                   f"{_median_abs(ours, theirs)} | {_median_abs(on_biqt, theirs)} |")
    return "\n".join(out)


def main():
    results = [measure(name, img, truth) for name, img, truth in images()]
    refused = [f"- {r['name']}: {r['biqt_error']}" for r in results if r["biqt_error"]]
    print("## Summary\n\n" + summary(results) + "\n\nBIQT refused:\n" + ("\n".join(refused) or "- none"))
    print("\n## Per component" + table(results))


if __name__ == "__main__":
    main()
