"""irislib.ui: grids (pixel placement), loss plots from metrics.jsonl, sampling panel headless and with widgets."""
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from irislib import ui


def test_to_uint8_maps_minus_one_to_one():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).reshape(1, 1, 1, 4)   # [N, C, H, W]
    assert ui.to_uint8(x)[0].tolist() == [[0, 128, 255, 255]]
    rgb = np.zeros((2, 3, 4, 5), np.float32)                       # channels first -> HWC
    assert ui.to_uint8(rgb)[0].shape == (4, 5, 3)


def test_grid_places_each_image(tmp_path):
    imgs = np.stack([np.full((6, 8), i * 40, np.uint8) for i in range(5)])   # [N, H, W] uint8
    grid = ui.show_grid(imgs, nrow=2, path=tmp_path / "g" / "grid.png")
    pad = ui.PAD
    assert grid.size == (2 * (8 + pad) + pad, 3 * (6 + pad) + pad)
    a = np.asarray(Image.open(tmp_path / "g" / "grid.png"))
    for i in range(5):
        r, c = divmod(i, 2)
        y, x = pad + r * (6 + pad), pad + c * (8 + pad)
        assert (a[y:y + 6, x:x + 8] == i * 40).all()
    assert a[0].max() == 0                                         # padding stays black
    titled = ui.make_grid(imgs, nrow=5, title="t")
    assert titled.height == 6 + 2 * pad + ui.TITLE_PX


def test_plot_losses_reads_jsonl_and_skips_a_torn_line(tmp_path):
    rows = [{"step": s, "loss": 1.0 / s, "mse": 0.5 / s, "lr": 1e-4} for s in range(1, 6)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 6, "lo')
    fig = ui.plot_losses(tmp_path, path=tmp_path / "loss.png")       # a run directory works too
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert sorted(lines) == ["loss", "mse"]                        # lr is not a loss
    assert list(lines["loss"].get_xdata()) == [1, 2, 3, 4, 5]
    assert np.allclose(lines["mse"].get_ydata(), [0.5 / s for s in range(1, 6)])
    assert Image.open(tmp_path / "loss.png").format == "PNG"
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        ui.plot_losses(tmp_path / "nope")


def fake_sampler(calls):
    def sample_fn(strength, steps, sampler, seed, n):
        calls.append(dict(strength=strength, steps=steps, sampler=sampler, seed=seed, n=n))
        g = torch.Generator().manual_seed(seed)
        return SimpleNamespace(images=torch.rand(n, 1, 8, 8, generator=g) * 2 - 1,
                               drafts=torch.zeros(n, 1, 8, 8))
    return sample_fn


def test_sampling_panel_headless_is_one_plain_call(monkeypatch, tmp_path):
    monkeypatch.setenv("IRISLIB_HEADLESS", "1")
    calls = []
    panel = ui.sampling_panel(fake_sampler(calls), {"n": 4, "seed": 3}, nrow=4, path=tmp_path / "p.png")
    assert calls == [dict(strength=0.5, steps=50, sampler="ddim", seed=3, n=4)]
    assert panel.widget is None and panel.controls == {}
    one = ui.make_grid(panel.result.images, 4, "x")
    assert panel.image.width == 2 * one.width + 8                   # drafts | samples
    assert Image.open(tmp_path / "p.png").size == panel.image.size


def test_widgets_off_without_kernel_or_ipywidgets(monkeypatch):
    monkeypatch.delenv("IRISLIB_HEADLESS", raising=False)
    assert not ui.widgets_available()                             # pytest is not an IPython kernel
    monkeypatch.setattr(ui, "in_kernel", lambda: True)
    assert ui.widgets_available()
    monkeypatch.setitem(sys.modules, "ipywidgets", None)           # not installed -> ImportError
    assert not ui.widgets_available()


def test_sampling_panel_widgets_draw_with_chosen_values(monkeypatch):
    pytest.importorskip("ipywidgets")
    monkeypatch.delenv("IRISLIB_HEADLESS", raising=False)
    monkeypatch.setattr(ui, "in_kernel", lambda: True)
    shown = []
    monkeypatch.setattr(ui, "_display", shown.append)
    calls = []
    panel = ui.sampling_panel(fake_sampler(calls), {"n": 2})
    assert len(calls) == 1 and shown[-1] is panel.widget           # the plain result first, then the controls
    assert isinstance(shown[0], Image.Image)
    c = panel.controls
    c["strength"].value, c["seed"].value, c["sampler"].value, c["n"].value = 0.3, 7, "dpm++2m", 3
    c["draw"].click()
    assert calls[-1] == dict(strength=0.3, steps=50, sampler="dpm++2m", seed=7, n=3)
    assert panel.params == calls[-1] and panel.result.images.shape[0] == 3
