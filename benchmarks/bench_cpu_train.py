"""CPU training-step speed of the shipped 64 px pair's models (preset cpu-64): which levers pay on a CPU.

For the VAE and the UNet of `--preset`, times one optimizer step (forward + loss + backward + AdamW) with each
lever on and off, alternating the variants so changes in machine load hit all of them, and reports medians and
ratios against the plain NCHW fp32 step measured in the same run. The UNet is also timed against
guided-diffusion's UNetModel (guided-diffusion-sdk) with the same flags and weights, as the peer.

    python benchmarks/bench_cpu_train.py --threads 2 --repeats 6
    python benchmarks/bench_cpu_train.py --threads 1 --compile     # adds torch.compile (inductor; slow to build)
    python benchmarks/bench_cpu_train.py --preset cpu-128 --threads 1 --patch 64   # + the patch-training lever
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import machine   # benchmarks/machine.py: the CPU as torch and /proc/cpuinfo report it

from irislib import presets
from irislib.models.unet import UNet
from irislib.models.vae import VAE


def _step_fn(model, kind: str, batch: int, size: int, channels_last: bool):
    """A closure running one AdamW step on a fixed batch, as the Trainer does for that task."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, size, size, generator=gen)
    t = torch.randint(0, 1000, (batch,), generator=gen)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        if kind == "vae":
            recon, mean, logvar = model(x)
            loss = (recon - x).pow(2).mean() + 1e-3 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
        else:
            loss = model(x, t)[:, :1].float().sub(x).pow(2).mean()
        loss.backward()
        opt.step()
    return step


def _guided_unet(cfg):
    from guided_diffusion.unet import UNetModel
    ours = UNet(cfg)
    peer = UNetModel(image_size=cfg.image_size, in_channels=1, model_channels=cfg.num_channels,
                     out_channels=ours.out_channels, num_res_blocks=cfg.num_res_blocks,
                     attention_resolutions=tuple(sorted(ours.attention_ds)),
                     channel_mult=tuple(cfg.resolved_channel_mult()), num_heads=cfg.num_heads,
                     use_scale_shift_norm=True)
    return peer


def variants(exp, batch: int, compile_: bool, patch: int = 0) -> dict:
    """name -> step closure: VAE and UNet, NCHW vs channels_last (+ compile, + a step on patch x patch crops as
    train.patch_size feeds it), and guided-diffusion's UNet."""
    size = exp.unet.image_size
    out = {}
    for kind, build in (("vae", lambda: VAE(exp.vae)), ("unet", lambda: UNet(exp.unet))):
        for cl in (False, True):
            torch.manual_seed(0)
            out[f"{kind} {'channels_last' if cl else 'NCHW'}"] = _step_fn(build(), kind, batch, size, cl)
        if compile_:
            torch.manual_seed(0)
            out[f"{kind} channels_last+compile"] = _step_fn(torch.compile(build()), kind, batch, size, True)
    if patch:
        torch.manual_seed(0)
        out[f"unet channels_last+patch{patch}"] = _step_fn(UNet(exp.unet), "unet", batch, patch, True)
    torch.manual_seed(0)
    out["unet guided-diffusion NCHW"] = _step_fn(_guided_unet(exp.unet), "unet", batch, size, False)
    return out


def measure(steps: dict, repeats: int) -> dict:
    """Warm up each variant once (compile time recorded), then alternate; medians of wall and CPU seconds."""
    warm, wall, cpu = {}, {k: [] for k in steps}, {k: [] for k in steps}
    for name, fn in steps.items():
        t = time.perf_counter()
        fn()
        warm[name] = time.perf_counter() - t
    for _ in range(repeats):
        for name, fn in steps.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
    return {k: {"wall_ms": 1e3 * statistics.median(wall[k]), "cpu_ms": 1e3 * statistics.median(cpu[k]),
                "first_step_s": warm[k]} for k in steps}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="cpu-64")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="add torch.compile variants (inductor)")
    p.add_argument("--patch", type=int, default=0, help="add a UNet step on crops of this side (train.patch_size)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    exp = presets.get(args.preset)
    res = measure(variants(exp, args.batch, args.compile, args.patch), args.repeats)
    print(f"# {machine.describe()}, threads {args.threads}, "
          f"batch {args.batch}, preset {args.preset}, repeats {args.repeats}")
    print("| variant | ms/step wall | ms/step CPU | first step s | speed-up vs NCHW (wall) |")
    print("|---|---|---|---|---|")
    for name, r in res.items():
        base = res[f"{name.split()[0]} NCHW"]["wall_ms"]
        print(f"| {name} | {r['wall_ms']:.0f} | {r['cpu_ms']:.0f} | {r['first_step_s']:.1f} | "
              f"{base / r['wall_ms']:.2f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "torch": torch.__version__, "results": res}, f, indent=2)


if __name__ == "__main__":
    main()
