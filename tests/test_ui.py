"""irislib.ui: grids (pixel placement), loss plots from metrics.jsonl, sampling panel headless and with widgets."""
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from irislib import ui
from irislib.config import ConfigError
from irislib.sampler import SampleConfig, SampleResult


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
    titled = ui.titled_grid(imgs, nrow=5, title="t")
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


# --- the sampling panel ----------------------------------------------------------------------------------
class FakeSampler:
    """A loaded sampler's interface: .sample(SampleConfig, progress) -> SampleResult, .max_strength."""
    max_strength = 1.0

    def __init__(self, during=None):
        self.calls, self.during = [], during

    def sample(self, cfg, drafts=None, progress=False):
        cfg = cfg.validate()
        self.calls.append(cfg)
        if self.during is not None:
            self.during(cfg)
        g = torch.Generator().manual_seed(cfg.seed)
        return SampleResult(torch.rand(cfg.n, 1, 8, 8, generator=g) * 2 - 1, torch.zeros(cfg.n, 1, 8, 8), 10,
                            cfg.steps, cfg, {"unet_run": "u", "vae_run": "v"})


@pytest.fixture
def widgets(monkeypatch):
    """A widget front end: a kernel is pretended, displays are collected; the clock is ours."""
    import ipywidgets  # noqa: F401  (a test dependency: a missing one must fail, not skip)
    monkeypatch.delenv("IRISLIB_HEADLESS", raising=False)
    monkeypatch.setattr(ui, "in_kernel", lambda: True)
    shown = []
    monkeypatch.setattr(ui, "_display", shown.append)
    now = [1000.0]
    monkeypatch.setattr(ui, "_clock", lambda: now[0])
    return SimpleNamespace(shown=shown, now=now)


def files(out):
    return sorted(p.name for p in out.iterdir())


