"""irislib: near-infrared iris synthesis with a VAE + denoising-diffusion hybrid."""
from .config import ConfigError, Experiment

__version__ = "0.1.0"
__all__ = ["ConfigError", "Experiment", "__version__"]
