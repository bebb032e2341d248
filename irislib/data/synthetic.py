"""Procedural NIR eye images with exact ground-truth geometry (pupil ellipse, iris circle, eyelids, glints).

Used as the built-in data set (`synthetic:N`) and as a test oracle for loaders and pupil metrics. Ranges follow
published NIR iris statistics (docs/design.md, "Synthetic irises"). Coordinates: pixel centres at integers, x = column (right), y = row (down); `angle_deg` is the
direction of the pupil's major semi-axis `a`, measured from +x towards +y.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .synthetic_texture import N_RHO, N_THETA, bilinear, gaussian_blur, iris_texture, lash_strokes, \
    render_lashes, smooth_field

SEED_STRIDE = 1_000_003  # item i of a data set with seed s is generate(s * SEED_STRIDE + i)


def _frame(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    h, w = (int(v) for v in size)
    if h < 16 or w < 16:
        raise ValueError(f"synthetic image size {size} is too small; use at least 16 px per side")
    return h, w


def _draw_eye(rng: np.random.Generator, h: int, w: int, frame: bool = False) -> dict:
    """Draw the geometry in px: iris circle, pupil ellipse, eyelid parabolas, glints. `frame`: a camera frame
    (ND-0405, CASIA-Lamp 640x480; CASIA-Interval 320x280): the iris anywhere in it, its diameter 1/4 to 1/2 of
    the frame's shorter side."""
    aspect = max(h, w) / min(h, w)
    if frame:
        r_iris = rng.uniform(0.125, 0.25) * min(h, w)
        icx, icy = rng.uniform(1.05 * r_iris, w - 1.05 * r_iris), rng.uniform(1.05 * r_iris, h - 1.05 * r_iris)
    elif aspect < 1.2:   # square-ish crop: the iris fills 60-90 % of the width
        r_iris = rng.uniform(0.30, 0.45) * min(h, w)
        icx = w / 2 - 0.5 + rng.uniform(-0.04, 0.04) * w
        icy = h / 2 - 0.5 + rng.uniform(-0.04, 0.04) * h
    else:              # full frame (e.g. 640x480): iris diameter 1/3-1/2 of the height
        r_iris = rng.uniform(1 / 6, 1 / 4) * h
        icx = w / 2 - 0.5 + rng.uniform(-0.12, 0.12) * w
        icy = h / 2 - 0.5 + rng.uniform(-0.06, 0.06) * h
    ratio = 0.2 + 0.45 * rng.beta(2.0, 2.2)
    axis_ratio = 1.0 - 0.1 * rng.uniform() ** 2             # b/a in [0.9, 1], mostly near 1
    rp = ratio * r_iris                                       # equal-area pupil radius sqrt(a*b)
    a, b = rp / math.sqrt(axis_ratio), rp * math.sqrt(axis_ratio)
    nasal = rng.choice([-1.0, 1.0])                           # left or right eye
    pcx = icx + nasal * rng.uniform(0.0, 0.03) * 2 * r_iris   # decentration <= 3 % / 2 % of the iris diameter
    pcy = icy + rng.choice([-1.0, 1.0]) * rng.uniform(0.0, 0.02) * 2 * r_iris
    eye = dict(h=h, w=w, icx=icx, icy=icy, R=r_iris, pcx=pcx, pcy=pcy, a=a, b=b, rp=rp,
               angle=rng.uniform(0, math.pi), lobe_phase=rng.uniform(0, 2 * math.pi))
    # Eyelids: two parabolas through common corners (almond); the upper lid stays above the pupil.
    x0 = icx + rng.uniform(-0.2, 0.2) * r_iris
    half = rng.uniform(1.8, 2.4) * r_iris
    yc = icy + rng.uniform(-0.05, 0.3) * r_iris
    y_up = pcy - 1.15 * a - (0.15 + 0.9 * rng.beta(1.8, 2.2)) * (r_iris - rp)
    y_lo = pcy + 1.15 * a + rng.uniform(0.45, 1.3) * (r_iris - rp)
    eye.update(x0=x0, half=half, yc=yc, y_up=y_up, y_lo=y_lo,
               c_up=(yc - y_up) / half ** 2, c_lo=(yc - y_lo) / half ** 2)
    eye["glints"] = _draw_glints(rng, pcx, pcy, rp, r_iris)
    return eye


