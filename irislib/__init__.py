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
__all__ = ["ConfigError", "Experiment", "__version__", *_ENTRY_POINTS]


def __getattr__(name):
    """Import entry points and submodules on first use, so `import irislib` stays light and fast."""
    import importlib
    if name in _ENTRY_POINTS:
        return getattr(importlib.import_module(f".{_ENTRY_POINTS[name]}", __name__), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'irislib' has no attribute {name!r}")

