"""Helpers shared by the lever tests (tests/train/test_speed.py) and the GPU tests (tests/gpu): a tiny diffusion
UNet, its Trainer on fixed random images, and per-step losses."""
from __future__ import annotations

import torch

from irislib.config import DiffusionConfig, Experiment, TrainConfig, UNetConfig
from irislib.diffusion.resample import make_t_sampler
from irislib.models.unet import UNet
from irislib.train.pipeline import build_diffusion
from irislib.train import DiffusionTask, Trainer
from unet_helpers import randomized  # noqa: F401  (shared with tests/gpu and tests/train)


def tiny_unet_cfg(**kw) -> UNetConfig:
    """A 16 px, 32-channel, two-level UNet with attention at 8 px (milliseconds per step)."""
    base = dict(image_size=16, in_channels=1, num_channels=32, num_res_blocks=1, channel_mult=[1, 2],
                attention_resolutions=[8], num_heads=2)
    return UNetConfig(**{**base, **kw})


class TensorImages(torch.utils.data.Dataset):
    """n fixed random images [1, size, size] in [-1, 1]."""

    def __init__(self, n: int = 8, size: int = 16, seed: int = 0):
        self.x = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def diffusion_trainer(run_dir, unet: UNetConfig | None = None, dataset=None, randomize: bool = True,
                      resume=None, device: str = "cpu", **train) -> Trainer:
    """A Trainer of a tiny UNet (randomized output convs) with the DiffusionTask; train.* from `train`."""
    unet = unet or tiny_unet_cfg()
    settings = dict(lr=1e-3, batch_size=4, ema_rate=[0.9], max_steps=3, save_every_steps=0, save_every_minutes=0,
                    log_every_steps=1, sample_grid_images=0)
    exp = Experiment(unet=unet, diffusion=DiffusionConfig(diffusion_steps=100),
                     train=TrainConfig(**{**settings, **train}))
    exp.data.image_size = exp.vae.image_size = unet.image_size
    torch.manual_seed(0)
    model = UNet(exp.unet)
    model = randomized(model) if randomize else model
    if exp.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    diffusion = build_diffusion(exp)
    task = DiffusionTask(diffusion, make_t_sampler("uniform", diffusion))
    data = dataset if dataset is not None else TensorImages(size=unet.image_size)
    return Trainer(model, task, data, exp, run_dir, resume=resume, progress=False, device=device)


def step_losses(trainer: Trainer, steps: int = 3) -> list[float]:
    """The mean loss of each of the next `steps` optimizer steps."""
    out = []
    for _ in range(steps):
        trainer.meter.means()  # empties the meter
        trainer.train_step(trainer._next_batch())
        out.append(trainer.meter.means()["loss"])
    return out