def _draw_glints(rng, pcx, pcy, rp, r_iris) -> list[dict]:
    """1 glint (LG2200-like), 2-3 (several LEDs), or a ring of 4-8 (CASIA-Interval LED ring), in/near the pupil."""
    mode = rng.choice(3, p=[0.45, 0.25, 0.30])
    if mode == 2:
        n = int(rng.integers(4, 9))
        ring = rng.uniform(0.25, 0.6) * rp
        cx, cy = pcx + rng.normal(0, 0.1) * rp, pcy + rng.normal(0, 0.1) * rp
        ang = rng.uniform(0, 2 * math.pi) + np.arange(n) * 2 * math.pi / n
        xs, ys = cx + ring * np.cos(ang), cy + ring * np.sin(ang)
        rs = np.full(n, rng.uniform(0.018, 0.035) * r_iris)
    else:
        n = 1 if mode == 0 else int(rng.integers(2, 4))
        dist = rp * np.sqrt(rng.uniform(0, 1, n)) * (1.15 if n == 1 else 0.8)
        ang = rng.uniform(0, 2 * math.pi, n)
        xs, ys = pcx + dist * np.cos(ang), pcy + dist * np.sin(ang)
        rs = rng.uniform(0.025, 0.06, n) * r_iris
    # At least 1.25 px, so the pixel nearest the centre is fully covered and saturates.
    return [{"x": float(x), "y": float(y), "r": float(max(r, 1.25))} for x, y, r in zip(xs, ys, rs)]


def _draw_look(rng) -> dict:
    """Grey levels, softness and degradations (8-bit NIR look: dark pupil, mid-grey iris, bright sclera/skin)."""
    iris = rng.uniform(0.28, 0.48)
    return dict(pupil=rng.uniform(0.05, 0.12), iris=iris, sclera=min(0.88, iris + rng.uniform(0.18, 0.4)),
                skin=rng.uniform(0.50, 0.82), lower_skin=rng.uniform(0.92, 1.08), lash=rng.uniform(0.08, 0.2),
                limbus=rng.uniform(0.02, 0.05), shadow=rng.uniform(0.1, 0.35), margin=rng.uniform(0.15, 0.45),
                crease=rng.uniform(0.05, 0.2), vignette=rng.uniform(0.1, 0.35), blur=rng.uniform(0.25, 0.45),
                noise=rng.uniform(0.006, 0.016), shot=rng.uniform(0.005, 0.015))


def _polar(xx, yy, eye, lobes) -> dict:
    """Per-pixel polar coordinates around the pupil centre and the (lobed) pupil radius at each angle."""
    dx, dy = xx - eye["pcx"], yy - eye["pcy"]
    r = np.hypot(dx, dy)
    th = np.arctan2(dy, dx)
    cos_t, sin_t = dx / np.maximum(r, 1e-6), dy / np.maximum(r, 1e-6)
    ca, sa = math.cos(eye["angle"]), math.sin(eye["angle"])
    a, b = eye["a"], eye["b"]
    cphi, sphi = cos_t * ca + sin_t * sa, sin_t * ca - cos_t * sa            # angle relative to the major axis
    ell = a * b / np.sqrt((b * cphi) ** 2 + (a * sphi) ** 2)                # ellipse radius at theta
    lobe = 3 * (th - eye["lobe_phase"])
    rad = ell * (1 + lobes * np.cos(lobe))                                   # r(th) = r0 (1 + A cos 3(th - phi))
    slope = 3 * lobes * ell * np.sin(lobe) / np.maximum(r, 1e-3)             # d r / (r d th): edge obliqueness
    return dict(r=r, th=th, cos_t=cos_t, sin_t=sin_t, rad=rad, slope=slope)


def _pupil_coverage(pol, blur_px) -> np.ndarray:
    """Anti-aliased pupil coverage [H, W]: a 1-px linear ramp on the signed distance to the outline."""
    cov = np.clip(0.5 - (pol["r"] - pol["rad"]) / np.sqrt(1 + pol["slope"] ** 2), 0, 1)
    return gaussian_blur(cov, blur_px)


