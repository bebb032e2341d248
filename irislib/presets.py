"""Named Experiments users already train with (the table in README.md and docs/design.md): data, not code paths."""
from __future__ import annotations

from .config import ConfigError, DataConfig, DiffusionConfig, Experiment, TrainConfig, UNetConfig, VAEConfig
from .config import _did_you_mean


def _seed_64() -> Experiment:
    return Experiment(
        unet=UNetConfig(image_size=64, num_channels=128, num_res_blocks=3),
        diffusion=DiffusionConfig(diffusion_steps=4000, noise_schedule="linear"),
        vae=VAEConfig(image_size=64, base_channels=64, channel_mult=[1, 2, 4]),
        data=DataConfig(image_size=64),
        train=TrainConfig(lr=1e-4, batch_size=32, microbatch=-1, epochs=2000))


def _seed_128() -> Experiment:
    return Experiment(
        unet=UNetConfig(image_size=128, num_channels=192, num_res_blocks=4),
        diffusion=DiffusionConfig(diffusion_steps=4000, noise_schedule="linear"),
        vae=VAEConfig(image_size=128, base_channels=64, channel_mult=[1, 2, 2, 4]),
        data=DataConfig(image_size=128),
        train=TrainConfig(lr=1e-4, batch_size=120, microbatch=3, epochs=600))


def _seed_128_gear() -> Experiment:
    exp = _seed_128()
    exp.diffusion = DiffusionConfig(diffusion_steps=5000, noise_schedule="cosine")
    # "gear": 3e-4 for the first half of the epochs, then 1e-4 (piecewise constant in epochs).
    exp.train = TrainConfig(lr=3e-4, lr_schedule="gear", gear=[[0, 3e-4], [250, 1e-4]],
                            batch_size=120, microbatch=3, epochs=500)
    return exp


def _tiny() -> Experiment:
    return Experiment(
        unet=UNetConfig(image_size=32, num_channels=32, num_res_blocks=1, num_heads=2),
        diffusion=DiffusionConfig(diffusion_steps=1000, noise_schedule="linear"),
        vae=VAEConfig(image_size=32, base_channels=32, channel_mult=[1, 2, 2], latent_channels=4, beta=1.0),
        data=DataConfig(path="synthetic:64", image_size=32),
        train=TrainConfig(lr=2e-4, batch_size=8, microbatch=4, epochs=5, ema_rate=[0.999],
                          save_every_steps=50, save_every_minutes=5.0, log_every_steps=5))


def _cpu_64() -> Experiment:
    """The shipped 64 px pair, trainable on a 2-core CPU in about 90 minutes: a vector-latent VAE (global shape
    from a few numbers, so drafts are round) and a small UNet trained only up to noise std 0.7 (truncated)."""
    return Experiment(
        unet=UNetConfig(image_size=64, num_channels=32, num_res_blocks=1, channel_mult=[1, 2, 3, 4], num_heads=2),
        diffusion=DiffusionConfig(diffusion_steps=1000, noise_schedule="linear", max_strength=0.7),
        vae=VAEConfig(image_size=64, base_channels=32, channel_mult=[1, 2, 4, 4], latent_type="vector",
                      latent_dim=32, beta=0.02, edge_weight=0.5),
        data=DataConfig(path="synthetic:2048", image_size=64),
        train=TrainConfig(lr=1e-3, lr_schedule="cosine", warmup_steps=100, batch_size=16, max_steps=1000,
                          ema_rate=[0.999], save_every_steps=250, save_every_minutes=10.0, log_every_steps=25,
                          sample_grid_images=8, channels_last=True))


def _cpu_128() -> Experiment:
    """The shipped 128 px pair, trainable on a 2-core CPU: cpu-64's recipe one level deeper (the VAE's vector
    latent still sees an 8x8 feature map; the UNet adds a 128 px level at 32 channels, as guided-diffusion's
    (1,1,2,3,4)), on 2048 synthetic irises at 128 px."""
    exp = _cpu_64()
    exp.unet = UNetConfig(image_size=128, num_channels=32, num_res_blocks=1, channel_mult=[1, 1, 2, 3, 4],
                          num_heads=2)
    # L1 reconstruction: the decoder learns the median image given z, not the mean, so LED glints that sit in a
    # different place in every eye do not average into a grey haze over the pupil (MSE drafts were lighter).
    exp.vae = VAEConfig(image_size=128, base_channels=32, channel_mult=[1, 1, 2, 4, 4], latent_type="vector",
                        latent_dim=32, beta=0.02, edge_weight=0.5, recon_loss="l1")
    exp.data = DataConfig(path="synthetic:2048", image_size=128)
    return exp


PRESETS = {"seed-64": _seed_64, "seed-128": _seed_128, "seed-128-gear": _seed_128_gear, "tiny": _tiny,
           "cpu-64": _cpu_64, "cpu-128": _cpu_128}


def names() -> list[str]:
    return list(PRESETS)


def get(name: str) -> Experiment:
    """A fresh Experiment for a preset name (constant data, validated by tests/test_presets.py, not per call:
    build_experiment and the training entry validate what they are given)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}{_did_you_mean(name, PRESETS)}")
    return PRESETS[name]()
