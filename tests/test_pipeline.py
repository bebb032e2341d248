"""End to end at toy scale: train VAE + diffusion, resume, sample, evaluate, compare — via Python and the CLI."""
import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from irislib import checkpoint, cli, presets
from irislib.checkpoint import load_run, read_metrics
from irislib.config import ConfigError
from irislib.data.synthetic_texture import gaussian_blur
from irislib.evaluation import report
from irislib.train import pipeline


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_exp):
    root = tmp_path_factory.mktemp("runs")
    exp = small_exp({"train.max_steps": 3})
    vae_run = pipeline.train_vae(exp, root / "vae", progress=False)
    unet_run = pipeline.train_diffusion(exp, root / "unet", progress=False)
    return exp, vae_run, unet_run


def test_runs_are_self_describing(runs):
    exp, vae_run, unet_run = runs
    for run in (vae_run, unet_run):
        assert json.loads((run / "config.json").read_text())["train"]["max_steps"] == 3
        pointer = json.loads((run / "latest.json").read_text())
        assert pointer["step"] == 3
        records = read_metrics(run)
        assert [r["step"] for r in records] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in records)
    assert (vae_run / "checkpoints" / "step_000003" / "prior.safetensors").is_file()   # beside the weights it fits
    loaded_exp, state = load_run(unet_run)
    assert loaded_exp.unet == exp.unet and "out.2.weight" in state


def test_resume_auto_continues_from_the_saved_step(runs, tmp_path):
    exp, _, unet_run = runs
    longer = exp.override({"train.max_steps": 5})
    pipeline.train_diffusion(longer, unet_run, resume="auto", progress=False)
    assert [r["step"] for r in read_metrics(unet_run)] == [1, 2, 3, 4, 5]


def test_sample_writes_pngs_grid_and_settings(runs, tmp_path):
    _, vae_run, unet_run = runs
    out = tmp_path / "samples"
    res = pipeline.sample(unet_run, vae_run, out=out, n=3, strength=0.4, steps=4, batch_size=2, bit_depth=16)
    assert res.images.shape == (3, 1, 32, 32) and res.nfe == 4 and 0 < res.t0 < 999
    png = np.asarray(Image.open(res.paths[0]))
    assert png.dtype == np.uint16 and png.shape == (32, 32)
    settings = json.loads((out / "settings.json").read_text())
    assert settings["t0"] == res.t0 and settings["strength"] == 0.4
    assert (out / "grid.png").is_file() and (out / "drafts_grid.png").is_file()
    # image i depends on its seed only, not on the batch it was drawn in
    again = pipeline.sample(unet_run, vae_run, n=3, strength=0.4, steps=4, batch_size=3)
    torch.testing.assert_close(again.images, res.images, atol=1e-5, rtol=0)


def test_pure_noise_without_vae_and_clear_error_for_missing_vae(runs):
    _, _, unet_run = runs
    res = pipeline.sample(unet_run, None, n=2, strength=1.0, steps=3)
    assert res.drafts is None and res.nfe == 3
    with pytest.raises(Exception, match="needs a VAE"):
        pipeline.sample(unet_run, None, n=2, strength=0.5, steps=3)
    with pytest.raises(FileNotFoundError, match="neither a run directory nor a name"):
        pipeline.sample("no-such-run", None, n=2, strength=1.0, steps=3)


def test_compare_report_has_every_method_at_equal_unet_calls(runs, tmp_path):
    _, vae_run, unet_run = runs
    rep = report.compare(unet_run, vae_run, tmp_path / "rep", strengths=(0.3, 0.6), steps=4, n=4,
                         reference="synthetic:8", n_reference=8)
    names = [row["method"] for row in rep["summary"]]
    assert names == ["vae_draft", "vanilla_4", "hybrid_s0.3_4", "hybrid_s0.6_4"]
    calls = {row["method"]: row["unet_calls"] for row in rep["summary"]}
    assert calls["vanilla_4"] == calls["hybrid_s0.3_4"] == calls["hybrid_s0.6_4"] == 4 and calls["vae_draft"] == 0
    for f in ("report.json", "report.md", "comparison.png", "grid_vanilla_4.png", "grid_reference.png"):
        assert (tmp_path / "rep" / f).is_file()
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| vanilla_4 |" in md and "| reference (floor) |" in md and "## Targets" in md
    # the reference is held out: synthetic irises with the next seed, none of them a training image
    assert "synthetic_seed=1" in rep["settings"]["reference"]
    train = report.reference_images("synthetic:8", 32)
    held_out = report.held_out_reference("synthetic:8", presets.get("tiny"), 8)[1]
    assert min(np.abs(train[i] - held_out[j]).max() for i in range(8) for j in range(8)) > 0.05
    assert {t["method"] for t in rep["targets"]} == {"hybrid_s0.3_4", "hybrid_s0.6_4"}