def _iris_layer(xx, yy, eye, look, rng, pol, texture=None) -> tuple[np.ndarray, np.ndarray]:
    """Iris intensity sampled from the polar texture (rubber sheet pupil edge -> limbus) and its coverage;
    `texture` (an identity's, see generate_capture) replaces the one drawn from rng."""
    tex = iris_texture(rng, look["iris"]) if texture is None else texture
    ox, oy = eye["pcx"] - eye["icx"], eye["pcy"] - eye["icy"]
    ou = ox * pol["cos_t"] + oy * pol["sin_t"]
    r_limbus = -ou + np.sqrt(np.maximum(ou ** 2 - ox ** 2 - oy ** 2 + eye["R"] ** 2, 0))  # pupil centre -> limbus
    rho = (pol["r"] - pol["rad"]) / np.maximum(r_limbus - pol["rad"], 1e-3)
    iris = bilinear(tex, rho * (N_RHO - 1), pol["th"] * (N_THETA / (2 * math.pi)), wrap_v=True)
    width = max(0.8, look["limbus"] * eye["R"])            # 10-90 % width of the limbus, px
    d = np.hypot(xx - eye["icx"], yy - eye["icy"]) - eye["R"]
    cov = 1.0 / (1.0 + np.exp(np.clip(d * (4.39 / width), -50, 50)))
    return iris, cov.astype(np.float32)


def _lid_curves(xx, eye):
    """Upper and lower lid y(x) [H, W], held constant beyond the eye corners (where the lids meet)."""
    dx2 = np.minimum((xx - eye["x0"]) ** 2, eye["half"] ** 2)
    return eye["y_up"] + eye["c_up"] * dx2, eye["y_lo"] + eye["c_lo"] * dx2


def _lashes(rng, eye, shape) -> np.ndarray:
    """Upper lashes hang over the upper iris (fanning outwards); lower lashes are short and point down."""
    R = eye["R"]
    cover = []
    for n, down in ((int(rng.integers(25, 70)), True), (int(rng.integers(8, 30)), False)):
        s = lash_strokes(rng, n, down)
        x = eye["x0"] + (s["u"] * 2 - 1) * eye["half"] * 0.92
        y0, c = (eye["y_up"], eye["c_up"]) if down else (eye["y_lo"], eye["c_lo"])
        y = y0 + c * (x - eye["x0"]) ** 2
        fan = (s["u"] * 2 - 1) * 1.1 + s["tilt"]               # outward fan along the lid
        dirs = np.stack([np.sin(fan), np.cos(fan)], 1)                   # pointing down (+y), fanned out
        if down:   # upper lashes: mostly downward over the iris, a few curling up
            dirs[:, 1] *= np.where(rng.uniform(size=n) < 0.8, 1.0, -1.0)
        cover.append(render_lashes(shape, np.stack([x, y], 1), dirs, s, R, sigma=max(0.35, 0.006 * R)))
    return np.maximum(cover[0], cover[1])


