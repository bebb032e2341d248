"""Synthetic iris identities: N eyes x M captures from a trained hybrid pair, in a folder per identity.

    irislib.dataset("out", "iris64-unet", "iris64-vae", identities=10, captures=5)

Mechanism (measured with the iris-code matcher, see `irislib verify-dataset`): each identity is drawn once, a VAE
draft denoised by the UNet (HybridSampler's path, seed = the identity's seed), and its pupil and limbus are fitted.
Every capture re-renders that eye at new boundaries with the rubber-sheet model: a point at (rho, theta) between
the pupil and the limbus stays at (rho, theta) when the pupil dilates or constricts, so the iris texture (the
identity) moves with the tissue; the pupil inside is scaled, the rest of the eye is kept. Then an in-plane
rotation and shift of the whole eye, an upper eyelid at a drawn opening, defocus and motion blur, sensor noise and
new glints in the pupil (the identity's own glints, small bright blobs well inside its pupil, are painted out
first; nothing at the pupil's edge is). Each capture's variation comes from its own generator, seeded by a hash
of (identity seed, capture). An optional light diffusion pass (refine_strength > 0) re-noises each capture a
little with the identity's seed and denoises it.

Dilation bends the tissue off the rubber sheet (CaptureVariation.dilation_bend): a pure rubber-sheet change is undone
by the matcher's own normalisation, so genuine HD stayed flat in the dilation difference (128 px, 24 x 4: 0.169 at
< 0.05, 0.166 at 0.15-0.20), unlike real eyes; with the default bend it rises 0.172 -> 0.225 over 0-0.15, and on the
shipped 200 x 8 set 0.177 -> 0.278 over 0-0.30 (genuine 0.196, impostor 0.469, d' 7.70; docs/dataset128).
What the matcher said at 64 px (iris64 pair, 10 identities x 4 captures, identity drawn with 10 steps; genuine /
impostor HD mean +- sd, d'): these defaults 0.196 +- 0.036 / 0.462 +- 0.012, d' 10.0, no genuine pair above HD 0.34;
uniform dilation +-0.15 with defocus <= 0.8 px, motion <= 1.5 px, lid opening >= 0.65: 0.276 / 0.460, d' 3.7 (blur
and uniform dilation cost most: without blur d' 5.6, without dilation 5.9); the default with a diffusion pass at
refine_strength 0.1 (2 steps, identity's seed): 0.344 / 0.465, d' 3.6: even that little noise redraws the fine
texture the code reads at 64 px, so the pass is off by default. These figures, except the shipped 200 x 8 set's,
predate two changes: glint removal no longer paints the iris ring next to the pupil dark, and capture seeds are
hashes (other captures).

Layout: <out>/0001/0001_01.png ... (identities and captures from 1), metadata.csv (one row per capture: seeds,
pupil and iris boundaries, ratio, rotation, shift, blur, noise, eyelid opening, glints; lengths in the images' px)
and settings.json (the settings; the sha256 of the UNet, VAE and prior files; the device type; the variation's
lengths at 64 px scale and, as variation_px, in the images' px). Every setting is checked before anything is
written. Deterministic and resumable: identities are drawn in fixed chunks of `batch_size`, each PNG is written to
a temp name and renamed, and an identity counts as done when its record (.records/0001.json) exists; a re-run with
the same settings, weights and device type continues and gives the same bytes; anything else is refused, and so is
a folder of an older format (irislib-dataset/1: captures seeded otherwise), which this version cannot continue.
"""
from __future__ import annotations

import csv
import io
import json
import math
import numbers
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..biometrics.normalize import Boundaries, fit_boundaries
from ..config import ConfigError
from ..data.synthetic_texture import gaussian_blur

FORMAT = "irislib-dataset/2"     # 2: captures seeded by (identity seed, capture); weights and device recorded
SEED_STRIDE = 1_000_003          # identity k (0-based) of a set with seed s has seed s * SEED_STRIDE + k
ATTEMPT_STRIDE = 7_919_000_003   # redraw a of an identity whose eye was not segmented: + a * ATTEMPT_STRIDE
MAX_ATTEMPTS = 4                 # draws of an identity before the set gives up
CAPTURE_TAG = 0x1D5E7            # first word of the capture seeds' entropy (other generators never share it)
LENGTHS = ("shift_px", "defocus_px", "motion_px")   # CaptureVariation's lengths, in px at 64 px
COLUMNS = ["identity", "capture", "file", "identity_seed", "draw_attempt", "capture_seed",
           "pupil_cx", "pupil_cy", "pupil_a", "pupil_b", "pupil_angle_deg", "pupil_radius",
           "iris_cx", "iris_cy", "iris_r", "pupil_iris_ratio", "identity_pupil_iris_ratio",
           "tissue_bend", "rotation_deg", "shift_x", "shift_y", "defocus_sigma_px", "motion_blur_px",
           "motion_blur_angle_deg",
           "noise_sd", "eyelid_opening", "glints"]


