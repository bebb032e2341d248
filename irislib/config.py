"""One dataclass per concern, nested in `Experiment`; JSON round-trip, dotted overrides, validation.

Field names follow guided-diffusion's command-line flags wherever one exists, so users can paste their flags.
The trailing comment on each field is its documentation (the notebooks' parameter cells reuse the words).
"""
from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints


class ConfigError(ValueError):
    """A config value is wrong; the message names the field and what to do."""


SCHEDULES = ("linear", "cosine")
LR_SCHEDULES = ("constant", "warmup", "cosine", "gear")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
LATENT_TYPES = ("spatial", "vector")
RECON_LOSSES = ("mse", "l1")
PRIORS = ("normal", "gmm")
T_SAMPLERS = ("uniform", "loss-second-moment")
ACTIVATIONS = ("silu", "relu")
MODEL_SECTIONS = ("unet", "vae", "diffusion")   # the sections that define a model: a resume must match them
# Where a run runs, once train.* fields; now a Placement (CLI flags / trainer arguments). Old config.json files
# (run directories, the shipped manifests) still hold them: they said where that run ran, not what it trained.
PLACEMENT_FIELDS = {"mirror_dir": "--mirror DIR (Python: mirror_dir=..., Placement(mirror_dir=...))",
                    "device": "--device NAME (Python: device=..., Placement(device=...))"}


def default_channel_mult(image_size: int) -> list[int]:
    """guided-diffusion's channel_mult for an image size (its `create_model`); 320 px etc. must be explicit."""
    table = {512: [1, 1, 2, 2, 4, 4], 256: [1, 1, 2, 2, 4, 4], 128: [1, 1, 2, 3, 4], 64: [1, 2, 3, 4], 32: [1, 2, 2, 2]}
    if image_size not in table:
        raise ConfigError(
            f"unet.channel_mult has no default for image_size={image_size}; "
            f"set it explicitly, e.g. --set unet.channel_mult=1,1,2,2,4 (defaults exist for {sorted(table)})")
    return list(table[image_size])


