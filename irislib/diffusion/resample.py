"""How training draws timesteps t: uniformly, or importance-sampled by the loss (guided-diffusion's resample.py).

Samplers return (t, weights) with E[weight * loss(t)] equal to the uniform mean, so the objective is unchanged.
Unlike guided-diffusion they take a torch.Generator (reproducible, resumable) and have no torch.distributed code:
`update` expects the timesteps and losses already gathered from every rank, in the same order on every rank.
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import T_SAMPLERS, ConfigError


class UniformSampler:
    """t ~ Uniform{0..n-1}, weights 1; n = T, or the truncated range of `diffusion.max_strength`."""

    def __init__(self, diffusion):
        self.num_timesteps = int(diffusion.num_timesteps)
        self.num_trained = trained_timesteps(diffusion)

    def weights(self) -> np.ndarray:
        """Unnormalised sampling weight per timestep [T] (0 above the truncation)."""
        w = np.zeros([self.num_timesteps], dtype=np.float64)
        w[:self.num_trained] = 1.0
        return w

    def sample(self, batch_size: int, device, generator: torch.Generator | None = None):
        """Timesteps [B] (long) and importance weights [B] (float32) on `device`."""
        t = torch.randint(0, self.num_trained, (batch_size,), generator=generator, device=_gen_device(generator))
        return t.to(device), torch.ones(batch_size, device=device)

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Uniform sampling ignores the losses."""

    def state_dict(self) -> dict:
        return {"num_timesteps": self.num_timesteps}

    def load_state_dict(self, state: dict) -> None:
        _check_steps(state, self.num_timesteps)


class LossSecondMomentSampler(UniformSampler):
    """p(t) proportional to sqrt(E[loss_t^2]) over the last `history_per_term` losses per t, mixed with uniform.

    Uniform until every t has a full history (warm-up), as improved-DDPM §3.3 / guided-diffusion.
    """

    def __init__(self, diffusion, history_per_term: int = 10, uniform_prob: float = 0.001):
        super().__init__(diffusion)
        self.history_per_term = int(history_per_term)
        self.uniform_prob = float(uniform_prob)
        self.loss_history = np.zeros([self.num_timesteps, self.history_per_term], dtype=np.float64)
        self.loss_counts = np.zeros([self.num_timesteps], dtype=np.int64)

    def warmed_up(self) -> bool:
        """True once every trained timestep has a full loss history."""
        return bool((self.loss_counts[:self.num_trained] == self.history_per_term).all())

    def weights(self) -> np.ndarray:
        if not self.warmed_up():
            return super().weights()
        n = self.num_trained
        w = np.zeros([self.num_timesteps], dtype=np.float64)
        w[:n] = np.sqrt(np.mean(self.loss_history[:n] ** 2, axis=-1))
        w[:n] /= np.sum(w[:n])
        w[:n] *= 1 - self.uniform_prob
        w[:n] += self.uniform_prob / n
        return w

    def sample(self, batch_size: int, device, generator: torch.Generator | None = None):
        if not self.warmed_up():
            return super().sample(batch_size, device, generator)
        p = self.weights()
        p = p / p.sum()
        probs = torch.from_numpy(p).to(_gen_device(generator))
        idx = torch.multinomial(probs, batch_size, replacement=True, generator=generator).cpu()
        # importance weights, mean 1 under p: E_p[w * loss] is the uniform mean over the trained range
        weights = torch.from_numpy(1.0 / (self.num_trained * p[idx.numpy()])).float()
        return idx.to(device), weights.to(device)

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Record per-sample losses [N] at timesteps [N] (gathered from all ranks)."""
        ts = torch.as_tensor(t).detach().flatten().cpu().long().tolist()
        ls = torch.as_tensor(losses).detach().flatten().cpu().double().tolist()
        if len(ts) != len(ls):
            raise ValueError(f"update got {len(ts)} timesteps but {len(ls)} losses; pass one loss per timestep")
        for ti, loss in zip(ts, ls):
            if self.loss_counts[ti] == self.history_per_term:
                # Shift out the oldest loss.
                self.loss_history[ti, :-1] = self.loss_history[ti, 1:]
                self.loss_history[ti, -1] = loss
            else:
                self.loss_history[ti, self.loss_counts[ti]] = loss
                self.loss_counts[ti] += 1

    def state_dict(self) -> dict:
        """Plain types and tensors only, so it loads with torch.load(weights_only=True)."""
        return {"num_timesteps": self.num_timesteps, "history_per_term": self.history_per_term,
                "uniform_prob": self.uniform_prob, "loss_history": torch.from_numpy(self.loss_history.copy()),
                "loss_counts": torch.from_numpy(self.loss_counts.copy())}

    def load_state_dict(self, state: dict) -> None:
        _check_steps(state, self.num_timesteps)
        history = torch.as_tensor(state["loss_history"]).double().numpy()
        if history.shape != (self.num_timesteps, int(state["history_per_term"])):
            raise ValueError(f"loss-second-moment state has history shape {history.shape}; "
                             f"expected ({self.num_timesteps}, {state['history_per_term']})")
        self.history_per_term = int(state["history_per_term"])
        self.uniform_prob = float(state["uniform_prob"])
        self.loss_history = history.copy()
        self.loss_counts = torch.as_tensor(state["loss_counts"]).long().numpy().copy()


def trained_timesteps(diffusion) -> int:
    """How many timesteps (0..n-1) training covers: all T, or those up to `max_strength`'s noise std.

    Truncated training (ES-DDPM, Lyu et al. 2022; Truncated DPM, Zheng et al. 2022) spends the UNet's capacity on
    the noise levels hybrid sampling starts from. The cut includes the timestep that `strength=max_strength` maps
    to (the nearest noise std), so sampling at exactly max_strength stays inside the trained range.
    """
    max_strength = float(getattr(diffusion.cfg, "max_strength", 1.0))
    stds = np.asarray(diffusion.sqrt_one_minus_alphas_cumprod)
    if max_strength >= 1.0:
        return len(stds)
    nearest = int(np.argmin(np.abs(stds - max_strength)))
    below = int(np.count_nonzero(stds <= max_strength))
    return max(1, nearest + 1, below)


def make_t_sampler(name: str, diffusion) -> UniformSampler:
    """Timestep sampler by DiffusionConfig.schedule_sampler name: uniform or loss-second-moment."""
    if name == "uniform":
        return UniformSampler(diffusion)
    if name == "loss-second-moment":
        return LossSecondMomentSampler(diffusion)
    raise ConfigError(f"diffusion.schedule_sampler={name!r} is not one of {', '.join(T_SAMPLERS)}")


def _gen_device(generator: torch.Generator | None):
    return generator.device if generator is not None else "cpu"


def _check_steps(state: dict, num_timesteps: int) -> None:
    if int(state.get("num_timesteps", num_timesteps)) != num_timesteps:
        raise ValueError(f"timestep-sampler state is for {state['num_timesteps']} diffusion steps, but this "
                         f"diffusion has {num_timesteps}; resume with the same diffusion.diffusion_steps")
