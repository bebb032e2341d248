"""Notebook display helpers: image grids, loss plots and a sampling panel that also works headless.

Imported only by the notebooks and the CLI. Every helper writes or returns an ordinary result (a PIL image, a
PNG file, a figure) so papermill, nbval and viewers without a widget manager see it; widgets only re-render.
Widgets are skipped when $IRISLIB_HEADLESS is set (CI sets it), when ipywidgets is missing, or outside an
IPython kernel (plain Python). Works with ipywidgets 7 (Colab) and 8.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageDraw

from . import imageio
from .checkpoint.metrics import read_jsonl

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


def make_grid(images, nrow: int = 8, title: str | None = None, value_range=(-1.0, 1.0)) -> Image.Image:
    """Tile images into one PIL image, `nrow` per row, with an optional title strip above."""
    grid = imageio.tile(to_uint8(images, value_range), nrow, PAD, TITLE_PX if title else 0)
    if title:
        ImageDraw.Draw(grid).text((PAD, 1), title, fill=255 if grid.mode == "L" else (255, 255, 255))
    return grid


def show_grid(images, nrow: int = 8, title: str | None = None, path: str | Path | None = None,
              value_range=(-1.0, 1.0)) -> Image.Image:
    """Make a grid, save it to `path` (PNG) if given, and display it inline in a notebook."""
    grid = make_grid(images, nrow, title, value_range)
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


def show_samples(run_dir: str | Path, last: int = 1) -> list[Path]:
    """Display the newest `last` sample grids a training run wrote to run_dir/samples; returns their paths."""
    grids = sorted(Path(run_dir).glob("samples/*.png"), key=lambda p: (p.stat().st_mtime, p.name))[-last:]
    if not grids:
        print(f"no sample grids in {Path(run_dir) / 'samples'} yet")
    for p in grids:
        print(p)
        _display(Image.open(p))
    return grids


# --- loss plots --------------------------------------------------------------------------------------------
def read_metrics(metrics_jsonl_path: str | Path) -> list[dict]:
    """Rows of a metrics.jsonl (a run directory is also accepted); a torn last line is skipped."""
    path = Path(metrics_jsonl_path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; pass a metrics.jsonl file or a run directory "
                                f"after training has logged a step")
    return read_jsonl(path)


def plot_losses(metrics_jsonl_path: str | Path, path: str | Path | None = None, keys: list[str] | None = None):
    """Plot loss curves against step from metrics.jsonl; save a PNG to `path`, display inline; returns the Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg: works with no display at all
    from matplotlib.figure import Figure

    rows = [r for r in read_metrics(metrics_jsonl_path) if "step" in r]
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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(buf.getvalue())
    if in_kernel():
        from IPython.display import Image as IPyImage

        _display(IPyImage(data=buf.getvalue(), format="png"))
    return fig


# --- sampling panel ----------------------------------------------------------------------------------------
SAMPLERS = ("ddim", "ddpm", "dpm++2m")
PANEL_DEFAULTS = {"strength": 0.5, "steps": 50, "sampler": "ddim", "seed": 0, "n": 16}


@dataclass
class Panel:
    """What sampling_panel shows: the latest result and picture, and the widgets (None when headless)."""
    result: Any
    image: Image.Image
    params: dict
    widget: Any = None
    controls: dict = field(default_factory=dict)


def render_result(result, params: dict, nrow: int = 8) -> Image.Image:
    """A sample_fn result (with .images and optional .drafts, or plain images) as drafts | samples grids."""
    images = getattr(result, "images", result)
    grid = make_grid(images, nrow, f"hybrid: strength {params.get('strength')}, {params.get('steps')} "
                                   f"{params.get('sampler')} steps, seed {params.get('seed')}")
    drafts = getattr(result, "drafts", None)
    if drafts is None or len(drafts) == 0:
        return grid
    return side_by_side([make_grid(drafts, nrow, "VAE drafts"), grid])


def sampling_panel(sample_fn: Callable[..., Any], defaults: dict | None = None, nrow: int = 8,
                   path: str | Path | None = None) -> Panel:
    """Call sample_fn(strength, steps, sampler, seed, n) once with `defaults` and show the grid; in a notebook
    with a widget front end, add sliders and a Draw button that call it again with the chosen values."""
    params = {**PANEL_DEFAULTS, **(defaults or {})}
    result = sample_fn(**params)
    image = render_result(result, params, nrow)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
    _display(image)                       # an ordinary output: visible to papermill, nbval and static viewers
    panel = Panel(result=result, image=image, params=params)
    if widgets_available():
        _build_widgets(panel, sample_fn, nrow)
        _display(panel.widget)
    return panel


def _build_widgets(panel: Panel, sample_fn: Callable[..., Any], nrow: int) -> None:
    import ipywidgets as w  # 7.x and 8.x share every class and keyword used here

    p, style = panel.params, {"description_width": "initial"}
    c = {"strength": w.FloatSlider(value=p["strength"], min=0.0, max=1.0, step=0.05, description="strength",
                                   style=style),
         "steps": w.IntSlider(value=p["steps"], min=1, max=250, description="steps", style=style),
         "sampler": w.Dropdown(options=list(dict.fromkeys([p["sampler"], *SAMPLERS])), value=p["sampler"],
                               description="sampler"),
         "seed": w.IntText(value=p["seed"], description="seed"),
         "n": w.IntSlider(value=p["n"], min=1, max=64, description="n", style=style),
         "draw": w.Button(description="Draw", button_style="primary")}
    out = w.Output()

    def on_draw(_button=None):
        params = {k: c[k].value for k in ("strength", "steps", "sampler", "seed", "n")}
        panel.result = sample_fn(**params)
        panel.image, panel.params = render_result(panel.result, params, nrow), params
        with out:
            out.clear_output(wait=True)
            from IPython.display import display

            display(panel.image)

    c["draw"].on_click(on_draw)
    panel.controls = c
    panel.widget = w.VBox([w.HBox([c["strength"], c["steps"], c["sampler"]]),
                           w.HBox([c["seed"], c["n"], c["draw"]]), out])