def _render(rng, eye, look, lobes, blur_px, texture=None) -> np.ndarray:
    """Compose the layers into a [H, W] float32 image in [0, 1]."""
    h, w, R = eye["h"], eye["w"], eye["R"]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    fields = np.stack([smooth_field(rng, cells) for cells in (3, 6, 16)], -1)    # [64, 64, 3]
    smooth = bilinear(fields, yy * (63.0 / max(h - 1, 1)), xx * (63.0 / max(w - 1, 1)))
    low, mid, fine = smooth[..., 0], smooth[..., 1], smooth[..., 2]
    pol = _polar(xx, yy, eye, lobes)
    pupil_cov = _pupil_coverage(pol, blur_px)
    iris, iris_cov = _iris_layer(xx, yy, eye, look, rng, pol, texture)
    lashes = _lashes(rng, eye, (h, w))
    up, lo = _lid_curves(xx, eye)
    # Eye ball: sclera darker towards the corners, iris, pupil (with a faint gradient), shadow under the upper lid.
    sclera = look["sclera"] * (1 - 0.2 * ((xx - eye["x0"]) / eye["half"]) ** 2) * (1 + 0.04 * mid)
    pupil = look["pupil"] * (1 + 0.08 * low)
    ball = iris_cov * iris + (1 - iris_cov) * sclera
    ball = pupil_cov * pupil + (1 - pupil_cov) * ball
    below_up = yy - up
    ball = ball * (1 - look["shadow"] * np.exp(-np.maximum(below_up, 0) / (0.15 * R)))
    # Skin: smooth variation, lid crease, dark lash line at the lid margins, lower lid a bit brighter/darker.
    skin = look["skin"] * (1 + 0.06 * low + 0.015 * mid + 0.01 * fine)
    beyond = np.abs(xx - eye["x0"]) - eye["half"]                     # > 0 outside the eye corners
    fade = np.exp(-0.5 * (np.maximum(beyond + 0.3 * R, 0) / (0.3 * R)) ** 2)
    skin = skin * (1 + (look["lower_skin"] - 1) / (1 + np.exp(np.clip((lo - yy) / (0.1 * R), -50, 50))))
    skin = skin * (1 - look["crease"] * fade * np.exp(-0.5 * ((up - 0.35 * R - yy) / (0.05 * R)) ** 2))
    margin = np.exp(-np.abs(below_up) / (0.05 * R)) + 0.5 * np.exp(-np.abs(yy - lo) / (0.04 * R))
    skin = skin * (1 - look["margin"] * fade * np.clip(margin, 0, 1))
    soft = max(0.8, 0.02 * R)
    opening = (np.clip(0.5 + below_up / soft, 0, 1) * np.clip(0.5 + (lo - yy) / soft, 0, 1)
               * np.clip(0.5 - beyond / soft, 0, 1))
    img = opening * ball + (1 - opening) * skin
    img = img * (1 - lashes) + look["lash"] * lashes
    # Illumination fall-off, optics blur, sensor noise, then saturated glints.
    d2 = ((xx - eye["icx"]) ** 2 + (yy - eye["icy"]) ** 2) / (0.25 * (h * h + w * w))
    img = gaussian_blur(img * (1 - look["vignette"] * d2), look["blur"])
    img = img + rng.standard_normal((h, w)).astype(np.float32) * (look["noise"] + look["shot"] * np.sqrt(
        np.clip(img, 0, 1)))
    for g in eye["glints"]:   # only a small window around each glint is touched
        y0, y1 = max(int(g["y"] - g["r"]) - 2, 0), min(int(g["y"] + g["r"]) + 3, h)
        x0, x1 = max(int(g["x"] - g["r"]) - 2, 0), min(int(g["x"] + g["r"]) + 3, w)
        if y1 > y0 and x1 > x0:
            cov = np.clip(g["r"] + 0.5 - np.hypot(xx[y0:y1, x0:x1] - g["x"], yy[y0:y1, x0:x1] - g["y"]), 0, 1)
            img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - cov) + cov
    return np.clip(img, 0, 1).astype(np.float32)


def _geometry(eye, lobes, blur_px, seed) -> dict:
    eye = {k: float(v) if isinstance(v, (float, np.floating)) else v for k, v in eye.items()}   # JSON floats
    a, b = eye["a"], eye["b"]
    return {"pupil": {"cx": eye["pcx"], "cy": eye["pcy"], "a": a, "b": b,
                      "angle_deg": math.degrees(eye["angle"]) % 180.0,
                      "lobes": float(lobes), "lobe_phase_deg": math.degrees(eye["lobe_phase"]),
                      "blur_px": float(blur_px)},
            "iris": {"cx": eye["icx"], "cy": eye["icy"], "r": eye["R"]},
            "pupil_iris_ratio": math.sqrt(a * b) / eye["R"],
            "eyelids": {"upper": {"x0": eye["x0"], "y0": eye["y_up"], "c": eye["c_up"]},
                        "lower": {"x0": eye["x0"], "y0": eye["y_lo"], "c": eye["c_lo"]},
                        "corners": [[eye["x0"] - eye["half"], eye["yc"]], [eye["x0"] + eye["half"], eye["yc"]]]},
            "glints": [dict(g) for g in eye["glints"]],
            "size": [eye["h"], eye["w"]], "seed": int(seed)}