def test_compare_takes_vanilla_from_a_full_chain_peer_when_the_unet_is_truncated(runs, tmp_path, small_exp):
    """A truncated UNet cannot sample from noise: vanilla comes from the full-chain peer, and the peer is also
    run in hybrid mode from the same drafts (truncated vs full-chain training)."""
    _, vae_run, unet_run = runs
    truncated = tmp_path / "trunc"
    exp = small_exp({"train.max_steps": 1, "diffusion.max_strength": 0.6})
    pipeline.train_diffusion(exp, truncated, progress=False)
    alone = report.compare(truncated, vae_run, tmp_path / "a", strengths=(0.5,), steps=3, n=2,
                           reference="synthetic:8", n_reference=8)
    assert [r["method"] for r in alone["summary"]] == ["vae_draft", "hybrid_s0.5_3"] and "vanilla skipped" in \
        alone["notes"][0]
    both = report.compare(truncated, vae_run, tmp_path / "b", strengths=(0.5,), steps=3, n=2,
                          reference="synthetic:8", n_reference=8, vanilla_unet=unet_run)
    rows = {r["method"]: r for r in both["summary"]}
    assert list(rows) == ["vae_draft", "vanilla_3", "hybrid_s0.5_3", "fullchain_hybrid_s0.5_3"]
    assert rows["vanilla_3"]["unet"] == rows["fullchain_hybrid_s0.5_3"]["unet"] == "full-chain"
    assert rows["hybrid_s0.5_3"]["t0"] == rows["fullchain_hybrid_s0.5_3"]["t0"]   # same start, same drafts
    with pytest.raises(ConfigError, match="max_strength"):
        report.compare(truncated, vae_run, tmp_path / "c", strengths=(0.7,), steps=3, n=2, reference="synthetic:8",
                       n_reference=8)


def test_evaluate_scores_synthetic_irises_against_themselves_better_than_blurred(tmp_path):
    from irislib.data.synthetic import write_synthetic
    write_synthetic(tmp_path / "clean", 6, size=64, seed=1)
    clean = report.evaluate(tmp_path / "clean", reference="synthetic:12", out=tmp_path / "ev")
    assert clean["found_rate"]["generated"] >= 0.8
    assert (tmp_path / "ev" / "metrics.json").is_file()
    imgs = report.reference_images("synthetic:6", 64)
    blur = np.stack([gaussian_blur(im.astype(np.float32), 1.0) for im in imgs])
    before, after = (report.evaluate(torch.from_numpy(x[:, None] * 2 - 1), reference="synthetic:12")
                     for x in (imgs, blur))
    # A Gaussian blur of sigma 1 px: fewer pupils pass the strict decision (5 of 6 -> 3), and the edges of those
    # found widen as the maths says: variances add, and a 10-90 % rise is 2.563 sigma (measured 2.87 vs 2.76 px).
    assert after["found_rate"]["generated"] < before["found_rate"]["generated"]
    w0, w1 = before["generated"]["edge_width_px"]["mean"], after["generated"]["edge_width_px"]["mean"]
    assert w1 == pytest.approx(math.hypot(w0, 2.563 * 1.0), rel=0.08)
    assert after["w1"]["edge_width_px"] > 10 * before["w1"]["edge_width_px"]     # 1.84 vs 0.04: far from the set


def test_cli_train_then_resume_auto(tmp_path, capsys):
    out, mirror = tmp_path / "run", tmp_path / "drive"
    base = ["train-diffusion", "--preset", "tiny", "--data", "synthetic:8", "--out", str(out), "--quiet",
            "--set", "train.sample_grid_images=0", "--set", "train.batch_size=4", "--set", "train.microbatch=4",
            "--mirror", str(mirror), "--device", "cpu"]
    assert cli.main(base + ["--set", "train.max_steps=2"]) == 0
    assert json.loads((out / "latest.json").read_text())["step"] == 2
    assert json.loads((mirror / "latest.json").read_text())["step"] == 2      # --mirror got the checkpoint
    assert "mirror_dir" not in json.loads((out / "config.json").read_text())["train"]   # not part of the run
    run_id = checkpoint.run_id_of(out)
    shutil.rmtree(out)                                                        # the VM is gone: resume from Drive
    assert cli.main(base + ["--set", "train.max_steps=3", "--resume", "auto"]) == 0
    assert json.loads((out / "latest.json").read_text())["step"] == 3
    assert checkpoint.run_id_of(out) == run_id                                # the same run, continued
    assert "run directory" in capsys.readouterr().out


