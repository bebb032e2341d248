"""Shared fixtures: CPU-only, seeded, small thread count; GPU tests skipped without CUDA; the one small experiment."""
import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")

# The tiny preset's 32 px models on 16 synthetic irises: batch 4 in micro-batches of 2 (4 steps an epoch), no epoch
# limit, a record every step, a checkpoint every 2 steps, 4-image sample grids of 2 UNet calls.
SMALL = {"data.path": "synthetic:16", "train.batch_size": 4, "train.microbatch": 2, "train.epochs": 0,
         "train.log_every_steps": 1, "train.save_every_steps": 2, "train.sample_grid_steps": 2,
         "train.sample_grid_images": 4}


def small_experiment(overrides=None):
    """The test suite's small experiment (see SMALL) with dotted `overrides` applied last, e.g.
    {"train.max_steps": 3}; the bare keys image_size and channels set every section (Experiment.override)."""
    from irislib.config import build_experiment
    return build_experiment("tiny", overrides=[SMALL, overrides or {}])


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def one_thread():
    """Test tensors are tiny: one intra-op thread is faster and immune to a busy machine's oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def small_exp():
    """small_experiment: call it with dotted overrides for a fresh, validated Experiment."""
    return small_experiment


@pytest.fixture
def tiny_exp():
    """small_experiment() without overrides: the tiny preset's models, sized for a few CPU steps."""
    return small_experiment()
