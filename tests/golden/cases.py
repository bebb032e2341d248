"""The golden sampling cases: fixed seeds through the shipped checkpoints, every sampler and start kind.

`python tests/golden/cases.py --write` records tests/golden/shipped_samples.npz and the
platform it was recorded on; tests/test_golden_samples.py redraws every case and compares.
"""
from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
GOLDEN = HERE / "shipped_samples.npz"
PLATFORM = HERE / "platform.json"

# name: (unet, vae, SampleConfig fields). n=3 with batch_size 2 exercises a ragged second batch.
CASES = {
    "hybrid64_ddim_s05": ("iris64-unet", "iris64-vae", dict(strength=0.5, steps=6, sampler="ddim")),
    "hybrid64_ddim_eta_s03": ("iris64-unet", "iris64-vae", dict(strength=0.3, steps=5, sampler="ddim", eta=0.7)),
    "hybrid64_ddpm_s07": ("iris64-unet", "iris64-vae", dict(strength=0.7, steps=6, sampler="ddpm")),
    "hybrid64_dpmpp_s07": ("iris64-unet", "iris64-vae", dict(strength=0.7, steps=8, sampler="dpm++2m")),
    "hybrid64_respaced": ("iris64-unet-full", "iris64-vae", dict(strength=0.5, steps=1, respacing="ddim25")),
    "vanilla64_ddim": ("iris64-unet-full", None, dict(strength=1.0, steps=5, sampler="ddim")),
    "vanilla64_dpmpp": ("iris64-unet-full", None, dict(strength=1.0, steps=6, sampler="dpm++2m")),
    "draft64_s0": ("iris64-unet", "iris64-vae", dict(strength=0.0, steps=1)),
    "hybrid32_ddim": ("tiny-synthetic-unet", "tiny-synthetic-vae", dict(strength=0.5, steps=4, sampler="ddim")),
}


def platform_key() -> dict:
    """What decides float bits on CPU: torch build, ISA level the kernels dispatch to, CPU model, threads."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    return {"torch": torch.__version__, "capability": torch.backends.cpu.get_cpu_capability(),
            "machine": platform.machine(), "cpu": cpu, "threads": 1}


def draw_all() -> dict[str, np.ndarray]:
    """Every case's images (and its drafts when there are any), float32, drawn on one CPU thread."""
    from irislib.generate.sampler import HybridSampler, SampleConfig
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        loaded, out = {}, {}
        for name, (unet, vae, fields) in CASES.items():
            key = (unet, vae)
            if key not in loaded:
                loaded[key] = HybridSampler.load(unet, vae, device="cpu")
            res = loaded[key].sample(SampleConfig(n=3, seed=11, batch_size=2, **fields))
            out[name] = res.images.numpy().astype(np.float32)
            if res.drafts is not None:
                out[name + ".drafts"] = res.drafts.numpy().astype(np.float32)
        return out
    finally:
        torch.set_num_threads(before)


if __name__ == "__main__":
    import sys
    if "--write" not in sys.argv:
        sys.exit("usage: python tests/golden/cases.py --write   (records the golden samples of this checkout)")
    arrays = draw_all()
    np.savez_compressed(GOLDEN, **arrays)
    PLATFORM.write_text(json.dumps(platform_key(), indent=2) + "\n")
    print(f"wrote {GOLDEN} ({len(arrays)} arrays) on {platform_key()}")
