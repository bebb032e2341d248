"""Notebook display helpers: image grids, loss plots and a sampling panel that also works headless.

Imported only by the notebooks and the CLI. Every helper writes a file and shows an ordinary output (a PIL image, a
figure, a printed line) so papermill, nbval and viewers without a widget manager see it; the sampling panel's
widgets redraw with a sampler loaded once. Widgets are skipped when $IRISLIB_HEADLESS is set (CI sets it), when
ipywidgets is missing, or outside an IPython kernel (plain Python). Works with ipywidgets 7.7 (Colab) and 8.
"""
from __future__ import annotations

import dataclasses
import io
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from . import imageio

PAD = 2           # pixels between grid cells
TITLE_PX = 14     # height of the title strip
LOSS_KEYS = ("loss", "mse", "vb", "kl", "recon", "edge")


# --- environment -------------------------------------------------------------------------------------------
def in_kernel() -> bool:
    """True inside an IPython kernel (Jupyter, Colab, papermill), False in plain Python or a terminal IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def widgets_available() -> bool:
    """Whether to build ipywidgets: in a kernel, ipywidgets importable, and $IRISLIB_HEADLESS unset or 0."""
    if os.environ.get("IRISLIB_HEADLESS", "").lower() not in ("", "0", "false", "no"):
        return False
    if not in_kernel():
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _display(obj) -> None:
    if in_kernel():
        from IPython.display import display

        display(obj)


# --- image grids -------------------------------------------------------------------------------------------
def to_uint8(images, value_range: tuple[float, float] = (-1.0, 1.0)) -> list[np.ndarray]:
    """A batch (tensor/array [N, C, H, W] or [N, H, W(, C)], or a list of PIL images/paths/arrays) as HxW(x3) uint8."""
    if hasattr(images, "detach"):                           # torch tensor, kept optional here
        images = images.detach().float().cpu().numpy()
    if isinstance(images, np.ndarray):
        if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
            images = images.transpose(0, 2, 3, 1)           # [N, C, H, W] -> [N, H, W, C]
        images = list(images)
    out = []
    for im in images:
        if isinstance(im, (str, Path)):
            im = Image.open(im)
        if isinstance(im, Image.Image):
            im = np.asarray(im.convert("L" if im.mode in ("L", "I", "I;16", "F") else "RGB"))
        im = np.asarray(im)
        if im.dtype != np.uint8:
            lo, hi = value_range
            im = np.clip((im.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0) * 255.0 + 0.5
            im = im.astype(np.uint8)
        if im.ndim == 3 and im.shape[-1] == 1:
            im = im[..., 0]
        out.append(im)
    return out


def titled_grid(images, nrow: int = 8, title: str | None = None, value_range=(-1.0, 1.0)) -> Image.Image:
    """Tile any batch (tensors, arrays, PIL images, paths) `nrow` per row, with an optional title strip above.

    For notebooks; `imageio.make_grid` is the plain tensor grid the run directories and reports write."""
    grid = imageio.tile(to_uint8(images, value_range), nrow, PAD, TITLE_PX if title else 0)
    if title:
        ImageDraw.Draw(grid).text((PAD, 1), title, fill=255 if grid.mode == "L" else (255, 255, 255))
    return grid


def show_grid(images, nrow: int = 8, title: str | None = None, path: str | Path | None = None,
              value_range=(-1.0, 1.0)) -> Image.Image:
    """Make a grid, save it to `path` (PNG) if given, and display it inline in a notebook."""
    grid = titled_grid(images, nrow, title, value_range)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        grid.save(path)
    _display(grid)
    return grid


def side_by_side(panels: list[Image.Image], gap: int = 8) -> Image.Image:
    """Place grids left to right (e.g. VAE drafts next to hybrid samples)."""
    mode = "RGB" if any(p.mode == "RGB" for p in panels) else "L"
    width = sum(p.width for p in panels) + gap * (len(panels) - 1)
    canvas = Image.new(mode, (width, max(p.height for p in panels)), 0)
    x = 0
    for p in panels:
        canvas.paste(p.convert(mode), (x, 0))
        x += p.width + gap
    return canvas


def show_samples(run_dir: str | Path, last: int = 1) -> None:
    """Display the newest `last` sample grids a training run wrote to run_dir/samples, each under its file name.
    Returns nothing, so a notebook cell ending with it does not also print a list."""
    grids = sorted(Path(run_dir).glob("samples/*.png"), key=lambda p: (p.stat().st_mtime, p.name))[-last:]
    if not grids:
        print(f"no sample grids in {Path(run_dir) / 'samples'} yet")
    for p in grids:
        print(f"sample grid {p}")
        _display(Image.open(p))


# --- loss plots --------------------------------------------------------------------------------------------
def _logged_rows(metrics_jsonl_path: str | Path) -> list[dict]:
    """checkpoint.read_metrics' rows, or one clear error when nothing was logged yet (plotting nothing misleads)."""
    from .checkpoint import read_metrics
    rows = read_metrics(metrics_jsonl_path)
    if not rows:
        raise FileNotFoundError(f"no metrics logged in {metrics_jsonl_path} yet; pass a metrics.jsonl file or a run "
                                f"directory after training has logged a step")
    return rows