def test_sampling_panel_headless_draws_once_and_writes_the_files(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("IRISLIB_HEADLESS", "1")
    monkeypatch.setattr(ui, "in_kernel", lambda: True)
    shown = []
    monkeypatch.setattr(ui, "_display", shown.append)
    sampler = FakeSampler()
    panel = ui.sampling_panel(sampler, SampleConfig(n=4, seed=3), nrow=4, out_dir=tmp_path / "s")
    assert sampler.calls == [SampleConfig(n=4, seed=3)]
    assert panel.widget is None and panel.controls == {}
    assert shown == [panel.image]                                   # the picture once, as an ordinary output
    one = ui.titled_grid(panel.result.images, 4, "x")
    assert panel.image.width == 2 * one.width + 8                   # drafts | samples
    assert Image.open(tmp_path / "s" / "panel.png").size == panel.image.size
    assert len(list((tmp_path / "s").glob("sample_*.png"))) == 4
    assert json.loads((tmp_path / "s" / "settings.json").read_text())["seed"] == 3
    assert capsys.readouterr().out.strip() == panel.line and "4 PNGs" in panel.line and "t0=10" in panel.line


def test_widgets_off_without_kernel_or_ipywidgets(monkeypatch):
    monkeypatch.delenv("IRISLIB_HEADLESS", raising=False)
    assert not ui.widgets_available()                             # pytest is not an IPython kernel
    monkeypatch.setattr(ui, "in_kernel", lambda: True)
    assert ui.widgets_available()
    monkeypatch.setitem(sys.modules, "ipywidgets", None)           # not installed -> ImportError
    assert not ui.widgets_available()


def test_each_draw_replaces_the_files_picture_and_line(widgets, tmp_path, capsys):
    sampler, out = FakeSampler(), tmp_path / "s"
    panel = ui.sampling_panel(sampler, SampleConfig(n=4, batch_size=2), out_dir=out)
    assert widgets.shown == [panel.widget, panel.image]            # the widget; the picture inside its output
    first_png, first_line = (out / "panel.png").read_bytes(), panel.line
    c = panel.controls
    c["strength"].value, c["seed"].value, c["sampler"].value, c["n"].value, c["steps"].value = 0.3, 7, "dpm++2m", 2, 9
    widgets.now[0] += 5
    c["draw"].click()
    want = SampleConfig(n=2, strength=0.3, steps=9, sampler="dpm++2m", seed=7, batch_size=2)
    assert sampler.calls[-1] == want and panel.config == want      # batch_size kept from the first config
    assert files(out) == ["drafts_grid.png", "grid.png", "panel.png", "sample_00000.png", "sample_00001.png",
                          "settings.json"]                          # no stale PNGs from the draw of 4
    settings = json.loads((out / "settings.json").read_text())
    assert (settings["n"], settings["seed"], settings["sampler"], settings["steps"]) == (2, 7, "dpm++2m", 9)
    assert (out / "panel.png").read_bytes() != first_png and panel.line != first_line
    assert widgets.shown[-1] is panel.image and panel.line in capsys.readouterr().out
    assert "draw 2 done" in panel.status.value and not c["draw"].disabled


def test_button_is_disabled_while_drawing_and_clicks_do_not_queue(widgets, tmp_path):
    seen = []

    def during(cfg):                                               # what the front end sees mid-draw
        seen.append((panel.controls["draw"].disabled, panel.status.value))
        panel.controls["draw"].click()                             # a second click while drawing: dropped

    sampler = FakeSampler()
    panel = ui.sampling_panel(sampler, SampleConfig(n=2), out_dir=tmp_path)
    sampler.during = during
    widgets.now[0] += 5
    panel.controls["draw"].click()
    assert len(sampler.calls) == 2 and seen == [(True, "drawing 2 images (ddim, 50 steps) ...")]
    widgets.now[0] += ui.QUEUED_CLICK_S / 2                        # a click the kernel held back during the draw
    panel.controls["draw"].click()
    assert len(sampler.calls) == 2
    widgets.now[0] += ui.QUEUED_CLICK_S                            # a new click after the draw
    sampler.during = None
    panel.controls["draw"].click()
    assert len(sampler.calls) == 3 and not panel.controls["draw"].disabled


@pytest.mark.parametrize("error, words", [(ConfigError("strength=0.9 is above diffusion.max_strength=0.7"),
                                           "Draw failed: strength=0.9"),
                                          (RuntimeError("CUDA out of memory"), "RuntimeError: CUDA out of memory")])
def test_a_failed_draw_is_shown_in_the_panel(widgets, tmp_path, capsys, error, words):
    sampler = FakeSampler()
    panel = ui.sampling_panel(sampler, SampleConfig(n=2), out_dir=tmp_path)
    before = (tmp_path / "settings.json").read_text()
    def fail(cfg):
        raise error

    sampler.during = fail
    widgets.now[0] += 5
    panel.controls["draw"].click()                                 # no exception escapes into the log console
    captured = capsys.readouterr()
    assert words in captured.out + captured.err
    assert panel.status.value.startswith("Draw failed") and not panel.controls["draw"].disabled
    assert (tmp_path / "settings.json").read_text() == before      # the files still match the picture kept
    sampler.during = None
    widgets.now[0] += 5
    panel.controls["draw"].click()
    assert panel.status.value.startswith("draw 2 done")


@pytest.mark.parametrize("cfg, words", [(SampleConfig(n=100), ["n=100", "1..64", "irislib sample --n 100"]),
                                        (SampleConfig(steps=300), ["steps=300", "1..250"])])
def test_values_outside_the_panel_ranges_are_refused_not_clamped(cfg, words):
    sampler = FakeSampler()
    with pytest.raises(ConfigError) as err:
        ui.sampling_panel(sampler, cfg)
    assert all(w in str(err.value) for w in words) and sampler.calls == []


def test_strength_slider_stops_at_the_unets_max_strength(widgets):
    sampler = FakeSampler()
    sampler.max_strength = 0.7
    panel = ui.sampling_panel(sampler, SampleConfig(n=1, strength=0.5))
    assert panel.controls["strength"].max == 0.7


def test_a_second_draw_loads_nothing_and_hashes_nothing(widgets, tmp_path, monkeypatch):
    """The real pair (the shipped tiny checkpoints): loading verifies once; Draw only samples."""
    import hashlib

    from irislib import checkpoint, hub, pipeline
    from irislib.checkpoint import files as ckpt_files
    from irislib.sampler import HybridSampler

    monkeypatch.setenv("IRISLIB_CACHE", str(tmp_path / "cache"))
    counts = {}

    def counting(owner, name):
        real = getattr(owner, name)

        def wrapper(*a, **k):
            counts[name] = counts.get(name, 0) + 1
            return real(*a, **k)
        monkeypatch.setattr(owner, name, wrapper)

    for owner, name in [(hashlib, "sha256"), (pipeline, "load_unet"), (pipeline, "load_vae"), (hub, "fetch_run"),
                        (checkpoint, "load_run"), (ckpt_files, "load_file"), (torch, "load")]:
        counting(owner, name)
    sampler = HybridSampler.load(hub.fetch_run("tiny-synthetic-unet"), hub.fetch_run("tiny-synthetic-vae"), "cpu")
    assert counts["sha256"] > 0 and counts["load_unet"] == counts["load_vae"] == 1   # the counters count
    panel = ui.sampling_panel(sampler, SampleConfig(n=2, steps=2), out_dir=tmp_path / "s")
    first = panel.result.images.clone()
    counts.clear()
    c = panel.controls
    c["n"].value, c["seed"].value, c["steps"].value, c["strength"].value = 3, 11, 3, 0.4
    widgets.now[0] += 5
    c["draw"].click()
    assert counts == {}, f"a Draw loaded or hashed: {counts}"
    assert panel.result.images.shape[0] == 3 and not torch.equal(panel.result.images[:2], first)
    assert json.loads((tmp_path / "s" / "settings.json").read_text())["seed"] == 11


def test_show_result_shows_once_and_returns_nothing(monkeypatch, tmp_path, capsys):
    shown = []
    monkeypatch.setattr(ui, "_display", shown.append)
    result = FakeSampler().sample(SampleConfig(n=2))
    assert ui.show_result(result, tmp_path) is None and len(shown) == 1
    assert (tmp_path / "panel.png").is_file() and "2 PNGs" in capsys.readouterr().out


def test_show_samples_returns_nothing(tmp_path, capsys):
    (tmp_path / "samples").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "samples" / "step_2.png")
    assert ui.show_samples(tmp_path) is None
    assert "step_2.png" in capsys.readouterr().out
