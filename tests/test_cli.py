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


@pytest.mark.parametrize("name", SUBCOMMANDS + ["dataset", "verify-dataset"])
def test_every_option_says_what_it_is(name):
    """No flag without a help text: --out, --n and --seed of synth had none."""
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command").choices[name]
    bare = [a.option_strings or [a.dest] for a in sub._actions if a.help is None]
    assert not bare, f"{name}: {bare} have no help text"


def test_dataset_help_shows_defaults_and_the_demo_says_what_it_does(capsys):
    with pytest.raises(SystemExit):
        cli.main(["dataset", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 10)" in text and "(default: iris128-unet)" in text
    res = run_cli("--help")
    assert "tiny scale on synthetic" not in res.stdout and "shipped 128 px" in " ".join(res.stdout.split())


def test_fetch_list_has_a_header_with_units(capsys):
    assert cli.main(["fetch", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["name", "kind", "size"] and "MB" in lines[0]
    row = next(ln for ln in lines if ln.startswith("iris128-unet "))
    assert float(row.split()[2]) > 1                               # megabytes, not bytes


def test_evaluate_images_prints_a_table_not_a_dict(tmp_path, capsys):
    from irislib.data.synthetic import write_synthetic
    write_synthetic(tmp_path / "imgs", 4, size=64, seed=0)
    assert cli.main(["evaluate", "--images", str(tmp_path / "imgs"), "--reference", "synthetic:8", "--out",
                     str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    assert "| pupil grey level (0-255) |" in out and "{" not in out and "KID" in out
