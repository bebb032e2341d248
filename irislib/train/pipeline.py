"""Entry points shared by the notebooks and the CLI: train the VAE / diffusion model, load runs, sample."""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import torch

from .. import checkpoint, imageio
from ..generate import hybrid
from ..config import Experiment, Placement
from ..data import make_dataset
from ..diffusion.resample import make_t_sampler
from ..generate.loading import build_diffusion, load_unet, load_vae, resolve_device  # noqa: F401 (re-exported)
from ..models.prior import GaussianMixturePrior
from ..models.unet import UNet
from ..models.vae import VAE
from . import Trainer, distributed
from .tasks import DiffusionTask, RefinerTask, VAETask


def _run_trainer(model, task, dataset, exp: Experiment, place: Placement, *, progress: bool, sample_fn=None,
                 after=None) -> Trainer:
    """Build the Trainer (which resumes) where `place` says and run it, then `after(trainer)`, holding the run
    directory's lock on the writing rank."""
    is_writer = distributed.launch_rank() == 0  # torchrun: only rank 0 writes the run directory
    with checkpoint.run_lock(place.run_dir) if is_writer else contextlib.nullcontext():
        trainer = Trainer(model, task, dataset, exp, place.run_dir, progress=progress, sample_fn=sample_fn,
                          **place.train_kwargs())
        trainer.run()
        if after is not None and trainer.is_main:
            after(trainer)
    return trainer


# --- training ------------------------------------------------------------------------------------------------
def _memory_format(model: torch.nn.Module, exp: Experiment) -> torch.nn.Module:
    """channels_last weights make every conv run NHWC (inputs follow the weights); saved weights are contiguous."""
    return model.to(memory_format=torch.channels_last) if exp.train.channels_last else model


def train_diffusion(exp: Experiment, out: str | Path, resume: str | None = "auto", progress: bool = True, *,
                    mirror_dir: str | Path | None = None, device: str = "auto") -> Path:
    """Train the UNet of `exp` into run directory `out`; resumes from its newest valid checkpoint by default.

    Where it runs is not part of `exp`: mirror_dir gets a copy of every checkpoint (None = none), device is auto,
    cpu, cuda, cuda:1, ... (a config.Placement gives all three: train_diffusion(exp, p.run_dir, **p.train_kwargs()))."""
    exp = exp.validate()
    run_dir = Path(out)
    diffusion = build_diffusion(exp)
    torch.manual_seed(exp.train.seed)  # reproducible initial weights
    model = _memory_format(UNet(exp.unet), exp)
    task = DiffusionTask(diffusion, make_t_sampler(exp.diffusion.schedule_sampler, diffusion), exp.train.patch_size)
    dataset = make_dataset(exp.data)
    top = exp.diffusion.max_strength

    def sample_fn(net, step: int) -> None:
        seeds = list(range(min(exp.train.sample_grid_images, len(dataset))))
        if seeds:  # a truncated model cannot start from pure noise: it redraws training images noised to its top
            x_init = None if top >= 1 else torch.stack([dataset[i] for i in seeds]).to(next(net.parameters()).device)
            res = hybrid.denoise_batch(net, diffusion, seeds, x_init, strength=top, steps=exp.train.sample_grid_steps)
            checkpoint.write_sample_grid(run_dir, step, imageio.make_grid(res.images, nrow=4))

    place = Placement(run_dir, mirror_dir, device, resume)
    _run_trainer(model, task, dataset, exp, place, progress=progress, sample_fn=sample_fn)
    return run_dir


def train_refiner(exp: Experiment, vae_run: str | Path, out: str | Path, resume: str | None = "auto",
                  progress: bool = True, *, mirror_dir: str | Path | None = None, device: str = "auto") -> Path:
    """Train a conditional refiner UNet (VAE reconstruction as extra input channels; DiffuseVAE Form 1);
    mirror_dir and device as in train_diffusion."""
    vae, _ = load_vae(vae_run, device="cpu", with_prior=False)
    exp = dataclasses.replace(exp, vae=vae.cfg).override({"unet.cond_channels": exp.unet.in_channels}).validate()
    run_dir = Path(out)
    diffusion = build_diffusion(exp)
    torch.manual_seed(exp.train.seed)
    model = _memory_format(UNet(exp.unet), exp)
    task = RefinerTask(diffusion, make_t_sampler(exp.diffusion.schedule_sampler, diffusion), vae)
    dataset = make_dataset(exp.data)

    def sample_fn(net, step: int) -> None:
        seeds = list(range(exp.train.sample_grid_images))
        if seeds:
            batch = torch.stack([dataset[i] for i in range(min(len(seeds), len(dataset)))])
            cond = task.condition(batch.to(next(net.parameters()).device))
            # the reconstructions are the drafts: the refiner's condition, from pure noise
            res = hybrid.denoise_batch(net, diffusion, seeds[:len(cond)], cond, strength=1.0,
                                       steps=exp.train.sample_grid_steps)
            checkpoint.write_sample_grid(run_dir, step, imageio.make_grid(torch.cat([cond, res.images]), nrow=4))

    place = Placement(run_dir, mirror_dir, device, resume)
    _run_trainer(model, task, dataset, exp, place, progress=progress, sample_fn=sample_fn)
    return run_dir


