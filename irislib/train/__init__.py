"""Training: one Trainer for the VAE and the diffusion model, its tasks, LR schedules, EMA and DDP helpers."""
from .loop import Trainer, TrainingDiverged
from .tasks import DiffusionTask, RefinerTask, Task, VAETask

__all__ = ["Trainer", "TrainingDiverged", "Task", "DiffusionTask", "RefinerTask", "VAETask"]
