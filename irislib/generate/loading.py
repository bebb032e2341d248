"""Trained runs back into models: a run directory or a manifest name -> (UNet, diffusion, Experiment) or (VAE, prior).

Below both pipeline.py (training, one-shot sampling) and sampler.py (HybridSampler.load); pipeline re-exports these
names, so `irislib.load_unet` and `pipeline.load_vae` keep working."""
from __future__ import annotations

import warnings
from pathlib import Path

from .. import checkpoint
from ..config import ConfigError, Experiment
from ..device import resolve_device  # noqa: F401 (re-exported: pipeline and sampler take it from here)
from ..diffusion import GaussianDiffusion
from ..models.prior import GaussianMixturePrior
from ..models.unet import UNet
from ..models.vae import VAE


def build_diffusion(exp: Experiment) -> GaussianDiffusion:
    """The Gaussian diffusion of an experiment (tables only, no parameters)."""
    return GaussianDiffusion(exp.diffusion, learn_sigma=exp.unet.learn_sigma)


def resolve_run(ref: str | Path) -> Path:
    """A run directory, or a manifest name fetched (sha256-checked) into the cache."""
    path = Path(ref)
    if path.exists():
        return path
    from .. import hub
    try:
        return Path(hub.fetch_run(str(ref)))
    except KeyError:
        raise FileNotFoundError(f"{ref!r} is neither a run directory nor a name in checkpoints_manifest.json "
                                f"(see `irislib fetch --list`)") from None


def load_unet(ref: str | Path, device="cpu", use_ema: bool = True):
    """(UNet in eval mode, GaussianDiffusion, Experiment) from a diffusion run directory or manifest name."""
    exp, state = checkpoint.load_run(resolve_run(ref), use_ema=use_ema)
    if "input_blocks.0.0.weight" not in state:
        raise ConfigError(f"{ref} is not a diffusion (UNet) run; if it is the VAE run, pass it as --vae")
    model = UNet(exp.unet)
    model.load_state_dict(state)
    return model.to(device).eval(), build_diffusion(exp), exp


def load_vae(ref: str | Path, device="cpu", use_ema: bool = True, with_prior: bool = True):
    """(VAE in eval mode, fitted prior or None) from a VAE run directory or manifest name."""
    run = resolve_run(ref)
    exp, state = checkpoint.load_run(run, use_ema=use_ema)
    if "input_blocks.0.0.weight" in state:
        raise ConfigError(f"{ref} is a diffusion (UNet) run, not a VAE run; pass it as --unet")
    vae = VAE(exp.vae)
    vae.load_state_dict(state)
    prior = None
    if with_prior and exp.vae.prior == "gmm":
        prior_state = checkpoint.load_prior(run)
        if prior_state is None:
            warnings.warn(f"{run} has no fitted prior for its newest checkpoint (vae.prior=gmm is fitted when "
                          f"training ends); resume its training to the end to fit one before drafting")
        else:
            prior = GaussianMixturePrior(*_prior_dims(prior_state))
            prior.load_state_dict(prior_state)
            prior = prior.to(device)
    return vae.to(device).eval(), prior


def _prior_dims(state: dict) -> tuple[int, int]:
    k, d = state["means"].shape
    return int(k), int(d)