def train_vae(exp: Experiment, out: str | Path, resume: str | None = "auto", progress: bool = True, *,
              mirror_dir: str | Path | None = None, device: str = "auto") -> Path:
    """Train the VAE of `exp` into `out`, then fit the Gaussian-mixture prior to its training latents (into the
    checkpoint it was fitted on and its mirror copy); mirror_dir and device as in train_diffusion."""
    exp = exp.validate()
    run_dir = Path(out)
    torch.manual_seed(exp.train.seed)
    model = _memory_format(VAE(exp.vae), exp)
    dataset = make_dataset(exp.data)

    seeds = list(range(exp.train.sample_grid_images))
    gmm = exp.vae.prior == "gmm"

    def sample_fn(net, step: int) -> None:
        if seeds:   # during training the mixture prior does not exist yet: say so on the grid
            grid = imageio.make_grid(hybrid.draw_drafts(net, seeds, device=next(net.parameters()).device), nrow=4)
            checkpoint.write_sample_grid(run_dir, step, imageio.with_caption(
                grid, "z ~ N(0, I): not the prior, fitted after training") if gmm else grid)

    def fit(trainer) -> None:
        vae, prior = _fit_prior(run_dir, exp, dataset, trainer.mirror_dir)
        if seeds:   # the last preview again, drawn as sampling draws it: from the fitted prior
            grid = imageio.make_grid(hybrid.draw_drafts(vae, seeds, prior=prior), nrow=4)
            checkpoint.write_sample_grid(run_dir, trainer.step, imageio.with_caption(grid, "from the fitted prior"))

    fit = fit if gmm else None
    place = Placement(run_dir, mirror_dir, device, resume)
    _run_trainer(model, VAETask(exp.vae), dataset, exp, place, progress=progress, sample_fn=sample_fn, after=fit)
    return run_dir


@torch.no_grad()
def _fit_prior(run_dir: Path, exp: Experiment, dataset, mirror_dir: Path | None):
    """Fit the GMM prior on the EMA VAE's posterior means of the training images (DiffuseVAE: N(0,I) has holes);
    returns (EMA VAE, prior)."""
    vae, _ = load_vae(run_dir, device="cpu", with_prior=False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=False)
    means = torch.cat([vae.encode(x)[0].flatten(1) for x in loader])  # [N, D]
    k = max(1, min(exp.vae.gmm_components, len(means) // 4))
    prior = GaussianMixturePrior(k, means.shape[1])
    prior.fit(means, generator=torch.Generator().manual_seed(exp.train.seed))
    # Into the checkpoint it was fitted on (verified with it) and its mirror copy: the Drive copy must sample like
    # the local run once Colab wipes the VM.
    checkpoint.attach_prior(run_dir, prior.state_dict(), mirror_dir)
    return vae, prior


# --- sampling ------------------------------------------------------------------------------------------------
def sample(unet_run, vae_run=None, out=None, n: int = 16, strength: float = 0.5, steps: int = 50,
           sampler: str = "ddim", seed: int = 0, batch_size: int = 16, device: str = "auto", bit_depth: int = 8,
           use_ema: bool = True, progress: bool = False, respacing: str = ""):
    """Hybrid-sample n images (strength 1 or no VAE = pure noise); writes PNGs, grid.png, settings.json to out.

    strength is the noise std sqrt(1 - alpha_bar) the VAE draft is noised to, not diffusers' fraction of steps.

    One-shot convenience over `HybridSampler` (which keeps the models loaded between draws)."""
    from ..generate.sampler import HybridSampler, SampleConfig
    cfg = SampleConfig(n=n, strength=strength, steps=steps, sampler=sampler, seed=seed, batch_size=batch_size,
                       respacing=respacing).validate()
    result = HybridSampler.load(unet_run, vae_run, device, use_ema).sample(cfg, progress=progress)
    if out is not None:
        result.save(out, bit_depth)
    return result
