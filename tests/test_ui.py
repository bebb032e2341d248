"""irislib.notebook.ui: grids (pixel placement), loss plots from metrics.jsonl, sampling panel headless and with widgets."""
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from irislib.config import ConfigError
from irislib.generate.sampler import SampleConfig, SampleResult
from irislib.notebook import ui


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
    axes = panels(fig)
    assert sorted(axes) == ["learning rate", "loss", "loss terms"]  # lr is not a loss: its own axes
    raw = {ln.get_label(): ln for ln in axes["loss"].get_lines()}["loss (raw)"]
    assert list(raw.get_xdata()) == [1, 2, 3, 4, 5]
    assert np.allclose(axes["loss terms"].get_lines()[0].get_ydata(), [0.5 / s for s in range(1, 6)])
    assert Image.open(tmp_path / "loss.png").format == "PNG"
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        ui.plot_losses(tmp_path / "nope")


def panels(fig) -> dict:
    """{legend title: axes} of a loss plot."""
    return {ax.get_legend().get_title().get_text().split(" (")[0]: ax for ax in fig.axes}


def diffusion_rows(n=60):
    """A diffusion run's metrics.jsonl rows: loss, mse, vb, each per timestep quartile, lr, dead units."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        s = 25 * (i + 1)
        row = {"step": s, "lr": 1e-3 * (1 - i / n) + 1e-9, "dead_units": 0.01 * i / n, "dead_units_silu": 0.01 * i / n,
               "grad_norm": 1.0, "img_per_s": 10.0}
        for key, scale in (("loss", 1.0), ("mse", 0.9), ("vb", 0.05)):
            row[key] = scale * (0.1 + 1 / (1 + i)) * (1 + 0.3 * rng.random())
            row.update({f"{key}_q{q}": row[key] * (q + 1) / 2 for q in range(4)})
        rows.append(row)
    return rows


def test_loss_plot_is_readable(tmp_path):
    """Issue 22: the loss smoothed over its faint raw values, lr and dead units on their own axes, the quartile
    curves in their own panel; no colour twice within an axes; every legend outside its data."""
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in diffusion_rows()))
    fig = ui.plot_losses(tmp_path, path=tmp_path / "loss.png")
    axes = panels(fig)
    assert list(axes) == ["loss", "loss terms", "loss per timestep quartile", "learning rate",
                          "dead units"]
    labels = {name: [ln.get_label() for ln in ax.get_lines()] for name, ax in axes.items()}
    assert labels["loss"] == ["loss (raw)", "loss (median of 5)"]
    assert labels["loss terms"] == ["mse", "vb"]                  # not 15 curves on one axes
    assert labels["loss per timestep quartile"] == ["loss_q0", "loss_q1", "loss_q2", "loss_q3"]
    assert labels["learning rate"] == ["lr"] and labels["dead units"] == ["dead_units_silu"]
    raw, smooth = axes["loss"].get_lines()
    assert np.abs(np.diff(smooth.get_ydata())).sum() < np.abs(np.diff(raw.get_ydata())).sum()   # smoothed
    assert smooth.get_linewidth() > raw.get_linewidth()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for name, ax in axes.items():
        colours = [ln.get_color() for ln in ax.get_lines()]
        assert len(set(colours)) == len(colours), f"{name}: a colour repeats"
        legend, box = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
        assert legend.x0 >= box.x1, f"{name}: the legend covers the data"
    boxes = [ax.get_window_extent(renderer) for ax in fig.axes]
    assert all(a.y0 >= b.y1 - 1 for a, b in zip(boxes, boxes[1:])), "panels overlap"
    assert axes["dead units"].get_ylim()[1] >= 1 and axes["loss"].get_yscale() == "log"
    width, height = Image.open(tmp_path / "loss.png").size
    assert 600 < width < 1000 and 500 < height < 900


def test_moving_median_keeps_level_and_drops_spikes():
    assert ui.moving_median([1, 1, 9, 1, 1], 3).tolist() == [1, 1, 1, 1, 1]
    assert ui.moving_median([3.0], None).tolist() == [3.0]


# --- the sampling panel ----------------------------------------------------------------------------------
class FakeSampler:
    """A loaded sampler's interface: .sample(SampleConfig, progress) -> SampleResult, .max_strength."""
    max_strength = 1.0
    vae = "a VAE"                      # HybridSampler.vae: None = pure-noise sampling only
    is_refiner = False

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
                                           "Draw refused: strength=0.9"),
                                          (RuntimeError("CUDA out of memory"), "RuntimeError: CUDA out of memory")])
