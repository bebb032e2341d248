"""Gaussian diffusion: float64 noise tables, q(x_t | x_0), the posterior, p(x_{t-1} | x_t) and the training losses.

The maths equals guided-diffusion's `GaussianDiffusion` + `SpacedDiffusion` for the same flags (docs/design.md, contract 1):
the tables carry its names, `training_losses` returns its per-sample terms. The model is always called with
timesteps on the ORIGINAL 0..T-1 scale (`timestep_map` translates a respaced chain's indices).
"""
from __future__ import annotations

import enum
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ConfigError, DiffusionConfig
from .respace import respace_betas, space_timesteps
from .schedule import get_named_beta_schedule

Model = Callable[..., torch.Tensor]


class ModelMeanType(enum.Enum):
    """What the model's mean output predicts (guided-diffusion's ModelMeanType; no PREVIOUS_X here)."""
    START_X = "x0"
    EPSILON = "eps"


class ModelVarType(enum.Enum):
    """How the reverse variance is chosen: learned in [posterior variance, beta], or fixed (guided-diffusion's)."""
    LEARNED_RANGE = "learned_range"
    FIXED_SMALL = "fixed_small"   # the posterior variance
    FIXED_LARGE = "fixed_large"   # beta, with the t = 0 value raised to posterior_variance[1]


class LossType(enum.Enum):
    """Training loss (guided-diffusion's LossType; its unscaled KL is not offered by DiffusionConfig)."""
    MSE = "mse"
    RESCALED_MSE = "rescaled_mse"   # MSE plus the VLB term scaled by T/1000 (learned sigma)
    RESCALED_KL = "rescaled_kl"     # the VLB alone, times T