@dataclass
class UNetConfig:
    image_size: int = 64                  # image side in pixels (square)
    in_channels: int = 1                  # image channels: 1 for NIR grey, 3 for RGB
    cond_channels: int = 0                # extra input channels for a conditioning image (hybrid refiner); 0 = none
    num_channels: int = 128               # base channel count of the UNet (guided-diffusion's flag)
    num_res_blocks: int = 2               # residual blocks per resolution
    channel_mult: list[int] = field(default_factory=list)  # channel multiplier per level; [] = guided-diffusion default
    attention_resolutions: list[int] = field(default_factory=lambda: [16, 8])  # resolutions in px that get attention
    num_heads: int = 4                    # attention heads (ignored when num_head_channels > 0)
    num_head_channels: int = -1           # channels per head; -1 = use num_heads
    num_heads_upsample: int = -1          # heads in the decoder; -1 = num_heads
    dropout: float = 0.0                  # dropout in residual blocks
    learn_sigma: bool = True              # predict the variance too (2x output channels, hybrid loss)
    use_scale_shift_norm: bool = True     # FiLM-style timestep conditioning
    resblock_updown: bool = False         # residual blocks for up/down-sampling
    use_checkpoint: bool = False          # gradient checkpointing: less memory, ~30% slower
    use_new_attention_order: bool = False  # split qkv before heads (guided-diffusion's QKVAttention)
    timestep_scale: float = 1.0           # t is scaled by this before embedding; 1000/T for rescale_timesteps models

    def resolved_channel_mult(self) -> list[int]:
        """channel_mult, or guided-diffusion's default for image_size."""
        return list(self.channel_mult) or default_channel_mult(self.image_size)

    def validate(self, section: str = "unet") -> None:
        _positive(self, section, "image_size", "in_channels", "num_channels", "num_res_blocks")
        if self.num_channels % 32:
            raise ConfigError(f"{section}.num_channels={self.num_channels}: group norm uses 32 groups, so use a "
                              f"multiple of 32 (e.g. {max(32, self.num_channels // 32 * 32)})")
        mult = self.resolved_channel_mult()
        levels = len(mult) - 1
        if self.image_size % (2 ** levels):
            raise ConfigError(
                f"{section}.image_size={self.image_size} is not divisible by 2^{levels} "
                f"(channel_mult={mult} has {levels + 1} levels); use a multiple of {2 ** levels} or fewer levels")
        for res in self.attention_resolutions:
            if res <= 0 or self.image_size % res or (self.image_size // res) & (self.image_size // res - 1):
                raise ConfigError(f"{section}.attention_resolutions has {res}; each entry must be image_size "
                                  f"divided by a power of two (e.g. 16,8 at {self.image_size} px)")
        if self.num_head_channels > 0:
            for m in mult:
                if (m * self.num_channels) % self.num_head_channels:
                    raise ConfigError(f"{section}.num_head_channels={self.num_head_channels} does not divide "
                                      f"{m * self.num_channels} channels; pick a divisor of num_channels")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{section}.dropout={self.dropout} must be in [0, 1)")


@dataclass
class DiffusionConfig:
    diffusion_steps: int = 1000           # T, the number of noise levels the model is trained on
    noise_schedule: str = "linear"        # beta schedule: linear or cosine
    timestep_respacing: str = ""          # respaces the chain itself, e.g. "250", "ddim50", "10,20,30" ("" = all T):
                                          # training then sees only those timesteps. For fewer sampling steps use
                                          # SampleConfig.steps / respacing (irislib sample --steps / --respacing)
    use_kl: bool = False                  # train on the variational bound only (guided-diffusion's flag)
    predict_xstart: bool = False          # model predicts x_0 instead of eps
    rescale_learned_sigmas: bool = False  # guided-diffusion's RESCALED_MSE: VLB term scaled by T/1000
    sigma_small: bool = False             # fixed-small variance when sigma is not learned (else fixed-large)
    schedule_sampler: str = "uniform"     # how training draws t: uniform or loss-second-moment
    max_strength: float = 1.0             # truncated training: only t with noise std sqrt(1-alpha_bar) <= this; 1 = all

    def validate(self, section: str = "diffusion") -> None:
        _positive(self, section, "diffusion_steps")
        _choice(self, section, "noise_schedule", SCHEDULES)
        _choice(self, section, "schedule_sampler", T_SAMPLERS)
        if not 0.0 < self.max_strength <= 1.0:
            raise ConfigError(f"{section}.max_strength={self.max_strength} must be in (0, 1]: the largest noise std "
                              "sqrt(1 - alpha_bar) trained on (1 = the whole chain, e.g. 0.7 for hybrid-only models)")


@dataclass
class VAEConfig:
    image_size: int = 64                  # image side in pixels (square)
    in_channels: int = 1                  # image channels: 1 for NIR grey, 3 for RGB
    base_channels: int = 64               # channels at full resolution
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 2, 4])  # per level; len-1 downsamplings
    num_res_blocks: int = 1               # residual blocks per level
    latent_type: str = "spatial"          # spatial (C x H/f x W/f map) or vector (flat latent_dim)
    latent_channels: int = 4              # channels of a spatial latent
    latent_dim: int = 128                 # size of a vector latent
    beta: float = 1.0                     # KL weight per pixel: loss = mean recon + beta * KL / pixels (same at any size)
    kl_warmup_steps: int = 0              # steps over which the KL weight ramps from 0 to beta
    recon_loss: str = "mse"               # reconstruction loss: mse or l1
    edge_weight: float = 0.0              # weight of the image-gradient loss that keeps the pupil edge crisp
    prior: str = "gmm"                    # sampling prior: normal (N(0, I)) or gmm fitted to training latents
    gmm_components: int = 10              # mixture components for the gmm prior
    activation: str = "silu"              # silu (default) or relu (only to reproduce the seed's dead-unit failure)

    def validate(self, section: str = "vae") -> None:
        _positive(self, section, "image_size", "in_channels", "base_channels", "num_res_blocks",
                  "latent_channels", "latent_dim", "gmm_components")
        if self.base_channels % 32:
            raise ConfigError(f"{section}.base_channels={self.base_channels}: group norm uses 32 groups, so use a "
                              f"multiple of 32")
        _choice(self, section, "latent_type", LATENT_TYPES)
        _choice(self, section, "recon_loss", RECON_LOSSES)
        _choice(self, section, "prior", PRIORS)
        _choice(self, section, "activation", ACTIVATIONS)
        levels = len(self.channel_mult) - 1
        if not self.channel_mult or self.image_size % (2 ** levels):
            raise ConfigError(f"{section}.image_size={self.image_size} is not divisible by 2^{levels} "
                              f"(channel_mult={self.channel_mult}); use a multiple of {2 ** max(levels, 0)}")
        if self.beta < 0 or self.edge_weight < 0:
            raise ConfigError(f"{section}.beta and {section}.edge_weight must be >= 0")