def test_a_failed_draw_is_shown_in_the_panel_and_keeps_the_picture(widgets, tmp_path, capsys, error, words):
    sampler = FakeSampler()
    panel = ui.sampling_panel(sampler, SampleConfig(n=2), out_dir=tmp_path)
    before, picture = (tmp_path / "settings.json").read_text(), panel.image
    def fail(cfg):
        raise error

    sampler.during = fail
    widgets.now[0] += 5
    panel.controls["draw"].click()                                 # no exception escapes into the log console
    captured = capsys.readouterr()
    assert words in panel.status.value and "the picture and files are from draw 1" in panel.status.value
    assert not panel.controls["draw"].disabled
    assert panel.image is picture and widgets.shown[-1] is picture  # the last good picture is still shown
    assert (tmp_path / "settings.json").read_text() == before      # the files still match the picture kept
    if isinstance(error, ConfigError):
        assert "Traceback" not in captured.out + captured.err      # a refused value: one line, no traceback
    else:
        assert "Traceback" in captured.out + captured.err
    sampler.during = None
    widgets.now[0] += 5
    panel.controls["draw"].click()
    assert panel.status.value.startswith("draw 2 done")


@pytest.mark.parametrize("cfg, words", [(SampleConfig(n=100), ["n=100", "1..64", "irislib sample --n 100"]),
                                        (SampleConfig(steps=300), ["steps=300", "1..250"]),
                                        (SampleConfig(strength=0.9), ["strength=0.9 is above 0.7", "unet_run",
                                                                      "0 <= strength <= 0.7"]),
                                        (SampleConfig(seed=99999999999999999999), ["seed=99999999999999999999",
                                                                                   "0..9223372036854775792"]),
                                        (SampleConfig(seed=-1), ["seed=-1"])])
def test_values_outside_the_panel_ranges_are_refused_not_clamped(cfg, words):
    sampler = FakeSampler()
    sampler.max_strength = 0.7
    with pytest.raises(ConfigError) as err:
        ui.sampling_panel(sampler, cfg)
    assert all(w in str(err.value) for w in words), str(err.value)
    assert "\n" not in str(err.value) and sampler.calls == []


@pytest.mark.parametrize("control, typed, words", [("strength", 0.9, "strength=0.9 is above 0.7"),
                                                   ("steps", 0, "steps=0"), ("n", 65, "n=65"),
                                                   ("seed", 99999999999999999999, "seed=99999999999999999999")])
def test_typed_values_reach_the_check_and_are_refused_with_a_line(widgets, tmp_path, control, typed, words):
    """Issue 22: the panel clamped silently (0.9 -> 0.70, steps 0 -> 1); the boxes keep what was typed, Draw
    refuses it in the status line, and the picture stays."""
    sampler = FakeSampler()
    sampler.max_strength = 0.7
    panel = ui.sampling_panel(sampler, SampleConfig(n=2, strength=0.5), out_dir=tmp_path)
    picture = panel.image
    panel.controls[control].value = typed
    assert panel.controls[control].value == typed                  # not clamped
    if control in panel.sliders:
        slider = panel.sliders[control]
        assert slider.min <= slider.value <= slider.max            # the slider stays in range, the box does not follow it
    widgets.now[0] += 5
    panel.controls["draw"].click()
    assert len(sampler.calls) == 1 and panel.status.value.count("Draw refused") == 1
    assert words in panel.status.value and panel.image is picture