def kinds_of(cfg: DiffusionConfig, learn_sigma: bool) -> tuple[ModelMeanType, ModelVarType, LossType]:
    """The mean, variance and loss kinds of DiffusionConfig flags, as guided-diffusion's create_gaussian_diffusion
    picks them (use_kl wins over rescale_learned_sigmas)."""
    mean = ModelMeanType.START_X if cfg.predict_xstart else ModelMeanType.EPSILON
    var = (ModelVarType.LEARNED_RANGE if learn_sigma
           else ModelVarType.FIXED_SMALL if cfg.sigma_small else ModelVarType.FIXED_LARGE)
    loss = (LossType.RESCALED_KL if cfg.use_kl else LossType.RESCALED_MSE if cfg.rescale_learned_sigmas
            else LossType.MSE)
    return mean, var, loss


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over all non-batch dimensions: [B, ...] -> [B]."""
    return x.mean(dim=list(range(1, x.ndim)))


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))) elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _log_approx_cdf(x: torch.Tensor) -> torch.Tensor:
    # guided-diffusion's tanh approximation of the normal CDF, 0.5 * (1 + tanh(u)) = sigmoid(2u), taken in log space
    # so neither tail rounds to 0 or 1. Since tanh is odd, 1 - cdf(x) = cdf(-x) exactly.
    u = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)
    return F.logsigmoid(2.0 * u)


def discretized_gaussian_log_likelihood(x: torch.Tensor, *, means: torch.Tensor,
                                        log_scales: torch.Tensor) -> torch.Tensor:
    """Log-probability (nats) of 8-bit images x in [-1, 1] under N(means, exp(log_scales)^2), per element.

    Equals guided-diffusion's losses.py (same CDF approximation, same 1e-12 floor) wherever that one is accurate;
    computed in log space, so the bin mass does not cancel to zero when both CDF values are close to 1.
    """
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    plus_in = inv_stdv * (centered + 1.0 / 255.0)
    min_in = inv_stdv * (centered - 1.0 / 255.0)
    log_cdf_plus = _log_approx_cdf(plus_in)                 # edge bin at -1: mass below x + 1/255
    log_one_minus_cdf_min = _log_approx_cdf(-min_in)        # edge bin at +1: mass above x - 1/255
    # Inner bins: cdf(plus) - cdf(min), both taken from the tail the bin lies in (small numbers, no cancellation).
    upper = centered > 0
    log_big = torch.where(upper, log_one_minus_cdf_min, log_cdf_plus)
    log_small = torch.where(upper, _log_approx_cdf(-plus_in), _log_approx_cdf(min_in))
    gap = (log_small - log_big).clamp(max=-1e-30)         # <= 0; clamped so the gradient stays finite
    log_delta = log_big + torch.log(-torch.expm1(gap))
    log_probs = torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))
    return log_probs.clamp(min=math.log(1e-12))


class GaussianDiffusion:
    """Noise tables and the maths of one diffusion chain; holds no parameters (guided-diffusion's GaussianDiffusion).

    Built from `cfg` (DiffusionConfig: schedule, T, respacing, loss flags) and whether the model learns sigma.
    `cfg.timestep_respacing` is applied as guided-diffusion's `create_gaussian_diffusion` does.
    """

    def __init__(self, cfg: DiffusionConfig | None = None, learn_sigma: bool = True, *,
                 betas: np.ndarray | None = None, timestep_map: np.ndarray | None = None,
                 base_alphas_cumprod: np.ndarray | None = None):
        self.cfg = cfg = cfg if cfg is not None else DiffusionConfig()
        self.learn_sigma = bool(learn_sigma)
        self.original_num_steps = int(cfg.diffusion_steps)
        if betas is None:
            betas = get_named_beta_schedule(cfg.noise_schedule, cfg.diffusion_steps)
            base_alphas_cumprod = np.cumprod(1.0 - betas)
            try:
                kept = space_timesteps(len(betas), cfg.timestep_respacing or str(len(betas)))
            except ValueError as e:
                raise ConfigError(f"diffusion.timestep_respacing={cfg.timestep_respacing!r}: {e}") from None
            # Always through respacing, even when all steps are kept: guided-diffusion's create_gaussian_diffusion
            # does so, and the recomputed betas differ from the schedule's in the last bits.
            betas, timestep_map = respace_betas(base_alphas_cumprod, kept)
        self._set_tables(np.asarray(betas, dtype=np.float64))
        if timestep_map is None:
            timestep_map = np.arange(self.num_timesteps, dtype=np.int64)
        self.timestep_map = np.asarray(timestep_map, dtype=np.int64)
        # alpha_bar of the un-respaced chain on the original scale: respacing starts from it, as guided-diffusion.
        self.base_alphas_cumprod = (self.alphas_cumprod if base_alphas_cumprod is None
                                    else np.asarray(base_alphas_cumprod, dtype=np.float64))
        self.model_mean_type, self.model_var_type, self.loss_type = kinds_of(cfg, self.learn_sigma)
        self._device_tables: dict[tuple[str, str], torch.Tensor] = {}

    def _set_tables(self, betas: np.ndarray) -> None:
        if betas.ndim != 1 or not ((betas > 0).all() and (betas <= 1).all()):
            raise ValueError("betas must be a 1-D array with every value in (0, 1]")
        self.betas = betas
        self.num_timesteps = int(betas.shape[0])
        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas, axis=0)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.alphas_cumprod_next = np.append(self.alphas_cumprod[1:], 0.0)
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.log_one_minus_alphas_cumprod = np.log(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1)
        # Posterior q(x_{t-1} | x_t, x_0) (DDPM eq. 6-7).
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # The posterior variance is 0 at t = 0, so its log takes the t = 1 value there (beta for a 1-step chain).
        first = self.posterior_variance[1] if self.num_timesteps > 1 else betas[0]
        self.posterior_log_variance_clipped = np.log(np.append(first, self.posterior_variance[1:]))
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)
        # Variance range of the learned-sigma output, and fixed-large variance (beta, with the t = 0 value raised
        # to posterior_variance[1] for a better decoder likelihood, as guided-diffusion).
        self.log_betas = np.log(betas)
        self.fixed_large_variance = np.append(first, betas[1:])
        self.fixed_large_log_variance = np.log(self.fixed_large_variance)

    # --- respacing -------------------------------------------------------------------------------
    def respaced(self, use_timesteps) -> "GaussianDiffusion":
        """A shorter chain over `use_timesteps` (indices into this chain); model timesteps stay original-scale."""
        idx = np.asarray(sorted(set(int(i) for i in use_timesteps)), dtype=np.int64)
        if len(idx) == 0 or idx[0] < 0 or idx[-1] >= self.num_timesteps:
            raise ValueError(f"respaced() needs indices in [0, {self.num_timesteps - 1}], got {idx[:5].tolist()}...")
        use = self.timestep_map[idx]
        betas, timestep_map = respace_betas(self.base_alphas_cumprod, use)
        return GaussianDiffusion(self.cfg, self.learn_sigma, betas=betas, timestep_map=timestep_map,
                                 base_alphas_cumprod=self.base_alphas_cumprod)

    # --- table lookup ----------------------------------------------------------------------------
    def _extract(self, name: str, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Table `name` at indices t [B], as [B, 1, ...] broadcastable to x, in x's precision (>= float32)."""
        key = (name, str(t.device))
        table = self._device_tables.get(key)
        if table is None:
            arr = torch.from_numpy(np.ascontiguousarray(getattr(self, name)))
            table = arr.float() if t.device.type == "mps" else arr   # mps has no float64
            table = self._device_tables[key] = table.to(t.device)
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        return table[t].to(dtype).view(-1, *([1] * (x.ndim - 1)))

    def model_timesteps(self, t: torch.Tensor) -> torch.Tensor:
        """Chain indices t [B] -> original-scale timesteps [B] (long) that the model is called with."""
        key = ("timestep_map", str(t.device))
        if key not in self._device_tables:
            self._device_tables[key] = torch.from_numpy(self.timestep_map).to(t.device)
        return self._device_tables[key][t.long()]

    # --- forward process -------------------------------------------------------------------------
    def q_mean_variance(self, x_start: torch.Tensor, t: torch.Tensor):
        """Mean, variance and log-variance of q(x_t | x_0)."""
        mean = self._extract("sqrt_alphas_cumprod", t, x_start) * x_start
        variance = self._extract("one_minus_alphas_cumprod", t, x_start).expand_as(x_start)
        log_variance = self._extract("log_one_minus_alphas_cumprod", t, x_start).expand_as(x_start)
        return mean, variance, log_variance

    @property
    def one_minus_alphas_cumprod(self) -> np.ndarray:
        return 1.0 - self.alphas_cumprod

    def q_sample(self, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Draw x_t ~ q(x_t | x_0) = N(sqrt(ab) x_0, (1 - ab) I) using `noise` (global RNG if None)."""
        if noise is None:
            noise = torch.randn_like(x_start)
        if noise.shape != x_start.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} differs from x_start shape {tuple(x_start.shape)}")
        return (self._extract("sqrt_alphas_cumprod", t, x_start) * x_start
                + self._extract("sqrt_one_minus_alphas_cumprod", t, x_start) * noise)

    def q_posterior_mean_variance(self, x_start: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor):
        """Mean, variance and clipped log-variance of the posterior q(x_{t-1} | x_t, x_0)."""
        mean = (self._extract("posterior_mean_coef1", t, x_t) * x_start
                + self._extract("posterior_mean_coef2", t, x_t) * x_t)
        variance = self._extract("posterior_variance", t, x_t).expand_as(x_t)
        log_variance = self._extract("posterior_log_variance_clipped", t, x_t).expand_as(x_t)
        return mean, variance, log_variance

    # --- reverse process -------------------------------------------------------------------------
    def predict_xstart_from_eps(self, x_t, t, eps):
        """x_0 = (x_t - sqrt(1 - ab) eps) / sqrt(ab)."""
        return (self._extract("sqrt_recip_alphas_cumprod", t, x_t) * x_t
                - self._extract("sqrt_recipm1_alphas_cumprod", t, x_t) * eps)

    def predict_eps_from_xstart(self, x_t, t, pred_xstart):
        """eps = (x_t / sqrt(ab) - x_0) / sqrt(1 / ab - 1)."""
        return ((self._extract("sqrt_recip_alphas_cumprod", t, x_t) * x_t - pred_xstart)
                / self._extract("sqrt_recipm1_alphas_cumprod", t, x_t))

    def split_output(self, output: torch.Tensor, x: torch.Tensor):
        """Model output [B, C or 2C, ...] -> (mean part [B, C, ...], variance part or None)."""
        c = x.shape[1]
        want = 2 * c if self.learn_sigma else c
        if output.shape[1] != want or output.shape[0] != x.shape[0] or output.shape[2:] != x.shape[2:]:
            raise ValueError(f"the model returned shape {tuple(output.shape)} for input {tuple(x.shape)}; with "
                             f"learn_sigma={self.learn_sigma} it must have {want} channels "
                             f"(make unet.learn_sigma match the diffusion's learn_sigma)")
        if not self.learn_sigma:
            return output, None
        return output[:, :c], output[:, c:]

    def p_mean_variance(self, model: Model, x: torch.Tensor, t: torch.Tensor, clip_denoised: bool = True,
                        denoised_fn=None, model_kwargs: dict | None = None, model_output=None) -> dict:
        """p(x_{t-1} | x_t): dict of mean, variance, log_variance, pred_xstart (all like x) and eps.

        `model_output` skips the model call (used by the losses to reuse one forward pass).
        """
        if model_output is None:
            model_output = model(x, self.model_timesteps(t), **(model_kwargs or {}))
        output, var_values = self.split_output(model_output, x)
        if var_values is not None:
            # Learned range: the output in [-1, 1] interpolates the log-variance between the posterior variance
            # and beta (improved-DDPM eq. 15).
            min_log = self._extract("posterior_log_variance_clipped", t, x)
            max_log = self._extract("log_betas", t, x)
            frac = (var_values + 1) / 2
            log_variance = frac * max_log + (1 - frac) * min_log
            variance = torch.exp(log_variance)
        else:
            tables = (("posterior_variance", "posterior_log_variance_clipped")
                      if self.model_var_type is ModelVarType.FIXED_SMALL
                      else ("fixed_large_variance", "fixed_large_log_variance"))
            variance = self._extract(tables[0], t, x).expand_as(x)
            log_variance = self._extract(tables[1], t, x).expand_as(x)

        raw_xstart = (output if self.model_mean_type is ModelMeanType.START_X
                      else self.predict_xstart_from_eps(x, t, output))
        pred_xstart = denoised_fn(raw_xstart) if denoised_fn is not None else raw_xstart
        if clip_denoised:
            pred_xstart = pred_xstart.clamp(-1, 1)
        mean, _, _ = self.q_posterior_mean_variance(pred_xstart, x, t)
        return {"mean": mean, "variance": variance, "log_variance": log_variance, "pred_xstart": pred_xstart,
                "model_output": output}

    # --- losses ----------------------------------------------------------------------------------
    def _vb_terms_bpd(self, model_output, x_start, x_t, t) -> torch.Tensor:
        """One VLB term per sample in bits/dim: KL to the posterior, or the decoder NLL at t = 0."""
        true_mean, _, true_log_variance = self.q_posterior_mean_variance(x_start, x_t, t)
        out = self.p_mean_variance(None, x_t, t, clip_denoised=False, model_output=model_output)
        kl = mean_flat(normal_kl(true_mean, true_log_variance, out["mean"], out["log_variance"])) / math.log(2.0)
        decoder_nll = -discretized_gaussian_log_likelihood(x_start, means=out["mean"],
                                                           log_scales=0.5 * out["log_variance"])
        decoder_nll = mean_flat(decoder_nll) / math.log(2.0)
        return torch.where(t == 0, decoder_nll, kl)

    def training_losses(self, model: Model, x_start: torch.Tensor, t: torch.Tensor, model_kwargs: dict | None = None,
                        noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-sample loss terms [B] for timesteps t: "loss", "mse" and (learned sigma) "vb"; KL-only: "loss".

        Hybrid loss of improved-DDPM: MSE on eps (or x_0) plus the VLB term with the mean detached, so the VLB
        trains only the variance. RESCALED_MSE scales "vb" by T/1000; use_kl trains on the VLB times T.
        """
        if noise is None:
            noise = torch.randn_like(x_start)
        x_t = self.q_sample(x_start, t, noise=noise)
        model_output = model(x_t, self.model_timesteps(t), **(model_kwargs or {}))
        if self.loss_type is LossType.RESCALED_KL:
            return {"loss": self._vb_terms_bpd(model_output, x_start, x_t, t) * self.num_timesteps}

        terms = {}
        output, var_values = self.split_output(model_output, x_t)
        if var_values is not None:
            frozen = torch.cat([output.detach(), var_values], dim=1)
            terms["vb"] = self._vb_terms_bpd(frozen, x_start, x_t, t)
            if self.loss_type is LossType.RESCALED_MSE:
                # Divide by 1000 for equivalence with the original implementation (guided-diffusion).
                terms["vb"] = terms["vb"] * (self.num_timesteps / 1000.0)
        target = x_start if self.model_mean_type is ModelMeanType.START_X else noise
        terms["mse"] = mean_flat((target - output) ** 2)
        terms["loss"] = terms["mse"] + terms["vb"] if "vb" in terms else terms["mse"]
        return terms

    def __repr__(self) -> str:
        return (f"GaussianDiffusion(T={self.original_num_steps}, steps={self.num_timesteps}, "
                f"schedule={self.cfg.noise_schedule!r}, mean={self.model_mean_type.value}, "
                f"var={self.model_var_type.value}, loss={self.loss_type.value})")