def _number(name: str, value, lo: float | None = None, hi: float | None = None, *, hi_open: bool = False,
            whole: bool = False, hint: str = "") -> None:
    """ConfigError naming `name` unless value is a (whole) number in [lo, hi] (hi excluded when hi_open)."""
    ok = isinstance(value, numbers.Integral if whole else numbers.Real) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (lo is None or value >= lo)
    ok = ok and (hi is None or (value < hi if hi_open else value <= hi))
    if not ok:
        kind = "a whole number" if whole else "a number"
        where = "".join([f" >= {lo:g}" if lo is not None else "",
                         f" and {'<' if hi_open else '<='} {hi:g}" if hi is not None else ""])
        raise ConfigError(f"{name}={value!r}: must be {kind}{where}{hint}")


def _range(name: str, value, lo: float, hi: float | None = None, *, whole: bool = False, lo_open: bool = False,
           example=None) -> None:
    """ConfigError naming `name` unless value is a pair (low, high), lo <= low <= high (<= hi)."""
    pair = isinstance(value, (tuple, list)) and len(value) == 2
    try:
        for v in value if pair else ():
            _number(name, v, lo, hi, whole=whole)
    except ConfigError:
        pair = False
    if not pair or value[0] > value[1] or (lo_open and value[0] <= lo):
        bound = f"{lo:g} {'<' if lo_open else '<='} low <= high" + (f" <= {hi:g}" if hi is not None else "")
        raise ConfigError(f"{name}={value!r}: must be a range (low, high) with {bound}, e.g. {example!r}")


@dataclass(frozen=True)
class CaptureVariation:
    """Ranges of the per-capture variation. The lengths (shift_px, defocus_px, motion_px) are in px at 64 px and
    scale with the image size: x2 at 128 px, where metadata.csv (in the images' px) holds twice these values."""
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

    def validate(self) -> "CaptureVariation":
        """ConfigError naming the first field out of range (a reversed range is refused, not clipped)."""
        v = CaptureVariation()
        _number("variation.dilation", self.dilation, 0, 1, hi_open=True, hint=f", e.g. {v.dilation}")
        _number("variation.dilation_sd", self.dilation_sd, 0, hint=f" (0: uniform), e.g. {v.dilation_sd}")
        _range("variation.ratio_range", self.ratio_range, 0, 1, lo_open=True, example=v.ratio_range)
        _number("variation.rotation_deg", self.rotation_deg, 0, 180, hint=f", e.g. {v.rotation_deg}")
        _number("variation.shift_px", self.shift_px, 0, hint=f" (px at 64 px), e.g. {v.shift_px}")
        _range("variation.defocus_px", self.defocus_px, 0, example=v.defocus_px)
        _range("variation.motion_px", self.motion_px, 0, example=v.motion_px)
        _range("variation.noise_sd", self.noise_sd, 0, 1, example=v.noise_sd)
        _range("variation.eyelid_opening", self.eyelid_opening, 0, lo_open=True, example=v.eyelid_opening)
        _range("variation.glints", self.glints, 0, whole=True, example=v.glints)
        _number("variation.dilation_bend", self.dilation_bend, hint=f", e.g. {v.dilation_bend}")
        return self

    def lengths_px(self, image_size: int) -> dict:
        """The lengths in px of `image_size` images: the unit of metadata.csv."""
        scale = image_size / 64.0
        return {k: ([x * scale for x in getattr(self, k)] if isinstance(getattr(self, k), (tuple, list))
                    else getattr(self, k) * scale) for k in LENGTHS}