@dataclass
class DataConfig:
    path: str = "synthetic:256"           # image folder (searched recursively) or synthetic:N built-in irises
    image_size: int = 64                  # side of the square crop fed to the models, in pixels
    channels: int = 1                     # 1 = NIR grey (default), 3 = RGB
    crop: str = "auto"                    # centre | iris (square on the iris found in each camera frame) | csv | auto
    crop_csv: str = ""                    # CSV of per-image crop boxes: file,left,top,size (crop csv; auto = csv if set)
    random_flip: bool = True              # random horizontal flip (guided-diffusion's default)
    cache_dir: str = ""                   # where preprocessed tensors are cached; "" = <folder>/.irislib_cache
    num_workers: int = 0                  # DataLoader worker processes
    synthetic_seed: int = 0               # which eyes synthetic:N draws (another seed = a disjoint held-out set)

    def validate(self, section: str = "data") -> None:
        _positive(self, section, "image_size")
        if self.channels not in (1, 3):
            raise ConfigError(f"{section}.channels={self.channels} is not allowed; use 1 (NIR grey) or 3 (RGB)")
        if not self.path:
            raise ConfigError(f"{section}.path is empty; give an image folder or synthetic:N")
        if self.crop not in ("auto", "centre", "iris", "csv"):
            raise ConfigError(f"{section}.crop={self.crop!r} is not allowed; use centre (the centred square), iris "
                              "(a square on the iris found in each camera frame), csv (boxes from crop_csv) or auto")
        if self.crop == "csv" and not self.crop_csv:
            raise ConfigError(f"{section}.crop=csv needs {section}.crop_csv: a CSV with columns file,left,top,size")


