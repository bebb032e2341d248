"""Diagonal-covariance Gaussian mixture over flattened VAE latents, fitted by EM after VAE training.

Sampling the VAE from N(0, I) lands in holes of the aggregate posterior (blurry, implausible eyes); a mixture fitted
to the training latents samples where the data is (Ghosh et al. 2020, "From variational to deterministic
autoencoders", ex-post density estimation). The state is in buffers, so it saves and loads with the VAE weights.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn


class GaussianMixturePrior(nn.Module):
    """GMM with `n_components` diagonal Gaussians in `dim` dimensions; `fit` by EM, `sample` draws [n, dim]."""

    def __init__(self, n_components: int, dim: int, var_floor: float = 1e-4):
        super().__init__()
        if n_components < 1 or dim < 1:
            raise ValueError(f"GaussianMixturePrior needs n_components >= 1 and dim >= 1, got {n_components}, {dim}")
        self.n_components, self.dim = n_components, dim
        self.var_floor = var_floor  # relative to the data variance per dimension: keeps collapsed components finite
        self.register_buffer("weights", torch.full((n_components,), 1.0 / n_components))
        self.register_buffer("means", torch.zeros(n_components, dim))
        self.register_buffer("log_vars", torch.zeros(n_components, dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def log_prob_components(self, x: torch.Tensor) -> torch.Tensor:
        """log(w_k N(x | mu_k, diag var_k)) for x [N, D] -> [N, K] (float64 inside)."""
        return _component_ll(x.double(), self.weights.double(), self.means.double(), self.log_vars.double()).float()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Mixture log-density of x [N, D] -> [N]."""
        return torch.logsumexp(self.log_prob_components(x), dim=1)

    @torch.no_grad()
    def fit(self, latents: torch.Tensor, iters: int = 100, generator: torch.Generator | None = None,
            tol: float = 1e-7) -> "GaussianMixturePrior":
        """Fit by EM from a k-means++ initialisation drawn with `generator`; latents [N, D]. Returns self."""
        x = latents.detach().reshape(latents.shape[0], -1).to(self.means.device, torch.float64)
        n, k = x.shape[0], self.n_components
        if x.shape[1] != self.dim:
            raise ValueError(f"latents have {x.shape[1]} dimensions per sample, the prior was built for {self.dim}")
        if n < k:
            raise ValueError(f"need at least n_components={k} latents to fit the mixture, got {n}")
        if not torch.isfinite(x).all():
            raise ValueError("latents contain NaN or inf; check the VAE encoder before fitting the prior")
        floor = self.var_floor * x.var(0, unbiased=False).clamp_min(1e-12)  # [D]
        mu = _kmeanspp(x, k, generator)  # [K, D]
        log_var = x.var(0, unbiased=False).clamp_min(floor).log().expand(k, -1).clone()  # [K, D]
        w = torch.full((k,), 1.0 / k, dtype=x.dtype, device=x.device)
        prev = -math.inf
        for _ in range(iters):
            # E-step: responsibilities r [N, K].
            lp = _component_ll(x, w, mu, log_var)
            total = torch.logsumexp(lp, dim=1, keepdim=True)  # [N, 1]
            r = (lp - total).exp()
            # M-step: weighted moments.
            nk = r.sum(0) + 1e-10  # [K]
            mu = (r.T @ x) / nk[:, None]
            var = _centred_variances(x, r, mu, nk)  # [K, D]
            w, log_var = nk / nk.sum(), torch.maximum(var, floor).log()
            mean_ll = total.mean().item()
            if abs(mean_ll - prev) < tol * max(1.0, abs(mean_ll)):
                break
            prev = mean_ll
        self.weights.copy_(w)
        self.means.copy_(mu)
        self.log_vars.copy_(log_var)
        self.fitted.fill_(True)
        return self

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw n points [n, D]; with a generator the draw is reproducible (on the generator's device)."""
        device = generator.device if generator is not None else self.means.device
        w, mu, log_var = self.weights.to(device), self.means.to(device), self.log_vars.to(device)
        comp = torch.multinomial(w, n, replacement=True, generator=generator)  # [n]
        eps = torch.randn(n, self.dim, generator=generator, device=device)
        return (mu[comp] + (0.5 * log_var[comp]).exp() * eps).to(self.means.device)


def _kmeanspp(x: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """k-means++ seeding: each new centre drawn with probability proportional to squared distance [k, D]."""
    gen_device = generator.device if generator is not None else x.device
    first = torch.randint(0, x.shape[0], (1,), generator=generator, device=gen_device).item()
    centres = [x[first]]
    d2 = ((x - centres[0]) ** 2).sum(1)  # [N]
    for _ in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1.0 / len(d2))
        idx = torch.multinomial(probs.to(gen_device), 1, generator=generator).item()
        centres.append(x[idx])
        d2 = torch.minimum(d2, ((x - x[idx]) ** 2).sum(1))
    return torch.stack(centres)


def _component_ll(x: torch.Tensor, w: torch.Tensor, mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """log(w_k N(x | mu_k, diag exp(log_var_k))) [N, K], one component at a time ([N, D] memory, not [N, K, D]).

    The Mahalanobis term is summed from centred differences (x - mu_k)^2 / var_k: the expanded form
    x^2/var - 2 x mu/var + mu^2/var cancels catastrophically for a near-constant dimension (var ~ 1e-16 times
    the data scale), which swamped every real dimension.
    """
    inv_var = (-log_var).exp()  # [K, D]
    maha = torch.stack([((x - mu[k]) ** 2) @ inv_var[k] for k in range(mu.shape[0])], dim=1)  # [N, K]
    return -0.5 * (maha + log_var.sum(1) + x.shape[1] * math.log(2 * math.pi)) + w.clamp_min(1e-300).log()


def _centred_variances(x: torch.Tensor, r: torch.Tensor, mu: torch.Tensor, nk: torch.Tensor) -> torch.Tensor:
    """Responsibility-weighted variances [K, D] from centred squares (E[x^2] - mu^2 cancels like the above)."""
    return torch.stack([r[:, k] @ (x - mu[k]) ** 2 for k in range(mu.shape[0])]) / nk[:, None]
