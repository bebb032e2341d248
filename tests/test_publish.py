"""hub.publish: a run's EMA weights shipped as fp16 safetensors + prior, listed in a manifest, loadable by name."""
import json

import torch
from safetensors.torch import load_file

from irislib import hub, presets
from irislib.generate.sampler import HybridSampler, SampleConfig
from irislib.train import pipeline

SMALL = {"data.path": "synthetic:8", "train.batch_size": 4, "train.microbatch": 4, "train.max_steps": 2,
         "train.sample_grid_images": 0, "train.save_every_steps": 2}


def test_publish_half_precision_pair_and_sample_it_by_name(tmp_path, monkeypatch):
    exp = presets.get("tiny").override(SMALL)
    vae_run = pipeline.train_vae(exp, tmp_path / "vae", progress=False)
    unet_run = pipeline.train_diffusion(exp.override({"diffusion.max_strength": 0.6}), tmp_path / "unet",
                                        progress=False)
    manifest = tmp_path / "repo" / "checkpoints_manifest.json"
    dest = tmp_path / "repo" / "checkpoints"
    v = hub.publish(vae_run, "t-vae", dest_dir=dest, manifest_path=manifest, command="irislib train-vae ...")
    u = hub.publish(unet_run, "t-unet", dest_dir=dest, manifest_path=manifest, command="irislib train-diffusion ...")
    doc = json.loads(manifest.read_text())
    assert [e["name"] for e in doc["checkpoints"]] == ["t-vae", "t-unet"]
    assert u["kind"] == "unet" and v["kind"] == "vae" and u["step"] == 2 and u["command"].startswith("irislib")
    assert u["config"]["diffusion"]["max_strength"] == 0.6   # the truncation travels in the manifest
    weights = load_file(dest / "t-unet.safetensors")
    assert all(t.dtype == torch.float16 for t in weights.values() if t.is_floating_point())
    assert v["files"][0]["filename"] == "prior.safetensors" and (dest / "t-vae.prior.safetensors").is_file()
    assert hub.sha256_file(dest / "t-unet.safetensors") == u["sha256"]
    # loads by name through the manifest, sha256-checked, into float32 models equal to the fp16-rounded EMA
    monkeypatch.setenv("IRISLIB_MANIFEST", str(manifest))
    monkeypatch.setenv("IRISLIB_CACHE", str(tmp_path / "cache"))
    sampler = HybridSampler.load("t-unet", "t-vae", device="cpu")
    ema, _ = pipeline.load_unet(unet_run)[0], None
    for (k, a), b in zip(sampler.unet.state_dict().items(), ema.state_dict().values()):
        assert a.dtype == torch.float32 and torch.equal(a, b.half().float()), k
    assert sampler.prior is not None and sampler.max_strength == 0.6
    res = sampler.sample(SampleConfig(n=2, strength=0.6, steps=2))
    assert res.images.shape == (2, 1, 32, 32) and torch.isfinite(res.images).all()
    # publishing again replaces the entry instead of duplicating it
    hub.publish(unet_run, "t-unet", dest_dir=dest, manifest_path=manifest)
    assert [e["name"] for e in json.loads(manifest.read_text())["checkpoints"]] == ["t-vae", "t-unet"]