def plot_losses(metrics_jsonl_path: str | Path, path: str | Path | None = None, keys: list[str] | None = None):
    """Plot loss curves against step from metrics.jsonl; save a PNG to `path`, display inline; returns the Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg: works with no display at all
    from matplotlib.figure import Figure

    rows = [r for r in _logged_rows(metrics_jsonl_path) if "step" in r]
    keys = keys or sorted({k for r in rows for k, v in r.items()
                           if isinstance(v, (int, float)) and any(s in k for s in LOSS_KEYS)})
    fig = Figure(figsize=(6, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for key in keys:
        pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        if pts:
            ax.plot(*zip(*pts), label=key)
    positive = all(v > 0 for r in rows for k, v in r.items() if k in keys and isinstance(v, (int, float)))
    if rows and keys and positive:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(f"{Path(metrics_jsonl_path).name}: {len(rows)} logged steps")
    if keys and rows:
        ax.legend(fontsize=8)
    _plot_dead_units(ax, rows)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(buf.getvalue())
    if in_kernel():
        from IPython.display import Image as IPyImage

        _display(IPyImage(data=buf.getvalue(), format="png"))
    return fig


def _plot_dead_units(ax, rows: list[dict]) -> None:
    """Dead-unit shares per activation type (metrics.jsonl dead_units_<type>) on a second axis, 0-1, dashed."""
    kinds = sorted({k for r in rows for k, v in r.items() if k.startswith("dead_units_") and
                    isinstance(v, (int, float))})
    if not kinds:
        return
    ax2 = ax.twinx()
    for key in kinds:
        ax2.plot(*zip(*[(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]), "--",
                 label=key)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("dead units (share of channels)")
    ax2.legend(fontsize=8, loc="upper center")


# --- sampling results and the sampling panel ----------------------------------------------------------------
PANEL_RANGES = {"n": (1, 64), "steps": (1, 250)}   # the sliders' ranges; values outside are refused, not clamped
QUEUED_CLICK_S = 0.3   # clicks the kernel handles this soon after a draw were made while it ran: dropped


def render_result(result, nrow: int = 8) -> Image.Image:
    """A SampleResult as one picture: VAE drafts | hybrid samples (samples alone for pure-noise sampling)."""
    cfg = result.config
    grid = titled_grid(result.images, nrow, f"hybrid: strength {cfg.strength:g}, {cfg.steps} {cfg.sampler} steps, "
                                          f"seed {cfg.seed}")
    if result.drafts is None or len(result.drafts) == 0:
        return grid
    return side_by_side([titled_grid(result.drafts, nrow, "VAE drafts"), grid])


def summary_line(result, out_dir: str | Path | None = None) -> str:
    """One line about a draw: what was asked, the start timestep, UNet calls, and where the files are."""
    cfg = result.config
    line = (f"{cfg.n} images, strength {cfg.strength:g}, {cfg.sampler} {cfg.steps} steps, seed {cfg.seed}: "
            f"t0={result.t0}, {result.nfe} UNet calls per image")
    if out_dir is not None:
        line += f"; {len(result.paths)} PNGs, grid.png, panel.png and settings.json in {out_dir}"
    return line


def publish(result, out_dir: str | Path | None = None, nrow: int = 8) -> tuple[Image.Image, str]:
    """(picture, summary line) of a draw; with `out_dir`, its files replace the last draw's there (PNGs, grids,
    settings.json via SampleResult.save, and panel.png)."""
    image = render_result(result, nrow)
    if out_dir is not None:
        result.save(out_dir)
        image.save(Path(out_dir) / "panel.png")
    return image, summary_line(result, out_dir)


def show_result(result, out_dir: str | Path | None = None, nrow: int = 8) -> None:
    """Save a draw (see `publish`), show drafts | samples once and print its line; returns nothing, so a
    notebook cell ending with it shows the picture once."""
    image, line = publish(result, out_dir, nrow)
    _display(image)
    print(line)


def check_panel_config(cfg):
    """The SampleConfig validated, and inside the panel's slider ranges: a clear error instead of a clamped value."""
    cfg = cfg.validate()
    for name, (lo, hi) in PANEL_RANGES.items():
        value = getattr(cfg, name)
        if not lo <= value <= hi:
            raise _config_error(f"{name}={value} is outside the sampling panel's range {lo}..{hi} (its slider "
                                f"would clamp it); use {name} <= {hi} here, or draw with irislib.sample(..., "
                                f"{name}={value}) or `irislib sample --{name} {value}`")
    return cfg   # strength above the UNet's max_strength is refused by HybridSampler.sample, with the same words


def _config_error(msg: str) -> Exception:
    from .config import ConfigError
    return ConfigError(msg)


