"""irislib.compat against guided-diffusion itself: parameter counts, outputs, flag-mismatch errors, file loading."""
import functools
import json

import pytest
import torch

gd_script = pytest.importorskip("guided_diffusion.script_util")
from guided_diffusion.unet import UNetModel  # noqa: E402

from irislib.compat import experiment_from_flags, import_guided, infer_flags, load_guided_diffusion  # noqa: E402
from irislib.config import ConfigError, Experiment  # noqa: E402
from irislib.models.unet import UNet  # noqa: E402

MODEL_FLAGS = ["image_size", "num_channels", "num_res_blocks", "channel_mult", "learn_sigma", "class_cond",
               "use_checkpoint", "attention_resolutions", "num_heads", "num_head_channels", "num_heads_upsample",
               "use_scale_shift_norm", "dropout", "resblock_updown", "use_fp16", "use_new_attention_order"]

# Small-width versions of the users' geometries plus the flag variants the checkpoints may carry.
FLAG_SETS = {
    "seed-64": dict(image_size=64, num_channels=32, num_res_blocks=3, learn_sigma=True),
    "seed-128": dict(image_size=128, num_channels=32, num_res_blocks=4, learn_sigma=True),
    "updown-new-order-head16": dict(image_size=64, num_channels=32, num_res_blocks=1, resblock_updown=True,
                                    use_new_attention_order=True, num_head_channels=16, learn_sigma=True),
    "legacy-no-ssn-no-sigma": dict(image_size=32, num_channels=32, num_res_blocks=2, channel_mult="1,2,2",
                                   use_scale_shift_norm=False, learn_sigma=False, use_new_attention_order=False,
                                   num_heads=2, attention_resolutions="16,8"),
}



def guided_model(flags: dict) -> torch.nn.Module:
    """guided-diffusion's own model for the flags, with every weight random (zero-initialised ones re-drawn)."""
    defaults = gd_script.model_and_diffusion_defaults()
    kwargs = {k: flags.get(k, defaults[k]) for k in MODEL_FLAGS}
    torch.manual_seed(0)
    model = gd_script.create_model(**kwargs)
    randomize(model)
    return model.eval()


def randomize(model: torch.nn.Module) -> None:
    """Redraw all-zero parameters (output convs, norm biases) and jitter the norm scales, so nothing is trivial."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
            elif (p == 1).all():
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)


@functools.lru_cache(maxsize=1)
def seed64_state_dict() -> dict:
    return guided_model(FLAG_SETS["seed-64"]).state_dict()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("name", list(FLAG_SETS))
def test_same_outputs_as_guided_diffusion(name):
    flags = FLAG_SETS[name]
    ref = guided_model(flags)
    ours = load_guided_diffusion(ref.state_dict(), flags).eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    size = flags["image_size"]
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, size, size, generator=gen)
    t = torch.tensor([3.0, 871.5])  # fractional timesteps are allowed by both
    with torch.no_grad():
        expected, got = ref(x, t), ours(x, t)
    assert expected.shape == got.shape == (2, 6 if flags.get("learn_sigma") else 3, size, size)
    assert expected.norm() > 1.0  # random weights: a real, non-trivial output
    assert rel_err(got, expected) < 1e-5


@pytest.mark.parametrize("flag,value,named", [
    ("num_res_blocks", 2, "num_res_blocks"),
    ("num_channels", 64, "num_channels"),
    ("learn_sigma", False, "learn_sigma"),
    ("attention_resolutions", "16", "attention_resolutions"),
    ("resblock_updown", True, "resblock_updown"),
    ("use_scale_shift_norm", False, "use_scale_shift_norm"),
    ("channel_mult", "1,2,2,4", "channel_mult"),
])
def test_mismatch_error_names_the_flag(flag, value, named):
    flags = FLAG_SETS["seed-64"]
    sd = seed64_state_dict()
    with pytest.raises(ValueError) as info:
        load_guided_diffusion(sd, {**flags, flag: value})
    message = str(info.value)
    assert f"Flags that differ: {named}=" in message
    assert "keys, e.g." in message  # lists some of the offending keys


def test_loads_pt_file_and_ema_wrapper(tmp_path):
    flags = FLAG_SETS["legacy-no-ssn-no-sigma"]
    ref = guided_model(flags)
    path = tmp_path / "ema_0.9999_000100.pt"
    torch.save(ref.state_dict(), path)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"model": {k: v * 0 for k, v in ref.state_dict().items()}, "ema_0.9999": ref.state_dict()}, wrapped)
    x, t = torch.randn(1, 3, 32, 32), torch.tensor([10])
    with torch.no_grad():
        expected = ref(x, t)
        for source in (path, str(wrapped)):
            assert rel_err(load_guided_diffusion(source, flags).eval()(x, t), expected) < 1e-5
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_guided_diffusion(tmp_path / "missing.pt", flags)


def test_in_channels_inferred_from_checkpoint():
    ref = UNetModel(image_size=32, in_channels=1, model_channels=32, out_channels=2, num_res_blocks=1,
                    attention_resolutions=(2,), channel_mult=(1, 2), num_heads=4, use_scale_shift_norm=True)
    randomize(ref)
    flags = dict(image_size=32, num_channels=32, num_res_blocks=1, channel_mult="1,2", attention_resolutions="16",
                 learn_sigma=True)
    ours = load_guided_diffusion(ref.state_dict(), flags)
    assert ours.in_channels == 1 and ours.out_channels == 2
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert rel_err(ours(x, torch.tensor([5, 500])), ref(x, torch.tensor([5, 500]))) < 1e-5


def test_rescale_timesteps_flag_scales_t():
    flags = dict(FLAG_SETS["legacy-no-ssn-no-sigma"], rescale_timesteps=True, diffusion_steps=4000)
    ref = guided_model(flags)
    ours = load_guided_diffusion(ref.state_dict(), flags)
    x, t = torch.randn(1, 3, 32, 32), torch.tensor([2000])
    with torch.no_grad():  # guided-diffusion's wrapper feeds t * 1000 / T to the model
        assert rel_err(ours(x, t), ref(x, t.float() * 1000 / 4000)) < 1e-5


def test_full_size_parameter_counts():
    """seed-64 and seed-128 with 3 channels and learned sigma: 121.06M and 348.9M, as guided-diffusion's."""
    for flags, millions in [(dict(image_size=64, num_channels=128, num_res_blocks=3, learn_sigma=True), 121.06),
                            (dict(image_size=128, num_channels=192, num_res_blocks=4, learn_sigma=True), 348.9)]:
        defaults = gd_script.model_and_diffusion_defaults()
        with torch.device("meta"):  # no memory, no init: counting only
            ref = gd_script.create_model(**{k: flags.get(k, defaults[k]) for k in MODEL_FLAGS})
            ours = UNet(experiment_from_flags(flags).unet)
        n_ref = sum(p.numel() for p in ref.parameters())
        n_ours = sum(p.numel() for p in ours.parameters())
        assert n_ours == n_ref
        assert round(n_ours / 1e6, 2 if millions == 121.06 else 1) == millions


