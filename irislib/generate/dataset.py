"""Synthetic iris identities: N eyes x M captures from a trained hybrid pair, in a folder per identity.

    irislib.dataset("out", "iris64-unet", "iris64-vae", identities=10, captures=5)

Mechanism (measured with the iris-code matcher, see `irislib verify-dataset`): each identity is drawn once, a VAE
draft denoised by the UNet (HybridSampler's path, seed = the identity's seed), and its pupil and limbus are fitted.
Every capture re-renders that eye at new boundaries with the rubber-sheet model: a point at (rho, theta) between
the pupil and the limbus stays at (rho, theta) when the pupil dilates or constricts, so the iris texture (the
identity) moves with the tissue; the pupil inside is scaled, the rest of the eye is kept. Then an in-plane
rotation and shift of the whole eye, an upper eyelid at a drawn opening, defocus and motion blur, sensor noise and
new glints in the pupil. An optional light diffusion pass (refine_strength > 0) re-noises each capture a little
with the identity's seed and denoises it.

Dilation bends the tissue off the rubber sheet (CaptureVariation.dilation_bend): a pure rubber-sheet change is undone
by the matcher's own normalisation, so genuine HD stayed flat in the dilation difference (128 px, 24 x 4: 0.169 at
< 0.05, 0.166 at 0.15-0.20), unlike real eyes; with the default bend it rises 0.172 -> 0.225 over 0-0.15, and on the
shipped 200 x 8 set 0.177 -> 0.290 over 0-0.30 (genuine 0.190, impostor 0.469, d' 8.06; docs/dataset128).
What the matcher said at 64 px (iris64 pair, 10 identities x 4 captures, identity drawn with 10 steps; genuine /
impostor HD mean +- sd, d'): these defaults 0.196 +- 0.036 / 0.462 +- 0.012, d' 10.0, no genuine pair above HD 0.34;
uniform dilation +-0.15 with defocus <= 0.8 px, motion <= 1.5 px, lid opening >= 0.65: 0.276 / 0.460, d' 3.7 (blur
and uniform dilation cost most: without blur d' 5.6, without dilation 5.9); the default with a diffusion pass at
refine_strength 0.1 (2 steps, identity's seed): 0.344 / 0.465, d' 3.6: even that little noise redraws the fine
texture the code reads at 64 px, so the pass is off by default.

Layout: <out>/0001/0001_01.png ... (identities and captures from 1), metadata.csv (one row per capture: seeds,
pupil and iris boundaries, ratio, rotation, shift, blur, noise, eyelid opening, glints) and settings.json.
Deterministic and resumable: identities are drawn in fixed chunks of `batch_size`, each PNG is written to a temp
name and renamed, and an identity counts as done when its record (.records/0001.json) exists; a re-run with the
same settings continues and gives the same bytes; a folder made with other settings is refused.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..biometrics.normalize import Boundaries, fit_boundaries
from ..config import ConfigError
from ..data.synthetic_texture import gaussian_blur

FORMAT = "irislib-dataset/1"
SEED_STRIDE = 1_000_003          # identity k (0-based) of a set with seed s has seed s * SEED_STRIDE + k
ATTEMPT_STRIDE = 7_919_000_003   # redraw a of an identity whose eye was not segmented: + a * ATTEMPT_STRIDE
CAPTURE_TAG = 0x1D5E7            # first word of the capture generators' seeds
COLUMNS = ["identity", "capture", "file", "identity_seed", "draw_attempt", "capture_seed",
           "pupil_cx", "pupil_cy", "pupil_a", "pupil_b", "pupil_angle_deg", "pupil_radius",
           "iris_cx", "iris_cy", "iris_r", "pupil_iris_ratio", "identity_pupil_iris_ratio",
           "tissue_bend", "rotation_deg", "shift_x", "shift_y", "defocus_sigma_px", "motion_blur_px",
           "motion_blur_angle_deg",
           "noise_sd", "eyelid_opening", "glints"]


@dataclass(frozen=True)
class CaptureVariation:
    """Ranges of the per-capture variation; lengths in px at 64 px (scaled with the image size)."""
    dilation: float = 0.15             # pupil/iris ratio change, at most +-dilation (normal with sd dilation_sd,
    dilation_sd: float = 0.06          # cut at +-dilation; 0: uniform in +-dilation) ...
    ratio_range: tuple = (0.2, 0.7)    # ... clipped to this range (ISO/IEC 29794-6)
    rotation_deg: float = 10.0         # in-plane rotation, uniform in +-rotation_deg
    shift_px: float = 2.0              # shift of the eye, uniform in +-shift_px on each axis
    defocus_px: tuple = (0.0, 0.4)     # Gaussian blur sigma
    motion_px: tuple = (0.0, 0.8)      # motion blur length (random direction)
    noise_sd: tuple = (0.003, 0.012)   # additive sensor noise (plus shot noise of half that at white)
    eyelid_opening: tuple = (0.8, 1.2)   # upper lid apex above the iris centre, in iris radii (> 1: iris clear)
    glints: tuple = (1, 2)             # glints per capture (in the pupil)
    dilation_bend: float = 2.0         # nonlinear tissue motion: source rho = rho + b rho (1 - rho), b = this x the
                                       # ratio change (0: pure rubber sheet, which the matcher's normalisation undoes)


@dataclass(frozen=True)
class DatasetSettings:
    """Everything the bytes of a dataset depend on: exactly what settings.json records."""
    unet: str
    vae: str
    identities: int
    captures: int
    seed: int = 0
    strength: float = 0.5
    steps: int = 20
    sampler: str = "ddim"
    batch_size: int = 8
    refine_strength: float = 0.0
    refine_steps: int = 2
    variation: CaptureVariation = CaptureVariation()
    format: str = FORMAT

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))     # tuples -> lists, as read back


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _png_bytes(image01: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(image01, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _check_folder(out: Path, settings: dict) -> None:
    """Refuse a folder made with other settings (or one that is not a dataset folder) in one line."""
    path = out / "settings.json"
    if path.exists():
        old = json.loads(path.read_text())
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if diff:
            raise ConfigError(f"{out} was made with other settings (differs in {', '.join(diff)}); use a new folder, "
                              f"or the settings in {path} to continue it")
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty and has no settings.json: not a dataset folder to continue; use a "
                          "new or empty folder")


# ------------------------------------------------------------------------------------------- capture rendering
def _rot(x, y, deg):
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return c * x - s * y, s * x + c * y


def _limbus_distance(bnd: Boundaries, th: np.ndarray) -> np.ndarray:
    """Distance from the pupil centre to the iris circle along direction th."""
    ox, oy = bnd.pupil_cx - bnd.iris_cx, bnd.pupil_cy - bnd.iris_cy
    ou = ox * np.cos(th) + oy * np.sin(th)
    return -ou + np.sqrt(np.maximum(ou ** 2 - ox ** 2 - oy ** 2 + bnd.iris_r ** 2, 0))


def _remove_glints(img: np.ndarray, bnd: Boundaries) -> np.ndarray:
    """The identity image with bright spots in and near its pupil set to the pupil's grey level (new glints are
    drawn per capture)."""
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    d = np.hypot(xx - bnd.pupil_cx, yy - bnd.pupil_cy)
    rp = bnd.pupil_radius_at(np.arctan2(yy - bnd.pupil_cy, xx - bnd.pupil_cx))
    inner = d < rp - 1.0
    if not inner.any():
        return img
    level = float(np.median(img[inner]))
    spot = (d < rp + 1.5) & (img > level + 0.2)
    from ..metrics.image_ops import dilate
    spot = dilate(spot, 1) & (d < rp + 2.5)
    out = img.copy()
    out[spot] = level
    return out


def warp_eye(img: np.ndarray, bnd: Boundaries, ratio: float, rotation_deg: float, shift: tuple[float, float],
             bend: float = 0.0):
    """The eye of `img` (boundaries `bnd`) with its pupil/iris ratio set to `ratio` (rubber sheet: iris points keep
    their (rho, theta)), turned by rotation_deg about the iris centre (from +x towards +y) and shifted; returns the
    image and the new Boundaries. `bend` (|bend| < 1) moves the tissue off the rubber sheet: the point at rho comes
    from rho + bend rho (1 - rho), as real irises fold non-uniformly when the pupil changes (Wyatt 2000)."""
    if not abs(bend) < 1:
        raise ValueError(f"bend={bend}: |bend| must be < 1 for the radial map to stay one-to-one")
    h, w = img.shape
    k = ratio * bnd.iris_r / bnd.pupil_radius
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = bnd.iris_cx + shift[0], bnd.iris_cy + shift[1]
    qx, qy = _rot(xx - cx, yy - cy, -rotation_deg)
    qx, qy = qx + bnd.iris_cx, qy + bnd.iris_cy                   # output pixel in the identity's frame
    dx, dy = qx - bnd.pupil_cx, qy - bnd.pupil_cy
    d, th = np.hypot(dx, dy), np.arctan2(dy, dx)
    rp0 = bnd.pupil_radius_at(th)
    rpn, rl = k * rp0, _limbus_distance(bnd, th)
    rho = (d - rpn) / np.maximum(rl - rpn, 1e-6)
    rho = np.where((rho > 0) & (rho < 1), rho + bend * rho * (1 - rho), rho)
    d0 = np.where(rho < 0, d / k, np.where(rho < 1, rp0 + rho * (rl - rp0), d))
    sx, sy = bnd.pupil_cx + d0 * np.cos(th), bnd.pupil_cy + d0 * np.sin(th)
    from ..metrics.image_ops import bilinear
    out = bilinear(img, np.clip(sx, 0, w - 1), np.clip(sy, 0, h - 1))
    pcx, pcy = _rot(bnd.pupil_cx - bnd.iris_cx, bnd.pupil_cy - bnd.iris_cy, rotation_deg)
    new = Boundaries(cx + pcx, cy + pcy, bnd.pupil_a * k, bnd.pupil_b * k, (bnd.pupil_angle_deg + rotation_deg) % 180,
                     cx, cy, bnd.iris_r)
    return out, new


def _eyelid(img: np.ndarray, bnd: Boundaries, opening: float, rng: np.random.Generator) -> np.ndarray:
    """An upper lid: skin above a parabola whose apex is `opening` iris radii above the iris centre, with a
    darker lid margin."""
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    R = bnd.iris_r
    x0 = bnd.iris_cx + rng.uniform(-0.2, 0.2) * R
    y_lid = bnd.iris_cy - opening * R + rng.uniform(0.15, 0.3) / R * (xx - x0) ** 2
    skin = float(np.percentile(img[: max(2, h // 8)], 60))
    soft = max(0.6, 0.04 * R)
    cover = np.clip(0.5 + (y_lid - yy) / soft, 0, 1)
    margin = np.exp(-np.abs(yy - y_lid) / max(0.5, 0.06 * R))
    lid = skin * (1 - 0.35 * margin)
    return img * (1 - cover) * (1 - 0.25 * margin) + lid * cover      # lash-line shadow on the eye side


def _motion_blur(img: np.ndarray, length: float, angle_deg: float) -> np.ndarray:
    """Average of copies shifted along a line of `length` px (bilinear, edges clamped)."""
    if length < 0.25:
        return img
    from ..metrics.image_ops import bilinear
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    n = 2 * int(math.ceil(length)) + 1
    ux, uy = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    acc = np.zeros_like(img)
    for t in np.linspace(-length / 2, length / 2, n):
        acc += bilinear(img, np.clip(xx + t * ux, 0, w - 1), np.clip(yy + t * uy, 0, h - 1))
    return acc / n


def render_capture(base: np.ndarray, bnd: Boundaries, rng: np.random.Generator,
                   var: CaptureVariation = CaptureVariation()) -> tuple[np.ndarray, dict]:
    """One capture of the identity image `base` [H, W] in [0, 1] with fitted boundaries `bnd`: image and record."""
    h, w = base.shape
    scale = min(h, w) / 64.0
    r0 = bnd.pupil_radius / bnd.iris_r
    change = rng.normal(0, var.dilation_sd) if var.dilation_sd > 0 else rng.uniform(-var.dilation, var.dilation)
    ratio = float(np.clip(r0 + np.clip(change, -var.dilation, var.dilation), *var.ratio_range))
    rot = float(rng.uniform(-var.rotation_deg, var.rotation_deg))
    shift = (float(rng.uniform(-1, 1) * var.shift_px * scale), float(rng.uniform(-1, 1) * var.shift_px * scale))
    bend = float(np.clip(var.dilation_bend * (ratio - r0), -0.9, 0.9))
    img, nb = warp_eye(base, bnd, ratio, rot, shift, bend)
    opening = float(rng.uniform(*var.eyelid_opening))
    img = _eyelid(img, nb, opening, rng)
    defocus = float(rng.uniform(*var.defocus_px) * scale)
    motion, m_angle = float(rng.uniform(*var.motion_px) * scale), float(rng.uniform(0, 180))
    img = _motion_blur(gaussian_blur(img, defocus), motion, m_angle)
    noise = float(rng.uniform(*var.noise_sd))
    img = img + rng.standard_normal(img.shape) * (noise + 0.5 * noise * np.sqrt(np.clip(img, 0, 1)))
    glints = []
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    for _ in range(int(rng.integers(var.glints[0], var.glints[1] + 1))):
        dist, ang = 0.6 * nb.pupil_radius * math.sqrt(rng.uniform()), rng.uniform(0, 2 * math.pi)
        g = (nb.pupil_cx + dist * math.cos(ang), nb.pupil_cy + dist * math.sin(ang),
             max(1.25, rng.uniform(0.03, 0.06) * nb.iris_r))
        cov = np.clip(g[2] + 0.5 - np.hypot(xx - g[0], yy - g[1]), 0, 1)
        img = img * (1 - cov) + cov
        glints.append([round(v, 2) for v in g])
    rec = {"pupil_cx": nb.pupil_cx, "pupil_cy": nb.pupil_cy, "pupil_a": nb.pupil_a, "pupil_b": nb.pupil_b,
           "pupil_angle_deg": nb.pupil_angle_deg, "pupil_radius": nb.pupil_radius, "iris_cx": nb.iris_cx,
           "iris_cy": nb.iris_cy, "iris_r": nb.iris_r, "pupil_iris_ratio": ratio, "identity_pupil_iris_ratio": r0,
           "tissue_bend": bend, "rotation_deg": rot, "shift_x": shift[0], "shift_y": shift[1],
           "defocus_sigma_px": defocus,
           "motion_blur_px": motion, "motion_blur_angle_deg": m_angle, "noise_sd": noise,
           "eyelid_opening": opening, "glints": json.dumps(glints, separators=(",", ":"))}
    return np.clip(img, 0, 1).astype(np.float32), rec


# ----------------------------------------------------------------------------------------------- identities
def _usable(bnd: Boundaries | None, size: int, ratio_range) -> bool:
    """The identity's eye was segmented with a plausible pupil/iris ratio and an iris of at least a quarter of the
    frame."""
    if bnd is None:
        return False
    r = bnd.pupil_radius / bnd.iris_r
    return ratio_range[0] <= r <= ratio_range[1] and bnd.iris_r >= 0.2 * size


def _draw_identities(sampler, cfg: DatasetSettings, ks: list[int], max_attempts: int = 4):
    """Identity images [len(ks), H, W] in [0, 1], boundaries and draw attempts for 0-based identities ks."""
    from . import hybrid
    from ..imageio import to_numpy01
    base = [cfg.seed * SEED_STRIDE + k for k in ks]
    out: dict[int, tuple] = {}
    todo = list(range(len(ks)))
    for attempt in range(max_attempts):
        seeds = [base[i] + attempt * ATTEMPT_STRIDE for i in todo]
        drafts = sampler.drafts(seeds) if (cfg.strength < 1.0 or sampler.is_refiner) else None
        res = hybrid.denoise_batch(sampler.unet, sampler.diffusion, seeds, drafts, strength=cfg.strength,
                                   steps=cfg.steps, sampler=cfg.sampler)
        # 8-bit, as written: the fit (and every capture) then does not move with float noise of the thread count
        imgs = np.round(to_numpy01(res.images).astype(np.float64) * 255) / 255
        left = []
        for i, img in zip(todo, imgs):
            bnd = fit_boundaries(img)
            if _usable(bnd, min(img.shape), cfg.variation.ratio_range) or (attempt == max_attempts - 1 and bnd):
                out[i] = (img.astype(np.float64), bnd, attempt, base[i] + attempt * ATTEMPT_STRIDE)
            else:
                left.append(i)
        todo = left
        if not todo:
            break
    return out, todo


def _refine(sampler, cfg: DatasetSettings, images: np.ndarray, seed: int) -> np.ndarray:
    """A light diffusion pass over one identity's captures, all with the identity's seed."""
    import torch
    from . import hybrid
    x = torch.from_numpy(images.astype(np.float32) * 2 - 1)[:, None].to(sampler.device)
    res = hybrid.denoise_batch(sampler.unet, sampler.diffusion, [seed] * len(images), x,
                               strength=cfg.refine_strength, steps=cfg.refine_steps, sampler=cfg.sampler)
    return ((res.images[:, 0].cpu().numpy().astype(np.float64) + 1) / 2).clip(0, 1)


def _name(k: int, width: int) -> str:
    return f"{k + 1:0{width}d}"


def dataset(out, unet="iris128-unet", vae="iris128-vae", identities: int = 10, captures: int = 5, *, seed: int = 0,
            strength: float = 0.5, steps: int = 20, sampler: str = "ddim", batch_size: int = 8,
            refine_strength: float = 0.0, refine_steps: int = 2, variation: CaptureVariation | None = None,
            device: str = "auto", progress: bool = True, verify: bool = False, n_training: int = 512) -> Path:
    """Write `identities` x `captures` iris images from a trained pair (run folders or manifest names) into `out`:
    <out>/0001/0001_01.png ..., metadata.csv, settings.json. Re-running with the same settings continues a cut-off
    run (byte-identical files); other settings in an existing folder are refused. With verify=True also writes the
    verification report (verify_dataset, leakage against n_training of the UNet's training images) into the
    folder."""
    if identities < 1 or captures < 1 or batch_size < 1:
        raise ConfigError(f"identities={identities}, captures={captures} and batch_size={batch_size} must be >= 1")
    if not 0 <= refine_strength < 1:
        raise ConfigError(f"refine_strength={refine_strength}: a small noise level in [0, 1), 0 = no pass")
    cfg = DatasetSettings(str(unet), str(vae), int(identities), int(captures), int(seed), float(strength), int(steps),
                          sampler, int(batch_size), float(refine_strength), int(refine_steps),
                          variation or CaptureVariation())
    out = Path(out)
    settings = cfg.to_json()
    _check_folder(out, settings)
    width_i, width_c = max(4, len(str(identities))), max(2, len(str(captures)))
    if (out / "metadata.csv").exists():
        return _verified(out, verify, n_training)
    from .sampler import HybridSampler
    smp = HybridSampler.load(cfg.unet, cfg.vae, device=device)
    if cfg.strength > smp.max_strength + 1e-9:
        raise ConfigError(f"strength={cfg.strength:g} is above the UNet's max_strength={smp.max_strength:g}")
    out.mkdir(parents=True, exist_ok=True)
    records = out / ".records"
    records.mkdir(exist_ok=True)
    for tmp in [*out.glob(".*.tmp"), *out.glob("*/.*.tmp")]:     # left by a run that was cut off mid-write
        tmp.unlink()
    if not (out / "settings.json").exists():
        _atomic_write(out / "settings.json", (json.dumps(settings, indent=2) + "\n").encode())
    from tqdm.auto import tqdm

    def is_done(k):
        return (records / f"{_name(k, width_i)}.json").exists()
    n_done = sum(is_done(k) for k in range(identities))
    bar = tqdm(total=identities * captures, initial=n_done * captures, unit="img", desc="dataset",
               disable=not progress)
    for c0 in range(0, identities, batch_size):        # fixed chunks: the same batches in every (re-)run
        ks = list(range(c0, min(c0 + batch_size, identities)))
        if all(is_done(k) for k in ks):
            continue
        drawn, failed = _draw_identities(smp, cfg, ks)
        if failed:
            raise RuntimeError(f"identities {[ks[i] + 1 for i in failed]}: no pupil and limbus found in "
                               f"{len(failed)} draws; try another seed or strength")
        for i, k in enumerate(ks):
            if is_done(k):
                continue
            img, bnd, attempt, id_seed = drawn[i]
            base = _remove_glints(img, bnd)
            ims, rows = [], []
            for c in range(captures):
                cap_seed = id_seed * 1009 + c
                im, rec = render_capture(base, bnd, np.random.default_rng((CAPTURE_TAG, cap_seed)), cfg.variation)
                ims.append(im)
                name = _name(k, width_i)
                rows.append({"identity": k + 1, "capture": c + 1, "file": f"{name}/{name}_{c + 1:0{width_c}d}.png",
                             "identity_seed": id_seed, "draw_attempt": attempt, "capture_seed": cap_seed, **rec})
            ims = np.stack(ims)
            if cfg.refine_strength > 0:
                ims = _refine(smp, cfg, ims, id_seed)
            (out / _name(k, width_i)).mkdir(exist_ok=True)
            for im, row in zip(ims, rows):
                _atomic_write(out / row["file"], _png_bytes(im))
                bar.update(1)
            _atomic_write(records / f"{_name(k, width_i)}.json", (json.dumps(rows) + "\n").encode())
    bar.close()
    _write_metadata(out, records, identities, width_i)
    return _verified(out, verify, n_training)


def _verified(out: Path, verify: bool, n_training: int) -> Path:
    """The finished folder, with its verification report written first when asked and not there yet."""
    if verify and not (out / "verify.json").exists():
        from ..evaluation.verify import verify_dataset
        verify_dataset(out, n_training=n_training)
    return out


def _fmt(v):
    return f"{v:.4f}" if isinstance(v, float) else v


def _write_metadata(out: Path, records: Path, identities: int, width: int) -> None:
    """metadata.csv from the identities' records (temp name, then renamed), then the records are removed."""
    buf = io.StringIO()
    wr = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    wr.writeheader()
    for k in range(identities):
        for row in json.loads((records / f"{_name(k, width)}.json").read_text()):
            wr.writerow({c: _fmt(row[c]) for c in COLUMNS})
    _atomic_write(out / "metadata.csv", buf.getvalue().encode())
    for p in records.glob("*.json"):
        p.unlink()
    records.rmdir()