@dataclass(frozen=True)
class DatasetSettings:
    """What the user chose; settings.json records it with what else the bytes depend on (`_provenance`)."""
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

    def validate(self) -> "DatasetSettings":
        """ConfigError naming the first bad field and its flag; else these settings with plain int/float values."""
        from ..diffusion.samplers import SAMPLERS
        from .hybrid import SEED_LIMIT
        for name in ("identities", "captures", "batch_size", "steps", "refine_steps"):
            _number(f"{name} (--{name.replace('_', '-')})", getattr(self, name), 1, whole=True)
        # every identity seed, redraws included, must be below 2**63 (the generators' limit)
        top = (SEED_LIMIT - self.identities - (MAX_ATTEMPTS - 1) * ATTEMPT_STRIDE) // SEED_STRIDE
        _number("seed (--seed)", self.seed, 0, top, whole=True,
                hint=f" (identity k uses seed * {SEED_STRIDE} + k, below 2**63)")
        _number("strength (--strength)", self.strength, 0, 1, hint=": the noise std the VAE draft is noised to")
        _number("refine_strength (--refine-strength)", self.refine_strength, 0, 1, hi_open=True,
                hint=": a small noise level, 0 = no pass")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler (--sampler)={self.sampler!r}: must be one of {', '.join(SAMPLERS)}")
        if not isinstance(self.variation, CaptureVariation):
            raise ConfigError(f"variation={self.variation!r}: must be an irislib.generate.dataset.CaptureVariation")
        self.variation.validate()
        return replace(self, identities=int(self.identities), captures=int(self.captures), seed=int(self.seed),
                       strength=float(self.strength), steps=int(self.steps), batch_size=int(self.batch_size),
                       refine_strength=float(self.refine_strength), refine_steps=int(self.refine_steps))

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))     # tuples -> lists, as read back


def capture_seed(identity_seed: int, capture: int) -> int:
    """The seed of capture `capture` (0-based) of an identity: np.random.default_rng(seed) draws its variation.

    A 63-bit hash of (identity seed, capture): every pair has its own stream. (identity_seed * 1009 + capture
    gave identity k's capture 1009 the stream of identity k + 1's first capture.)"""
    state = np.random.SeedSequence([CAPTURE_TAG, int(identity_seed), int(capture)]).generate_state(1, np.uint64)
    return int(state[0]) >> 1


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
    """Refuse, in one line, a folder made by another format, other weights or device, or other settings (or one
    that is not a dataset folder): continuing it would mix two kinds of capture in one set."""
    path = out / "settings.json"
    if not path.exists():
        if out.exists() and any(out.iterdir()):
            raise ConfigError(f"{out} is not empty and has no settings.json: not a dataset folder to continue; use "
                              "a new or empty folder")
        return
    old = json.loads(path.read_text())
    if old.get("format") != settings["format"]:
        raise ConfigError(f"{out} was written by another irislib version (format {old.get('format')!r}, this one "
                          f"writes {settings['format']!r}: captures are seeded and recorded differently), so it "
                          "cannot be continued or re-run; use a new --out, or the irislib version that wrote it")
    model = _model_change(old, settings)
    if model:
        raise ConfigError(f"{out} was made {model}; continuing would mix two models in one set: use a new --out, or "
                          f"the weights and device it was made with (settings.json in it)")
    diff = sorted(k for k in DatasetSettings.__dataclass_fields__ if old.get(k) != settings.get(k))
    if diff:
        raise ConfigError(f"{out} was made with other settings (differs in {', '.join(diff)}); use a new folder, "
                          f"or the settings in {path} to continue it")


def _model_change(old: dict, new: dict) -> str:
    """'with other UNet weights (sha256 1a2b3c4d5e6f, now 7a8b...) and on cuda (now cpu)', or ''."""
    was, now = old.get("weights_sha256") or {}, new["weights_sha256"]
    names = {"unet": "UNet", "vae": "VAE", "vae_prior": "VAE prior"}
    parts = [f"with other {name} weights (sha256 {str(was.get(key))[:12]}, now {str(now[key])[:12]})"
             for key, name in names.items() if was.get(key) != now[key]]
    if old.get("device") != new["device"]:
        parts.append(f"on {old.get('device')} (now {new['device']}, --device)")
    return " and ".join(parts)


