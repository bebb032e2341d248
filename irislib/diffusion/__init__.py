"""Gaussian diffusion maths (tables, losses, respacing), samplers and training-timestep samplers."""
from .gaussian import GaussianDiffusion
from .resample import LossSecondMomentSampler, UniformSampler, make_t_sampler
from .respace import space_timesteps
from .samplers import SAMPLERS, SampleOutput, iterate, sample, strength_to_timestep, timestep_to_strength
from .schedule import get_named_beta_schedule

__all__ = ["GaussianDiffusion", "LossSecondMomentSampler", "SAMPLERS", "SampleOutput", "UniformSampler",
           "get_named_beta_schedule", "iterate", "make_t_sampler", "sample", "space_timesteps",
           "strength_to_timestep", "timestep_to_strength"]
