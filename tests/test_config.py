"""Config: JSON round-trip, dotted overrides, and every validation error names its field."""
import json
from pathlib import Path

import pytest

from irislib.config import ConfigError, Experiment, Placement, UNetConfig, build_experiment, default_channel_mult
from irislib import presets

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", presets.names())
def test_preset_json_round_trip(name, tmp_path):
    exp = presets.get(name)
    path = tmp_path / "config.json"
    exp.to_json(path)
    assert Experiment.from_json(path) == exp
    assert Experiment.from_dict(json.loads(path.read_text())) == exp


NON_DEFAULT = {"unet": {"unet.channel_mult": [1, 2, 2], "unet.dropout": 0.1},
               "diffusion": {"diffusion.noise_schedule": "cosine", "diffusion.max_strength": 0.7},
               "vae": {"vae.latent_type": "vector", "vae.beta": 0.02},
               "data": {"data.crop_csv": "boxes.csv", "data.synthetic_seed": 3},
               "train": {"train.ema_rate": [0.999, 0.9999], "train.keep_last": 7}}


@pytest.mark.parametrize("section", list(NON_DEFAULT))
def test_every_section_round_trips_with_non_default_values(section):
    exp = Experiment().override(NON_DEFAULT[section])
    assert getattr(exp, section) != getattr(Experiment(), section)   # the values are not the defaults
    assert Experiment.from_json(exp.to_json()) == exp
    written = json.loads(exp.to_json())
    assert all(written[section][key.split(".")[1]] == value for key, value in NON_DEFAULT[section].items())


def test_dotted_overrides_parse_strings_for_the_field_type():
    exp = presets.get("tiny").override(["train.lr=3e-4", "unet.attention_resolutions=16,8", "train.max_steps=30",
                                        "unet.use_checkpoint=true", "train.gear=[[0, 3e-4], [2, 1e-4]]"])
    assert exp.train.lr == 3e-4 and isinstance(exp.train.lr, float)
    assert exp.unet.attention_resolutions == [16, 8]
    assert exp.train.max_steps == 30 and exp.unet.use_checkpoint is True
    assert exp.train.gear == [[0.0, 3e-4], [2.0, 1e-4]]


def test_image_size_shortcut_sets_every_section():
    exp = presets.get("tiny").override({"image_size": 64, "channels": 3})
    assert exp.unet.image_size == exp.vae.image_size == exp.data.image_size == 64
    assert exp.unet.in_channels == exp.vae.in_channels == exp.data.channels == 3
    exp.validate()


def test_override_does_not_mutate_the_original():
    exp = presets.get("tiny")
    exp.override({"train.lr": 1.0})
    assert exp.train.lr == 2e-4


@pytest.mark.parametrize("override, words", [
    (["train.lrr=1"], ["train.lrr", "did you mean 'lr'"]),
    (["trian.lr=1"], ["trian", "did you mean 'train'"]),
    (["lr=1"], ["needs a section", "train.lr"]),
    (["train.lr"], ["key=value"]),
    (["train.batch_size=abc"], ["train.batch_size", "int"]),
    (["unet.use_checkpoint=maybe"], ["unet.use_checkpoint", "true or false"]),
    (["train.lr=2.5.1"], ["train.lr"]),
])
def test_bad_overrides_name_the_key(override, words):
    with pytest.raises(ConfigError) as err:
        presets.get("tiny").override(override)
    for w in words:
        assert w in str(err.value)


