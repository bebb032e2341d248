"""GPU tests (pytest -m gpu; skipped without CUDA by tests/conftest.py): the CUDA paths users run in Colab.

They share tests/train's toy models and the lever helpers, so that directory goes on sys.path.
IRISLIB_GPU_TEST_DEVICE=cpu (with the skip lifted) runs them on the CPU to check their logic; that is not the test.
"""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from gpu_device import DEVICE  # noqa: E402


@pytest.fixture
def cuda():
    """The CUDA device, with cudnn's autotuner off so that repeated runs pick the same kernels."""
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    yield torch.device(DEVICE)
    torch.backends.cudnn.benchmark = benchmark
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
