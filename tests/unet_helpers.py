"""Helpers shared by UNet tests in several folders (tests/ is on sys.path through its conftest.py)."""
import torch


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Redraw the zero-initialised parameters (output convs) so that every block reaches the loss."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=gen).to(p) * 0.05)
    return model