@pytest.mark.parametrize("override, words", [
    ({"image_size": 36, "unet.channel_mult": [1, 2, 2, 2]}, ["unet.image_size=36", "2^3", "multiple of 8"]),
    ({"image_size": 48}, ["unet.channel_mult", "image_size=48", "set it explicitly"]),
    ({"train.microbatch": 64}, ["microbatch=64", "batch_size=8", "at most 8"]),
    ({"diffusion.noise_schedule": "cosin"}, ["diffusion.noise_schedule", "linear, cosine", "did you mean 'cosine'"]),
    ({"train.lr_schedule": "step"}, ["train.lr_schedule", "gear"]),
    ({"train.precision": "fp8"}, ["train.precision", "bf16"]),
    ({"data.channels": 2}, ["data.channels=2"]),
    ({"unet.image_size": 64}, ["image sizes disagree", "image_size=N"]),
    ({"unet.in_channels": 3}, ["channel counts disagree"]),
    ({"unet.attention_resolutions": [12]}, ["unet.attention_resolutions", "12"]),
    ({"unet.image_size": 320, "vae.image_size": 320, "data.image_size": 320}, ["unet.channel_mult", "320"]),
    ({"train.lr_schedule": "gear", "train.gear": [[1, 1e-4]]}, ["train.gear", "begin at 0"]),
    ({"train.lr_schedule": "gear", "train.gear": []}, ["train.gear"]),
    ({"train.ema_rate": [1.5]}, ["train.ema_rate"]),
    ({"train.batch_size": 0}, ["train.batch_size=0", "positive"]),
    ({"vae.latent_type": "flat"}, ["vae.latent_type", "spatial, vector"]),
    ({"unet.num_channels": 48}, ["unet.num_channels=48", "multiple of 32"]),
    ({"unet.num_head_channels": 24}, ["unet.num_head_channels=24"]),
])
def test_validation_errors_name_the_field(override, words):
    with pytest.raises(ConfigError) as err:
        presets.get("tiny").override(override).validate()
    for w in words:
        assert w in str(err.value), str(err.value)


