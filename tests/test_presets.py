"""Presets equal the table in README.md and docs/design.md, field by field."""
import pytest

from irislib import presets
from irislib.config import ConfigError

TABLE = {  # image, num_channels, num_res_blocks, steps, schedule, lr, batch, microbatch, epochs
    "seed-64": (64, 128, 3, 4000, "linear", 1e-4, 32, 32, 2000),
    "seed-128": (128, 192, 4, 4000, "linear", 1e-4, 120, 3, 600),
    "seed-128-gear": (128, 192, 4, 5000, "cosine", 3e-4, 120, 3, 500),
}


@pytest.mark.parametrize("name", TABLE)
def test_seed_presets_match_design_table(name):
    e = presets.get(name)
    got = (e.unet.image_size, e.unet.num_channels, e.unet.num_res_blocks, e.diffusion.diffusion_steps,
           e.diffusion.noise_schedule, e.train.lr, e.train.batch_size, e.train.resolved_microbatch, e.train.epochs)
    assert got == TABLE[name]
    # guided-diffusion defaults the table does not repeat
    assert e.unet.attention_resolutions == [16, 8] and e.unet.num_heads == 4
    assert e.unet.use_scale_shift_norm and e.unet.learn_sigma
    assert e.unet.resolved_channel_mult() == ([1, 2, 3, 4] if e.unet.image_size == 64 else [1, 1, 2, 3, 4])
    assert e.vae.image_size == e.data.image_size == e.unet.image_size


def test_gear_preset_is_3e4_then_1e4_by_epoch():
    t = presets.get("seed-128-gear").train
    assert t.lr_schedule == "gear"
    assert [lr for _, lr in t.gear] == [3e-4, 1e-4]
    assert t.gear[0][0] == 0 and 0 < t.gear[1][0] < t.epochs


def test_tiny_preset_is_cpu_sized():
    e = presets.get("tiny")
    assert e.unet.image_size in (32, 64) and e.unet.num_res_blocks == 1
    assert e.diffusion.diffusion_steps == 1000 and e.diffusion.noise_schedule == "linear"
    assert (e.train.lr, e.train.batch_size, e.train.resolved_microbatch) == (2e-4, 8, 4)
    assert e.data.path.startswith("synthetic:")


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_is_valid(name):
    """presets.get does not validate per call (build_experiment and pipeline.train_* do): this test does."""
    assert presets.get(name).validate() == presets.get(name)


def test_presets_are_fresh_copies_and_unknown_names_fail():
    presets.get("tiny").train.lr = 1.0
    assert presets.get("tiny").train.lr == 2e-4
    with pytest.raises(ConfigError, match="did you mean 'seed-64'"):
        presets.get("seed64")
