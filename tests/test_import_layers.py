"""The package's own import graph has no cycle: every `import` of an irislib module, top-level or inside a function
(lazy imports included), relative or absolute, with `from . import x` resolved to the submodule x where there is one.

Importing a package runs its __init__ first; that implicit edge is not counted (a package's __init__ re-exporting its
submodules would otherwise make every package a cycle). An explicit import of a package (`from . import NAME` where
NAME is not a submodule, `from .. import config`'s parent) counts as an edge to the package's __init__."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "irislib"


def module_files(root: Path = PACKAGE) -> dict[str, Path]:
    """{dotted module name: file} for every .py file under the package ('irislib.x' for irislib/x/__init__.py)."""
    files = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def _known(name: str, modules) -> str | None:
    """The deepest module of `name` that exists ('irislib.a.b.func' -> 'irislib.a.b'), None outside the package."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(module: str, path: Path, modules) -> list[tuple[str, int]]:
    """[(imported irislib module, line)] for every import statement anywhere in the file."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _known(alias.name, modules)
                if target:
                    found.append((target, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[:len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                target = sub if sub in modules else _known(base, modules)
                if target:
                    found.append((target, node.lineno))
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, dict[str, int]]:
    """{module: {imported module: first line}}, self-imports left out."""
    modules = module_files(root)
    graph = {}
    for module, path in modules.items():
        edges = {}
        for target, line in imports_of(module, path, modules):
            if target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


def components(graph: dict[str, dict[str, int]]) -> list[set[str]]:
    """The strongly connected components of more than one module: each module in one can reach every other."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def connect(node):  # Tarjan's algorithm; the graph has ~80 nodes, recursion depth is no concern
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(set(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One shortest cycle [a, b, ..., a] per strongly connected component of more than one module."""
    found = []
    for component in components(graph):
        start = min(component)
        # breadth-first search from start back to start inside the component: a shortest cycle through it
        previous, frontier, done = {start: None}, [start], None
        while frontier and done is None:
            following = []
            for node in frontier:
                for nxt in sorted(graph[node]):
                    if nxt not in component:
                        continue
                    if nxt == start:
                        done = node
                        break
                    if nxt not in previous:
                        previous[nxt] = node
                        following.append(nxt)
                if done is not None:
                    break
            frontier = following
        path, node = [], done
        while node is not None:
            path.append(node)
            node = previous[node]
        found.append(path[::-1] + [start])
    return sorted(found)


def describe(cycle: list[str], graph) -> str:
    """'a (line 3) -> b (line 9) -> a': each module with the line of its import of the next."""
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"


def explain(graph) -> str:
    """Per tangled component: a shortest cycle, then every import between its modules (all of them must go)."""
    lines = []
    for cycle, component in zip(cycles(graph), sorted(components(graph), key=min)):
        lines.append(f"cycle: {describe(cycle, graph)}")
        lines += [f"    {a} line {line} imports {b}" for a in sorted(component)
                  for b, line in sorted(graph[a].items()) if b in component]
    return "\n".join(lines)


def test_package_has_no_import_cycle():
    graph = import_graph()
    found = cycles(graph)
    report = explain(graph)
    if found:
        print(f"{len(found)} import cycle(s) in irislib:\n{report}")
    assert not found, f"{len(found)} import cycle(s) in irislib (lazy imports inside functions count too):\n{report}"


def _write(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "irislib"
    for name, text in files.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pkg


def test_checker_sees_lazy_relative_and_package_imports(tmp_path):
    """The checker itself: a lazy `from . import x` inside a function, `from .. import y` and `import irislib.z`."""
    pkg = _write(tmp_path, {
        "__init__.py": "",
        "a.py": "def f():\n    from . import b\n",
        "b.py": "from .sub import c\n",
        "sub/__init__.py": "X = 1\n",
        "sub/c.py": "def g():\n    from .. import a\n",
        "d.py": "import irislib.sub.c\nfrom irislib.sub import X\n",
    })
    graph = import_graph(pkg)
    assert graph["irislib.a"] == {"irislib.b": 2}
    assert graph["irislib.b"] == {"irislib.sub.c": 1}
    assert graph["irislib.sub.c"] == {"irislib.a": 2}
    assert graph["irislib.d"] == {"irislib.sub.c": 1, "irislib.sub": 2}
    assert cycles(graph) == [["irislib.a", "irislib.b", "irislib.sub.c", "irislib.a"]]
    assert "irislib.a (line 2) -> irislib.b (line 1)" in describe(cycles(graph)[0], graph)


@pytest.mark.parametrize("text", ["from .a import f\n", "def h():\n    import irislib.a\n"])
def test_checker_finds_a_two_module_cycle(tmp_path, text):
    pkg = _write(tmp_path, {"__init__.py": "", "a.py": "from . import b\n", "b.py": text})
    assert cycles(import_graph(pkg)) == [["irislib.a", "irislib.b", "irislib.a"]]


# The flat names modules had before they moved into folders; none was released, so none is kept.
OLD_FLAT_NAMES = ("hybrid", "sampler", "loading", "dataset_gen", "report", "plots", "dataset_verify", "colab", "ui",
                  "pipeline")


@pytest.mark.parametrize("old", OLD_FLAT_NAMES)
def test_old_flat_module_names_are_gone(old):
    """`import irislib.report` fails like any missing module (no alias finder, no attribute, no file left)."""
    import importlib

    import irislib
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"irislib.{old}")
    assert not hasattr(irislib, old) and not (PACKAGE / f"{old}.py").exists()


def test_reloading_a_module_keeps_its_relative_imports_working():
    """importlib.reload of a notebook module, after a failed old-name import, leaves its function-level relative
    imports (`from ..config import ConfigError`) working, with warnings as errors (no ImportWarning)."""
    script = """if True:
        import importlib
        import irislib.notebook.ui as ui
        try:
            import irislib.ui
        except ModuleNotFoundError:
            pass
        ui = importlib.reload(ui)
        from irislib.config import ConfigError
        from irislib.generate.sampler import SampleConfig
        try:
            ui.check_panel_config(SampleConfig(n=1000))       # raises through the lazy `from ..config import`
        except ConfigError as e:
            print("refused:", e)
        ui.show_checkpoints()                                  # through the lazy `from .. import hub`
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(PACKAGE.parent)}
    done = subprocess.run([sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, env=env,
                          cwd=PACKAGE.parent, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "refused: n=1000 is outside the sampling panel's range" in done.stdout
    assert "| name | kind | size |" in done.stdout


# (lower layer, upper layer): the lower one imports nothing of the upper, lazy imports included.
FORBIDDEN = [("irislib.generate", "irislib.train"),
             ("irislib.generate", "irislib.evaluation")]   # generation never verifies: its callers do (cli, ui)


def upward_imports(graph, lower: str, upper: str) -> list[str]:
    """'a line N imports b' for every import from a module of package `lower` into one of package `upper`."""
    def within(module, package):
        return module == package or module.startswith(package + ".")
    return [f"{a} line {line} imports {b}" for a in sorted(graph) if within(a, lower)
            for b, line in sorted(graph[a].items()) if within(b, upper)]


@pytest.mark.parametrize("lower, upper", FORBIDDEN)
def test_lower_layers_import_nothing_from_upper_ones(lower, upper):
    found = upward_imports(import_graph(), lower, upper)
    assert not found, f"{lower} must not import {upper} (move what both need below both):\n" + "\n".join(found)


def test_the_upward_check_sees_a_lazy_import_and_ignores_a_lookalike_name(tmp_path):
    pkg = _write(tmp_path, {"__init__.py": "", "generate/__init__.py": "", "train/__init__.py": "",
                            "train/distributed.py": "", "trainer.py": "",
                            "generate/loading.py": "from .. import trainer\n"
                                                   "def f():\n    from ..train import distributed\n"})
    found = upward_imports(import_graph(pkg), "irislib.generate", "irislib.train")
    assert found == ["irislib.generate.loading line 3 imports irislib.train.distributed"]


def test_the_package_root_holds_only_shared_modules():
    """The pipeline's stages are folders; the root keeps what every stage shares (config, presets, the checkpoint
    hub, image and path helpers, device choice) and the CLI."""
    assert sorted(p.stem for p in PACKAGE.glob("*.py")) == ["__init__", "cli", "compat", "config", "device", "hub",
                                                             "imageio", "jsonsafe", "presets", "safepath"]
