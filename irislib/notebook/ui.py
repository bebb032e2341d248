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
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .. import imageio

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
    from ..checkpoint import read_metrics
    rows = read_metrics(metrics_jsonl_path)
    if not rows:
        raise FileNotFoundError(f"no metrics logged in {metrics_jsonl_path} yet; pass a metrics.jsonl file or a run "
                                f"directory after training has logged a step")
    return rows


PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f")     # one colour per curve of an axes, never repeated within it (tab10, grey last)
RAW_COLOUR = "#b0b0b0"    # the raw loss, faint behind its smoothed curve


def moving_median(values, window: int | None = None) -> np.ndarray:
    """Centred moving median (no lag, spikes ignored); the window (odd, shorter at the ends) defaults to about a
    fifteenth of the points, so a short run is barely smoothed and a long one reads clearly."""
    v = np.asarray(values, dtype=float)
    half = (window if window is not None else _median_window(len(v))) // 2
    return np.array([np.median(v[max(0, i - half):i + half + 1]) for i in range(len(v))])


def _median_window(n: int) -> int:
    return 2 * (n // 30) + 1


def _series(rows: list[dict], key: str) -> tuple[list, list]:
    pts = [(r["step"], r[key]) for r in rows if _number(r.get(key))]
    return ([p[0] for p in pts], [p[1] for p in pts]) if pts else ([], [])


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def _loss_keys(rows: list[dict]) -> tuple[list[str], list[str]]:
    """(loss terms without a quartile suffix, e.g. mse/vb or recon/kl/edge; the total loss's quartile keys)."""
    numeric = {k for r in rows for k, v in r.items() if _number(v)}
    terms = sorted(k for k in numeric if k != "loss" and "_q" not in k and any(s in k for s in LOSS_KEYS))
    quartiles = sorted(k for k in numeric if k.startswith("loss_q") and k[6:].isdigit())
    return terms, quartiles


def plot_losses(metrics_jsonl_path: str | Path, path: str | Path | None = None, keys: list[str] | None = None):
    """Training curves from metrics.jsonl, one small axes each, sharing the step axis: the loss (raw faint,
    its moving median bold), its terms (`keys`; default mse/vb or recon/kl/edge), the loss per timestep quartile, the
    learning rate and the dead-unit shares. Legends sit outside the data, right of each axes. Saves a PNG to
    `path`, displays it inline; returns the Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg: works with no display at all
    from matplotlib.figure import Figure

    rows = [r for r in _logged_rows(metrics_jsonl_path) if "step" in r]
    terms, quartiles = _loss_keys(rows)
    terms = list(keys) if keys is not None else terms
    dead = sorted({k for r in rows for k, v in r.items() if k.startswith("dead_units_") and _number(v)})
    dead = dead or (["dead_units"] if any(_number(r.get("dead_units")) for r in rows) else [])
    panels = [("loss", 3.0)] + [(name, 1.5) for name, keys_ in (("terms", terms), ("quartiles", quartiles))
                                if any(_series(rows, k)[0] for k in keys_)]
    panels += [(name, 1.1) for name, key in (("lr", "lr"), ("dead", dead[0] if dead else ""))
               if key and _series(rows, key)[0]]
    fig = Figure(figsize=(7.5, sum(h for _, h in panels) + 0.6))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(panels), 1, height_ratios=[h for _, h in panels], hspace=0.15)
    axes = {}
    for i, (name, _) in enumerate(panels):
        axes[name] = fig.add_subplot(grid[i, 0], sharex=axes.get("loss"))
    window = _median_window(len(rows))
    _draw_loss(axes["loss"], rows, window)
    if "terms" in axes:
        _draw_curves(axes["terms"], rows, terms, "loss terms", window)
    if "quartiles" in axes:
        _draw_curves(axes["quartiles"], rows, quartiles, "loss per timestep quartile (q0 = least noise)", window)
    if "lr" in axes:
        _draw_curves(axes["lr"], rows, ["lr"], "learning rate")
    if "dead" in axes:
        _draw_curves(axes["dead"], rows, dead, "dead units (share of channels)", log=False)
        axes["dead"].set_ylim(-0.05, 1.05)
    last = list(axes.values())[-1]
    for ax in axes.values():
        ax.grid(True, alpha=0.3)
        if ax is not last:
            ax.tick_params(labelbottom=False)
    last.set_xlabel("step")
    axes["loss"].set_title(f"{Path(metrics_jsonl_path).name}: {len(rows)} logged steps, up to step "
                           f"{rows[-1]['step'] if rows else 0}", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(buf.getvalue())
    if in_kernel():
        from IPython.display import Image as IPyImage

        _display(IPyImage(data=buf.getvalue(), format="png"))
    return fig


def _draw_loss(ax, rows: list[dict], window: int) -> None:
    steps, values = _series(rows, "loss")
    if steps:
        ax.plot(steps, values, color=RAW_COLOUR, lw=1, label="loss (raw)")
        ax.plot(steps, moving_median(values, window), color=PALETTE[0], lw=2,
                label=f"loss (median of {window})" if window > 1 else "loss")
        _log_if_positive(ax, values)
        _legend(ax, "loss")
    else:
        ax.text(0.5, 0.5, "no 'loss' logged", ha="center", va="center", transform=ax.transAxes)


def _draw_curves(ax, rows: list[dict], keys: list[str], title: str, window: int = 1, log: bool = True) -> None:
    """One colour per key (moving median over `window` points), log scale when every value is positive and `log`."""
    values = []
    for colour, key in zip(PALETTE, keys):
        steps, v = _series(rows, key)
        if steps:
            ax.plot(steps, moving_median(v, window), color=colour, lw=1.5, label=key)
            values += v
    if log:
        _log_if_positive(ax, values)
    _legend(ax, title)


def _log_if_positive(ax, values) -> None:
    v = np.asarray(values, dtype=float)
    if v.size and (v > 0).all() and v.max() / v.min() > 3:
        from matplotlib.ticker import NullFormatter
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())   # decades only: minor labels crowd a small panel


def _legend(ax, title: str) -> None:
    """Right of the axes, outside the data; the panel's name is the legend's title."""
    ax.legend(title=title, fontsize=7, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              borderaxespad=0.0, frameon=False, alignment="left")


# --- sampling results and the sampling panel ----------------------------------------------------------------
PANEL_RANGES = {"n": (1, 64), "steps": (1, 250)}   # the panel's ranges; values outside are refused, not clamped
QUEUED_CLICK_S = 0.3   # clicks the kernel handles this soon after a draw were made while it ran: dropped


def render_result(result, nrow: int = 8) -> Image.Image:
    """A SampleResult as one picture: VAE drafts | hybrid samples (samples alone for pure-noise sampling)."""
    cfg = result.config
    grid = titled_grid(result.images, nrow, f"hybrid: strength {cfg.strength:g}, {_steps_text(result)}, "
                                          f"seed {cfg.seed}")
    if result.drafts is None or len(result.drafts) == 0:
        return grid
    return side_by_side([titled_grid(result.drafts, nrow, "VAE drafts"), grid])


def _steps_text(result) -> str:
    """What was run, in UNet calls: a respaced chain's calls are not the typed step count."""
    cfg = result.config
    if getattr(cfg, "respacing", ""):
        return f"{cfg.sampler} respaced {cfg.respacing!r} ({result.nfe} UNet calls)"
    return f"{cfg.sampler} {cfg.steps} steps"


def summary_line(result, out_dir: str | Path | None = None) -> str:
    """One line about a draw: what was asked, the start timestep, UNet calls, and where the files are."""
    cfg = result.config
    line = (f"{cfg.n} images, strength {cfg.strength:g}, {_steps_text(result)}, seed {cfg.seed}: "
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


def strength_range(sampler) -> tuple[float, float]:
    """(lowest, highest) strength the loaded pair can draw: up to the UNet's trained max_strength; only 1 (pure
    noise) without a VAE."""
    hi = float(sampler.max_strength)
    return (1.0 if getattr(sampler, "vae", None) is None else 0.0), hi


def check_panel_config(cfg, sampler=None):
    """The SampleConfig validated, inside the panel's ranges and, with `sampler`, drawable by it: one ConfigError
    line naming the field (the notebook form's and the panel's name) and its allowed range; nothing is clamped."""
    cfg = cfg.validate()
    for name, (lo, hi) in PANEL_RANGES.items():
        value = getattr(cfg, name)
        if not lo <= value <= hi:
            raise _config_error(f"{name}={value} is outside the sampling panel's range {lo}..{hi}; use {lo} <= "
                                f"{name} <= {hi} here, or draw with irislib.sample(..., {name}={value}) or "
                                f"`irislib sample --{name} {value}`")
    if sampler is None:
        return cfg
    if getattr(sampler, "is_refiner", False) is True and getattr(sampler, "vae", None) is None:
        raise _config_error("unet_run is a conditional refiner: set vae_run to the VAE run it was trained with")
    lo, hi = strength_range(sampler)
    if cfg.strength > hi + 1e-9:
        raise _config_error(f"strength={cfg.strength:g} is above {hi:g}, the highest noise level unet_run was "
                            f"trained on (its diffusion.max_strength); use {lo:g} <= strength <= {hi:g}, or a "
                            f"full-chain UNet")
    if cfg.strength < lo:
        raise _config_error(f"strength={cfg.strength:g} needs VAE drafts, but vae_run is empty (pure-noise "
                            f"sampling); use strength=1, or set vae_run to a VAE run")
    return cfg


def _config_error(msg: str) -> Exception:
    from ..config import ConfigError
    return ConfigError(msg)


def one_line_errors() -> None:
    """In a notebook kernel, a ConfigError (a form or panel value that is refused) shows as its one line, which
    names the field and what is allowed, instead of a traceback through irislib. Other errors keep theirs."""
    if not in_kernel():
        return
    from IPython import get_ipython

    from ..config import ConfigError

    def one_line(shell, etype, value, tb, tb_offset=None):
        stb = [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}"]
        shell._showtraceback(etype, value, stb)   # run_code does not show a custom handler's lines itself
        return stb
    get_ipython().set_custom_exc((ConfigError,), one_line)


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
    controls: dict = field(default_factory=dict)   # strength/steps/n/seed: text boxes (nothing clamps what is typed)
    sliders: dict = field(default_factory=dict)    # strength/steps/n: sliders that follow the boxes in range
    status: Any = None                   # an HTML line: drawing / done / refused or failed, and why
    output: Any = None                   # the Output widget: the last good picture and line (and a traceback)
    _done_at: float = float("-inf")

    def draw(self, cfg) -> None:
        """Draw `cfg` with the loaded models (nothing is loaded or verified again) and publish it."""
        cfg = check_panel_config(cfg, self.sampler)
        result = self.sampler.sample(cfg, progress=self.widget is not None)
        self.image, self.line = publish(result, self.out_dir, self.nrow)
        self.result, self.config, self.draws = result, cfg, self.draws + 1

    def widget_config(self):
        """The last SampleConfig with the controls' values (batch_size and eta kept). The steps box is what the
        panel draws with: a respacing in the starting config would override it, so the panel drops it."""
        return dataclasses.replace(self.config, respacing="", **{k: self.controls[k].value for k in
                                                                 ("strength", "steps", "sampler", "seed", "n")})

    def on_draw(self, _button=None) -> None:
        """The Draw button: disabled with a status line while drawing; the picture and line go into the output
        widget. A refused or failed draw says why in the status line and keeps the last good picture. Clicks made
        while a draw runs are dropped, not queued."""
        if self.busy or _clock() - self._done_at < QUEUED_CLICK_S:
            return
        self.busy, button = True, self.controls["draw"]
        button.disabled, start = True, _clock()
        try:
            cfg = self.widget_config()
            self._say(f"drawing {cfg.n} images ({cfg.sampler}, {cfg.steps} steps) ...")
            self._draw_into_output(cfg, start)
        finally:
            self.busy, button.disabled, self._done_at = False, False, _clock()

    def _say(self, text: str, error: bool = False) -> None:
        import html
        text = html.escape(text, quote=False)
        self.status.value = f'<span style="color:#b00020">{text}</span>' if error else text

    def _draw_into_output(self, cfg, start: float) -> None:
        from ..config import ConfigError
        kept = f"the picture and files are from draw {self.draws}" if self.draws else "nothing was drawn yet"
        try:
            self.draw(cfg)
        except ConfigError as e:   # a refused value: one line, the picture stays
            self._say(f"Draw refused: {e} ({kept})", error=True)
            return
        except Exception as e:  # shown in the panel, not only in a log console; the picture stays above it
            self._say(f"Draw failed: {type(e).__name__}: {e} (traceback below; {kept})", error=True)
            with self.output:
                self.output.clear_output()
                self._show_last()
                traceback.print_exc()
            return
        with self.output:
            self.output.clear_output()
            self._show_last()
        self._say(f"draw {self.draws} done in {_clock() - start:.1f} s")

    def _show_last(self) -> None:
        if self.image is not None:
            _display(self.image)
            print(self.line)


def _clock() -> float:
    return time.monotonic()


def sampling_panel(sampler, config=None, out_dir: str | Path | None = None, nrow: int = 8) -> Panel:
    """Draw `config` (a SampleConfig) once with a loaded HybridSampler and show it; in a notebook with a widget
    front end, sliders, boxes and a Draw button draw again with the same loaded models.

    With `out_dir`, every draw replaces the files there (PNGs, grid.png, drafts_grid.png, settings.json,
    panel.png), so they always match the picture. Headless (papermill, CI) the picture and line are ordinary
    outputs; with widgets they live in the panel's output widget and are replaced each draw. A value outside
    what the pair can draw (check_panel_config) is refused with one line naming it, never clamped.
    """
    from ..generate.sampler import SampleConfig
    panel = Panel(sampler, config or SampleConfig(), None if out_dir is None else Path(out_dir), nrow)
    panel.draw(panel.config)           # the first draw raises as usual (one line in a notebook), before any widget
    if not widgets_available():
        _display(panel.image)          # an ordinary output: visible to papermill, nbval and static viewers
        print(panel.line)
        return panel
    _build_widgets(panel)
    _display(panel.widget)
    with panel.output:
        panel._show_last()
    return panel


def _build_widgets(panel: Panel) -> None:
    """Each number is a text box the Draw button reads (a typed 0.9 reaches the check and is refused with a
    message; a slider's own box would clamp it silently) beside a slider over the allowed range that follows it."""
    import ipywidgets as w  # 7.x (Colab) and 8.x share every class and keyword used here

    from ..diffusion.samplers import SAMPLERS
    p, style = panel.config, {"description_width": "initial"}
    lo, hi = strength_range(panel.sampler)
    ranges = {"strength": (lo, hi, 0.05), "steps": (*PANEL_RANGES["steps"], 1), "n": (*PANEL_RANGES["n"], 1)}
    c, rows = {}, {}
    for name, (a, b, step) in ranges.items():
        float_ = name == "strength"
        box = (w.FloatText if float_ else w.IntText)(value=getattr(p, name), description=name, style=style,
                                                     layout=w.Layout(width="150px"))
        slider = (w.FloatSlider if float_ else w.IntSlider)(value=min(max(getattr(p, name), a), b), min=a, max=b,
                                                            step=step, readout=False, layout=w.Layout(width="180px"))
        _tip(box, f"allowed {a:g} to {b:g}; other values are refused with a message when you press Draw")
        _follow(box, slider, a, b)
        c[name], panel.sliders[name], rows[name] = box, slider, w.HBox([box, slider])
    _tip(c["strength"], f"noise std sqrt(1 - alpha_bar) the VAE draft is noised to: 0 = the draft, 1 = pure noise "
                        f"(not diffusers' fraction of steps); allowed {lo:g} to {hi:g}, the UNet's trained "
                        f"max_strength" + ("; only 1 without a VAE" if lo >= 1 else ""))
    if lo >= hi:                          # no VAE: only pure noise
        c["strength"].disabled = panel.sliders["strength"].disabled = True
    c["sampler"] = w.Dropdown(options=list(SAMPLERS), value=p.sampler, description="sampler")
    c["seed"] = w.IntText(value=p.seed, description="seed", style=style, layout=w.Layout(width="220px"))
    _tip(c["seed"], "image i uses seed + i; whole numbers from 0 to 2**63 - n")
    c["draw"] = w.Button(description="Draw", button_style="primary")
    c["draw"].on_click(panel.on_draw)
    panel.controls, panel.output = c, w.Output()
    panel.status = w.HTML(value="ready: change the controls and press Draw")
    panel.widget = w.VBox([w.HBox([rows["strength"], rows["steps"], c["sampler"]]),
                           w.HBox([rows["n"], c["seed"], c["draw"]]), panel.status, panel.output])


def _tip(widget, text: str) -> None:
    setattr(widget, "tooltip" if "tooltip" in widget.trait_names() else "description_tooltip", text)  # 8.x renamed


def _follow(box, slider, lo, hi) -> None:
    """Slider -> box always; box -> slider only inside the range (the box keeps what was typed)."""
    def to_box(change):
        if box.value != change["new"]:
            box.value = change["new"]

    def to_slider(change):
        if lo <= change["new"] <= hi and slider.value != change["new"]:
            slider.value = change["new"]
    slider.observe(to_box, names="value")
    box.observe(to_slider, names="value")


# --- reports and listings ----------------------------------------------------------------------------------
REPORT_FIGURES = (("comparison.png", "samples, one row per method"), ("metrics.png", "pupil metrics per method"),
                  ("strength.png", "metrics against strength"), ("headline.png", "reference, VAE drafts, vanilla "
                                                                                 "and hybrid"))


def kid_line(metrics: dict) -> str:
    """irislib.evaluate's KID as one line, rounded as the report rounds (3 significant digits)."""
    kid = metrics.get("kid")
    if not isinstance(kid, dict):
        return f"KID to the reference: {_round(kid)}"
    extractor = f" ({kid['extractor']} features)" if kid.get("extractor") else ""
    return f"KID to the reference: {_round(kid.get('mean'))} ± {_round(kid.get('std'))}{extractor}"


def _round(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def show_report(out_dir: str | Path) -> None:
    """A comparison report folder (irislib.compare's report.json and figures) shown as a person reads it: the
    results table rendered (Markdown, the report's rounding) and each figure the report wrote, under its name.
    Prints the table when not in a notebook; returns nothing, so a cell ending with it shows no dict."""
    import json

    from ..evaluation import report as reports
    out = Path(out_dir)
    if not (out / "report.json").is_file():
        raise FileNotFoundError(f"no report.json in {out}: run irislib.compare(..., out={str(out)!r}) first")
    report = json.loads((out / "report.json").read_text())
    table = reports.markdown_table(report)
    if in_kernel():
        from IPython.display import Markdown
        _display(Markdown(table))
    else:
        print(table)
    for name, caption in REPORT_FIGURES:
        if (out / name).is_file():
            print(f"{name}: {caption}")
            _display(Image.open(out / name))


def ensure_verified(folder: str | Path, verify: bool = True, n_training: int = 512, training=None) -> None:
    """The dataset folder's verification report (irislib.verify_dataset), written when `verify` and it has
    none yet (nothing is returned: a notebook cell shows no result): a re-run of 05_synthetic_dataset keeps a finished report instead of matching every pair again.
    `training`: the UNet run or manifest name the user chose, whose training images leakage is checked against."""
    folder = Path(folder)
    if verify and not (folder / "verify.json").exists():
        from ..evaluation.verify import verify_dataset
        verify_dataset(folder, n_training=n_training, training=training)


def show_dataset(folder: str | Path, identities: int = 8, captures: int = 8) -> None:
    """A synthetic dataset as a person checks it: identities (rows) x captures (columns), then its verification
    report (verify.md rendered, each figure where the report places it, with its caption) when
    irislib.verify_dataset wrote one."""
    from ..evaluation import plots
    folder = Path(folder)
    grid = plots.dataset_grid(folder, folder / "grid.png", identities, captures)
    print(f"{grid}: identities (rows) x captures (columns); along a row one eye, down a column different eyes")
    _display(Image.open(grid))
    md = folder / "verify.md"
    if not md.is_file():
        print(f"no verify.md in {folder}: irislib.verify_dataset({str(folder)!r}) writes it")
        return
    for kind, part in markdown_parts(md.read_text(), md.parent):
        if kind == "image":
            _display(Image.open(part))
        elif in_kernel():
            from IPython.display import Markdown
            _display(Markdown(part))
        else:
            print(part)


_IMAGE_LINE = re.compile(r"^!\[[^\]]*\]\(([^)]+)\)\s*$")


def markdown_parts(text: str, folder: Path) -> list[tuple[str, object]]:
    """Markdown split at its figure lines: ("text", chunk) and ("image", path) in reading order, so each figure
    shows where the report puts it, between its heading and its caption. A figure not in `folder` (or missing)
    stays a text line."""
    parts, chunk = [], []
    for line in text.splitlines():
        m = _IMAGE_LINE.match(line)
        target = folder / m.group(1) if m else None
        if target is not None and target.is_file() and target.resolve().parent == folder.resolve():
            if chunk:
                parts.append(("text", "\n".join(chunk)))
            parts.append(("image", target))
            chunk = []
        else:
            chunk.append(line)
    if any(line.strip() for line in chunk):
        parts.append(("text", "\n".join(chunk)))
    return parts


def show_checkpoints() -> None:
    """The checkpoints in checkpoints_manifest.json as a small table: name, kind, size, what it was trained on."""
    from .. import hub
    lines = ["| name | kind | size | trained on | sources |", "|---|---|---|---|---|"]
    for r in hub.list_checkpoints():
        size = f"{r['size'] / 1e6:.1f} MB" if isinstance(r.get("size"), (int, float)) else ""
        cells = [r.get("name", ""), r.get("kind", ""), size, r.get("trained_on", ""), ", ".join(r.get("sources", []))]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    table = "\n".join(lines)
    if in_kernel():
        from IPython.display import Markdown
        _display(Markdown(table))
    else:
        print(table)
