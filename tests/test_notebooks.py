"""The notebooks: structure checks (fast) and papermill / nbval smoke runs on CPU (marked notebooks + slow).

By hand (same as CI):
    papermill notebooks/02_train_diffusion.ipynb out.ipynb -p smoke True
    python -m pytest tests/test_notebooks.py -m notebooks      # papermill + nbval-lax on smoke copies
"""
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import papermill as pm
import pytest

import irislib
from irislib.notebook import colab, ui

REPO_SLUG = "irislib/irislib"   # GitHub owner/repo the Colab badges point at (change here if the repo moves)
BRANCH = "main"
NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = ["00_quickstart", "01_train_vae", "02_train_diffusion", "03_hybrid_sampling", "04_evaluate",
            "05_synthetic_dataset"]
TIMEOUT_S = 600


def load(name):
    return nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)


def param_cells(nb):
    return [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]


def python_of(src: str) -> str:
    """Cell source with IPython syntax (%pip, !cmd) turned into plain Python, as the kernel does."""
    from IPython.core.inputtransformer2 import TransformerManager
    return TransformerManager().transform_cell(src)


# --- structure (fast) -------------------------------------------------------------------------------------
def test_the_suite_is_complete():
    assert sorted(p.stem for p in NB_DIR.glob("*.ipynb")) == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_valid_stripped_python3(name):
    nb = load(name)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: commit notebooks stripped"
    if shutil.which("nbstripout") or _has_module("nbstripout"):
        done = subprocess.run([sys.executable, "-m", "nbstripout", "--verify", str(NB_DIR / f"{name}.ipynb")],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def _has_module(name):
    import importlib.util
    return importlib.util.find_spec(name) is not None


@pytest.mark.parametrize("name", EXPECTED)
def test_one_parameters_cell_with_colab_forms(name):
    nb = load(name)
    cells = param_cells(nb)
    assert len(cells) == 1, f"{name}: exactly one cell tagged 'parameters', found {len(cells)}"
    assert nb.cells.index(cells[0]) == 2                          # badge, setup, parameters
    assignments = [ln for ln in cells[0].source.splitlines() if re.match(r"^\w+\s*=", ln)]
    assert assignments and all("#@param" in ln for ln in assignments), "every parameter is a Colab form field"
    assert "smoke" in pm.inspect_notebook(str(NB_DIR / f"{name}.ipynb"))


@pytest.mark.parametrize("name", EXPECTED)
def test_every_parameter_is_documented_in_the_first_cell(name):
    nb = load(name)
    params = set(pm.inspect_notebook(str(NB_DIR / f"{name}.ipynb")))
    documented = set(re.findall(r"^- `(\w+)` — ", nb.cells[0].source, re.M))
    assert params == documented, f"undocumented: {params - documented}; stale docs: {documented - params}"


@pytest.mark.parametrize("name", EXPECTED)
def test_badge_points_at_this_notebook(name):
    first = load(name).cells[0]
    assert first.cell_type == "markdown"
    urls = re.findall(r"\]\((https://colab\.research\.google\.com/github/[^)]+)\)", first.source)
    assert urls == [f"https://colab.research.google.com/github/{REPO_SLUG}/blob/{BRANCH}/notebooks/{name}.ipynb"]
    assert (NB_DIR.parent / urls[0].split(f"/blob/{BRANCH}/", 1)[1]).is_file()
    assert re.search(r"^# \S", first.source, re.M), "a title line"


@pytest.mark.parametrize("name", EXPECTED)
def test_installs_only_in_colab_and_never_torch(name):
    nb = load(name)
    for cell in nb.cells:
        installs = [ln for ln in cell.source.splitlines() if re.search(r"pip\s+install", ln)]
        for ln in installs:
            assert cell is nb.cells[1], "only the setup cell installs"
            assert "torch" not in ln, f"never reinstall Colab's torch: {ln}"
            assert ln.startswith("    "), "the install runs only under the google.colab check"
    assert 'if "google.colab" in sys.modules:' in nb.cells[1].source


LOGIC = (ast.FunctionDef, ast.ClassDef, ast.For, ast.While, ast.If, ast.IfExp, ast.ListComp, ast.DictComp,
         ast.SetComp, ast.GeneratorExp, ast.Lambda, ast.BoolOp, ast.Compare)


@pytest.mark.parametrize("name", EXPECTED)
def test_cells_are_short_calls_without_logic(name):
    nb = load(name)
    params = set(pm.inspect_notebook(str(NB_DIR / f"{name}.ipynb")))
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        limit = 16 if i == 2 else 8                               # the form lists every parameter
        assert len(cell.source.splitlines()) <= limit, f"cell {i} is long: move the logic into irislib"
        tree = ast.parse(python_of(cell.source))
        if i > 1:                                                 # the setup cell's one Colab check is allowed
            found = sorted({type(n).__name__ for n in ast.walk(tree) if isinstance(n, LOGIC)})
            assert not found, f"cell {i} holds logic ({found}): move it into irislib"
            assert not any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mult) and
                           isinstance(n.left, ast.List) for n in ast.walk(tree)), "no [...] * flag tricks"
        if i > 2:                                                 # papermill injects after the parameters cell
            assigned = {t.id for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AugAssign))
                        for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
            assert not assigned & params, f"cell {i} reassigns parameters {assigned & params}"


