"""The comparison report's vanilla budgets (respaced and full-chain DDPM), reused rows, targets and figures."""
import json

import numpy as np
import pytest
from PIL import Image

from irislib import cli
from irislib.config import ConfigError
from irislib.evaluation import report
from irislib.train import pipeline


@pytest.fixture(scope="module")
def pair(tmp_path_factory, small_exp):
    root = tmp_path_factory.mktemp("pair")
    exp = small_exp({"train.max_steps": 2, "diffusion.diffusion_steps": 40})
    return pipeline.train_vae(exp, root / "vae", progress=False), pipeline.train_diffusion(exp, root / "unet",
                                                                                          progress=False)


def _compare(pair, out, **kw):
    vae, unet = pair
    return report.compare(unet, vae, out, strengths=(0.5,), steps=3, n=3, reference="synthetic:8", n_reference=8,
                          biometrics=False, **kw)


def test_vanilla_budgets_add_ddpm_rows_with_their_calls_and_time_per_image(pair, tmp_path):
    rep = _compare(pair, tmp_path / "r", vanilla_budgets=("10", "full"), vanilla_n=2)
    rows = {r["method"]: r for r in rep["summary"]}
    assert rows["vanilla_10"]["unet_calls"] == 10 and rows["vanilla_full"]["unet_calls"] == 40   # T = 40
    assert rows["vanilla_full"]["t0"] == 39 and rows["vanilla_full"]["n"] == 2 and rows["vanilla_3"]["n"] == 3
    assert rep["methods"]["vanilla_full"]["sampler"] == "ddpm" and rep["methods"]["vanilla_3"]["sampler"] == "ddim"
    assert all(r["seconds_per_image"] > 0 for r in rep["summary"] if r["unet_calls"])
    # the full chain costs about T/3 times a 3-call row per image
    assert rows["vanilla_full"]["seconds_per_image"] > 3 * rows["vanilla_3"]["seconds_per_image"]
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| vanilla_full | shipped | 1 | 39 | 40 | 2 |" in md
    for name in ("comparison.png", "metrics.png", "strength.png", "headline.png"):
        assert Image.open(tmp_path / "r" / name).size[0] > 300
    assert Image.open(tmp_path / "r" / "grid_vanilla_full.png").size == (2 * 34 + 2, 34 + 2)   # 32 px, 2 px pad
    # the README's picture: reference, drafts, vanilla at its longest chain, hybrid at <= 20 calls
    assert report.headline_rows(rep) == ["vae_draft", "vanilla_full", "hybrid_s0.5_3"]
    assert Image.open(tmp_path / "r" / "headline.png").size[1] >= 4 * 128


def test_rows_from_an_earlier_report_are_reused_with_their_images(pair, tmp_path):
    first = _compare(pair, tmp_path / "a", vanilla_budgets=("full",), vanilla_n=2)
    again = _compare(pair, tmp_path / "b", vanilla_budgets=("full",), vanilla_n=2, rows_from=tmp_path / "a")
    old, new = first["methods"]["vanilla_full"], again["methods"]["vanilla_full"]
    assert {k: new[k] for k in ("unet", "sampler", "t0", "unet_calls", "seconds")} == \
        {k: old[k] for k in ("unet", "sampler", "t0", "unet_calls", "seconds")}
    # measured again from the grid's 8-bit images against the same reference: the same figures, to 8-bit rounding
    assert new["kid"] == pytest.approx(old["kid"], abs=2e-3)
    assert any("vanilla_full: 2 images read from" in n and "measured against this report's reference" in n
               for n in again["notes"])
    a = np.asarray(Image.open(tmp_path / "a" / "grid_vanilla_full.png"))
    b = np.asarray(Image.open(tmp_path / "b" / "grid_vanilla_full.png"))
    assert np.array_equal(a, b)                                   # the grid split and re-tiled is the same picture
    assert first["methods"]["hybrid_s0.5_3"]["kid"] == again["methods"]["hybrid_s0.5_3"]["kid"]


def test_reused_rows_are_measured_against_this_reports_reference(pair, tmp_path):
    """A row read from a report drawn against another reference is re-measured: its KID is the one its images
    score against this reference, not the number the old report stored."""
    _compare(pair, tmp_path / "a", vanilla_budgets=("full",), vanilla_n=2)
    vae, unet = pair
    kw = dict(strengths=(0.5,), steps=3, n=3, n_reference=8, biometrics=False, vanilla_budgets=("full",),
              vanilla_n=2)
    again = report.compare(unet, vae, tmp_path / "b", reference="synthetic:16", rows_from=tmp_path / "a",
                           **{**kw, "n_reference": 16})
    images = report._split_grid(tmp_path / "a" / "grid_vanilla_full.png", 2)
    ref = report.held_out_reference("synthetic:16", report.Experiment.from_json(unet / "config.json"), 16)[1]
    expected = report.compute_kid(report._as01(images), ref, value_range=(0.0, 1.0))[0]
    assert again["methods"]["vanilla_full"]["kid"] == pytest.approx(float(expected), rel=1e-6)