@dataclass
class TrainConfig:
    lr: float = 1e-4                      # peak learning rate
    lr_schedule: str = "constant"         # constant, warmup (linear then constant), cosine, or gear
    warmup_steps: int = 0                 # linear warm-up steps (warmup and cosine schedules)
    gear: list[list[float]] = field(default_factory=list)  # gear schedule: [[start_epoch, lr], ...], piecewise constant
    batch_size: int = 32                  # images averaged per optimizer step (over all GPUs)
    microbatch: int = -1                  # images per forward/backward; -1 = batch_size (guided-diffusion's flag)
    ema_rate: list[float] = field(default_factory=lambda: [0.9999])  # EMA decay rate(s)
    ema_warmup: bool = True               # EMA decay min(rate, (1+step)/(10+step)) so short runs have a usable EMA
    weight_decay: float = 0.0             # AdamW weight decay
    epochs: int = 0                       # stop after this many epochs; 0 = no epoch limit
    max_steps: int = 0                    # stop after this many optimizer steps; 0 = no step limit
    save_every_steps: int = 1000          # checkpoint every N optimizer steps; 0 = off
    save_every_minutes: float = 30.0      # also checkpoint every M minutes of wall time; 0 = off
    keep_last: int = 3                    # checkpoints kept (older ones deleted after the new one is verified)
    milestone_every_steps: int = 0        # also keep every checkpoint whose step is a multiple of N; 0 = none
    precision: str = "fp32"               # fp32, bf16, fp16 (+ GradScaler); auto: bf16, or fp16 on T4/V100, fp32 on CPU
    grad_clip: float = 0.0                # clip gradient norm to this value; 0 = no clipping (norm still logged)
    nan_patience: int = 5                 # stop after this many non-finite losses in a row
    log_every_steps: int = 10             # write metrics.jsonl every N steps
    sample_every_steps: int = 0           # write a sample grid every N steps; 0 = only at the end
    sample_grid_images: int = 8           # images in each sample grid; 0 = no grids
    sample_grid_steps: int = 20           # UNet calls (DDIM) per diffusion sample-grid image
    seed: int = 0                         # seed for weights, data order and noise
    channels_last: bool = False           # NHWC weights/activations: 1.1x (UNet) to 1.7x (VAE) faster on CPU
    compile: bool = False                 # torch.compile the forward pass (minutes to compile); saved keys unchanged
    compile_mode: str = "default"         # torch.compile mode: default, reduce-overhead (CUDA graphs), max-autotune
    fused_optimizer: bool = False         # AdamW as one fused kernel (fused=True where supported, else foreach)
    fast_groupnorm: bool = False          # GroupNorm in bf16/fp16 under autocast, no fp32 copies; off = fp32 as guided
    data_on_device: bool = False          # whole dataset on the device if <= 25% of free memory; no DataLoader
    patch_size: int = 0                   # UNet trains on random square crops of this side (patch diffusion); 0 = whole
                                          # images. Truncated UNets only (max_strength < 1): their denoising is local

    def validate(self, section: str = "train") -> None:
        _positive(self, section, "batch_size", "keep_last", "nan_patience", "log_every_steps")
        _choice(self, section, "lr_schedule", LR_SCHEDULES)
        _choice(self, section, "precision", PRECISIONS)
        if self.microbatch > self.batch_size:
            raise ConfigError(f"{section}.microbatch={self.microbatch} is larger than batch_size={self.batch_size}; "
                              f"use at most {self.batch_size} (or -1 for the whole batch)")
        if self.microbatch == 0 or self.microbatch < -1:
            raise ConfigError(f"{section}.microbatch={self.microbatch}: use a positive size or -1 for batch_size")
        if self.lr <= 0:
            raise ConfigError(f"{section}.lr={self.lr} must be > 0")
        if any(not 0.0 < r < 1.0 for r in self.ema_rate):
            raise ConfigError(f"{section}.ema_rate={self.ema_rate}: each rate must be in (0, 1), e.g. 0.9999")
        if self.lr_schedule == "gear":
            _validate_gear(self.gear, section, self.lr)
        if self.epochs < 0 or self.max_steps < 0:
            raise ConfigError(f"{section}.epochs and {section}.max_steps must be >= 0 (0 = no limit)")

    @property
    def resolved_microbatch(self) -> int:
        return self.batch_size if self.microbatch == -1 else self.microbatch