def _run_setup_cell(name, monkeypatch, tmp_path, in_colab):
    """Execute the setup cell's Python with a stub get_ipython(); return the magics it ran and its `env`."""
    magics = []
    shell = types.SimpleNamespace(run_line_magic=lambda magic, line: magics.append((magic, line)))
    monkeypatch.delenv(colab.ENV_OVERRIDE, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    if in_colab:
        fake = types.ModuleType("google.colab")
        fake.drive = types.SimpleNamespace(mount=lambda p, **k: (Path(p) / "MyDrive").mkdir(parents=True))
        monkeypatch.setitem(sys.modules, "google.colab", fake)
        monkeypatch.setattr(colab, "DRIVE_MOUNT", tmp_path / "drive")
        monkeypatch.setattr(colab, "COLAB_CONTENT", tmp_path)
    scope = {"get_ipython": lambda: shell}
    exec(compile(python_of(load(name).cells[1].source), f"{name}[setup]", "exec"), scope)
    return magics, scope["env"]


@pytest.mark.parametrize("name", EXPECTED)
def test_setup_cell_is_a_noop_outside_colab(name, monkeypatch, tmp_path):
    magics, env = _run_setup_cell(name, monkeypatch, tmp_path, in_colab=False)
    assert magics == [] and env.in_colab is False and env.drive_root is None


def test_training_notebooks_share_their_calls_not_logic():
    """01 and 02 differ only in the run folder's default and the train function."""
    vae, unet = load("01_train_vae"), load("02_train_diffusion")
    differ = [i for i, (a, b) in enumerate(zip(vae.cells, unet.cells)) if a.source != b.source]
    assert differ == [0, 2, 4, 6]                                  # docs, run_dir default, train_vae/_diffusion, next
    assert "build_experiment" in colab.training_experiment.__code__.co_names


SHIPPED = {"00_quickstart": ("unet", "vae"), "03_hybrid_sampling": ("unet_run", "vae_run"),
           "04_evaluate": ("unet_run", "vae_run"), "05_synthetic_dataset": ("unet_run", "vae_run")}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_sampling_notebooks_default_to_the_shipped_pair(name):
    """03/04 work after 00 without 01/02: their defaults are manifest names of the right kind."""
    from irislib import hub
    kinds = {e["name"]: e["kind"] for e in hub.list_checkpoints()}
    params = pm.inspect_notebook(str(NB_DIR / f"{name}.ipynb"))
    for key, kind in zip(SHIPPED[name], ("unet", "vae")):
        default = ast.literal_eval(params[key]["default"])
        assert kinds.get(default) == kind, f"{name}: {key}={default!r} is not a shipped {kind} checkpoint"


def test_colab_installs_no_extras_so_its_ipywidgets_stays():
    """Colab's front end renders ipywidgets 7 only; the notebooks extra asks for >=8 (JupyterLab 4)."""
    for name in EXPECTED:
        install = [ln for ln in load(name).cells[1].source.splitlines() if "pip install" in ln]
        assert install and all("[" not in ln for ln in install), install
    setup_py = (NB_DIR.parent / "setup.py").read_text()
    assert re.search(r'"notebooks": \[[^]]*"ipywidgets>=8[,"<]', setup_py)


def test_setup_cell_in_colab_installs_from_git_and_mounts_drive(monkeypatch, tmp_path):
    magics, env = _run_setup_cell("01_train_vae", monkeypatch, tmp_path, in_colab=True)
    assert magics == [("pip", 'install -q "irislib @ git+https://github.com/irislib/irislib"')]
    assert env.in_colab and env.drive_root == tmp_path / "drive" / "MyDrive" / "irislib"


# --- execution (papermill, nbval) -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kernel_env():
    """Environment the papermill kernels inherit: headless widgets, no Colab, a private cache, few threads."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"IRISLIB_HEADLESS": "1", "IRISLIB_ENV": "local", "OMP_NUM_THREADS": "2",
                           "TQDM_MININTERVAL": "5"}.items():
            mp.setenv(key, value)
        yield mp


def execute(name, workdir: Path, **parameters):
    """Run a notebook top to bottom in a fresh python3 kernel with smoke parameters; return the executed notebook."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / f"{name}.out.ipynb"
    pm.execute_notebook(str(NB_DIR / f"{name}.ipynb"), str(out), parameters={"smoke": True, **parameters},
                        kernel_name="python3", cwd=str(workdir), progress_bar=False, execution_timeout=TIMEOUT_S)
    return nbformat.read(out, as_version=4)


def pngs_shown(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def outputs(nb, kind: str) -> list:
    """Outputs of one kind: "stderr" streams, or "execute_result" (a value a cell ended with)."""
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == kind or o.get("name") == kind]


def latest_step(run: Path) -> int:
    return json.loads((run / "latest.json").read_text())["step"]


def metrics(run: Path) -> list[dict]:
    from irislib.checkpoint import read_metrics
    return read_metrics(run)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, kernel_env):
    """01 and 02 run once in smoke mode (02 mirrors to a second folder); 03/04 and the resume test reuse them.
    A smoke run lands in the smoke twin of its run_dir (vae -> smoke/vae), never in the folder itself."""
    root = tmp_path_factory.mktemp("nb")
    vae_nb = execute("01_train_vae", root, run_dir=str(root / "vae"), mirror_dir="none")
    unet_nb = execute("02_train_diffusion", root, run_dir=str(root / "unet"), mirror_dir=str(root / "mirror"))
    return types.SimpleNamespace(root=root, vae=root / "smoke" / "vae", unet=root / "smoke" / "unet",
                                 mirror=root / "mirror", notebooks={"01": vae_nb, "02": unet_nb})