def generate(seed: int, size: int | tuple[int, int] = 128, *, channels: int = 1, pupil_lobes: float = 0.0,
             pupil_blur_px: float = 0.0, frame: bool = False) -> tuple[np.ndarray, dict]:
    """One synthetic NIR eye: image float32 [H, W] (or [H, W, 3]) in [0, 1] and its exact geometry dict.

    Geometry (px): pupil {cx, cy, a >= b, angle_deg, lobes, lobe_phase_deg, blur_px}, iris {cx, cy, r},
    pupil_iris_ratio = sqrt(a*b) / r, eyelids {upper, lower: y = y0 + c (x - x0)^2, corners}, glints [{x, y, r}],
    size [H, W]. `pupil_lobes` A deforms the pupil outline to r0(th) (1 + A cos 3(th - lobe_phase));
    `pupil_blur_px` is the sigma of a Gaussian blur of the pupil layer only (the dark pupil bleeds into the iris).
    `frame`: a full camera frame (size (H, W), e.g. (480, 640)) with the eye at a random position and scale.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels={channels}: use 1 (NIR grey) or 3 (grey replicated to RGB)")
    if not 0 <= pupil_lobes < 0.5 or pupil_blur_px < 0:
        raise ValueError(f"pupil_lobes={pupil_lobes} must be in [0, 0.5) and pupil_blur_px={pupil_blur_px} >= 0")
    h, w = _frame(size)
    rng = np.random.default_rng(seed)
    eye = _draw_eye(rng, h, w, frame)
    look = _draw_look(rng)
    img = _render(rng, eye, look, pupil_lobes, pupil_blur_px)
    if channels == 3:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return img, _geometry(eye, pupil_lobes, pupil_blur_px, seed)


class SyntheticIrisDataset(torch.utils.data.Dataset):
    """n synthetic irises as float32 tensors [C, H, W] in [-1, 1]; item i = generate(seed * 1_000_003 + i)."""

    def __init__(self, n: int, image_size: int, channels: int = 1, seed: int = 0):
        if n <= 0:
            raise ValueError(f"SyntheticIrisDataset needs n > 0 images, got n={n}")
        self.n, self.image_size, self.channels, self.seed = int(n), image_size, channels, int(seed)
        self._images: dict[int, torch.Tensor] = {}   # memoised as float16 to halve memory (error < 5e-4)
        self._geometry: dict[int, dict] = {}

    def __len__(self) -> int:
        return self.n

    def _make(self, i: int) -> None:
        img, geo = generate(self.seed * SEED_STRIDE + i, self.image_size, channels=self.channels)
        x = torch.from_numpy(img * 2 - 1)
        self._images[i] = (x[None] if x.ndim == 2 else x.permute(2, 0, 1)).to(torch.float16)   # [C, H, W]
        self._geometry[i] = geo

    def _index(self, i: int) -> int:
        i = int(i)
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} synthetic irises")
        return i % self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        i = self._index(i)
        if i not in self._images:
            self._make(i)
        return self._images[i].float()

    def geometry(self, i: int) -> dict:
        """Ground-truth geometry of item i in the image_size x image_size frame."""
        i = self._index(i)
        if i not in self._geometry:
            self._make(i)
        return self._geometry[i]


def write_synthetic(out_dir, n: int, size: int | tuple[int, int] = 128, seed: int = 0,
                    frame: bool = False) -> list[Path]:
    """Write iris_00000.png ... (8-bit grey) and geometry.json (list of geometry dicts with "file"); returns PNGs.
    `frame`: full camera frames of size (H, W) with the eye anywhere (see generate)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, records = [], []
    for i in range(n):
        img, geo = generate(seed * SEED_STRIDE + i, size, frame=frame)
        path = out / f"iris_{i:05d}.png"
        Image.fromarray(np.round(img * 255).astype(np.uint8)).save(path)
        paths.append(path)
        records.append({"file": path.name, **geo})
    (out / "geometry.json").write_text(json.dumps(records, indent=1) + "\n")
    return paths


# ----------------------------------------------------------------------------------------------- identities
IDENTITY_TAG = 0x1D5EED   # first word of the identity seeds, so their streams never meet generate(seed)'s


