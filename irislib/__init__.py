"""irislib: near-infrared iris synthesis with a VAE + denoising-diffusion hybrid.

Entry points (the same functions the notebooks and the `irislib` command call):
`train_vae`, `train_diffusion`, `sample`, `evaluate`, `compare`, `demo`, `load_unet`, `load_vae`.
"""
from .config import ConfigError, Experiment

__version__ = "0.1.0"

_ENTRY_POINTS = {"train_vae": "pipeline", "train_refiner": "pipeline", "train_diffusion": "pipeline", "sample": "pipeline",
                 "load_unet": "pipeline", "load_vae": "pipeline", "evaluate": "report", "compare": "report",
                 "demo": "report", "load_run": "checkpoint", "HybridSampler": "sampler", "SampleConfig": "sampler"}
_ENTRY_POINTS.update(dataset="dataset_gen", verify_dataset="dataset_verify")   # synthetic identities (issue 18)
__all__ = ["ConfigError", "Experiment", "__version__", *_ENTRY_POINTS]


def __getattr__(name):
    """Import entry points on first use, so `import irislib` stays light and fast."""
    if name in _ENTRY_POINTS:
        import importlib
        return getattr(importlib.import_module(f".{_ENTRY_POINTS[name]}", __name__), name)
    if name in ("presets", "colab", "hub", "ui", "metrics", "data", "models", "diffusion", "train", "compat",
                "checkpoint", "hybrid", "pipeline", "report", "imageio", "plots", "cli", "sampler"):
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'irislib' has no attribute {name!r}")
