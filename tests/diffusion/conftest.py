"""Shared helpers for the diffusion tests: the guided-diffusion peer, a fixed toy model, an exact Gaussian denoiser."""
import warnings

import numpy as np
import pytest
import torch

from irislib.config import DiffusionConfig
from irislib.diffusion import GaussianDiffusion

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)   # the peer's fp16_util uses deprecated torch.cuda.amp decorators
    import guided_diffusion.script_util  # noqa: F401  (the peer; imported once here, quietly)


@pytest.fixture(autouse=True)
def _seeded_single_thread():
    """Seed, and use one thread: these tiny tensors run ~10x slower with several threads on a loaded CPU."""
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _peer(**flags):
    """guided-diffusion's diffusion for the same flags (its create_gaussian_diffusion)."""
    from guided_diffusion.script_util import create_gaussian_diffusion
    return create_gaussian_diffusion(**flags)


def _ours(steps=1000, learn_sigma=True, **fields):
    """irislib's diffusion for guided-diffusion-style flags."""
    return GaussianDiffusion(DiffusionConfig(diffusion_steps=steps, **fields), learn_sigma=learn_sigma)


class ToyModel(torch.nn.Module):
    """A fixed, deterministic stand-in for the UNet: a seeded conv plus a timestep-dependent gain, T on any scale."""

    def __init__(self, channels=1, learn_sigma=True, num_timesteps=1000, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        out = channels * (2 if learn_sigma else 1)
        self.conv = torch.nn.Conv2d(channels, out, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.3)
            self.conv.bias.copy_(torch.randn(out, generator=g) * 0.1)
        self.channels, self.learn_sigma, self.num_timesteps = channels, learn_sigma, num_timesteps
        self.calls = []

    def forward(self, x, t, **kwargs):
        self.calls.append(t.detach().clone())
        y = self.conv(x) * (1 + torch.cos(t.float() / self.num_timesteps * 3.0)).view(-1, 1, 1, 1)
        if self.learn_sigma:   # keep the variance half in [-1, 1] like a trained model's
            c = self.channels
            y = torch.cat([y[:, :c], torch.tanh(y[:, c:])], dim=1)
        return y


class GaussianDenoiser(torch.nn.Module):
    """The optimal model for data x_0 ~ N(mu, std^2) per element: eps = E[eps | x_t] in closed form.

    Called with original-scale timesteps; `diffusion` is the full (un-respaced) chain. With learn_sigma it also
    outputs the learned-range value that gives the exact reverse variance Var(x_{t-1} | x_t) of the full chain.
    """

    def __init__(self, diffusion, mu, std, learn_sigma=False):
        super().__init__()
        self.d, self.mu, self.var, self.learn_sigma = diffusion, mu, std ** 2, learn_sigma

    def forward(self, x, t, **kwargs):
        t = t.long().cpu().numpy()
        ab = torch.from_numpy(self.d.alphas_cumprod[t]).to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
        a, s2 = ab.sqrt(), 1 - ab
        x0 = self.mu + a * self.var / (ab * self.var + s2) * (x - a * self.mu)   # E[x_0 | x_t]
        eps = (x - a * x0) / s2.sqrt()
        if not self.learn_sigma:
            return eps
        # Var(x_{t-1} | x_t) = posterior variance + coef1^2 Var(x_0 | x_t), mapped onto [-1, 1] of the range.
        var_x0 = self.var * (1 - self.d.alphas_cumprod[t]) / (self.d.alphas_cumprod[t] * self.var + 1
                                                                - self.d.alphas_cumprod[t])
        v = self.d.posterior_variance[t] + self.d.posterior_mean_coef1[t] ** 2 * var_x0
        lo, hi = self.d.posterior_log_variance_clipped[t], np.log(self.d.betas[t])
        frac = np.where(t == 0, 0.0, (np.log(np.maximum(v, 1e-300)) - lo) / (hi - lo))
        v_out = torch.from_numpy(2 * frac - 1).to(x.dtype).view(-1, *([1] * (x.ndim - 1))).expand_as(eps)
        return torch.cat([eps, v_out], dim=1)


@pytest.fixture
def peer():
    """Factory: guided-diffusion's diffusion for flags."""
    return _peer


@pytest.fixture
def ours():
    """Factory: irislib's diffusion for the same flags."""
    return _ours


@pytest.fixture
def toy_model():
    """The ToyModel class."""
    return ToyModel


@pytest.fixture
def gaussian_denoiser():
    """The GaussianDenoiser class."""
    return GaussianDenoiser
