"""Helpers for hand-annotating pupil and limbus circles on the real development frames (realsets.select).

The judgement is a person's, on the overlays; these only propose, draw and nudge. Working files live OUTSIDE the
repository (default ~/realiris_work): ann_<set>.csv (the circles being edited) and sheets/*.png (overlays of real
eyes, which must never enter the repository; every image path is checked). `export` writes the finished numbers to
docs/real_data/annotations_<set>.csv. How the committed annotations were made: docs/real_data.md, section 3.

    python benchmarks/real_data/annotate_tools.py propose --set casia1          # first guess (overwrites ann_<set>)
    python benchmarks/real_data/annotate_tools.py full --set casia1 --idx 0-11  # whole frames, both circles
    python benchmarks/real_data/annotate_tools.py sheet --set casia1 --idx 0-2  # iris close-up + unwrapped strips
    python benchmarks/real_data/annotate_tools.py edges --set casia1 --idx 0-4  # 5x close-ups of the circle edges
    python benchmarks/real_data/annotate_tools.py compare --set mmu2 47 216.6,132.9,54.2   # candidate limbi
    python benchmarks/real_data/annotate_tools.py edit --set casia1 3 iris_cx+=1.5 iris_r=101 "notes=heavy lashes"
    python benchmarks/real_data/annotate_tools.py snap --set casia1 3 --what iris --deg 40 --apply
    python benchmarks/real_data/annotate_tools.py pupils --set mmu2 --skip-top 55 --apply   # re-snap all pupils
    python benchmarks/real_data/annotate_tools.py ido --set mmu2 --up 35 --down 35 --apply  # refine all limbi
    python benchmarks/real_data/annotate_tools.py stability --set casia1        # spread of snaps from moved starts
    python benchmarks/real_data/annotate_tools.py show --set casia1 --idx 0-5
    python benchmarks/real_data/annotate_tools.py export --set casia1

The first guess is this file's own simple method, not irislib's locator (which is what the annotations measure):
the darkest compact blob (glints closed and filled) as the pupil, then the integro-differential maximum on the
lateral arcs as the limbus, each snapped to the steepest dark-to-bright rise on rays near the circle.

Overlay tile (`sheet`): the iris region upsampled (contrast stretched) with the pupil (red) and iris (green) circles
dashed so the edge stays visible between the dashes, and yellow / orange dots where the steepest rise lies on each
ray near the iris circle (orange: more than 1.5 px off it); below it the frame unwrapped around each circle's own
centre over the lateral sectors (radius R-12 %..R+12 % top to bottom, R marked by the ticks at both ends and a
dotted line): a right circle makes its edge a straight line on the ticks, a centre off by d px makes it a sine.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realsets import (REPO, SETS, frame_path, load_grey, outside_repo, read_annotations, select,  # noqa: E402
                      write_annotations)

WORK = Path("~/realiris_work")


# ------------------------------------------------------------------------------------------------ sampling
def bilinear(img, x, y):
    from scipy.ndimage import map_coordinates
    return map_coordinates(img, [np.asarray(y, float), np.asarray(x, float)], order=1, mode="nearest")


def fit_circle(x, y):
    """Algebraic (Kasa) least-squares circle -> (cx, cy, r)."""
    a = np.stack([x, y, np.ones_like(x)], 1)
    b = x ** 2 + y ** 2
    c, *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = c[0] / 2, c[1] / 2
    return cx, cy, math.sqrt(max(c[2] + cx ** 2 + cy ** 2, 1e-9))


def robust_circle(x, y, n_iter=4):
    keep = np.ones(len(x), bool)
    circ = fit_circle(x, y)
    for _ in range(n_iter):
        res = np.hypot(x - circ[0], y - circ[1]) - circ[2]
        mad = np.median(np.abs(res[keep] - np.median(res[keep]))) * 1.4826
        new = np.abs(res) <= max(2.5 * mad, 0.75)
        if new.sum() < 6:
            break
        keep = new
        circ = fit_circle(x[keep], y[keep])
    return circ, keep


def angles(what: str, deg: float, skip_top: float = 0.0):
    """Ray angles (image coords, y down): iris -> within deg of horizontal on both sides; pupil -> all round but
    the upper skip_top degrees either side of vertical."""
    if what == "iris":
        lat = np.radians(np.arange(-deg, deg + 0.1, 1.0))
        return np.concatenate([lat, np.pi + lat])
    th = np.radians(np.arange(0, 360, 2.0))
    up = np.abs(((np.degrees(th) - 270 + 180) % 360) - 180) < skip_top
    return th[~up]


def snap(img, cx, cy, r, th, reach, smooth=1.0):
    """Circle through the steepest dark-to-bright rise within +-reach px of (cx, cy, r) on rays th."""
    from scipy.ndimage import gaussian_filter1d
    rr = np.arange(r - reach, r + reach + 0.01, 0.25)
    x = cx + rr[None, :] * np.cos(th)[:, None]
    y = cy + rr[None, :] * np.sin(th)[:, None]
    h, w = img.shape
    ok = ((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)).all(1)
    prof = bilinear(img, x[ok].ravel(), y[ok].ravel()).reshape(ok.sum(), -1)
    d = gaussian_filter1d(prof, smooth / 0.25, axis=1, order=1)
    j = np.argmax(d, 1)
    strength = d[np.arange(len(j)), j]
    px, py = x[ok][np.arange(len(j)), j], y[ok][np.arange(len(j)), j]
    good = strength > 0.25 * np.median(strength)
    circ, keep = robust_circle(px[good], py[good])
    return circ, int(keep.sum()), int(ok.sum())


def ido(img, cx, cy, r, up=40.0, down=45.0, span=5.0, step=0.5, sigma=2.0, dr=0.25):
    """Integro-differential refinement of a limbus circle: the (cx, cy, r) within +-span px of the start that
    maximises the summed radial rise (Gaussian derivative, sigma px) of the mean grey level on four quarter arcs,
    right and left, above (0..up degrees) and below (0..down degrees) the horizontal. Splitting each side into an
    upper and a lower arc makes a vertical offset cost at first order (the two arcs' edges part), which the
    lateral arcs alone only feel at second order. Returns (cx, cy, r, rise)."""
    from scipy.ndimage import gaussian_filter1d
    arcs = [np.radians(np.arange(-up, 0.01, 1.0)), np.radians(np.arange(0, down + 0.01, 1.0))]
    arcs = arcs + [np.pi - a for a in arcs]
    rr = np.arange(r - span - 4 * sigma, r + span + 4 * sigma + 0.01, dr)
    sel = np.abs(rr - r) <= span
    h, w = img.shape
    best = None
    for gx in np.arange(cx - span, cx + span + 0.01, step):
        for gy in np.arange(cy - span, cy + span + 0.01, step):
            tot = np.zeros(len(rr))
            for th in arcs:
                x = gx + rr[:, None] * np.cos(th)[None]
                y = gy + rr[:, None] * np.sin(th)[None]
                inside = ((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)).all(0)
                if inside.sum() < 3:
                    continue
                v = bilinear(img, x[:, inside].ravel(), y[:, inside].ravel()).reshape(len(rr), -1).mean(1)
                tot += gaussian_filter1d(v, sigma / dr, order=1)
            k = np.argmax(np.where(sel, tot, -np.inf))
            if best is None or tot[k] > best[3]:
                best = (float(gx), float(gy), float(rr[k]), float(tot[k]))
    return best


# ------------------------------------------------------------------------------------------------ first guess
def propose_one(img, max_pupil_r=None, max_iris_r=None):
    from scipy import ndimage as ndi
    g = ndi.gaussian_filter(img, 1.5)
    h, w = g.shape
    lo, med = np.percentile(g, 0.5), np.median(g)
    best = None
    yy, xx = np.mgrid[:h, :w]
    for f in ((0.08, 0.15, 0.25, 0.35) if max_pupil_r else (0.15, 0.25, 0.35, 0.45)):
        m = g <= lo + f * (med - lo)
        m = ndi.binary_closing(m, np.ones((7, 7)), iterations=1)
        m = ndi.binary_fill_holes(m)
        m = ndi.binary_opening(m, np.ones((5, 5)))
        lab, n = ndi.label(m)
        for i in range(1, n + 1):
            c = lab == i
            a = c.sum()
            if a < 80 or a > 0.15 * h * w:
                continue
            ys, xs = np.nonzero(c)
            if ys.min() == 0 or xs.min() == 0 or ys.max() == h - 1 or xs.max() == w - 1:
                continue
            r = math.sqrt(a / math.pi)
            if max_pupil_r and r > max_pupil_r:
                continue
            cx, cy = xs.mean(), ys.mean()
            fill = a / (math.pi * max(np.hypot(xs - cx, ys - cy).max(), 1) ** 2)
            dark = med - np.median(g[c])
            score = fill ** 2 * dark ** (3 if max_pupil_r else 1) * math.sqrt(a)
            if best is None or score > best[0]:
                best = (score, cx, cy, r)
    if best is None:
        return None
    _, pcx, pcy, pr = best
    (pcx, pcy, pr), *_ = snap(img, pcx, pcy, pr, angles("pupil", 0, 40), max(3, 0.3 * pr))
    (pcx, pcy, pr), *_ = snap(img, pcx, pcy, pr, angles("pupil", 0, 40), 3)
    # limbus: integro-differential maximum of the lateral arcs' mean
    lat = np.radians(np.arange(-35, 36, 2.5))
    th = np.concatenate([lat, np.pi + lat])
    radii = np.arange(max(1.4 * pr, 0.08 * min(h, w)), max_iris_r or 0.45 * min(h, w) + 40, 1.0)
    best = None
    for dx in np.arange(-0.3 * pr, 0.3 * pr + 0.1, 0.1 * pr):
        for dy in np.arange(-0.3 * pr, 0.3 * pr + 0.1, 0.1 * pr):
            cx, cy = pcx + dx, pcy + dy
            x = cx + radii[:, None] * np.cos(th)[None]
            y = cy + radii[:, None] * np.sin(th)[None]
            v = bilinear(img, x.ravel(), y.ravel()).reshape(len(radii), 2, -1).mean(2)     # [R, side]
            d = ndi.gaussian_filter1d(v, 2.0, axis=0, order=1).min(1)                      # both sides must rise
            k = int(np.argmax(d))
            if best is None or d[k] > best[0]:
                best = (d[k], cx, cy, radii[k])
    _, icx, icy, ir = best
    for reach in (6, 3):
        (icx, icy, ir), *_ = snap(img, icx, icy, ir, angles("iris", 45), reach, smooth=1.5)
    return (pcx, pcy, pr, icx, icy, ir)


# ------------------------------------------------------------------------------------------------ drawing
def stretch(v, lo=1, hi=99):
    a, b = np.percentile(v, [lo, hi])
    return np.clip((v - a) / max(b - a, 1e-6), 0, 1)


def polar(img, cx, cy, r, half, width=480, height=90):
    th = np.linspace(0, 2 * np.pi, width, endpoint=False)
    rr = np.linspace(r - half, r + half, height)
    x = cx + rr[:, None] * np.cos(th)[None]
    y = cy + rr[:, None] * np.sin(th)[None]
    return bilinear(img, x.ravel(), y.ravel()).reshape(height, width)


def tile(img, row, idx, size=480, strips=True):
    from PIL import Image, ImageDraw
    from scipy.ndimage import map_coordinates
    p = [row[k] for k in ("pupil_cx", "pupil_cy", "pupil_r", "iris_cx", "iris_cy", "iris_r")]
    icx, icy, ir = p[3:]
    half = 1.25 * ir
    z = size / (2 * half)
    xs = icx - half + (np.arange(size) + 0.5) / z - 0.5
    ys = icy - half + (np.arange(size) + 0.5) / z - 0.5
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    crop = map_coordinates(img, [yy, xx], order=3, mode="constant", cval=0)
    outside = np.hypot(xx - p[0], yy - p[1]) > 1.1 * p[2]
    a, b = np.percentile(crop[outside], [1, 99.5])
    crop = np.clip((crop - a) / max(b - a, 1e-6), 0, 1)
    im = Image.fromarray(np.repeat((crop * 255).astype(np.uint8)[..., None], 3, 2))
    d = ImageDraw.Draw(im)
    to = lambda x, y: ((x - (icx - half) + 0.5) * z - 0.5, (y - (icy - half) + 0.5) * z - 0.5)
    for (cx, cy, r), col in (((p[0], p[1], p[2]), (255, 60, 60)), ((icx, icy, ir), (60, 255, 60))):
        for t0 in range(0, 360, 8):
            pts = [to(cx + r * math.cos(math.radians(t)), cy + r * math.sin(math.radians(t)))
                   for t in np.linspace(t0, t0 + 3, 4)]
            d.line(pts, fill=col)
        u, v = to(cx, cy)
        d.line((u - 5, v, u + 5, v), fill=col)
        d.line((u, v - 5, u, v + 5), fill=col)
    for ex, ey, res in edge_points(img, icx, icy, ir):        # steepest rise per ray near the iris circle
        u, v = to(ex, ey)
        d.rectangle((u - 1, v - 1, u + 1, v + 1), fill=(255, 220, 0) if abs(res) <= 1.5 else (255, 120, 0))
    strips = [lateral_strips(img, icx, icy, ir, 0.12, size, 110, (60, 255, 60), (-60, 60), (120, 240)),
              lateral_strips(img, p[0], p[1], p[2], 0.3, size, 70, (255, 60, 60), (0, 180), (180, 360))] \
        if strips else []
    out = Image.new("RGB", (size, 16 + size + sum(s.height + 3 for s in strips)), (0, 0, 60))
    dd = ImageDraw.Draw(out)
    dd.text((2, 2), f"#{idx} {row['file']}  P {p[0]:.1f},{p[1]:.1f},{p[2]:.1f}  I {icx:.1f},{icy:.1f},{ir:.1f}",
            fill=(255, 255, 255))
    out.paste(im, (0, 16))
    y = 16 + size + 3
    for s in strips:
        out.paste(s, (0, y))
        y += s.height + 3
    return out


def edge_points(img, cx, cy, r, reach=6.0, step_deg=3.0, spans=((-66, 66), (114, 246))):
    """(x, y, radial residual) of the steepest dark-to-bright rise within +-reach px of the circle on each ray."""
    from scipy.ndimage import gaussian_filter1d
    th = np.radians(np.concatenate([np.arange(a, b + 0.1, step_deg) for a, b in spans]))
    rr = np.arange(r - reach, r + reach + 0.01, 0.25)
    x = cx + rr[None, :] * np.cos(th)[:, None]
    y = cy + rr[None, :] * np.sin(th)[:, None]
    h, w = img.shape
    ok = ((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)).all(1)
    if not ok.any():
        return []
    prof = bilinear(img, x[ok].ravel(), y[ok].ravel()).reshape(ok.sum(), -1)
    j = np.argmax(gaussian_filter1d(prof, 1.5 / 0.25, axis=1, order=1), 1)
    k = np.arange(len(j))
    return list(zip(x[ok][k, j], y[ok][k, j], rr[j] - r))


CAND_COLOURS = ((60, 255, 60), (255, 80, 255), (0, 200, 255), (255, 200, 0), (255, 90, 40))


def compare_tile(img, row, idx, cands, size=480):
    """The iris close-up with candidate limbus circles (cx, cy, r) dashed in CAND_COLOURS order, the pupil red."""
    from PIL import Image, ImageDraw
    from scipy.ndimage import map_coordinates
    icx, icy, ir = cands[0]
    half = 1.3 * ir
    z = size / (2 * half)
    g = (np.arange(size) + 0.5) / z - 0.5
    yy, xx = np.meshgrid(icy - half + g, icx - half + g, indexing="ij")
    crop = map_coordinates(img, [yy, xx], order=3, mode="constant", cval=0)
    outside = np.hypot(xx - row["pupil_cx"], yy - row["pupil_cy"]) > 1.1 * row["pupil_r"]
    a, b = np.percentile(crop[outside], [1, 99.5])
    im = Image.fromarray(np.repeat((np.clip((crop - a) / max(b - a, 1e-6), 0, 1) * 255).astype(np.uint8)[..., None],
                                   3, 2))
    d = ImageDraw.Draw(im)
    to = lambda x, y: ((x - (icx - half) + 0.5) * z - 0.5, (y - (icy - half) + 0.5) * z - 0.5)
    circles = [((row["pupil_cx"], row["pupil_cy"], row["pupil_r"]), (255, 60, 60))] + \
        [(c, CAND_COLOURS[k % len(CAND_COLOURS)]) for k, c in enumerate(cands)]
    for k, ((cx, cy, r), col) in enumerate(circles):
        for t0 in range(k * 2, 360, 10):
            pts = [to(cx + r * math.cos(math.radians(t)), cy + r * math.sin(math.radians(t)))
                   for t in np.linspace(t0, t0 + 3, 4)]
            d.line(pts, fill=col)
    out = Image.new("RGB", (size, size + 16 + 14 * len(cands)), (0, 0, 60))
    dd = ImageDraw.Draw(out)
    dd.text((2, 2), f"#{idx} {row['file']}", fill=(255, 255, 255))
    for k, c in enumerate(cands):
        dd.text((2, size + 16 + 14 * k), f"{k}: {c[0]:.1f},{c[1]:.1f},{c[2]:.1f}", fill=CAND_COLOURS[k])
    out.paste(im, (0, 16))
    return out


def lateral_strips(img, cx, cy, r, frac, size, height, col, *spans):
    """The frame unwrapped around (cx, cy) over the angle spans (degrees), side by side, radius r(1-frac) at the
    top to r(1+frac) at the bottom; r marked by end ticks and a dotted line; yellow ticks every 30 degrees."""
    from PIL import Image, ImageDraw
    wpan = size // len(spans) - 2
    out = Image.new("RGB", (size, height), (0, 0, 60))
    for k, (t0, t1) in enumerate(spans):
        th = np.radians(np.linspace(t0, t1, wpan))
        rr = np.linspace(r * (1 - frac), r * (1 + frac), height)
        v = bilinear(img, (cx + rr[:, None] * np.cos(th)[None]).ravel(),
                     (cy + rr[:, None] * np.sin(th)[None]).ravel()).reshape(height, wpan)
        v = stretch(v, 2, 98)
        si = Image.fromarray(np.repeat((v * 255).astype(np.uint8)[..., None], 3, 2))
        sd = ImageDraw.Draw(si)
        yr = (height - 1) / 2
        sd.line((0, yr, 10, yr), fill=col)
        sd.line((wpan - 11, yr, wpan - 1, yr), fill=col)
        for xq in range(14, wpan - 14, 8):
            sd.point((xq, yr), fill=col)
        for t in range(int(math.ceil(t0 / 30)) * 30, t1 + 1, 30):
            xq = (t - t0) / (t1 - t0) * (wpan - 1)
            sd.line((xq, 0, xq, 5), fill=(255, 255, 0))
            sd.line((xq, height - 6, xq, height - 1), fill=(255, 255, 0))
        out.paste(si, (k * (wpan + 4), 0))
    return out


def _save_sheet(tiles, cols, out):
    """Tiles on a dark grid, `cols` a row, saved outside the checkout (never an image of a real eye in the repo)."""
    from PIL import Image
    W, H = max(t.width for t in tiles), max(t.height for t in tiles)
    nr = (len(tiles) + cols - 1) // cols
    s = Image.new("RGB", (cols * (W + 4), nr * (H + 4)), (30, 30, 30))
    for k, t in enumerate(tiles):
        s.paste(t, ((k % cols) * (W + 4), (k // cols) * (H + 4)))
    out = outside_repo(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    s.save(out)
    return out


def sheet(root, name, rows, idxs, out, cols=3, size=480, strips=True):
    from PIL import Image
    tiles = [tile(load_grey(frame_path(root, name, rows[i]["file"])), rows[i], i, size, strips) for i in idxs]
    return _save_sheet(tiles, cols, out)


EDGE_VIEWS = (("iris", 180), ("iris", 0), ("iris", 90), ("iris", 270), ("pupil", 180), ("pupil", 0), ("pupil", 90),
              ("pupil", 270))


def edge_row(img, row, idx, half=16, zoom=5, views=EDGE_VIEWS):
    """Close-ups (zoom x) of the circles where they cross the edges (EDGE_VIEWS: iris then pupil at 180 = left, 0 =
    right, 90 = bottom, 270 = top), with blue dots +-2 px off the circle at both ends of each dashed arc."""
    from PIL import Image, ImageDraw
    from scipy.ndimage import map_coordinates
    n = 2 * half * zoom
    out = Image.new("RGB", (len(views) * (n + 4), n + 14), (0, 0, 60))
    ImageDraw.Draw(out).text((2, 1), f"#{idx} {row['file']}", fill=(255, 255, 255))
    for k, (what, deg) in enumerate(views):
        cx, cy, r = (row[f"{what}_{q}"] for q in ("cx", "cy", "r"))
        ex, ey = cx + r * math.cos(math.radians(deg)), cy + r * math.sin(math.radians(deg))
        g = ex - half + (np.arange(n) + 0.5) / zoom - 0.5, ey - half + (np.arange(n) + 0.5) / zoom - 0.5
        yy, xx = np.meshgrid(g[1], g[0], indexing="ij")
        v = stretch(map_coordinates(img, [yy, xx], order=3, mode="nearest"), 1, 99)
        im = Image.fromarray(np.repeat((v * 255).astype(np.uint8)[..., None], 3, 2))
        d = ImageDraw.Draw(im)
        col = (60, 255, 60) if what == "iris" else (255, 60, 60)
        to = lambda x, y: ((x - (ex - half) + 0.5) * zoom - 0.5, (y - (ey - half) + 0.5) * zoom - 0.5)
        span = math.degrees(1.5 * half / r)
        ts = np.linspace(deg - span, deg + span, 200)
        pts = [to(cx + r * math.cos(math.radians(t)), cy + r * math.sin(math.radians(t))) for t in ts]
        for j in range(0, len(pts) - 1, 6):
            d.line(pts[j:j + 3], fill=col)
        for dr, c2 in ((-2, (0, 160, 255)), (2, (0, 160, 255))):          # +-2 px guides, end marks only
            for t in (deg - span * 0.9, deg + span * 0.9):
                u, w_ = to(cx + (r + dr) * math.cos(math.radians(t)), cy + (r + dr) * math.sin(math.radians(t)))
                d.point((u, w_), fill=c2)
        ImageDraw.Draw(im).text((2, 2), f"{what[0]}{deg}", fill=(255, 255, 0))
        out.paste(im, (k * (n + 4), 14))
    return out


def edge_sheet(root, name, rows, idxs, out, cols=1, half=16, zoom=5, views=EDGE_VIEWS):
    from PIL import Image
    tiles = [edge_row(load_grey(frame_path(root, name, rows[i]["file"])), rows[i], i, half, zoom, views) for i in idxs]
    W, H = tiles[0].width + 6, tiles[0].height + 3
    nr = (len(tiles) + cols - 1) // cols
    s = Image.new("RGB", (cols * W, nr * H), (90, 90, 90))
    for k, t in enumerate(tiles):
        s.paste(t, ((k % cols) * W, (k // cols) * H))
    out = outside_repo(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    s.save(out)
    return out


def full_sheet(root, name, rows, idxs, out, cols=4, scale=1.0):
    """Whole frames (scaled) with both circles drawn solid: for gross checks and notes (glasses, off-centre)."""
    from PIL import Image, ImageDraw
    tiles = []
    for i in idxs:
        img = load_grey(frame_path(root, name, rows[i]["file"]))
        h, w = img.shape
        im = Image.fromarray((img * 255).astype(np.uint8)).resize((int(w * scale), int(h * scale)),
                                                                  Image.BICUBIC).convert("RGB")
        d = ImageDraw.Draw(im)
        for k, col in (("pupil", (255, 40, 40)), ("iris", (40, 255, 40))):
            cx, cy, r = (rows[i][f"{k}_{q}"] * scale for q in ("cx", "cy", "r"))
            d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=col)
        d.text((2, 2), f"#{i} {rows[i]['file']}", fill=(255, 255, 0))
        tiles.append(im)
    return _save_sheet(tiles, cols, out)


# ------------------------------------------------------------------------------------------------ commands
def parse_idx(spec, n):
    out = []
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), min(int(b), n - 1) + 1))
        elif part:
            out.append(int(part))
    return out


def work_csv(work, name):
    return outside_repo(Path(work) / f"ann_{name}.csv")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=("propose", "sheet", "full", "edges", "compare", "edit", "snap", "pupils",
                                       "ido", "stability", "export", "show"))
    p.add_argument("args", nargs="*")
    p.add_argument("--set", required=True, choices=SETS)
    p.add_argument("--root", default="~/realiris")
    p.add_argument("--work", default=str(WORK))
    p.add_argument("--idx", default="")
    p.add_argument("--out", default="")
    p.add_argument("--what", default="iris", choices=("iris", "pupil"))
    p.add_argument("--deg", type=float, default=40)
    p.add_argument("--skip-top", type=float, default=40)
    p.add_argument("--reach", type=float, default=3)
    p.add_argument("--apply", action="store_true")
    p.add_argument("--up", type=float, default=40, help="ido: upper arcs reach this many degrees above horizontal")
    p.add_argument("--down", type=float, default=45, help="ido: lower arcs reach this many degrees below")
    p.add_argument("--span", type=float, default=5, help="ido: search +- this many px around the start")
    p.add_argument("--cols", type=int, default=3)
    p.add_argument("--size", type=int, default=480)
    p.add_argument("--no-strips", action="store_true", help="sheet: the close-up only, no unwrapped strips")
    p.add_argument("--half", type=int, default=16, help="edges: half side of each close-up, frame px")
    p.add_argument("--zoom", type=int, default=5, help="edges: magnification")
    p.add_argument("--views", default="", help="edges: e.g. i180,i0,p90 (default: all eight)")
    p.add_argument("--ranges", default="", help="snap: ray angle ranges in degrees, e.g. -45:45,135:225,60:120")
    a = p.parse_intermixed_args(argv)
    root, work = Path(a.root).expanduser(), Path(a.work).expanduser()
    path = work_csv(work, a.set)
    if a.command == "propose":
        rows = []
        for f, why in select(root, a.set):
            g = propose_one(load_grey(root / a.set / f), *((32, 75) if a.set == "mmu2" else (None, None)))
            g = g or (0.0,) * 6
            rows.append(dict(zip(("pupil_cx", "pupil_cy", "pupil_r", "iris_cx", "iris_cy", "iris_r"),
                                 (float(v) for v in g)), set=a.set, file=f, precision_px="",
                             notes="" if why == "random" else why))
            print(len(rows) - 1, f, " ".join(f"{v:.1f}" for v in g), flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_annotations(path, rows)
        return
    rows = read_annotations(path)
    if a.command in ("sheet", "full", "edges"):
        idxs = parse_idx(a.idx or f"0-{len(rows) - 1}", len(rows))
        out = Path(a.out).expanduser() if a.out else work / "sheets" / f"{a.set}_{a.command}_{idxs[0]}-{idxs[-1]}.png"
        if a.command == "sheet":
            print(sheet(root, a.set, rows, idxs, out, a.cols, a.size, not a.no_strips))
        elif a.command == "full":
            print(full_sheet(root, a.set, rows, idxs, out))
        else:
            views = EDGE_VIEWS if not a.views else tuple(
                ("iris" if v[0] == "i" else "pupil", int(v[1:])) for v in a.views.split(","))
            print(edge_sheet(root, a.set, rows, idxs, out, a.cols if a.cols != 3 else 1, a.half, a.zoom, views))
        return
    if a.command == "compare":
        # compare IDX "cx,cy,r" "cx,cy,r" ...; the first is the current iris circle unless --no-current
        from PIL import Image
        i = int(a.args[0])
        r = rows[i]
        cands = [(r["iris_cx"], r["iris_cy"], r["iris_r"])] + \
            [tuple(float(v) for v in c.split(",")) for c in a.args[1:]]
        t = compare_tile(load_grey(frame_path(root, a.set, r["file"])), r, i, cands, a.size)
        out = outside_repo(Path(a.out).expanduser() if a.out else work / "sheets" / f"{a.set}_compare_{i}.png")
        out.parent.mkdir(parents=True, exist_ok=True)
        t.save(out)
        print(out)
        return
    if a.command == "show":
        for i in parse_idx(a.idx or f"0-{len(rows) - 1}", len(rows)):
            r = rows[i]
            print(i, r["file"], " ".join(f"{r[k]:.1f}" for k in
                                          ("pupil_cx", "pupil_cy", "pupil_r", "iris_cx", "iris_cy", "iris_r")),
                  r["precision_px"], r["notes"])
        return
    if a.command == "edit":
        i = int(a.args[0])
        for op in a.args[1:]:
            m = re.match(r"(\w+)(\+=|-=|=)(.*)$", op)
            k, how, v = m.groups()
            if k in ("notes", "precision_px"):
                rows[i][k] = v
            elif how == "=":
                rows[i][k] = float(v)
            else:
                rows[i][k] += float(v) if how == "+=" else -float(v)
        write_annotations(path, rows)
        r = rows[i]
        print(i, " ".join(f"{k}={r[k]:.1f}" for k in ("pupil_cx", "pupil_cy", "pupil_r", "iris_cx", "iris_cy",
                                                        "iris_r")), r["precision_px"], r["notes"])
        return
    if a.command == "snap":
        i = int(a.args[0])
        r = rows[i]
        img = load_grey(frame_path(root, a.set, r["file"]))
        k = a.what
        c = (r[f"{k}_cx"], r[f"{k}_cy"], r[f"{k}_r"])
        th = angles(k, a.deg, a.skip_top) if not a.ranges else np.radians(np.concatenate(
            [np.arange(float(lo), float(hi) + 0.1, 1.0) for lo, hi in (q.split(":") for q in a.ranges.split(","))]))
        new, n_keep, n_ok = snap(img, *c, th, a.reach, smooth=1.5 if k == "iris" else 1.0)
        print(f"{i} {k}: {c[0]:.1f},{c[1]:.1f},{c[2]:.1f} -> {new[0]:.1f},{new[1]:.1f},{new[2]:.1f} "
              f"({n_keep}/{n_ok} rays kept)")
        if a.apply:
            r[f"{k}_cx"], r[f"{k}_cy"], r[f"{k}_r"] = (float(v) for v in new)
            write_annotations(path, rows)
        return
    if a.command == "pupils":
        # every pupil snapped again: reach 6, 6, 3, 3 px on rays all round but the upper --skip-top degrees
        th = angles("pupil", 0, a.skip_top)
        for i in parse_idx(a.idx or f"0-{len(rows) - 1}", len(rows)):
            r = rows[i]
            img = load_grey(frame_path(root, a.set, r["file"]))
            c = g = (r["pupil_cx"], r["pupil_cy"], r["pupil_r"])
            for reach in (6, 6, 3, 3):
                g, n_keep, n_ok = snap(img, *g, th, reach, 1.0)
            print(f"{i} {r['file']} pupil {c[0]:.1f},{c[1]:.1f},{c[2]:.1f} -> {g[0]:.1f},{g[1]:.1f},{g[2]:.1f} "
                  f"({n_keep}/{n_ok} rays)", flush=True)
            if a.apply:
                r["pupil_cx"], r["pupil_cy"], r["pupil_r"] = (float(v) for v in g)
                write_annotations(path, rows)
        return
    if a.command == "ido":
        for i in parse_idx(a.idx or f"0-{len(rows) - 1}", len(rows)):
            r = rows[i]
            img = load_grey(frame_path(root, a.set, r["file"]))
            c = (r["iris_cx"], r["iris_cy"], r["iris_r"])
            found = []
            for off in ((0, 0, 0), (3, 3, 3), (-3, -3, -3), (3, -3, 0), (-3, 3, 0)):    # +-3 px starts
                g = ido(img, *np.add(c, off), up=a.up, down=a.down, span=a.span)
                found.append(ido(img, *g[:3], up=a.up, down=a.down, span=1.0, step=0.25))
            g = max(found, key=lambda q: q[3])                   # the best optimum of the five
            spread = np.ptp(np.array([q[:3] for q in found]), 0)
            print(f"{i} {r['file']} iris {c[0]:.1f},{c[1]:.1f},{c[2]:.1f} -> {g[0]:.1f},{g[1]:.1f},{g[2]:.1f} "
                  f"(moved {math.hypot(g[0] - c[0], g[1] - c[1]):.1f} px, dr {g[2] - c[2]:+.1f}; spread of 5 starts "
                  f"{spread[0]:.1f} {spread[1]:.1f} {spread[2]:.1f}){'  UNSTABLE' if spread.max() > 1.5 else ''}",
                  flush=True)
            if a.apply:
                r["iris_cx"], r["iris_cy"], r["iris_r"] = g[:3]
                write_annotations(path, rows)
        return
    if a.command == "stability":
        # how far the snap moves from starts perturbed by +-3 px (centre) and +-3 % (radius): a floor on precision
        offs = [(dx, dy, dr) for dx in (-3, 3) for dy in (-3, 3) for dr in (-0.03, 0.03)]
        for i in parse_idx(a.idx or f"0-{len(rows) - 1}", len(rows)):
            r = rows[i]
            img = load_grey(frame_path(root, a.set, r["file"]))
            out = []
            for k, th, reach, sm in (("pupil", angles("pupil", 0, a.skip_top), 3, 1.0),
                                     ("iris", angles("iris", a.deg), 4, 1.5)):
                c = np.array([r[f"{k}_cx"], r[f"{k}_cy"], r[f"{k}_r"]])
                dev = []
                for dx, dy, dr in offs:
                    g = c + [dx, dy, dr * c[2]]
                    for _ in range(3):
                        g, *_ = snap(img, *g, th, reach, sm)
                    dev.append(np.abs(np.array(g) - c))
                dev = np.max(dev, 0)
                out.append(f"{k} dx {dev[0]:.1f} dy {dev[1]:.1f} dr {dev[2]:.1f}")
            print(i, r["file"], " | ".join(out), flush=True)
        return
    if a.command == "export":
        dst = REPO / "docs" / "real_data" / f"annotations_{a.set}.csv"
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_annotations(dst, rows)
        print(dst, len(rows), "frames")


if __name__ == "__main__":
    main()