def _provenance(cfg: DatasetSettings, device) -> dict:
    """What else the bytes depend on, for settings.json: the sha256 of the UNet, VAE and prior files sampling
    reads, the device type (CPU and GPU round differently) and the image size the variation's lengths scale with."""
    import torch
    from .. import checkpoint
    from .loading import resolve_run
    unet_run, vae_run = resolve_run(cfg.unet), resolve_run(cfg.vae)
    unet_file = checkpoint.sampling_weights_file(unet_run)
    prior = checkpoint.prior_path(vae_run)
    size = int(json.loads((unet_file.parent / "config.json").read_text())["unet"]["image_size"])
    return {"weights_sha256": {"unet": checkpoint.sha256_file(unet_file),
                               "vae": checkpoint.sha256_file(checkpoint.sampling_weights_file(vae_run)),
                               "vae_prior": checkpoint.sha256_file(prior) if prior else None},
            "device": torch.device(device).type, "image_size": size,
            "variation_px": cfg.variation.lengths_px(size),
            "units": f"variation's {', '.join(LENGTHS)} are in px at 64 px (x image_size / 64); variation_px "
                     f"holds them in px of these {size} px images, the unit of metadata.csv"}


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
    """The identity image with the glints in its pupil set to the pupil's grey level (each capture draws new ones).

    A glint is a small bright blob whose pixels all lie well inside the pupil, cut off from the iris by dark
    pixels; the 1 px halo painted with it stays inside too. Nothing at the pupil's edge is painted: the iris next
    to it is brighter than any glint threshold, and painting it grew the pupil 1.5-4 px past the boundary the
    metadata records (and stair-stepped it)."""
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    d = np.hypot(xx - bnd.pupil_cx, yy - bnd.pupil_cy)
    inside = d < bnd.pupil_radius_at(np.arctan2(yy - bnd.pupil_cy, xx - bnd.pupil_cx)) - 1.5
    if not inside.any():
        return img
    level = float(np.median(img[inside]))
    from ..metrics.image_ops import dilate, label_components
    lab, n = label_components(img > level + 0.2)
    if n == 0:
        return img
    ids = lab[lab >= 0]
    area, area_inside = np.bincount(ids, minlength=n), np.bincount(ids, inside[lab >= 0], minlength=n)
    small = area <= max(12, 0.25 * inside.sum())
    glint = np.isin(lab, np.flatnonzero(small & (area_inside == area)))
    spot = dilate(glint, 1) & inside
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


def _draw_identities(sampler, cfg: DatasetSettings, ks: list[int], bar=None):
    """Identity images [len(ks), H, W] in [0, 1], boundaries and draw attempts for 0-based identities ks. With a
    bar, its description says which identities are being sampled and the sampler shows a bar of its steps."""
    from . import hybrid
    from ..imageio import to_numpy01
    base = [cfg.seed * SEED_STRIDE + k for k in ks]
    out: dict[int, tuple] = {}
    todo = list(range(len(ks)))
    for attempt in range(MAX_ATTEMPTS):
        if bar is not None:
            again = "" if attempt == 0 else f" again (no pupil and limbus found; draw {attempt + 1} of {MAX_ATTEMPTS})"
            bar.set_description(f"dataset: sampling {_which([ks[i] for i in todo])}{again}")
        seeds = [base[i] + attempt * ATTEMPT_STRIDE for i in todo]
        drafts = sampler.drafts(seeds) if (cfg.strength < 1.0 or sampler.is_refiner) else None
        res = hybrid.denoise_batch(sampler.unet, sampler.diffusion, seeds, drafts, strength=cfg.strength,
                                   steps=cfg.steps, sampler=cfg.sampler, progress=bar is not None and not bar.disable)
        # 8-bit, as written: the fit (and every capture) then does not move with float noise of the thread count
        imgs = np.round(to_numpy01(res.images).astype(np.float64) * 255) / 255
        left = []
        for i, img in zip(todo, imgs):
            bnd = fit_boundaries(img)
            if _usable(bnd, min(img.shape), cfg.variation.ratio_range) or (attempt == MAX_ATTEMPTS - 1 and bnd):
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
            device: str = "auto", progress: bool = True) -> Path:
    """Write `identities` x `captures` iris images from a trained pair (run folders or manifest names) into `out`:
    <out>/0001/0001_01.png ..., metadata.csv, settings.json. Re-running with the same settings, weights and device
    continues a cut-off run (byte-identical files); anything else in an existing folder is refused. Every setting is
    checked before anything is written. irislib.verify_dataset(out) then writes the verification report."""
    from .loading import resolve_device
    cfg = DatasetSettings(str(unet), str(vae), identities, captures, seed, strength, steps, sampler, batch_size,
                          refine_strength, refine_steps, variation or CaptureVariation()).validate()
    out = Path(out)
    settings = {**cfg.to_json(), **_provenance(cfg, resolve_device(device))}
    _check_folder(out, settings)
    if (out / "metadata.csv").exists():
        return out
    from .sampler import HybridSampler
    smp = HybridSampler.load(cfg.unet, cfg.vae, device=device)
    if cfg.strength > smp.max_strength + 1e-9:
        raise ConfigError(f"strength (--strength)={cfg.strength:g}: above the UNet's max_strength "
                          f"{smp.max_strength:g}; use a strength <= {smp.max_strength:g}")
    out.mkdir(parents=True, exist_ok=True)
    records = out / ".records"
    records.mkdir(exist_ok=True)
    for tmp in [*out.glob(".*.tmp"), *out.glob("*/.*.tmp")]:     # left by a run that was cut off mid-write
        tmp.unlink()
    if not (out / "settings.json").exists():
        _atomic_write(out / "settings.json", (json.dumps(settings, indent=2) + "\n").encode())
    _write_identities(out, smp, cfg, progress)
    _write_metadata(out, records, cfg.identities, _widths(cfg)[0])
    return out