@dataclass
class Panel:
    """A loaded sampler and its last draw; widgets (None when headless) redraw with sampler.sample each Draw."""
    sampler: Any                         # a HybridSampler (anything with .sample(SampleConfig) and .max_strength)
    config: Any                          # the SampleConfig of the last draw
    out_dir: Path | None = None
    nrow: int = 8
    result: Any = None
    image: Image.Image | None = None
    line: str = ""
    draws: int = 0
    busy: bool = False
    widget: Any = None
    controls: dict = field(default_factory=dict)
    status: Any = None                   # a Label: drawing / done / failed
    output: Any = None                   # the Output widget: picture, line, or the error
    _done_at: float = float("-inf")

    def draw(self, cfg) -> None:
        """Draw `cfg` with the loaded models (nothing is loaded or verified again) and publish it."""
        cfg = check_panel_config(cfg)
        result = self.sampler.sample(cfg, progress=self.widget is not None)
        self.image, self.line = publish(result, self.out_dir, self.nrow)
        self.result, self.config, self.draws = result, cfg, self.draws + 1

    def widget_config(self):
        """The last SampleConfig with the controls' values (batch_size, eta, respacing kept)."""
        return dataclasses.replace(self.config, **{k: self.controls[k].value for k in
                                                   ("strength", "steps", "sampler", "seed", "n")})

    def on_draw(self, _button=None) -> None:
        """The Draw button: disabled with a status line while drawing; the picture and line, or the error, go
        into the output widget. Clicks made while a draw runs are dropped, not queued."""
        if self.busy or _clock() - self._done_at < QUEUED_CLICK_S:
            return
        self.busy, button = True, self.controls["draw"]
        button.disabled, start = True, _clock()
        try:
            cfg = self.widget_config()
            self.status.value = f"drawing {cfg.n} images ({cfg.sampler}, {cfg.steps} steps) ..."
            with self.output:
                self._draw_into_output(cfg, start)
        finally:
            self.busy, button.disabled, self._done_at = False, False, _clock()

    def _draw_into_output(self, cfg, start: float) -> None:
        from .config import ConfigError
        try:
            self.draw(cfg)
        except ConfigError as e:
            self.output.clear_output()
            self.status.value = "Draw failed: the settings were refused (see below); the files are from the last draw"
            print(f"Draw failed: {e}")
            return
        except Exception as e:  # shown in the panel, not only in a log console
            self.output.clear_output()
            self.status.value = f"Draw failed: {type(e).__name__} (see below)"
            traceback.print_exc()
            return
        self.output.clear_output()
        _display(self.image)
        print(self.line)
        self.status.value = f"draw {self.draws} done in {_clock() - start:.1f} s"


def _clock() -> float:
    return time.monotonic()


def sampling_panel(sampler, config=None, out_dir: str | Path | None = None, nrow: int = 8) -> Panel:
    """Draw `config` (a SampleConfig) once with a loaded HybridSampler and show it; in a notebook with a widget
    front end, sliders and a Draw button draw again with the same loaded models.

    With `out_dir`, every draw replaces the files there (PNGs, grid.png, drafts_grid.png, settings.json,
    panel.png), so they always match the picture. Headless (papermill, CI) the picture and line are ordinary
    outputs; with widgets they live in the panel's output widget and are replaced each draw.
    """
    from .sampler import SampleConfig
    panel = Panel(sampler, config or SampleConfig(), None if out_dir is None else Path(out_dir), nrow)
    panel.draw(panel.config)           # the first draw raises as usual, before any widget exists
    if not widgets_available():
        _display(panel.image)          # an ordinary output: visible to papermill, nbval and static viewers
        print(panel.line)
        return panel
    _build_widgets(panel)
    _display(panel.widget)
    with panel.output:
        _display(panel.image)
        print(panel.line)
    return panel


def _build_widgets(panel: Panel) -> None:
    import ipywidgets as w  # 7.x (Colab) and 8.x share every class and keyword used here

    from .diffusion.samplers import SAMPLERS
    p, style = panel.config, {"description_width": "initial"}
    strength = w.FloatSlider(value=p.strength, min=0.0, max=panel.sampler.max_strength, step=0.05,
                             description="strength (noise std)", style=style)
    tip = "tooltip" if "tooltip" in strength.trait_names() else "description_tooltip"   # 8.x renamed it
    setattr(strength, tip, "noise std sqrt(1 - alpha_bar) the VAE draft is noised to: 0 = the draft, 1 = pure "
                           "noise; not diffusers' strength (a fraction of the steps)")
    c = {"strength": strength,
         "steps": w.IntSlider(value=p.steps, min=PANEL_RANGES["steps"][0], max=PANEL_RANGES["steps"][1],
                              description="steps", style=style),
         "sampler": w.Dropdown(options=list(SAMPLERS), value=p.sampler, description="sampler"),
         "seed": w.IntText(value=p.seed, description="seed"),
         "n": w.IntSlider(value=p.n, min=PANEL_RANGES["n"][0], max=PANEL_RANGES["n"][1], description="n",
                          style=style),
         "draw": w.Button(description="Draw", button_style="primary")}
    c["draw"].on_click(panel.on_draw)
    panel.controls, panel.status, panel.output = c, w.Label(value="ready: change the controls and press Draw"), w.Output()
    panel.widget = w.VBox([w.HBox([c["strength"], c["steps"], c["sampler"]]),
                           w.HBox([c["seed"], c["n"], c["draw"]]), panel.status, panel.output])