def test_conditional_refiner_trains_on_vae_reconstructions_and_samples(runs, tmp_path):
    exp, vae_run, _ = runs
    ref_run = pipeline.train_refiner(exp.override({"train.max_steps": 2}), vae_run, tmp_path / "refiner",
                                     progress=False)
    loaded, state = load_run(ref_run)
    assert loaded.unet.cond_channels == 1 and loaded.vae == exp.vae
    assert state["input_blocks.0.0.weight"].shape[1] == 2  # image + conditioning channel
    res = pipeline.sample(ref_run, vae_run, n=2, strength=1.0, steps=3)
    assert res.images.shape == (2, 1, 32, 32) and res.drafts is not None
    with pytest.raises(Exception, match="refiner"):
        pipeline.sample(ref_run, None, n=2, strength=1.0, steps=3)


def test_cli_demo_quick_runs_the_whole_pipeline(tmp_path, capsys):
    assert cli.main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    report_dir = tmp_path / "demo" / "report"
    rep = json.loads((report_dir / "report.json").read_text())
    # the shipped 128 px pair: vanilla from the full-chain peer, hybrid from the truncated UNet, equal calls
    assert {"vae_draft", "vanilla_2", "hybrid_s0.5_2", "fullchain_hybrid_s0.5_2"} <= set(rep["methods"])
    assert rep["settings"]["image_size"] == 128 and rep["methods"]["vanilla_2"]["unet"] == "full-chain"
    assert (tmp_path / "demo" / "samples" / "grid.png").is_file()
    # training and resume: the second call continued each run from the first's checkpoint to 2x the steps
    for run in ("vae_run", "unet_run"):
        steps = [r["step"] for r in read_metrics(tmp_path / "demo" / "train" / run)]
        assert steps == sorted(steps) and steps[-1] == 4
    captured = capsys.readouterr()
    assert "| hybrid_s0.5_2 |" in captured.out
    assert "demo 3/3" in captured.err   # it says what it is doing
    # the path a user runs (quick only shrinks the counts): vanilla at its full chain read from the shipped
    # report, with its grid, in the headline's middle band, measured against this report's reference, and named
    assert (report.SHIPPED_REPORT / "report.json").is_file(), report.SHIPPED_REPORT
    full = rep["methods"]["vanilla_full"]
    shipped = json.loads((report.SHIPPED_REPORT / "report.json").read_text())["methods"]["vanilla_full"]
    assert full["unet_calls"] == 1000 and full["generated"]["n_images"] == shipped["generated"]["n_images"]
    assert full["kid"] != shipped["kid"]   # against this report's 16-image reference, not the shipped 256
    assert (report_dir / "grid_vanilla_full.png").is_file()
    assert report.headline_rows(rep)[1] == "vanilla_full"
    assert any(n.startswith("vanilla_full:") and "read from" in n for n in rep["notes"])


def test_vae_prior_reaches_the_drive_mirror(tmp_path, small_exp):
    exp = small_exp({"train.max_steps": 2, "train.sample_grid_images": 0})
    run = pipeline.train_vae(exp, tmp_path / "local", progress=False, mirror_dir=tmp_path / "drive", device="cpu")
    local, drive = checkpoint.prior_path(run), checkpoint.prior_path(tmp_path / "drive")
    assert drive == tmp_path / "drive" / "checkpoints" / "step_000002" / "prior.safetensors"
    assert drive.read_bytes() == local.read_bytes()
    _, from_drive = pipeline.load_vae(tmp_path / "drive")   # Colab wiped the VM: the Drive copy samples alike
    assert torch.equal(from_drive.means, pipeline.load_vae(run)[1].means)
    _, prior = pipeline.load_vae(tmp_path / "drive", with_prior=False)
    assert prior is None


def test_user_mistakes_get_one_clear_error(runs, tmp_path, capsys):
    exp, vae_run, unet_run = runs
    out = str(tmp_path / "x")
    cases = [(["sample", "--unet", str(vae_run), "--out", out], "pass it as --vae"),
             (["sample", "--unet", str(unet_run), "--vae", str(unet_run), "--out", out], "pass it as --unet"),
             (["sample", "--unet", str(unet_run), "--out", out, "--n", "0"], "at least 1"),
             (["sample", "--unet", str(unet_run), "--out", out, "--strength", "1.5"], "strength=1.5"),
             (["sample", "--unet", str(unet_run), "--out", out, "--device", "gpu"], "not a device"),
             (["evaluate", "--unet", str(unet_run), "--out", out], "--vae RUN"),
             (["import-guided", "model.pt", "--flags", "typo.json", "--out", out], "typo.json"),
             (["train-diffusion", "--preset", "tiny", "--out", str(unet_run), "--resume", "no"], str(unet_run)),
             (["train-vae", "--out", out, "--device", "gpu"], "not a device"),
             (["train-vae", "--out", out, "--set", "train.mirror_dir=/drive"], "use --mirror DIR"),
             (["train-vae", "--out", out, "--set", "train.device=cpu"], "use --device NAME")]
    for args, words in cases:
        assert cli.main(args) == 2, args
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, (args, err)


