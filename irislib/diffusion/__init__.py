"""Gaussian diffusion maths (tables, losses, respacing), sampling schedules, samplers and training-timestep samplers."""
from .gaussian import GaussianDiffusion, LossType, ModelMeanType, ModelVarType
from .sampling_schedule import SamplingSchedule, plan, strength_to_timestep, timestep_to_strength
from .resample import LossSecondMomentSampler, UniformSampler, make_t_sampler
from .respace import space_timesteps
from .samplers import SAMPLERS, DenoiseOutput, denoise, iterate
from .schedule import get_named_beta_schedule

__all__ = ["SAMPLERS", "DenoiseOutput", "GaussianDiffusion", "LossSecondMomentSampler", "LossType", "ModelMeanType",
           "ModelVarType", "SamplingSchedule", "UniformSampler", "denoise", "get_named_beta_schedule", "iterate",
           "make_t_sampler", "plan", "space_timesteps", "strength_to_timestep", "timestep_to_strength"]
