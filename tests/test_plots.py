"""The report figure's strength curves: one line per UNet and call budget, never zig-zagging between UNets."""
from irislib import plots


def _row(method, unet, strength, calls, value):
    return {"method": method, "unet": unet, "strength": strength, "unet_calls": calls, "residual": value}


def test_strength_lines_keep_each_unet_and_budget_apart():
    summary = [_row("vae_draft", "shipped", 0.0, 0, 0.012), _row("vanilla_20", "full-chain", 1.0, 20, 0.09),
               _row("hybrid_s0.5_20", "shipped", 0.5, 20, 0.020), _row("hybrid_s0.3_20", "shipped", 0.3, 20, 0.019),
               _row("fullchain_hybrid_s0.5_20", "full-chain", 0.5, 20, 0.031),
               _row("hybrid_s0.5_10", "shipped", 0.5, 10, None)]
    lines = plots.strength_lines(summary, "residual")
    assert lines == {"shipped UNet, 20 calls": [(0.0, 0.012), (0.3, 0.019), (0.5, 0.020)],
                     "full-chain UNet, 20 calls": [(0.0, 0.012), (0.5, 0.031), (1.0, 0.09)],
                     "shipped UNet, 10 calls": [(0.0, 0.012)]}   # a missing value is left out, not plotted as 0
