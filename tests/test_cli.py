"""The `irislib` command: subcommands exist, each has --help, and bad flags give one clear error."""
import subprocess
import sys

import pytest

from irislib import cli

SUBCOMMANDS = ["train-vae", "train-diffusion", "train-refiner", "sample", "evaluate", "demo", "synth", "fetch", "register",
               "import-guided"]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "irislib.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_subcommand():
    res = run_cli("--help")
    assert res.returncode == 0
    for name in SUBCOMMANDS:
        assert name in res.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as ex:
        cli.main([name, "--help"])
    assert ex.value.code == 0
    assert "usage: irislib " + name in capsys.readouterr().out


def test_bad_override_is_one_clear_error(tmp_path, capsys):
    code = cli.main(["train-vae", "--preset", "tiny", "--out", str(tmp_path / "r"), "--set", "train.lrr=1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "train.lrr" in err and "did you mean 'lr'" in err and "Traceback" not in err


def test_unknown_preset_is_one_clear_error(tmp_path, capsys):
    assert cli.main(["train-diffusion", "--preset", "seed-65", "--out", str(tmp_path / "r")]) == 2
    assert "unknown preset 'seed-65'" in capsys.readouterr().err


def test_experiment_from_args_applies_data_and_overrides():
    args = cli.build_parser().parse_args(["train-diffusion", "--preset", "tiny", "--data", "synthetic:16",
                                          "--out", "x", "--set", "train.max_steps=3", "--set", "image_size=64"])
    exp = cli.experiment_from_args(args)
    assert exp.data.path == "synthetic:16" and exp.train.max_steps == 3
    assert exp.unet.image_size == exp.vae.image_size == exp.data.image_size == 64
