"""Screenshots of the notebooks as a person sees them: each notebook executed headless (papermill, smoke sizes),
rendered to HTML with JupyterLab's template (nbconvert) and photographed by headless Chromium.

Needs: pip install -e ".[test]" nbconvert, and a Chromium (Debian: apt-get install chromium). Run from the
repository root:  python docs/screenshots/take.py   (about 3 minutes on 2 cores; writes docs/screenshots/*.png)
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import papermill as pm

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "screenshots"
SHOTS = [   # (png, notebook, parameters, the cells shown: those whose source has one of these words, height px)
    ("02_loss_plot", "02_train_diffusion", {"smoke": True, "max_steps": 60}, ("#@title Loss curves",), 1100),
    ("04_table_and_figures", "04_evaluate", {"smoke": True, "vanilla_unet": ""}, ("#@title Hybrid at",), 2000),
    ("03_strength_refused", "03_hybrid_sampling", {"smoke": True, "strength": 0.9}, ("injected", "#@title Load",
                                                                                     "#@title Draw"), 700),
    ("03_seed_refused", "03_hybrid_sampling", {"smoke": True, "seed": 99999999999999999999},
     ("injected", "#@title Load", "#@title Draw"), 700),
]


def run(name: str, params: dict, work: Path) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    out = work / f"{name}.ipynb"
    try:
        pm.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(out), parameters=params,
                            cwd=str(work), progress_bar=False, kernel_name="python3")
    except pm.PapermillExecutionError:
        pass                                          # a refused form value: its one-line error is the picture
    return out


def trim(path: Path, keep) -> Path:
    """Only the cells a screenshot is about (their sources and outputs), so the picture shows them."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if c.cell_type == "code" and (any(k in c.source for k in keep) or
                                                                   "injected-parameters" in c.metadata.get("tags", [])
                                                                   and "injected" in keep)]
    nbformat.write(nb, path)
    return path


def main() -> None:
    os.environ.update(IRISLIB_HEADLESS="1", IRISLIB_ENV="local")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for png, name, params, keep, height in SHOTS:
            nb = trim(run(name, params, work / png), keep)
            subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", "--template", "lab", str(nb),
                            "--output", f"{png}.html"], check=True, capture_output=True)
            html = nb.with_name(f"{png}.html")
            subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            f"--screenshot={OUT / (png + '.png')}", f"--window-size=1100,{height}",
                            html.as_uri()], check=True, capture_output=True)
            print(OUT / f"{png}.png")


if __name__ == "__main__":
    main()
