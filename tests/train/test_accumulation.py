"""Micro-batch accumulation gives the exact batch mean, whatever the micro-batch split (not guided-diffusion's sum)."""
from __future__ import annotations

import torch

from toy import ToyDataset, ToyNet, ToyTask, toy_exp  # noqa: F401

from irislib.train import Trainer


def _grads(tmp_path, microbatch: int, batch: torch.Tensor) -> list[torch.Tensor]:
    torch.manual_seed(0)
    exp = toy_exp(batch_size=12, microbatch=microbatch)
    tr = Trainer(ToyNet(), ToyTask(noisy=False, weighted=False), ToyDataset(12), exp, tmp_path / f"mb{microbatch}",
                 progress=False, device="cpu")
    finite, terms = tr.forward_backward(batch)
    assert finite and sum(t["loss"].numel() for t in terms) == 12
    return [p.grad.clone() for p in tr.model.parameters()]


def test_microbatch_splits_agree_and_equal_the_batch_mean(tmp_path):
    batch = ToyDataset(12, seed=3).x  # [12, 1, 8, 8]
    g12, g5, g3 = (_grads(tmp_path, m, batch) for m in (12, 5, 3))  # 5 -> 5 + 5 + 2 (ragged)
    for a, b, c in zip(g12, g5, g3):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-7)

    # Independent reference: autograd of the plain per-sample mean over the whole batch.
    torch.manual_seed(0)
    ref_model = ToyNet()
    ((ref_model(batch) - batch).pow(2).flatten(1).mean(1)).mean().backward()
    for a, p in zip(g12, ref_model.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-5, atol=1e-7)

    # guided-diffusion's rule (sum of micro-batch means, its issue #111) differs: 4x for 4 micro-batches of 3,
    # and a wrongly weighted ragged 2-image micro-batch for 5 -- so this test can tell the rules apart.
    for micro in (3, 5):
        torch.manual_seed(0)
        gd = ToyNet()
        for i in range(0, 12, micro):
            x = batch[i:i + micro]
            (gd(x) - x).pow(2).flatten(1).mean(1).mean().backward()
        assert not all(torch.allclose(a, p.grad, rtol=1e-3) for a, p in zip(g12, gd.parameters()))
