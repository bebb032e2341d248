"""Networks only (no schedule, loss or file I/O): the diffusion UNet, the VAE and its mixture prior."""
from .prior import GaussianMixturePrior
from .unet import UNet
from .vae import VAE

__all__ = ["GaussianMixturePrior", "UNet", "VAE"]