@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.parametrize("key, run", [("01", "vae"), ("02", "unet")])
def test_training_notebooks_write_a_run(trained, key, run):
    folder = getattr(trained, run)
    assert not (trained.root / run).exists()                      # the real run folder is untouched by smoke
    exp = irislib.Experiment.from_json(folder / "config.json")
    assert (exp.train.max_steps, exp.data.path) == (2, "synthetic:16")
    assert "device: cpu" in "".join(o.get("text", "") for o in outputs(trained.notebooks[key], "stdout"))  # Placement
    assert latest_step(folder) == 2
    assert [r["step"] for r in metrics(folder)][-1] == 2
    assert (folder / "loss.png").is_file()
    nb = trained.notebooks[key]
    assert pngs_shown(nb) >= 1                                    # the loss plot is an ordinary output
    assert outputs(nb, "execute_result") == []                    # no cell ends by printing a value (paths)


@pytest.mark.notebooks
@pytest.mark.slow
def test_diffusion_resumes_from_the_mirror_after_the_local_run_is_lost(trained):
    assert latest_step(trained.mirror) == 2                       # the Drive stand-in got every checkpoint
    first = metrics(trained.unet)
    second = trained.root / "unet_after_cutoff"                   # a new session: the local disk is empty
    execute("02_train_diffusion", trained.root / "resume", run_dir=str(second), mirror_dir=str(trained.mirror),
            resume=str(trained.mirror), max_steps=4)
    second = colab.smoke_path(second)
    assert latest_step(second) == 4
    rows = metrics(second)
    assert [r["step"] for r in rows if r["step"] <= 2] == [r["step"] for r in first]
    assert [r for r in rows if r["step"] <= 2] == first           # same wall-clock stamps: copied, not re-run
    assert {3, 4} <= {r["step"] for r in rows}


