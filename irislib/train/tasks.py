"""Training tasks: what one micro-batch costs. The Trainer only sees per-sample loss terms.

`Task` is the whole contract between the Trainer and a task, with its defaults; DiffusionTask, RefinerTask and
VAETask fill it in for the three models irislib trains.
"""
from __future__ import annotations

import abc

import torch

from ..config import MODEL_SECTIONS, VAEConfig
from . import distributed


class Task(abc.ABC):
    """Everything the Trainer calls on a task; only `loss` has no default.

    step: the optimizer step, set by the Trainer before every batch (e.g. for a KL warm-up).
    num_timesteps: T of a diffusion task, so an integer "t" loss entry is logged per quartile; None = no quartiles.
    config_sections: the config sections a checkpoint must match to be resumed.
    """

    step: int = 0
    num_timesteps: int | None = None
    config_sections: tuple[str, ...] = MODEL_SECTIONS

    @abc.abstractmethod
    def loss(self, model, batch: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Per-sample terms [B] of one micro-batch [B, C, H, W]: "loss" is optimised, other float entries are
        logged, an integer "t" entry (with num_timesteps) splits the log into timestep quartiles."""

    @torch.no_grad()
    def probe(self, model, batch: torch.Tensor, generator: torch.Generator) -> None:
        """One forward pass without side effects, for the dead-unit figure."""
        model(batch)

    def state_dict(self) -> dict | None:
        """Task state saved in the checkpoint (None = stateless)."""
        return None

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict() returned."""


class DiffusionTask(Task):
    """Denoising loss: t from the t-sampler, noise from the generator, diffusion.training_losses weighted."""

    config_sections = ("unet", "diffusion")

    def __init__(self, diffusion, t_sampler, patch_size: int = 0):
        self.diffusion = diffusion
        self.t_sampler = t_sampler
        self.num_timesteps = diffusion.num_timesteps
        self.patch_size = patch_size   # train.patch_size: random square crops per sample (0 = whole images)

    def model_kwargs(self, batch: torch.Tensor) -> dict:
        """Extra inputs of the model for this batch (none; the refiner adds its condition)."""
        return {}

    def loss(self, model, batch: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Per-sample terms ("loss", "mse", "vb"...) times the t-sampler's importance weights, plus "t"."""
        if self.patch_size:
            batch = random_crops(batch, self.patch_size, generator)
        t, weights = self.t_sampler.sample(batch.shape[0], batch.device, generator)  # [B], [B]
        noise = torch.randn(batch.shape, generator=generator, device=batch.device, dtype=batch.dtype)
        terms = self.diffusion.training_losses(model, batch, t, model_kwargs=self.model_kwargs(batch), noise=noise)
        self._update_sampler(t, terms["loss"].detach())
        out = {k: v * weights for k, v in terms.items()}
        out["t"] = t
        return out

    def _update_sampler(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        # All ranks see all losses (guided-diffusion's update_with_local_losses), so the sampler state is identical
        # on every rank and rank 0's copy in the checkpoint is the whole truth.
        t_all, l_all = distributed.all_gather_cat(t), distributed.all_gather_cat(losses.float())
        finite = torch.isfinite(l_all)
        if bool(finite.all()):
            self.t_sampler.update(t_all, l_all)
        elif bool(finite.any()):
            self.t_sampler.update(t_all[finite], l_all[finite])

    @torch.no_grad()
    def probe(self, model, batch: torch.Tensor, generator: torch.Generator) -> None:
        """One forward pass at chain indices spread evenly over [0, T) (no t-sampler update), called as
        training_losses calls the model: with the original-scale timesteps model_timesteps(t)."""
        t = torch.linspace(0, self.num_timesteps - 1, batch.shape[0], device=batch.device).long()  # [B]
        noise = torch.randn(batch.shape, generator=generator, device=batch.device, dtype=batch.dtype)
        model(self.diffusion.q_sample(batch, t, noise), self.diffusion.model_timesteps(t), **self.model_kwargs(batch))

    def state_dict(self) -> dict:
        """The t-sampler's state (loss history), saved in trainer_state.pt."""
        return {"t_sampler": self.t_sampler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore state_dict()."""
        self.t_sampler.load_state_dict(state["t_sampler"])


def random_crops(batch: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """One random size x size crop per image [B, C, size, size] (patch diffusion, Wang et al. 2023): a truncated
    UNet only removes noise of std <= max_strength, a local job, so crops teach it at a fraction of the cost of
    whole images and it samples at full size (it is fully convolutional)."""
    h, w = batch.shape[-2:]
    ys = torch.randint(0, h - size + 1, (batch.shape[0],), generator=generator, device=generator.device).tolist()
    xs = torch.randint(0, w - size + 1, (batch.shape[0],), generator=generator, device=generator.device).tolist()
    return torch.stack([img[..., y:y + size, x:x + size] for img, y, x in zip(batch, ys, xs)])


class VAETask(Task):
    """VAE loss per sample: recon + beta_t * KL + edge_weight * edge, beta_t ramping linearly over kl_warmup_steps.

    recon: mse or l1, mean over pixels. KL(q(z|x) || N(0, I)) summed over latent dims, then divided by the number
    of pixels (C*H*W) in the loss, so beta is per pixel and means the same at 32, 64 or 128 px (the logged "kl"
    is the per-sample sum); kl_per_dim=True averages over latent dims instead. edge: L1 between the x/y finite
    differences of recon and target, mean over pixels (keeps the pupil edge sharp).
    """

    config_sections = ("vae",)

    def __init__(self, vae_cfg: VAEConfig, *, kl_per_dim: bool = False):
        self.cfg = vae_cfg
        self.kl_per_dim = kl_per_dim

    def beta_at(self, step: int) -> float:
        """KL weight after linear warm-up from 0 over kl_warmup_steps."""
        warm = self.cfg.kl_warmup_steps
        return self.cfg.beta * (min(1.0, step / warm) if warm > 0 else 1.0)

    def loss(self, model, batch: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """{"loss", "recon", "kl", "edge"?}, each [B]."""
        recon, mean, logvar = model(batch, generator)
        return self.terms(batch, recon.float(), mean.float(), logvar.float())

    def terms(self, x, recon, mean, logvar) -> dict[str, torch.Tensor]:
        """The loss terms from a forward pass (separate so they can be checked against a reference)."""
        err = recon - x.float()
        pix = err.pow(2) if self.cfg.recon_loss == "mse" else err.abs()
        rec = pix.flatten(1).mean(1)  # [B]
        kl_elem = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)
        kl = kl_elem.flatten(1).mean(1) if self.kl_per_dim else kl_elem.flatten(1).sum(1)  # [B]
        out = {"recon": rec, "kl": kl}
        total = rec + self.beta_at(self.step) * kl / x[0].numel()
        if self.cfg.edge_weight > 0:
            out["edge"] = edge_loss(recon, x.float())
            total = total + self.cfg.edge_weight * out["edge"]
        out["loss"] = total
        return out

    @torch.no_grad()
    def probe(self, model, batch: torch.Tensor, generator: torch.Generator) -> None:
        """One forward pass for the dead-unit figure."""
        model(batch, generator)


def edge_loss(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample mean |d/dx recon - d/dx target| + mean |d/dy recon - d/dy target|; [B, C, H, W] -> [B]."""
    dx = (recon[..., :, 1:] - recon[..., :, :-1]) - (target[..., :, 1:] - target[..., :, :-1])
    dy = (recon[..., 1:, :] - recon[..., :-1, :]) - (target[..., 1:, :] - target[..., :-1, :])
    return dx.abs().flatten(1).mean(1) + dy.abs().flatten(1).mean(1)


class RefinerTask(DiffusionTask):
    """DiffuseVAE "Form 1": the UNet denoises x conditioned on the frozen VAE's reconstruction of x (extra channels)."""

    config_sections = ("unet", "diffusion", "vae")

    def __init__(self, diffusion, t_sampler, vae):
        super().__init__(diffusion, t_sampler)
        self.vae = vae.eval().requires_grad_(False)

    @torch.no_grad()
    def condition(self, batch: torch.Tensor) -> torch.Tensor:
        """The VAE's deterministic reconstruction decode(mean) of the batch, in [-1, 1]."""
        self.vae.to(batch.device)
        return self.vae.decode(self.vae.encode(batch)[0]).clamp(-1, 1).to(batch.dtype)

    def model_kwargs(self, batch: torch.Tensor) -> dict:
        """The reconstruction as model_kwargs["cond"] (extra input channels)."""
        return {"cond": self.condition(batch)}