def test_evaluate_reads_a_sample_folder_and_any_value_range(runs, tmp_path):
    _, vae_run, unet_run = runs
    res = pipeline.sample(unet_run, vae_run, out=tmp_path / "s", n=3, strength=0.5, steps=2)
    from_dir = report.evaluate(tmp_path / "s", reference="synthetic:8")  # grids beside the samples are skipped
    from_tensor = report.evaluate(res.images, reference="synthetic:8")  # [-1, 1] tensor
    from_array = report.evaluate(((res.images + 1) / 2)[:, 0].numpy(), reference="synthetic:8")  # [0, 1] array
    assert abs(from_tensor["kid"]["mean"] - from_array["kid"]["mean"]) < 1e-4
    assert abs(from_dir["kid"]["mean"] - from_array["kid"]["mean"]) < 0.05  # 8-bit PNG rounding only


@pytest.mark.slow
def test_cli_under_torchrun_two_processes(tmp_path):
    """The README's torchrun command: 2 gloo processes on CPU train one run, rank 0 writes it, the lock is freed."""
    import subprocess
    import sys
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "irislib.cli",
           "train-vae", "--preset", "tiny", "--data", "synthetic:16", "--out", str(out), "--quiet",
           "--set", "train.max_steps=3", "--set", "train.batch_size=4", "--set", "train.microbatch=2",
           "--set", "train.sample_grid_images=2", "--set", "train.log_every_steps=1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("run directory") == 2  # both ranks finished
    assert json.loads((out / "latest.json").read_text())["step"] == 3
    assert checkpoint.prior_path(out) == out / "checkpoints" / "step_000003" / "prior.safetensors"
    assert not (out / ".train.lock").exists()
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3]


def test_a_vae_resumed_past_its_prior_warns_and_drafting_says_what_to_do(tmp_path, small_exp):
    from irislib.generate.sampler import HybridSampler, SampleConfig
    exp = small_exp({"train.max_steps": 2, "train.sample_grid_images": 0})
    run = pipeline.train_vae(exp, tmp_path / "vae", progress=False)
    newest = checkpoint.load(checkpoint.find_resume(run))
    newest["trainer"]["step"] = 3                                   # a later checkpoint, saved before any new fit
    checkpoint.save(run, {k: newest[k] for k in ("model", "ema", "trainer")}, newest["exp"])
    with pytest.warns(UserWarning, match="no fitted prior"):
        vae, prior = pipeline.load_vae(run)
    assert prior is None                                            # the step-2 prior belongs to other weights
    unet = pipeline.load_unet("tiny-synthetic-unet")[0]
    sampler = HybridSampler(unet, pipeline.build_diffusion(presets.get("tiny")), vae, prior)
    with pytest.raises(ConfigError, match="no fitted prior"):
        sampler.sample(SampleConfig(n=1, steps=1))


def test_vae_previews_say_what_they_are_and_the_last_is_drawn_from_the_fitted_prior(tmp_path, small_exp):
    """A preview drawn from N(0, I) before the mixture prior exists looks like failed training: it says so, and
    the last one is drawn again from the fitted prior, as sampling draws."""
    from irislib.generate import hybrid
    from irislib import imageio
    exp = small_exp({"train.max_steps": 4, "train.sample_every_steps": 2, "train.sample_grid_images": 4,
                     "vae.prior": "gmm"})
    run = pipeline.train_vae(exp, tmp_path / "vae", progress=False, device="cpu")
    early = Image.open(run / "samples" / "step_000002.png")
    vae, prior = pipeline.load_vae(run, device="cpu")
    assert prior is not None
    want = imageio.with_caption(imageio.make_grid(hybrid.draw_drafts(vae, [0, 1, 2, 3], prior=prior), nrow=4),
                                "from the fitted prior")
    last = Image.open(run / "samples" / "step_000004.png")
    assert np.array_equal(np.asarray(last), np.asarray(want))
    grid_h = imageio.make_grid(torch.zeros(4, 1, 32, 32), nrow=4).height
    assert early.height == grid_h + 16 and np.asarray(early)[grid_h:].min() < 50   # a caption strip with text


def test_training_bars_name_the_model_and_say_resumed(tmp_path, small_exp, capsys):
    exp = small_exp({"train.max_steps": 2})
    pipeline.train_vae(exp, tmp_path / "my_vae", progress=True, device="cpu")
    first = capsys.readouterr().err
    pipeline.train_vae(exp.override({"train.max_steps": 4}), tmp_path / "my_vae", progress=True, device="cpu")
    second = capsys.readouterr().err
    assert "VAE my_vae" in first and "resumed" not in first
    assert "VAE my_vae (resumed at step 2)" in second