def test_sliders_move_the_boxes_and_stop_at_the_unets_max_strength(widgets):
    sampler = FakeSampler()
    sampler.max_strength = 0.7
    panel = ui.sampling_panel(sampler, SampleConfig(n=1, strength=0.5))
    assert (panel.sliders["strength"].min, panel.sliders["strength"].max) == (0.0, 0.7)
    panel.sliders["strength"].value = 0.6
    assert panel.controls["strength"].value == 0.6
    panel.controls["steps"].value = 30
    assert panel.sliders["steps"].value == 30


def test_without_a_vae_only_strength_one_is_offered_and_the_error_names_vae_run(widgets):
    sampler = FakeSampler()
    sampler.vae = None
    panel = ui.sampling_panel(sampler, SampleConfig(n=1, strength=1.0))
    assert panel.controls["strength"].disabled and panel.sliders["strength"].min == 1.0
    with pytest.raises(ConfigError, match="vae_run is empty") as err:
        ui.check_panel_config(SampleConfig(strength=0.5), sampler)
    assert "--vae" not in str(err.value)
    sampler.is_refiner = True
    with pytest.raises(ConfigError, match="set vae_run"):
        ui.check_panel_config(SampleConfig(strength=1.0), sampler)


def test_seeds_are_range_checked_in_python_and_the_cli(capsys, tmp_path):
    from irislib import cli
    from irislib.generate import hybrid
    assert SampleConfig(n=2, seed=2 ** 63 - 2).validate().seeds[-1] == 2 ** 63 - 1
    hybrid.generators([2 ** 63 - 1], "cpu", salt=1)                # the largest seed a generator takes
    for seed in (2 ** 63 - 1, -1, 1.5, True):
        with pytest.raises(ConfigError, match="seed="):
            SampleConfig(n=2, seed=seed).validate()
    with pytest.raises(ConfigError, match="seed 9223372036854775808"):
        hybrid.generators([2 ** 63], "cpu")
    code = cli.main(["sample", "--unet", "no-such-run", "--seed", "99999999999999999999", "--quiet",
                     "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code != 0 and "seed=99999999999999999999 is outside 0..9223372036854775792" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "s").exists()


def test_a_refused_form_value_is_one_line_in_a_notebook(monkeypatch):
    registered = {}
    shell = SimpleNamespace(set_custom_exc=lambda types, handler: registered.update(types=types, handler=handler),
                            _showtraceback=lambda etype, value, stb: registered.update(shown=stb))
    monkeypatch.setattr(ui, "in_kernel", lambda: True)
    import IPython
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    ui.one_line_errors()
    assert registered["types"] == (ConfigError,)
    lines = registered["handler"](shell, ConfigError, ConfigError("strength=0.9 is above 0.7"), None)
    assert len(lines) == 1 and lines[0].endswith("ConfigError\x1b[0m: strength=0.9 is above 0.7")
    assert registered["shown"] == lines                              # shown as the cell's error output


def test_a_second_draw_loads_nothing_and_hashes_nothing(widgets, tmp_path, monkeypatch):
    """The real pair (the shipped tiny checkpoints): loading verifies once; Draw only samples."""
    import hashlib

    from irislib import checkpoint, hub
    from irislib.generate import loading
    from irislib.checkpoint import files as ckpt_files
    from irislib.generate.sampler import HybridSampler

    monkeypatch.setenv("IRISLIB_CACHE", str(tmp_path / "cache"))
    counts = {}

    def counting(owner, name):
        real = getattr(owner, name)

        def wrapper(*a, **k):
            counts[name] = counts.get(name, 0) + 1
            return real(*a, **k)
        monkeypatch.setattr(owner, name, wrapper)

    for owner, name in [(hashlib, "sha256"), (loading, "load_unet"), (loading, "load_vae"), (hub, "fetch_run"),
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


# --- reports and listings --------------------------------------------------------------------------------
def test_show_report_renders_the_table_and_shows_each_figure(monkeypatch, tmp_path, capsys):
    from IPython.display import Markdown

    from irislib.evaluation import report as reports
    shown = []
    monkeypatch.setattr(ui, "_display", shown.append)
    monkeypatch.setattr(ui, "in_kernel", lambda: True)
    summary = [{"method": "hybrid_s0.5", "unet": "u", "strength": 0.5, "t0": 100, "unet_calls": 20, "n": 16,
                "found_rate": 0.9375, "kid": 0.0123456789}]
    report = {"summary": summary, "floors": {"kid": 0.00123456}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    for name in ("comparison.png", "headline.png"):               # metrics.png, strength.png not written here
        Image.new("L", (8, 4)).save(tmp_path / name)
    assert ui.show_report(tmp_path) is None
    assert isinstance(shown[0], Markdown) and shown[0].data == reports.markdown_table(report)
    assert "0.0123" in shown[0].data and "0.0123456789" not in shown[0].data
    assert [im.size for im in shown[1:]] == [(8, 4), (8, 4)]
    assert capsys.readouterr().out.splitlines() == ["comparison.png: samples, one row per method",
                                                    "headline.png: reference, VAE drafts, vanilla and hybrid"]
    with pytest.raises(FileNotFoundError, match="no report.json"):
        ui.show_report(tmp_path / "nope")


def test_kid_line_is_rounded_as_the_report():
    kid = {"mean": 0.012345678901234, "std": 0.00098765, "extractor": "random-conv (offline)"}
    assert ui.kid_line({"kid": kid}) == "KID to the reference: 0.0123 ± 0.000988 (random-conv (offline) features)"
    assert ui.kid_line({}) == "KID to the reference: n/a"


def test_show_checkpoints_is_a_table(capsys):
    assert ui.show_checkpoints() is None
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| name | kind | size | trained on | sources |"
    assert any(line.startswith("| iris64-unet | unet | ") and " MB |" in line for line in out)


def test_the_steps_box_wins_over_a_starting_respacing_and_lines_report_calls(widgets, tmp_path):
    """A starting config with respacing drew its respaced chain whatever the steps box said, and the line
    reported the typed count: the panel now draws what the box says and every line says what ran."""
    sampler = FakeSampler()
    panel = ui.sampling_panel(sampler, SampleConfig(n=2, steps=200, respacing="ddim25"), out_dir=tmp_path)
    assert "respaced 'ddim25'" in panel.line and "200 steps" not in panel.line   # the first draw: respaced
    panel.controls["steps"].value = 3
    widgets.now[0] += 5
    panel.controls["draw"].click()
    assert sampler.calls[-1].steps == 3 and sampler.calls[-1].respacing == ""
    assert "ddim 3 steps" in panel.line


def test_show_dataset_places_each_figure_between_its_heading_and_caption(tmp_path, capsys, monkeypatch):
    from tests.test_plots import _write_set
    _write_set(tmp_path, 2, 2)
    Image.new("L", (10, 10)).save(tmp_path / "det.png")
    (tmp_path / "verify.md").write_text("# Report\n\n## DET\n\n![det](det.png)\n\nCaption: look at the EER dot.\n"
                                        "\n![missing](gone.png)\n")
    shown = []
    monkeypatch.setattr(ui, "_display", shown.append)
    ui.show_dataset(tmp_path)
    out = capsys.readouterr().out
    assert len(shown) == 2 and shown[1].size == (10, 10)          # the grid, then det.png
    assert out.index("## DET") < out.index("Caption: look at the EER dot.")
    assert "![missing](gone.png)" in out                          # a figure that is not there stays a line
    parts = ui.markdown_parts((tmp_path / "verify.md").read_text(), tmp_path)
    assert [k for k, _ in parts] == ["text", "image", "text"] and parts[1][1] == tmp_path / "det.png"