def _widths(cfg: DatasetSettings) -> tuple[int, int]:
    return max(4, len(str(cfg.identities))), max(2, len(str(cfg.captures)))


def _write_identities(out: Path, smp, cfg: DatasetSettings, progress: bool) -> None:
    """Every identity not yet recorded in out/.records, in fixed chunks of batch_size (the same batches in every
    (re-)run). The bar counts images; smoothing=0 makes its rate this run's images over its elapsed time."""
    from tqdm.auto import tqdm
    width_i = _widths(cfg)[0]
    records = out / ".records"

    def is_done(k):
        return (records / f"{_name(k, width_i)}.json").exists()
    n_done = sum(is_done(k) for k in range(cfg.identities))
    with tqdm(total=cfg.identities * cfg.captures, initial=n_done * cfg.captures, unit="img", desc="dataset",
              smoothing=0, disable=not progress) as bar:
        for c0 in range(0, cfg.identities, cfg.batch_size):
            ks = list(range(c0, min(c0 + cfg.batch_size, cfg.identities)))
            if all(is_done(k) for k in ks):
                continue
            drawn, failed = _draw_identities(smp, cfg, ks, bar)
            if failed:
                raise RuntimeError(f"identities {[ks[i] + 1 for i in failed]}: no pupil and limbus found in "
                                   f"{MAX_ATTEMPTS} draws; try another seed or strength")
            bar.set_description(f"dataset: rendering the captures of {_which(ks)}")
            for i, k in enumerate(ks):
                if not is_done(k):
                    _write_identity(out, smp, cfg, k, *drawn[i])
                    bar.update(cfg.captures)
        bar.set_description("dataset", refresh=False)     # the closing line says what the bar counted


def _which(ks: list[int]) -> str:
    """'identity 3', 'identities 1-8' or 'identities 2, 5' (0-based ks, shown from 1)."""
    if len(ks) == 1:
        return f"identity {ks[0] + 1}"
    if ks == list(range(ks[0], ks[-1] + 1)):
        return f"identities {ks[0] + 1}-{ks[-1] + 1}"
    return "identities " + ", ".join(str(k + 1) for k in ks)


def _write_identity(out: Path, smp, cfg: DatasetSettings, k: int, img, bnd, attempt: int, id_seed: int) -> None:
    """The captures of identity k (0-based), then its record: the identity counts as done once that exists."""
    width_i, width_c = _widths(cfg)
    name = _name(k, width_i)
    base = _remove_glints(img, bnd)
    ims, rows = [], []
    for c in range(cfg.captures):
        cap_seed = capture_seed(id_seed, c)
        im, rec = render_capture(base, bnd, np.random.default_rng(cap_seed), cfg.variation)
        ims.append(im)
        rows.append({"identity": k + 1, "capture": c + 1, "file": f"{name}/{name}_{c + 1:0{width_c}d}.png",
                     "identity_seed": id_seed, "draw_attempt": attempt, "capture_seed": cap_seed, **rec})
    ims = np.stack(ims)
    if cfg.refine_strength > 0:
        ims = _refine(smp, cfg, ims, id_seed)
    (out / name).mkdir(exist_ok=True)
    for im, row in zip(ims, rows):
        _atomic_write(out / row["file"], _png_bytes(im))
    _atomic_write(out / ".records" / f"{name}.json", (json.dumps(rows) + "\n").encode())


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