def test_rows_from_a_report_drawn_by_another_unet_are_refused(pair, tmp_path):
    import shutil
    _compare(pair, tmp_path / "a", vanilla_budgets=("full",), vanilla_n=2)
    vae, unet = pair
    other = shutil.copytree(unet, tmp_path / "other_unet")   # same weights, another run: the name is what differs
    with pytest.raises(ConfigError, match="--rows-from .*other settings: unet_run="):
        report.compare(other, vae, tmp_path / "b", strengths=(0.5,), steps=3, n=3, reference="synthetic:8",
                       n_reference=8, biometrics=False, vanilla_budgets=("full",), vanilla_n=2,
                       rows_from=tmp_path / "a")


def test_rows_from_a_smaller_report_are_topped_up_with_the_images_it_lacks(pair, tmp_path):
    """Per-image generators: 2 reused + 2 drawn from seeds 2, 3 are the 4 images a fresh run draws."""
    _compare(pair, tmp_path / "a", vanilla_budgets=("10",), vanilla_n=2)
    topped = _compare(pair, tmp_path / "b", vanilla_budgets=("10",), vanilla_n=4, rows_from=tmp_path / "a")
    fresh = _compare(pair, tmp_path / "c", vanilla_budgets=("10",), vanilla_n=4)
    assert topped["methods"]["vanilla_10"]["generated"]["n_images"] == 4
    assert any("vanilla_10: 2 images read from" in n and "2 drawn (seeds 2..)" in n for n in topped["notes"])
    b = np.asarray(Image.open(tmp_path / "b" / "grid_vanilla_10.png"), dtype=int)
    c = np.asarray(Image.open(tmp_path / "c" / "grid_vanilla_10.png"), dtype=int)
    assert b.shape == c.shape and np.abs(b - c).max() <= 1        # 8-bit round trip of the reused two
    assert topped["methods"]["vanilla_10"]["kid"] == pytest.approx(fresh["methods"]["vanilla_10"]["kid"], abs=1e-3)
    with pytest.raises(ConfigError, match="--rows-from .*other settings: seed=0 .here 5."):
        _compare(pair, tmp_path / "d", vanilla_budgets=("10",), vanilla_n=4, rows_from=tmp_path / "a", seed=5)


def test_bad_budgets_and_missing_reports_are_one_clear_error(pair, tmp_path):
    with pytest.raises(ConfigError, match="--vanilla-budgets 'fast'"):
        _compare(pair, tmp_path / "x", vanilla_budgets=("fast",))
    with pytest.raises(ConfigError, match="--vanilla-budgets '400'.*between 1 and 40"):
        _compare(pair, tmp_path / "x", vanilla_budgets=("400",))
    with pytest.raises(ConfigError, match="--rows-from .*no report.json"):
        _compare(pair, tmp_path / "x", vanilla_budgets=("10",), rows_from=tmp_path / "nothing")


def test_targets_compare_each_hybrid_row_with_the_reference():
    floors = {"ellipse_residual_median": 0.02, "ellipse_residual_p90": 0.04, "edge_width_px_median": 1.0,
              "pupil_darkness_median": 20.0, "found_rate": 0.96}
    good = {"method": "hybrid_s0.5_20", "unet_calls": 20, "ellipse_residual_median": 0.026,
            "ellipse_residual_p90": 0.05, "edge_width_px_median": 1.3, "pupil_iris_ratio_w1": 0.03,
            "pupil_darkness_median": 24.9, "found_rate": 0.93, "kid": 0.01}
    bad = {**good, "method": "hybrid_s0.3_20", "ellipse_residual_median": 0.0261, "ellipse_residual_p90": 0.0521,
           "edge_width_px_median": 1.31, "pupil_iris_ratio_w1": 0.031, "pupil_darkness_median": 14.9,
           "found_rate": 0.99 + 0.0001, "kid": 0.0101}
    out = report.check_targets({"floors": floors, "summary": [good, bad, {**bad, "method": "vanilla_20"},
                                                              {**bad, "method": "hybrid_s0.5_50", "unet_calls": 50}]})
    met = {(t["method"], t["metric"]): t["met"] for t in out}
    assert {m for m, _ in met} == {"hybrid_s0.5_20", "hybrid_s0.3_20"}   # hybrid rows at <= 20 calls only
    assert all(v for (m, _), v in met.items() if m == "hybrid_s0.5_20") and len(met) == 14
    assert not any(v for (m, _), v in met.items() if m == "hybrid_s0.3_20")


def test_evaluate_help_names_the_sections_and_their_switches(capsys):
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("ISO/IEC 29794-6 quality", "identity checks", "--no-biometrics", "--hd-threshold",
                  "--vanilla-budgets", "--rows-from"):
        assert words in text


def test_evaluating_a_run_writes_no_cache_where_its_config_points(tmp_path, monkeypatch, small_exp):
    """A run folder is untrusted: its config.json's data.cache_dir must not make the report write there."""
    from irislib.data.synthetic import write_synthetic
    write_synthetic(tmp_path / "images", 3, size=32)
    outside = tmp_path / "outside"
    exp = small_exp({"data.path": str(tmp_path / "images"), "data.cache_dir": str(outside)})
    monkeypatch.setenv("IRISLIB_CACHE", str(tmp_path / "cache"))
    images = report.training_images(exp, 2)
    spec, ref = report.held_out_reference(str(tmp_path / "images"), exp, 3)
    assert images.shape == (2, 32, 32) and ref.shape == (3, 32, 32)
    assert not outside.exists() and any((tmp_path / "cache" / "data").iterdir())