@dataclass
class Experiment:
    """Everything one run needs; saved as config.json in the run directory and inside each checkpoint."""
    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # --- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "Experiment":
        """Build from a nested dict; unknown sections or keys are errors naming them."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object with sections {_section_names()}")
        kwargs = {}
        for name, value in d.items():
            sec_cls = _section_classes().get(name)
            if sec_cls is None:
                raise ConfigError(f"{source}: unknown section {name!r}{_did_you_mean(name, _section_names())}")
            kwargs[name] = _build_section(sec_cls, value, name, source)
        return cls(**kwargs)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, path_or_text: str | Path) -> "Experiment":
        p = Path(path_or_text) if not str(path_or_text).lstrip().startswith("{") else None
        if p is not None:
            if not p.is_file():
                raise ConfigError(f"config file {p} does not exist")
            text, source = p.read_text(), str(p)
        else:
            text, source = str(path_or_text), "config"
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{source} is not valid JSON: {e}") from None
        return cls.from_dict(d, source)

    # --- overrides -------------------------------------------------------------------------------
    def override(self, overrides: dict[str, Any] | list[str] | None) -> "Experiment":
        """Return a copy with dotted keys set: {"train.lr": 3e-4} or ["train.lr=3e-4", "image_size=128"].

        String values are parsed for the field's type ("16,8" -> [16, 8]); the bare keys `image_size` and
        `channels` set every section that has them, so model and data sizes stay in step.
        """
        d = self.to_dict()
        for key, value in _as_pairs(overrides):
            for sec, fname in _targets(key):
                hint = get_type_hints(_section_classes()[sec])[fname]
                d[sec][fname] = _coerce(value, hint, f"{sec}.{fname}")
        return Experiment.from_dict(d, "override")

    # --- validation ------------------------------------------------------------------------------
    def validate(self) -> "Experiment":
        """Raise ConfigError naming the first bad field; returns self so calls chain."""
        for f in fields(self):
            getattr(self, f.name).validate(f.name)
        sizes = {"unet.image_size": self.unet.image_size, "vae.image_size": self.vae.image_size,
                 "data.image_size": self.data.image_size}
        if len(set(sizes.values())) > 1:
            raise ConfigError(f"image sizes disagree: {sizes}; set all at once with --set image_size=N")
        chans = {"unet.in_channels": self.unet.in_channels, "vae.in_channels": self.vae.in_channels,
                 "data.channels": self.data.channels}
        if len(set(chans.values())) > 1:
            raise ConfigError(f"channel counts disagree: {chans}; set all at once with --set channels=N")
        self._validate_patch()
        return self

    def _validate_patch(self) -> None:
        """train.patch_size: a crop the UNet's levels divide, of a truncated model (pure noise needs the whole image)."""
        size, side = self.train.patch_size, self.unet.image_size
        if not size:
            return
        step = 2 ** (len(self.unet.resolved_channel_mult()) - 1)
        if not 0 < size < side or size % step:
            raise ConfigError(f"train.patch_size={size}: use 0 (whole images) or a crop side below "
                              f"unet.image_size={side} that is a multiple of {step} (the UNet's downsamplings)")
        if self.diffusion.max_strength >= 1.0:
            raise ConfigError(f"train.patch_size={size} needs a truncated UNet (diffusion.max_strength < 1, here "
                              f"{self.diffusion.max_strength:g}): from pure noise the model must see the whole image;"
                              " set --set train.patch_size=0 for a full-chain UNet")


# --- helpers -------------------------------------------------------------------------------------
_ALIASES = {"image_size": (("unet", "image_size"), ("vae", "image_size"), ("data", "image_size")),
            "channels": (("unet", "in_channels"), ("vae", "in_channels"), ("data", "channels"))}


def _section_classes() -> dict[str, type]:
    return {f.name: f.type if isinstance(f.type, type) else globals()[f.type] for f in fields(Experiment)}


def _section_names() -> list[str]:
    return [f.name for f in fields(Experiment)]


def _did_you_mean(name: str, options) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(options)}"


def _build_section(sec_cls: type, value: Any, sec: str, source: str):
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: section {sec!r} must be an object of fields")
    hints = get_type_hints(sec_cls)
    if sec == "train":   # legacy where-it-ran keys of an old config.json: dropped
        value = {k: v for k, v in value.items() if k not in PLACEMENT_FIELDS}
    for key in value:
        if key not in hints:
            raise ConfigError(f"{source}: unknown field {sec}.{key}{_did_you_mean(key, hints)}")
    return sec_cls(**{k: _coerce(v, hints[k], f"{sec}.{k}") for k, v in value.items()})


def _as_pairs(overrides) -> list[tuple[str, Any]]:
    if not overrides:
        return []
    if isinstance(overrides, dict):
        return list(overrides.items())
    pairs = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value, e.g. train.lr=3e-4")
        key, value = item.split("=", 1)
        pairs.append((key.strip(), value.strip()))
    return pairs


