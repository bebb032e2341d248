"""irislib: near-infrared iris synthesis with a VAE + denoising-diffusion hybrid.

Entry points (the same functions the notebooks and the `irislib` command call):
`train_vae`, `train_diffusion`, `sample`, `evaluate`, `compare`, `demo`, `load_unet`, `load_vae`.
"""
from .config import ConfigError, Experiment

__version__ = "0.1.0"

# The package's folders follow the pipeline: data -> models, diffusion -> train, checkpoint -> generate ->
# metrics, biometrics, evaluation -> notebook, cli.
_ENTRY_POINTS = {"train_vae": "train.pipeline", "train_refiner": "train.pipeline", "train_diffusion": "train.pipeline",
                 "sample": "train.pipeline", "load_unet": "generate.loading", "load_vae": "generate.loading",
                 "evaluate": "evaluation.report", "compare": "evaluation.report", "demo": "evaluation.report",
                 "load_run": "checkpoint", "HybridSampler": "generate.sampler", "SampleConfig": "generate.sampler",
                 "dataset": "generate.dataset", "verify_dataset": "evaluation.verify"}
_SUBPACKAGES = ("presets", "hub", "metrics", "data", "models", "diffusion", "train", "compat", "checkpoint",
                "imageio", "cli", "generate", "evaluation", "notebook", "biometrics", "config")
# Modules that moved into folders, under the names earlier releases (and users' code) import them by.
MOVED = {"hybrid": "generate.hybrid", "sampler": "generate.sampler", "loading": "generate.loading",
         "dataset_gen": "generate.dataset", "report": "evaluation.report", "plots": "evaluation.plots",
         "dataset_verify": "evaluation.verify", "colab": "notebook.colab", "ui": "notebook.ui",
         "pipeline": "train.pipeline"}
__all__ = ["ConfigError", "Experiment", "__version__", *_ENTRY_POINTS]


def __getattr__(name):
    """Import entry points and submodules on first use, so `import irislib` stays light and fast."""
    import importlib
    if name in _ENTRY_POINTS:
        return getattr(importlib.import_module(f".{_ENTRY_POINTS[name]}", __name__), name)
    if name in MOVED or name in _SUBPACKAGES:
        return importlib.import_module(f".{MOVED.get(name, name)}", __name__)
    raise AttributeError(f"module 'irislib' has no attribute {name!r}")


class _MovedModules:
    """`import irislib.report`, `from irislib.colab import setup`: the old dotted names load the moved module
    itself (one module object under both names), so code written against the flat layout keeps working."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        head, _, tail = fullname.partition(".")
        if head != __name__ or tail not in MOVED:
            return None
        import importlib.util
        return importlib.util.spec_from_loader(fullname, _MovedModules)

    @staticmethod
    def create_module(spec):
        import importlib
        return importlib.import_module(f"{__name__}.{MOVED[spec.name.partition('.')[2]]}")

    @staticmethod
    def exec_module(module):
        pass                                     # already executed under its new name


def _install_finder() -> None:
    import sys
    if not any(f is _MovedModules for f in sys.meta_path):
        sys.meta_path.append(_MovedModules)


_install_finder()