def test_infer_flags_reads_architecture():
    got = infer_flags(guided_model(FLAG_SETS["updown-new-order-head16"]).state_dict())
    assert got == dict(num_channels=32, in_channels=3, num_res_blocks=1, channel_mult=[1, 2, 3, 4],
                       learn_sigma=True, use_scale_shift_norm=True, resblock_updown=True, class_cond=False,
                       attention_ds=[4, 8])


def test_experiment_from_flags_maps_sections():
    flags = {"image_size": "128", "num_channels": "192", "num_res_blocks": "4", "learn_sigma": "True",
             "diffusion_steps": "4000", "noise_schedule": "cosine", "timestep_respacing": "ddim50",
             "use_kl": "False", "predict_xstart": False, "rescale_learned_sigmas": "true",
             "attention_resolutions": "32,16,8", "lr": "3e-4", "batch_size": "120", "microbatch": "3",
             "ema_rate": "0.9999,0.999"}
    exp = experiment_from_flags(flags).validate()
    assert (exp.unet.image_size, exp.unet.num_channels, exp.unet.num_res_blocks) == (128, 192, 4)
    assert exp.unet.learn_sigma is True and exp.unet.attention_resolutions == [32, 16, 8]
    assert exp.unet.channel_mult == [] and exp.unet.resolved_channel_mult() == [1, 1, 2, 3, 4]
    d = exp.diffusion
    assert (d.diffusion_steps, d.noise_schedule, d.timestep_respacing) == (4000, "cosine", "ddim50")
    assert (d.use_kl, d.predict_xstart, d.rescale_learned_sigmas) == (False, False, True)
    assert (exp.train.lr, exp.train.batch_size, exp.train.microbatch) == (3e-4, 120, 3)
    assert exp.train.ema_rate == [0.9999, 0.999]
    assert exp.vae.image_size == exp.data.image_size == 128


def test_experiment_from_flags_rejects_typos_and_class_cond():
    with pytest.raises(ConfigError, match="num_res_block.*did you mean 'num_res_blocks'"):
        experiment_from_flags({"num_res_block": 3})
    with pytest.raises(ConfigError, match="class_cond"):
        experiment_from_flags({"class_cond": True})
    with pytest.raises(ConfigError, match="learn_sigma"):
        experiment_from_flags({"learn_sigma": "maybe"})


def test_import_guided_writes_run_dir(tmp_path):
    from safetensors.torch import load_file
    flags = FLAG_SETS["legacy-no-ssn-no-sigma"]
    ref = guided_model(flags)
    out = import_guided(ref.state_dict(), flags, tmp_path / "run")
    exp = Experiment.from_json(out / "config.json")
    assert exp.unet.num_channels == 32 and exp.unet.channel_mult == [1, 2, 2] and not exp.unet.learn_sigma
    assert json.loads((out / "config.json").read_text())["unet"]["use_scale_shift_norm"] is False
    weights = load_file(out / "model.safetensors")
    assert weights.keys() == ref.state_dict().keys()
    assert all(torch.equal(weights[k], v) for k, v in ref.state_dict().items())
    rebuilt = UNet(exp.unet)
    rebuilt.load_state_dict(weights, strict=True)


def test_import_guided_run_dir_reloads_with_the_timestep_scale(tmp_path):
    """A rescale_timesteps checkpoint imported to a run directory rebuilds the same model from config.json."""
    from irislib.train import pipeline
    flags = dict(FLAG_SETS["legacy-no-ssn-no-sigma"], rescale_timesteps=True, diffusion_steps=4000)
    ref = guided_model(flags)
    model = load_guided_diffusion(ref.state_dict(), flags).eval()
    run = import_guided(ref.state_dict(), flags, tmp_path / "run")
    loaded, _, exp = pipeline.load_unet(run, use_ema=False)
    assert exp.unet.timestep_scale == 0.25
    x, t = torch.randn(2, model.in_channels, 32, 32), torch.tensor([10, 3000])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t), model(x, t))
        assert rel_err(loaded(x, t), ref(x, t.float() * 1000 / 4000)) < 1e-5
