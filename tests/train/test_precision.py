"""train.precision="auto": bf16 on cards with native bf16, fp16 + GradScaler on a T4/V100, fp32 on CPU."""
import pytest
import torch

from toy import ToyDataset, ToyNet, ToyTask, toy_exp

from irislib.config import ConfigError, TrainConfig
from irislib.train import Trainer, precision


@pytest.mark.parametrize("capability, expected", [((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"),
                                                  ((8, 9), "bf16"), ((9, 0), "bf16"), ((12, 0), "bf16")])
def test_auto_on_cuda_follows_the_compute_capability(monkeypatch, capability, expected):
    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: asked.append(device) or capability)
    assert precision.resolve("auto", "cuda:0") == expected
    assert asked == [torch.device("cuda", 0)]
    assert precision.uses_grad_scaler(expected) == (expected == "fp16")


def test_auto_is_fp32_on_cpu_and_explicit_choices_pass_through(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: pytest.fail("no CUDA query on CPU"))
    assert precision.resolve("auto", "cpu") == "fp32"
    assert [precision.resolve(p, "cuda:0") for p in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]
    assert precision.autocast_dtype("bf16") is torch.bfloat16 and precision.autocast_dtype("fp32") is None
    with pytest.raises(ConfigError, match="train.precision='fp8' is not one of fp32, bf16, fp16, auto"):
        precision.resolve("fp8", "cpu")


def test_auto_is_a_valid_setting_and_the_cpu_trainer_runs_fp32(tmp_path):
    TrainConfig(precision="auto").validate()
    tr = Trainer(ToyNet(), ToyTask(), ToyDataset(12), toy_exp(precision="auto", max_steps=2), tmp_path / "run",
                 resume=None, progress=False, device="cpu")
    assert tr.precision == "fp32" and not tr.scaler.is_enabled()
    tr.run()
    assert tr.step == 2