def _identity(identity: int, seed: int) -> tuple[dict, np.ndarray]:
    """An identity's grey levels and polar iris texture (the same for all its captures)."""
    rng = np.random.default_rng((IDENTITY_TAG, int(seed), int(identity)))
    look = _draw_look(rng)
    return look, iris_texture(rng, look["iris"])


def generate_capture(identity: int, capture: int, size: int | tuple[int, int] = 128, *,
                     seed: int = 0) -> tuple[np.ndarray, dict]:
    """One capture of a synthetic identity: image float32 [H, W] in [0, 1] and its geometry (as `generate`, plus
    identity, capture and rotation_deg).

    All captures of an identity share its iris texture and grey levels; each capture draws its own pupil dilation,
    iris position and size, eyelid opening, lashes, glints, blur (0.25-1.2 px), noise, and an eye rotation of
    +-15 degrees (capture 0 is unrotated; positive turns from +x towards +y, as the code's theta)."""
    if int(identity) < 0 or int(capture) < 0:
        raise ValueError(f"identity={identity} and capture={capture} must be >= 0")
    h, w = _frame(size)
    look, tex = _identity(identity, seed)
    rng = np.random.default_rng((IDENTITY_TAG, int(seed), int(identity), int(capture) + 1))
    eye = _draw_eye(rng, h, w)
    cap = _draw_look(rng)
    look = dict(look, blur=float(rng.uniform(0.25, 1.2)), **{k: cap[k] for k in ("noise", "shot", "vignette",
                                                                                 "shadow", "skin", "lash")})
    shift = 0 if capture == 0 else int(round(rng.uniform(-15, 15) / 360 * N_THETA))
    img = _render(rng, eye, look, 0.0, 0.0, np.roll(tex, shift, axis=1))
    geo = _geometry(eye, 0.0, 0.0, seed)
    geo.update(identity=int(identity), capture=int(capture), rotation_deg=shift * 360.0 / N_THETA)
    return img, geo


def identity_set(n_identities: int, n_captures: int, size: int | tuple[int, int] = 128, *,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """n_identities x n_captures captures: images [N, H, W] float32, identity labels [N] int64, geometries."""
    if n_identities < 1 or n_captures < 1:
        raise ValueError(f"n_identities={n_identities} and n_captures={n_captures} must be >= 1")
    pairs = [(i, c) for i in range(n_identities) for c in range(n_captures)]
    out = [generate_capture(i, c, size, seed=seed) for i, c in pairs]
    return np.stack([o[0] for o in out]), np.array([i for i, _ in pairs], np.int64), [o[1] for o in out]


def no_eye_frames(h: int, w: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Frames with no eye to find, for data.crop=iris to skip: a blank frame, a scene of other things (a dark box,
    a dark disc with no iris around it, an edge), a closed eye (skin with a lash line and a lid crease)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    blank = np.full((h, w), 0.5, np.float32) + rng.normal(0, 0.01, (h, w)).astype(np.float32)
    field = smooth_field(rng, 4)
    skin = 0.6 + 0.15 * bilinear(field, yy * (62.99 / (h - 1)), xx * (62.99 / (w - 1)))
    scene = skin.copy()
    scene[h // 5:h // 2, w // 6:w // 2] = 0.25                                   # a dark box
    scene[np.hypot(xx - 0.7 * w, yy - 0.6 * h) < 0.08 * h] = 0.08                # a dark disc (no iris around it)
    scene[:, int(0.85 * w):] *= 0.5                                               # an edge
    cy = 0.5 * h + 0.05 * h * np.cos(np.pi * (xx - w / 2) / w)
    closed = skin * (1 - 0.6 * np.exp(-((yy - cy) / 2.0) ** 2) * (np.abs(xx - w / 2) < 0.3 * w))
    closed *= 1 - 0.15 * np.exp(-((yy - cy + 0.12 * h) / 4.0) ** 2)
    noise = rng.normal(0, 0.01, (h, w)).astype(np.float32)
    return {"blank": blank, "other scene": np.clip(gaussian_blur(scene, 1.0) + noise, 0, 1),
            "closed eye": np.clip(gaussian_blur(closed, 1.0) + noise, 0, 1)}
