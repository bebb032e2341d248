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
    """t ~ Uniform{0..T-1}, weights 1."""

    def __init__(self, diffusion):
        self.num_timesteps = int(diffusion.num_timesteps)

    def weights(self) -> np.ndarray:
        """Unnormalised sampling weight per timestep [T]."""
        return np.ones([self.num_timesteps], dtype=np.float64)

    def sample(self, batch_size: int, device, generator: torch.Generator | None = None):
        """Timesteps [B] (long) and importance weights [B] (float32) on `device`."""
        t = torch.randint(0, self.num_timesteps, (batch_size,), generator=generator, device=_gen_device(generator))
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
        """True once every timestep has a full loss history."""
        return bool((self.loss_counts == self.history_per_term).all())

    def weights(self) -> np.ndarray:
        if not self.warmed_up():
            return np.ones([self.num_timesteps], dtype=np.float64)
        w = np.sqrt(np.mean(self.loss_history ** 2, axis=-1))
        w /= np.sum(w)
        w *= 1 - self.uniform_prob
        w += self.uniform_prob / len(w)
        return w

    def sample(self, batch_size: int, device, generator: torch.Generator | None = None):
        if not self.warmed_up():
            return super().sample(batch_size, device, generator)
        p = self.weights()
        p = p / p.sum()
        probs = torch.from_numpy(p).to(_gen_device(generator))
        idx = torch.multinomial(probs, batch_size, replacement=True, generator=generator).cpu()
        weights = torch.from_numpy(1.0 / (len(p) * p[idx.numpy()])).float()   # importance weights, mean 1 under p
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
