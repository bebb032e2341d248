"""Screenshots taken in JupyterLab itself: headless Chromium (Debian's `chromium`, no browser download) driven by
Playwright opens smoke copies of the notebooks in a local JupyterLab, runs all cells, uses the sampling panel like a
person (types into its boxes, presses Draw) and photographs what is on screen.

Needs: pip install -e ".[test]" jupyterlab "ipywidgets>=8" playwright; apt-get install chromium. From the repository
root:  python docs/screenshots/jupyterlab.py [05]   (a few minutes on 2 cores; writes docs/screenshots/lab_*.png;
"05" takes only the dataset notebook's grid and report)
"""
from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import papermill as pm
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
PORT, TOKEN = 8899, "irislib-screenshots"


def prepare(work: Path) -> None:
    """Smoke copies with their parameters injected (papermill --prepare-only): what a user sets in the form."""
    for name, params in (("02_train_diffusion", {"smoke": True, "max_steps": 60}),
                         ("03_hybrid_sampling", {"smoke": True, "n": 4, "steps": 4}),
                         ("04_evaluate", {"smoke": True, "vanilla_unet": ""}),
                         ("05_synthetic_dataset", {"smoke": True, "identities": 3, "captures": 2})):
        pm.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(work / f"{name}.ipynb"),
                            parameters=params, prepare_only=True, kernel_name="python3")


def start_lab(work: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "IRISLIB_HEADLESS"}
    env.update(IRISLIB_ENV="local", OMP_NUM_THREADS="2")
    lab = subprocess.Popen(["jupyter", "lab", "--no-browser", f"--port={PORT}", f"--ServerApp.token={TOKEN}",
                            f"--ServerApp.root_dir={work}", "--allow-root"], env=env, cwd=work,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(120):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", PORT)) == 0:
                return lab
        time.sleep(0.5)
    raise RuntimeError("JupyterLab did not start")


def run_all(browser, name: str, done_text: str, timeout_s: int = 600):
    """A fresh page (and JupyterLab workspace) with the notebook open and every cell run; returns the page."""
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(f"http://127.0.0.1:{PORT}/lab/workspaces/{name}/tree/{name}.ipynb?reset&token={TOKEN}")
    page.wait_for_selector(".jp-Notebook", timeout=120_000)
    page.wait_for_timeout(4000)                                   # kernel start
    no_news = page.get_by_role("button", name="No", exact=True)   # JupyterLab's "notify about news?" toast
    if no_news.count():
        no_news.first.click()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.locator("li[data-command='runmenu:run-all']").click()
    page.get_by_text(done_text).first.wait_for(timeout=timeout_s * 1000)
    page.wait_for_timeout(2000)
    return page


def shoot_cell(page, text: str, path: Path) -> None:
    """The notebook cell whose source holds `text`, with its outputs."""
    cell = page.locator(".jp-Cell", has_text=text).first
    cell.scroll_into_view_if_needed()
    cell.screenshot(path=str(path))
    print(path)


def panel(page, box: str, value: str, path: Path) -> None:
    """Type `value` into the panel's `box`, press Draw, photograph the panel with its message."""
    field = page.locator(".widget-inline-hbox", has=page.locator(f"label:text-is('{box}')")).locator("input").first
    field.fill(value)
    field.press("Tab")
    page.get_by_role("button", name="Draw").click()
    page.wait_for_timeout(3000)
    shoot_cell(page, "sampling_panel", path)
    field.fill("0" if box == "seed" else "0.5")
    field.press("Tab")


def dataset_views(page) -> None:
    """05's identities x captures grid at its own size, then the rendered verification report with its captions."""
    page.set_viewport_size({"width": 1400, "height": 3600})   # the whole report in view: JupyterLab greys out
    page.wait_for_timeout(2000)                                # what lies below the window
    cell = page.locator(".jp-Cell", has_text="ui.show_dataset").first
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-OutputArea-output img").first.screenshot(path=str(OUT / "lab_05_grid.png"))
    print(OUT / "lab_05_grid.png")
    shoot_cell(page, "ui.show_dataset", OUT / "lab_05_grid_and_report.png")


def main(only: str | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prepare(work)
        lab = start_lab(work)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                if only in (None, "05"):
                    dataset_views(run_all(browser, "05_synthetic_dataset", "hd_vs_dilation.png:"))
                if only == "05":
                    return
                page = run_all(browser, "02_train_diffusion", "samples/step_")
                shoot_cell(page, "plot_losses", OUT / "lab_02_loss_plot.png")
                page = run_all(browser, "04_evaluate", "headline.png:")
                shoot_cell(page, "show_report", OUT / "lab_04_table_and_figures.png")
                page = run_all(browser, "03_hybrid_sampling", "ready: change the controls")
                panel(page, "strength", "0.9", OUT / "lab_03_strength_0.9.png")
                panel(page, "seed", "99999999999999999999", OUT / "lab_03_huge_seed.png")
                browser.close()
        finally:
            lab.terminate()
            lab.wait(30)


if __name__ == "__main__":
    import sys
    main(sys.argv[1] if len(sys.argv) > 1 else None)   # "05": only the dataset notebook's views