@pytest.mark.notebooks
@pytest.mark.slow
def test_hybrid_sampling_notebook_writes_pngs(trained):
    out = trained.root / "samples"
    nb = execute("03_hybrid_sampling", trained.root / "s", unet_run=str(trained.unet), vae_run=str(trained.vae),
                 out_dir=str(out), n=4, steps=4, batch_size=4)
    assert len(list(out.glob("sample*.png"))) == 4
    assert (out / "grid.png").is_file() and (out / "panel.png").is_file()
    assert json.loads((out / "settings.json").read_text())["strength"] == 0.5
    assert pngs_shown(nb) == 1                                    # the headless panel drew once, shown once
    assert outputs(nb, "execute_result") == [] and outputs(nb, "stderr") == []


@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.parametrize("params, words", [
    ({"unet_run": "runs/unet", "smoke": False}, ["'runs/unet' is neither a run folder", "02_train_diffusion"]),
    ({"n": 100}, ["n=100 is outside the sampling panel's range 1..64"]),
    ({"strength": 0.9}, ["strength=0.9 is above 0.7", "unet_run", "0 <= strength <= 0.7"]),
])
def test_hybrid_sampling_notebook_says_what_is_wrong(params, words, tmp_path, kernel_env, monkeypatch):
    monkeypatch.setenv("IRISLIB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(pm.PapermillExecutionError) as err:
        execute("03_hybrid_sampling", tmp_path, out_dir=str(tmp_path / "out"), steps=2, **params)
    assert all(w in str(err.value) for w in words), str(err.value)[-2000:]
    assert "no checkpoint named" not in str(err.value)
    if "n" in params or "strength" in params:                     # a refused form value: one line, no traceback
        assert err.value.ename == "ConfigError" and len(err.value.traceback) == 1, err.value.traceback
        assert str(tmp_path / "cache") not in str(err.value)      # the field, not the cache path


@pytest.mark.notebooks
@pytest.mark.slow
def test_evaluate_notebook_writes_metrics_and_smoke_shrinks_it(trained):
    out = trained.root / "evaluation"
    nb = execute("04_evaluate", trained.root / "e", unet_run=str(trained.unet), vae_run=str(trained.vae),
                 vanilla_unet="", out_dir=str(out))  # no 64 px full-chain peer beside these 32 px runs                                 # the form's sizes: 16 images, 3 strengths, 256 refs
    report = json.loads((out / "metrics.json").read_text())
    assert "kid" in report
    assert any((out / "compare").iterdir())
    printed = "".join(o.get("text", "") for o in outputs(nb, "stdout"))
    assert "smoke: n 16 -> 4, steps 20 -> 4, strengths [0.3, 0.5, 0.7] -> [0.3], n_reference 256 -> 8" in printed
    assert len(list((out / "samples").glob("sample*.png"))) == 4
    # what it computed is shown: KID rounded as in the report, the table rendered, the report's figures inline
    assert re.search(r"KID to the reference: -?[\d.e-]+ ± [\d.e-]+ ", printed), printed
    assert not re.search(r"\d\.\d{6}", printed.split("KID to the reference:")[1].splitlines()[0])
    tables = [o["data"]["text/markdown"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if "text/markdown" in o.get("data", {})]
    assert len(tables) == 1 and tables[0].startswith("| method |")
    figures = [name for name, _ in ui.REPORT_FIGURES if (out / "compare" / name).is_file()]
    assert figures and all(f"{name}: " in printed for name in figures)
    assert pngs_shown(nb) == 1 + len(figures)                    # the samples, then each report figure
    assert outputs(nb, "execute_result") == []


@pytest.mark.notebooks
@pytest.mark.slow
def test_dataset_notebook_writes_a_verified_set_and_shows_it(tmp_path, kernel_env, monkeypatch):
    """05 in smoke mode on the shipped 128 px pair (fetched offline): 3 identities x 2 captures in the smoke twin of
    out_dir, the verification report written and shown (grid, rendered report, its figures)."""
    monkeypatch.setenv("IRISLIB_CACHE", str(tmp_path / "cache"))
    nb = execute("05_synthetic_dataset", tmp_path, out_dir="irises")
    folder = tmp_path / "runs" / "smoke" / "irises"
    assert not (tmp_path / "irises").exists()                     # smoke never writes the real folder
    assert sorted(p.name for p in folder.glob("*/*.png")) == [f"000{i}_0{c}.png" for i in (1, 2, 3) for c in (1, 2)]
    rep = json.loads((folder / "verify.json").read_text())
    assert rep["images"] == 6 and rep["leakage"]["training_images"] == 16
    tables = [o["data"]["text/markdown"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if "text/markdown" in o.get("data", {})]
    # the report in reading order: text, each figure where verify.md puts it, its caption in the text after it
    assert tables[0].startswith("# Verification of") and not any("![" in t for t in tables)
    assert sum(t.lstrip().startswith(f"*{name}:") for t in tables for name in rep["captions"]) == 3
    assert pngs_shown(nb) == 1 + 3                                # the grid, then the report's three figures
    assert (folder / "grid.png").is_file() and outputs(nb, "execute_result") == []


@pytest.mark.notebooks
@pytest.mark.slow
def test_quickstart_samples_the_shipped_pair_offline(tmp_path, kernel_env, monkeypatch):
    out = tmp_path / "quick"
    monkeypatch.setenv("IRISLIB_CACHE", str(tmp_path / "cache"))
    nb = execute("00_quickstart", tmp_path, out_dir=str(out), n=4, steps=4)
    assert not (tmp_path / "runs").exists()  # nothing trained: the shipped checkpoints were fetched and verified
    for name in ("iris64-unet", "iris64-vae"):
        assert (tmp_path / "cache" / name / "run" / "config.json").is_file()
    assert len(list(out.glob("sample*.png"))) == 4 and (out / "panel.png").is_file()
    assert pngs_shown(nb) == 1                                    # the grid once, not also as a cell result
    assert outputs(nb, "stderr") == [] and outputs(nb, "execute_result") == []   # verified sha256 lines: no errors
    tables = [o["data"]["text/markdown"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if "text/markdown" in o.get("data", {})]
    assert len(tables) == 1 and "| iris64-unet | unet |" in tables[0]   # the checkpoints as a table, not a list
    assert "verified sha256" in "".join(o.get("text", "") for o in outputs(nb, "stdout"))


@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_train_vae", "03_hybrid_sampling", "04_evaluate"])  # 00/02: papermill only
def test_nbval_lax_on_smoke_copies(name, trained, tmp_path):
    """nbval has no parameter injection: papermill --prepare-only writes a smoke copy, nbval-lax runs it.

    00 and 02 are left out to save ~2.5 min (they train, and their papermill runs above cover them); for all:
    papermill NB ci/NB --prepare-only -p smoke True && pytest --nbval-lax --nbval-current-env ci/NB"""
    copy = tmp_path / f"{name}.ipynb"
    params = {"smoke": True, "n": 2, "steps": 2}
    if name.startswith("01"):
        params = {"smoke": True, "run_dir": str(tmp_path / "run"), "mirror_dir": "none"}
    if name.startswith(("03", "04")):
        params.update(unet_run=str(trained.unet), vae_run=str(trained.vae), out_dir=str(tmp_path / "out"))
    if name.startswith("04"):
        params["vanilla_unet"] = ""  # the shipped full-chain peer is 64 px; these runs are 32 px
    pm.execute_notebook(str(NB_DIR / f"{name}.ipynb"), str(copy), parameters=params, prepare_only=True,
                        kernel_name="python3", progress_bar=False)
    env = {**os.environ, "IRISLIB_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           "--nbval-current-env", str(copy)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:]
    assert re.search(r"\d+ passed", done.stdout)
