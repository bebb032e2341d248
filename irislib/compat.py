"""Import guided-diffusion / improved-diffusion checkpoints given the command-line flags they were trained with.

`load_guided_diffusion(ckpt, flags)` builds an irislib UNet from the flags and loads the weights strictly (the keys
are the same, see models/unet.py). When flags and checkpoint disagree, the error names the flag that differs, read
off the checkpoint's own shapes, instead of torch's wall of missing keys.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch

from .config import ConfigError, DataConfig, DiffusionConfig, Experiment, UNetConfig, VAEConfig, TrainConfig
from .config import _did_you_mean
from .models.unet import UNet

# guided_diffusion.script_util.model_and_diffusion_defaults(), copied so runtime code need not import it.
GUIDED_DEFAULTS: dict[str, Any] = dict(
    image_size=64, num_channels=128, num_res_blocks=2, num_heads=4, num_heads_upsample=-1, num_head_channels=-1,
    attention_resolutions="16,8", channel_mult="", dropout=0.0, class_cond=False, use_checkpoint=False,
    use_scale_shift_norm=True, resblock_updown=False, use_fp16=False, use_new_attention_order=False,
    learn_sigma=False, diffusion_steps=1000, noise_schedule="linear", timestep_respacing="", use_kl=False,
    predict_xstart=False, rescale_timesteps=False, rescale_learned_sigmas=False)
_TRAIN_FLAGS = {"lr": float, "batch_size": int, "microbatch": int, "weight_decay": float,
                "ema_rate": lambda v: [float(r) for r in str(v).split(",") if r.strip()]}
# Flags of guided-diffusion's scripts that do not describe the model or the diffusion; accepted and ignored.
_IGNORED = {"data_dir", "lr_anneal_steps", "log_interval", "save_interval",
            "resume_checkpoint", "fp16_scale_growth", "clip_denoised", "num_samples", "use_ddim", "model_path",
            "classifier_path", "classifier_scale", "in_channels"}
_CKPT_KEYS = ("ema_0.9999", "ema", "model", "state_dict", "model_state_dict")


def _flag(flags: Mapping[str, Any], name: str) -> Any:
    """A flag coerced to the type of its guided-diffusion default ("True", "16,8", "0.1" as strings are fine)."""
    value, default = flags.get(name, GUIDED_DEFAULTS[name]), GUIDED_DEFAULTS[name]
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no", "t", "f", "y", "n"):
                    raise ValueError("expected true or false")
                return value.lower() in ("true", "1", "yes", "t", "y")
            return bool(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"guided-diffusion flag {name}={value!r} is not a valid {type(default).__name__} "
                          f"({e})") from None


def _int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _check_flag_names(flags: Mapping[str, Any]) -> None:
    known = set(GUIDED_DEFAULTS) | set(_TRAIN_FLAGS) | _IGNORED | {"schedule_sampler"}
    for name in flags:
        if name not in known and not name.startswith("classifier_"):
            raise ConfigError(f"unknown guided-diffusion flag {name!r}{_did_you_mean(name, sorted(known))}")
    if _flag(flags, "class_cond"):
        raise ConfigError("class_cond=True: class-conditional guided-diffusion models are not supported by irislib; "
                          "use an unconditional checkpoint")


def unet_config_from_flags(flags: Mapping[str, Any], in_channels: int = 3) -> UNetConfig:
    """UNetConfig for guided-diffusion flags; missing flags take model_and_diffusion_defaults()."""
    _check_flag_names(flags)
    cfg = UNetConfig(
        image_size=_flag(flags, "image_size"), in_channels=int(flags.get("in_channels", in_channels)),
        num_channels=_flag(flags, "num_channels"), num_res_blocks=_flag(flags, "num_res_blocks"),
        channel_mult=_int_list(_flag(flags, "channel_mult")),
        attention_resolutions=_int_list(_flag(flags, "attention_resolutions")),
        num_heads=_flag(flags, "num_heads"), num_head_channels=_flag(flags, "num_head_channels"),
        num_heads_upsample=_flag(flags, "num_heads_upsample"), dropout=_flag(flags, "dropout"),
        learn_sigma=_flag(flags, "learn_sigma"), use_scale_shift_norm=_flag(flags, "use_scale_shift_norm"),
        resblock_updown=_flag(flags, "resblock_updown"), use_checkpoint=_flag(flags, "use_checkpoint"),
        use_new_attention_order=_flag(flags, "use_new_attention_order"))
    cfg.validate("flags")
    return cfg


def experiment_from_flags(flags: Mapping[str, Any], in_channels: int = 3) -> Experiment:
    """An Experiment whose unet and diffusion sections (and image size / channels) follow guided-diffusion flags."""
    unet = unet_config_from_flags(flags, in_channels)
    diffusion = DiffusionConfig(
        diffusion_steps=_flag(flags, "diffusion_steps"), noise_schedule=_flag(flags, "noise_schedule"),
        timestep_respacing=_flag(flags, "timestep_respacing"), use_kl=_flag(flags, "use_kl"),
        predict_xstart=_flag(flags, "predict_xstart"), rescale_learned_sigmas=_flag(flags, "rescale_learned_sigmas"))
    if "schedule_sampler" in flags:
        diffusion.schedule_sampler = str(flags["schedule_sampler"])
    train = TrainConfig(**{k: t(flags[k]) for k, t in _TRAIN_FLAGS.items() if k in flags})
    if _flag(flags, "use_fp16"):
        train.precision = "fp16"
    size, ch = unet.image_size, unet.in_channels
    exp = Experiment(unet=unet, diffusion=diffusion, vae=VAEConfig(image_size=size, in_channels=ch),
                     data=DataConfig(image_size=size, channels=ch if ch in (1, 3) else 1), train=train)
    exp.diffusion.validate()
    exp.train.validate()
    return exp


def timestep_scale_from_flags(flags: Mapping[str, Any]) -> float:
    """1000/T when the model was trained with rescale_timesteps=True (improved-diffusion's default), else 1."""
    return 1000.0 / _flag(flags, "diffusion_steps") if _flag(flags, "rescale_timesteps") else 1.0


def read_state_dict(path_or_state_dict: str | Path | Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The UNet state dict from a .pt path, a state dict, or a wrapper dict holding one (EMA preferred)."""
    sd: Any = path_or_state_dict
    if isinstance(sd, (str, Path)):
        path = Path(sd)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # pickle errors, truncated files, non-weights content
            raise ValueError(f"could not read {path} as weights (torch.load weights_only=True): {e}") from None
    if not isinstance(sd, Mapping):
        raise ValueError(f"expected a state dict (mapping of tensors), got {type(sd).__name__}")
    for key in _CKPT_KEYS:  # wrappers: {"ema_0.9999": sd, "model": sd, ...}
        if key in sd and isinstance(sd[key], Mapping):
            sd = sd[key]
            break
    sd = {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}  # DDP prefix
    if "input_blocks.0.0.weight" not in sd:
        raise ValueError("this is not a guided-diffusion UNet state dict (no input_blocks.0.0.weight); "
                         f"its first keys are {list(sd)[:5]}")
    return sd


def infer_flags(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Architecture flags read off a guided-diffusion state dict's keys and shapes (image_size is not stored)."""
    mc = sd["time_embed.0.weight"].shape[1]
    in_ch = sd["input_blocks.0.0.weight"].shape[1]
    n_out = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("output_blocks."))
    # The first output block holding an upsampler (conv or up-ResBlock) closes level L-1: index = num_res_blocks.
    ups = sorted(i for i in range(n_out) if _upsampler_kind(sd, i))
    nrb = ups[0] if ups else n_out - 1
    levels = n_out // (nrb + 1)
    mult = [sd[f"output_blocks.{(levels - 1 - lv) * (nrb + 1)}.0.out_layers.3.weight"].shape[0] // mc
            for lv in range(levels)]
    attn_ds = {2 ** (levels - 1 - i // (nrb + 1)) for i in range(n_out) if any(
        k.startswith(f"output_blocks.{i}.") and ".qkv." in k for k in sd)}
    emb_w = sd["input_blocks.1.0.emb_layers.1.weight"].shape[0]
    return dict(num_channels=mc, in_channels=in_ch, num_res_blocks=nrb, channel_mult=mult,
                learn_sigma=sd["out.2.weight"].shape[0] == 2 * in_ch,
                use_scale_shift_norm=emb_w == 2 * sd["input_blocks.1.0.out_layers.3.weight"].shape[0],
                resblock_updown=bool(ups) and _upsampler_kind(sd, ups[0]) == "resblock",
                class_cond="label_emb.weight" in sd, attention_ds=sorted(attn_ds))


def _upsampler_kind(sd: Mapping[str, torch.Tensor], i: int) -> str:
    for j in (1, 2):
        if f"output_blocks.{i}.{j}.conv.weight" in sd:
            return "conv"
        if f"output_blocks.{i}.{j}.in_layers.0.weight" in sd:
            return "resblock"
    return ""


def _flag_differences(sd: Mapping[str, torch.Tensor], cfg: UNetConfig) -> list[str]:
    """'flag=value (checkpoint: value)' for each architecture flag the checkpoint contradicts."""
    try:
        got = infer_flags(sd)
    except (KeyError, ValueError, IndexError, ZeroDivisionError):
        return []
    mult = cfg.resolved_channel_mult()
    ours = dict(num_channels=cfg.num_channels, num_res_blocks=cfg.num_res_blocks, learn_sigma=cfg.learn_sigma,
                use_scale_shift_norm=cfg.use_scale_shift_norm, resblock_updown=cfg.resblock_updown,
                channel_mult=mult, class_cond=False)
    diffs = [f"{k}={ours[k]} (the checkpoint has {got[k]})" for k in ours if ours[k] != got[k]]
    ds = sorted(d for d in {cfg.image_size // r for r in cfg.attention_resolutions} if d < 2 ** len(mult))
    if not diffs and ds != got["attention_ds"]:
        res = ",".join(str(cfg.image_size // d) for d in got["attention_ds"])
        diffs.append(f"attention_resolutions={','.join(map(str, cfg.attention_resolutions))} (the checkpoint has "
                     f"attention at downsample rates {got['attention_ds']}, i.e. {res or 'none'} at "
                     f"image_size={cfg.image_size})")
    return diffs


def _mismatch_error(sd: Mapping[str, torch.Tensor], model: UNet, source: str) -> ValueError | None:
    ref = model.state_dict()
    missing = [k for k in ref if k not in sd]
    unexpected = [k for k in sd if k not in ref]
    shapes = [f"{k} {tuple(sd[k].shape)} in the checkpoint vs {tuple(ref[k].shape)} from the flags" for k in ref
              if k in sd and tuple(sd[k].shape) != tuple(ref[k].shape)]
    if not (missing or unexpected or shapes):
        return None
    diffs = _flag_differences(sd, model.cfg)
    lines = [f"{source} does not match the guided-diffusion flags."]
    lines.append(("Flags that differ: " + "; ".join(diffs)) if diffs else
                 "Check num_channels, num_res_blocks, channel_mult, attention_resolutions, learn_sigma, "
                 "use_scale_shift_norm and resblock_updown.")
    for name, items in (("missing (expected by the flags, absent from the checkpoint)", missing),
                        ("unexpected (in the checkpoint, not expected by the flags)", unexpected),
                        ("shape-mismatched", shapes)):
        if items:
            lines.append(f"{len(items)} {name} keys, e.g. {', '.join(items[:3])}")
    return ValueError("\n".join(lines))


def load_guided_diffusion(path_or_state_dict: str | Path | Mapping[str, Any], flags: Mapping[str, Any] | None = None,
                          ) -> UNet:
    """irislib UNet holding a guided-/improved-diffusion checkpoint trained with `flags` (a dict of its CLI flags)."""
    flags = dict(flags or {})
    source = str(path_or_state_dict) if isinstance(path_or_state_dict, (str, Path)) else "the state dict"
    sd = read_state_dict(path_or_state_dict)
    cfg = unet_config_from_flags(flags, in_channels=int(sd["input_blocks.0.0.weight"].shape[1]))
    with torch.device("meta"):  # shape check without allocating or initialising weights
        skeleton = UNet(cfg)
    err = _mismatch_error(sd, skeleton, source)
    if err is not None:
        raise err
    model = UNet(cfg, timestep_scale=timestep_scale_from_flags(flags))
    model.load_state_dict(sd, strict=True)
    return model


def import_guided(checkpoint: str | Path | Mapping[str, Any], flags: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write an irislib run directory (config.json + model.safetensors) for a guided-diffusion checkpoint."""
    from . import checkpoint as store
    model = load_guided_diffusion(checkpoint, flags)
    exp = experiment_from_flags(flags, in_channels=model.in_channels)
    exp.unet.timestep_scale = model.timestep_scale  # so load_run rebuilds the same model from config.json
    meta = {"source": "guided-diffusion", "flags": json.dumps(dict(flags), default=str),
            "timestep_scale": str(model.timestep_scale)}
    return store.write_bare_run(out_dir, exp.to_dict(), {"model.safetensors": model.state_dict()}, metadata=meta,
                                source="guided-diffusion")
