"""Tiny models, tasks and data for the training tests (independent of irislib.models / irislib.diffusion)."""
from __future__ import annotations

import torch
from torch import nn

from irislib.config import Experiment, TrainConfig
from irislib.train.tasks import Task


class ToyNet(nn.Module):
    """Two 3x3 convs with a SiLU between them, for 1-channel 8x8 images."""

    def __init__(self, hidden: int = 4, act: type[nn.Module] = nn.SiLU):
        super().__init__()
        self.conv1 = nn.Conv2d(1, hidden, 3, padding=1)
        self.act = act()
        self.conv2 = nn.Conv2d(hidden, 1, 3, padding=1)

    def forward(self, x):
        return self.conv2(self.act(self.conv1(x)))


class ToyDataset(torch.utils.data.Dataset):
    """n fixed random images [1, 8, 8] in [-1, 1] (deterministic, no augmentation)."""

    def __init__(self, n: int = 30, seed: int = 0, size: int = 8):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 1, size, size, generator=g) * 2 - 1

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


class ToyTask(Task):
    """Denoising toy: per-sample MSE of model(x + 0.3 noise) against x; `noisy=False` makes it deterministic.

    It keeps state (a call counter that varies the per-sample weights), so a resume that forgot the task state
    would not be bit-identical.
    """

    def __init__(self, noisy: bool = True, weighted: bool = True, sleep_s: float = 0.0):
        self.noisy, self.weighted, self.sleep_s, self.calls = noisy, weighted, sleep_s, 0

    def loss(self, model, batch, generator):
        if self.sleep_s:
            import time
            time.sleep(self.sleep_s)
        x_in = batch
        if self.noisy:
            x_in = batch + 0.3 * torch.randn(batch.shape, generator=generator, device=batch.device)
        err = (model(x_in) - batch).pow(2).flatten(1).mean(1)  # [B]
        weight = 1.0 + 0.1 * (self.calls % 3) if self.weighted else 1.0
        self.calls += 1
        return {"loss": err * weight, "mse": err}

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = state["calls"]


def toy_exp(**train) -> Experiment:
    """An Experiment whose train section is TrainConfig(**train) with small, CPU-friendly defaults (the device is
    the Trainer's argument: these tests pass device="cpu")."""
    defaults = dict(lr=1e-2, batch_size=6, microbatch=4, ema_rate=[0.9, 0.99], max_steps=10, save_every_steps=0,
                    save_every_minutes=0, log_every_steps=1, keep_last=2)
    defaults.update(train)
    exp = Experiment(train=TrainConfig(**defaults))
    exp.data.random_flip = True
    return exp