def test_unknown_json_keys_are_rejected(tmp_path):
    d = presets.get("tiny").to_dict()
    d["train"]["batchsize"] = 4
    with pytest.raises(ConfigError, match=r"unknown field train.batchsize; did you mean 'batch_size'"):
        Experiment.from_dict(d)
    d = presets.get("tiny").to_dict()
    d["model"] = {}
    with pytest.raises(ConfigError, match="unknown section 'model'"):
        Experiment.from_dict(d)
    bad = tmp_path / "c.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="c.json is not valid JSON"):
        Experiment.from_json(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        Experiment.from_json(tmp_path / "missing.json")


def test_channel_mult_defaults_follow_guided_diffusion():
    assert default_channel_mult(64) == [1, 2, 3, 4]
    assert default_channel_mult(128) == [1, 1, 2, 3, 4]
    assert UNetConfig(image_size=320, channel_mult=[1, 1, 2, 2, 4]).resolved_channel_mult() == [1, 1, 2, 2, 4]
    UNetConfig(image_size=320, channel_mult=[1, 1, 2, 2, 4], attention_resolutions=[20, 10]).validate()


# --- build_experiment: one path from typed values (notebooks) or strings (CLI) to a validated Experiment -------
def test_build_experiment_precedence_config_data_then_overrides_in_order(tmp_path):
    base = presets.get("tiny").override({"train.lr": 5e-4, "data.path": "synthetic:8"})
    base.to_json(tmp_path / "config.json")
    for config in (tmp_path / "config.json", base.to_dict(), base):   # a file, a dict or an Experiment
        exp = build_experiment("seed-64", config, data="synthetic:32",
                               overrides=[{"train.max_steps": 3, "train.lr": 1e-3}, "train.max_steps=4"])
        assert exp.unet == base.unet                                   # config wins over preset
        assert (exp.data.path, exp.train.lr, exp.train.max_steps) == ("synthetic:32", 1e-3, 4)
    assert build_experiment("seed-64") == presets.get("seed-64") and build_experiment() == presets.get("tiny")
    assert build_experiment(overrides={"data.path": "synthetic:4"}, data="synthetic:9").data.path == "synthetic:4"


def test_build_experiment_keeps_typed_values_and_parses_strings_alike():
    typed = build_experiment("tiny", overrides={"train.lr": 3e-4, "unet.attention_resolutions": [16], "image_size": 64,
                                                "unet.use_checkpoint": True})
    text = build_experiment("tiny", overrides=["train.lr=3e-4", "unet.attention_resolutions=16", "image_size=64",
                                               "unet.use_checkpoint=true"])
    assert typed == text and typed.vae.image_size == typed.data.image_size == 64
    later = build_experiment("tiny", overrides=[{"image_size": 64}, {"unet.image_size": 32}, {"image_size": 32}])
    assert later.unet.image_size == later.data.image_size == 32       # a later alias wins over an earlier key


@pytest.mark.parametrize("overrides, words", [({"train.batch_size": "many"}, ["train.batch_size", "int"]),
                                              ({"train.lr": -1.0}, ["train.lr=-1.0", "> 0"]),
                                              (["train.lr"], ["key=value"]), ([3], ["key=value"]),
                                              ({"unet.image_size": 64}, ["image sizes disagree"])])
def test_build_experiment_validates_once_with_one_clear_error(overrides, words):
    with pytest.raises(ConfigError) as err:
        build_experiment("tiny", overrides=overrides)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_the_cli_builds_the_same_experiment():
    from irislib import cli
    args = cli.build_parser().parse_args(["train-vae", "--preset", "seed-64", "--data", "synthetic:16", "--out", "x",
                                          "--set", "train.lr=3e-4", "--set", "train.max_steps=5"])
    assert cli.experiment_from_args(args) == build_experiment("seed-64", data="synthetic:16",
                                                              overrides={"train.lr": 3e-4, "train.max_steps": 5})


def test_placement_is_the_trainers_arguments_not_part_of_the_experiment(tmp_path):
    place = Placement(tmp_path / "run", tmp_path / "mirror", device="cpu", resume=None)
    assert place.train_kwargs() == {"resume": None, "mirror_dir": tmp_path / "mirror", "device": "cpu"}
    assert Placement(tmp_path / "run").train_kwargs() == {"resume": "auto", "mirror_dir": None, "device": "auto"}
    assert not {"mirror_dir", "device"} & set(Experiment().to_dict()["train"])   # config.json never holds them


# The shipped entries written when train.mirror_dir / train.device were fields (the 128 px pair came later).
LEGACY_ENTRIES = [e for e in json.loads((REPO / "checkpoints_manifest.json").read_text())["checkpoints"]
                  if "mirror_dir" in e["config"]["train"]]


def test_the_manifest_still_holds_legacy_configs():
    assert {"iris64-vae", "iris64-unet", "iris64-unet-full"} <= {e["name"] for e in LEGACY_ENTRIES}


@pytest.mark.parametrize("entry", LEGACY_ENTRIES, ids=lambda e: e["name"])
def test_an_old_config_json_with_where_it_ran_loads_without_those_keys(entry):
    old = entry["config"]                      # written when train.mirror_dir / train.device were fields
    assert {"mirror_dir", "device"} <= set(old["train"])
    exp = Experiment.from_json(json.dumps(old))
    now = exp.to_dict()
    kept = {(sec, k): v for sec, fields_ in old.items() for k, v in fields_.items()
            if (sec, k) not in (("train", "mirror_dir"), ("train", "device"))}
    assert all(now[sec][k] == v for (sec, k), v in kept.items())   # every other value as written
    assert not {"mirror_dir", "device"} & set(now["train"])
    with pytest.raises(ConfigError, match="unknown field train.mirror_dirs"):   # other unknown keys still fail
        Experiment.from_dict({**old, "train": {**old["train"], "mirror_dirs": "x"}})


@pytest.mark.parametrize("key, flag", [("train.mirror_dir", "--mirror DIR"), ("train.device", "--device NAME")])
def test_overriding_where_it_runs_names_the_replacement(key, flag):
    for overrides in ([f"{key}=x"], {key: "x"}):
        with pytest.raises(ConfigError, match=rf"{key} is no longer part of the experiment.*use {flag} "
                                              rf"\(Python: .*Placement\("):
            build_experiment("tiny", overrides=overrides)
