"""The report figure's strength curves: one line per UNet and call budget, never zig-zagging between UNets."""
from irislib.evaluation import plots


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


def _write_set(root, identities, captures, size=64, bits=8):
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for i in range(identities):
        d = root / f"{i:04d}"
        d.mkdir(parents=True)
        for c in range(captures):
            a = rng.uniform(0.2, 0.6, (size, size))
            img = Image.fromarray((a * 65535).astype(np.uint16)) if bits == 16 else \
                Image.fromarray((a * 255).astype(np.uint8))
            img.save(d / f"{c:02d}.png")


def test_dataset_grid_is_as_wide_as_what_it_holds(tmp_path):
    """3 identities x 2 captures at 128 px: the canvas is two native-size tiles plus the label column, not a
    canvas for 8 captures with the eyes shrunk by a viewer fitting blank space to the page."""
    from PIL import Image
    _write_set(tmp_path / "ds", 3, 2, size=128)
    path = plots.dataset_grid(tmp_path / "ds", tmp_path / "grid.png", identities=8, captures=8)
    w, h = Image.open(path).size
    label_w = w - 2 * (128 + 4)
    assert h == 3 * (128 + 4) and 60 < label_w < 200, (w, h)
    assert Image.open(path).crop((label_w, 0, w, h)).getextrema()[0] < 200   # eyes fill the tile area


def test_dataset_grid_shows_16_bit_sets_and_leaves_out_empty_identities(tmp_path):
    import numpy as np
    from PIL import Image
    _write_set(tmp_path / "ds", 2, 2, bits=16)
    (tmp_path / "ds" / "0009").mkdir()                      # an empty identity folder
    path = plots.dataset_grid(tmp_path / "ds", tmp_path / "grid.png")
    grid = np.asarray(Image.open(path))
    assert grid.shape[0] == 2 * (128 + 4)                     # two rows: the empty folder is left out
    tiles = grid[:128, -128:]
    assert 50 < tiles.mean() < 160                            # grey 0.2-0.6 shows as grey, not all white