def _targets(key: str) -> tuple[tuple[str, str], ...]:
    if key in _ALIASES:
        return _ALIASES[key]
    if "." not in key:
        raise ConfigError(f"override key {key!r} needs a section, e.g. train.{key}; sections: "
                          f"{', '.join(_section_names())} (or the shortcuts image_size, channels)")
    sec, fname = key.split(".", 1)
    if sec not in _section_classes():
        raise ConfigError(f"override {key!r}: unknown section {sec!r}{_did_you_mean(sec, _section_names())}")
    if sec == "train" and fname in PLACEMENT_FIELDS:
        raise ConfigError(f"override {key!r}: {key} is no longer part of the experiment (it says where a run runs, "
                          f"not what it trains); use {PLACEMENT_FIELDS[fname]}")
    hints = get_type_hints(_section_classes()[sec])
    if fname not in hints:
        raise ConfigError(f"override {key!r}: unknown field {sec}.{fname}{_did_you_mean(fname, hints)}")
    return ((sec, fname),)


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """Convert a JSON or string value to the field's type, or raise naming the field."""
    try:
        return _coerce_inner(value, hint)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name}={value!r} is not a valid {_type_name(hint)} ({e})") from None


def _coerce_inner(value: Any, hint: Any) -> Any:
    origin = get_origin(hint)
    if origin is list:
        (item,) = get_args(hint)
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value = json.loads(text)
            else:
                value = [v for v in text.split(",") if v.strip()] if text else []
        if not isinstance(value, (list, tuple)):
            raise TypeError("expected a list")
        return [_coerce_inner(v, item) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError("expected true or false")
    if hint is int:
        if isinstance(value, bool):
            raise TypeError("expected an integer")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("expected an integer")
        return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
    if hint is float:
        if isinstance(value, bool):
            raise TypeError("expected a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise TypeError("expected a string")
        return value
    return value


def _type_name(hint: Any) -> str:
    if get_origin(hint) is list:
        return f"list of {_type_name(get_args(hint)[0])}"
    return getattr(hint, "__name__", str(hint))


def _positive(obj, section: str, *names: str) -> None:
    for n in names:
        if getattr(obj, n) <= 0:
            raise ConfigError(f"{section}.{n}={getattr(obj, n)} must be a positive number")


def _choice(obj, section: str, name: str, allowed) -> None:
    value = getattr(obj, name)
    if value not in allowed:
        raise ConfigError(f"{section}.{name}={value!r} is not one of {', '.join(allowed)}"
                          f"{_did_you_mean(value, allowed) if isinstance(value, str) else ''}")


def _validate_gear(gear, section: str, lr: float) -> None:
    if not gear or any(len(g) != 2 for g in gear):
        raise ConfigError(f"{section}.gear must be [[start_epoch, lr], ...] starting at epoch 0 for "
                          f"lr_schedule=gear, e.g. [[0, 3e-4], [250, 1e-4]]")
    starts = [g[0] for g in gear]
    if starts[0] != 0 or starts != sorted(starts) or len(set(starts)) != len(starts):
        raise ConfigError(f"{section}.gear start epochs {starts} must begin at 0 and increase")
    if any(g[1] <= 0 for g in gear):
        raise ConfigError(f"{section}.gear learning rates must be > 0")
    if abs(lr - gear[0][1]) > 1e-12 * lr:  # under gear, lr is the table's first rate: a lone --set train.lr is refused
        epoch = [int(g[0]) if float(g[0]).is_integer() else g[0] for g in gear]
        scaled = [[e, float(f"{g[1] * lr / gear[0][1]:.3g}")] for e, g in zip(epoch, gear)]
        table = json.dumps([[e, g[1]] for e, g in zip(epoch, gear)])
        raise ConfigError(f"{section}.lr={lr:g} differs from the first rate of {section}.gear={table} "
                          f"(lr_schedule=gear uses the table). To scale the table set "
                          f"{section}.gear={json.dumps(scaled)}, or set {section}.lr={gear[0][1]:g} to keep it")


# --- named presets: the Experiments users already train with (irislib.presets.get / names; the table in
# README.md and docs/design.md). Data, not code paths; they live here, next to the dataclasses they fill, so
# that build_experiment starts from one without importing presets.py (which imports this module).
def _seed_64() -> Experiment:
    return Experiment(
        unet=UNetConfig(image_size=64, num_channels=128, num_res_blocks=3),
        diffusion=DiffusionConfig(diffusion_steps=4000, noise_schedule="linear"),
        vae=VAEConfig(image_size=64, base_channels=64, channel_mult=[1, 2, 4]),
        data=DataConfig(image_size=64),
        train=TrainConfig(lr=1e-4, batch_size=32, microbatch=-1, epochs=2000))


def _seed_128() -> Experiment:
    return Experiment(
        unet=UNetConfig(image_size=128, num_channels=192, num_res_blocks=4),
        diffusion=DiffusionConfig(diffusion_steps=4000, noise_schedule="linear"),
        vae=VAEConfig(image_size=128, base_channels=64, channel_mult=[1, 2, 2, 4]),
        data=DataConfig(image_size=128),
        train=TrainConfig(lr=1e-4, batch_size=120, microbatch=3, epochs=600))


def _seed_128_gear() -> Experiment:
    exp = _seed_128()
    exp.diffusion = DiffusionConfig(diffusion_steps=5000, noise_schedule="cosine")
    # "gear": 3e-4 for the first half of the epochs, then 1e-4 (piecewise constant in epochs).
    exp.train = TrainConfig(lr=3e-4, lr_schedule="gear", gear=[[0, 3e-4], [250, 1e-4]],
                            batch_size=120, microbatch=3, epochs=500)
    return exp


def _tiny() -> Experiment:
    return Experiment(
        unet=UNetConfig(image_size=32, num_channels=32, num_res_blocks=1, num_heads=2),
        diffusion=DiffusionConfig(diffusion_steps=1000, noise_schedule="linear"),
        vae=VAEConfig(image_size=32, base_channels=32, channel_mult=[1, 2, 2], latent_channels=4, beta=1.0),
        data=DataConfig(path="synthetic:64", image_size=32),
        train=TrainConfig(lr=2e-4, batch_size=8, microbatch=4, epochs=5, ema_rate=[0.999],
                          save_every_steps=50, save_every_minutes=5.0, log_every_steps=5))


def _cpu_64() -> Experiment:
    """The shipped 64 px pair, trainable on a 2-core CPU in about 90 minutes: a vector-latent VAE (global shape
    from a few numbers, so drafts are round) and a small UNet trained only up to noise std 0.7 (truncated)."""
    return Experiment(
        unet=UNetConfig(image_size=64, num_channels=32, num_res_blocks=1, channel_mult=[1, 2, 3, 4], num_heads=2),
        diffusion=DiffusionConfig(diffusion_steps=1000, noise_schedule="linear", max_strength=0.7),
        vae=VAEConfig(image_size=64, base_channels=32, channel_mult=[1, 2, 4, 4], latent_type="vector",
                      latent_dim=32, beta=0.02, edge_weight=0.5),
        data=DataConfig(path="synthetic:2048", image_size=64),
        train=TrainConfig(lr=1e-3, lr_schedule="cosine", warmup_steps=100, batch_size=16, max_steps=1000,
                          ema_rate=[0.999], save_every_steps=250, save_every_minutes=10.0, log_every_steps=25,
                          sample_grid_images=8, channels_last=True))


def _cpu_128() -> Experiment:
    """The shipped 128 px pair, trainable on a 2-core CPU: cpu-64's recipe one level deeper (the VAE's vector
    latent still sees an 8x8 feature map; the UNet adds a 128 px level at 32 channels, as guided-diffusion's
    (1,1,2,3,4)), on 2048 synthetic irises at 128 px."""
    exp = _cpu_64()
    exp.unet = UNetConfig(image_size=128, num_channels=32, num_res_blocks=1, channel_mult=[1, 1, 2, 3, 4],
                          num_heads=2)
    # L1 reconstruction: the decoder learns the median image given z, not the mean, so LED glints that sit in a
    # different place in every eye do not average into a grey haze over the pupil (MSE drafts were lighter).
    exp.vae = VAEConfig(image_size=128, base_channels=32, channel_mult=[1, 1, 2, 4, 4], latent_type="vector",
                        latent_dim=32, beta=0.02, edge_weight=0.5, recon_loss="l1")
    exp.data = DataConfig(path="synthetic:2048", image_size=128)
    return exp


PRESETS = {"seed-64": _seed_64, "seed-128": _seed_128, "seed-128-gear": _seed_128_gear, "tiny": _tiny,
           "cpu-64": _cpu_64, "cpu-128": _cpu_128}


def get_preset(name: str) -> Experiment:
    """A fresh Experiment for a preset name (presets.get; constant data, validated by tests/test_presets.py, not
    per call: build_experiment and the training entry validate what they are given)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}{_did_you_mean(name, PRESETS)}")
    return PRESETS[name]()


# --- one path from typed values to an Experiment (the notebooks and `irislib train-*`) -------------------------
def build_experiment(preset: str | None = None, config: Any = None, data: str | None = None,
                     overrides: Any = None) -> Experiment:
    """The Experiment (what is trained), validated once; the notebooks and the CLI both build it here.

    Precedence, later wins: `config` (a config.json path, JSON text, dict or Experiment) or else `preset` (default
    "tiny"), then `data` (= data.path), then `overrides` in order. `overrides` is a dict of dotted keys to typed
    values ({"train.lr": 3e-4}), a list of "key=value" strings (the CLI's --set; strings are parsed for the
    field's type), or a list mixing both (a notebook's form values, then its `overrides`, then smoke settings).
    Where it runs (run folder, mirror, device, resume) is a `Placement`, kept apart.
    """
    if isinstance(config, Experiment):
        exp = config
    elif isinstance(config, dict):
        exp = Experiment.from_dict(config, "config")
    elif config:
        exp = Experiment.from_json(config)
    else:
        exp = get_preset(preset or "tiny")
    pairs = ([("data.path", data)] if data else []) + override_pairs(overrides)
    for key, value in pairs:   # one pair at a time, so a later setting wins even across the image_size shortcut
        exp = exp.override({key: value})
    return exp.validate()


def override_pairs(overrides: Any) -> list[tuple[str, Any]]:
    """(dotted key, value) pairs in order from a dict, one "key=value" string, or a list of strings and dicts."""
    if not overrides:
        return []
    if isinstance(overrides, (dict, str)):
        overrides = [overrides]
    pairs: list[tuple[str, Any]] = []
    for item in overrides:
        if isinstance(item, dict):
            pairs += [(str(k).strip(), v) for k, v in item.items()]
        elif isinstance(item, str) and "=" in item:
            key, value = item.split("=", 1)
            pairs.append((key.strip(), value.strip()))
        else:
            raise ConfigError(f"override {item!r} is not key=value (e.g. train.lr=3e-4) or a dict "
                              f"{{\"train.lr\": 3e-4}}")
    return pairs


@dataclass(frozen=True)
class Placement:
    """Where a run goes, kept apart from the Experiment (what is trained): run folder, mirror, device, resume."""
    run_dir: Path
    mirror_dir: Path | None = None    # a copy of every checkpoint (e.g. Google Drive); None = no mirror
    device: str = "auto"              # auto (cuda if available), cpu, cuda, cuda:1, ...
    resume: str | None = "auto"       # auto, a run or checkpoint folder, or None to start fresh

    def train_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of pipeline.train_* and the Trainer: train_vae(exp, p.run_dir, **p.train_kwargs())."""
        return {"resume": self.resume, "mirror_dir": self.mirror_dir, "device": self.device}

    def describe(self) -> str:
        return (f"run folder: {self.run_dir}\nmirror: {self.mirror_dir or 'none'}\n"
                f"device: {self.device}\nresume: {self.resume or 'no (fresh start)'}")
