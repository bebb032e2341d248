"""Time one training step (forward + MSE backward + Adam step) of irislib's UNet vs guided-diffusion's UNetModel.

Both models are built with the same flags and weights in one process; steps alternate between them and the
medians over repeats are compared. Usage:
    python benchmarks/bench_unet_step.py                       # CPU, 32 px, 64 channels
    python benchmarks/bench_unet_step.py --device cuda --size 64 --channels 128 --batch 32 --precision fp16
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import machine   # benchmarks/machine.py: the CPU as torch and /proc/cpuinfo report it

from irislib.config import UNetConfig
from irislib.models.unet import UNet


def build_pair(args) -> tuple[torch.nn.Module, torch.nn.Module]:
    """irislib UNet and guided-diffusion UNetModel with identical flags and weights."""
    from guided_diffusion.unet import UNetModel
    cfg = UNetConfig(image_size=args.size, in_channels=args.in_channels, num_channels=args.channels,
                     num_res_blocks=args.res_blocks, attention_resolutions=args.attention,
                     channel_mult=args.channel_mult, use_checkpoint=args.checkpoint)
    ours = UNet(cfg)
    guided = UNetModel(image_size=args.size, in_channels=args.in_channels, model_channels=args.channels,
                       out_channels=ours.out_channels, num_res_blocks=args.res_blocks,
                       attention_resolutions=tuple(sorted(ours.attention_ds)),
                       channel_mult=tuple(cfg.resolved_channel_mult()), num_heads=cfg.num_heads,
                       use_scale_shift_norm=True, use_checkpoint=args.checkpoint)
    ours.load_state_dict(guided.state_dict())
    return ours.to(args.device), guided.to(args.device)


def make_step(model: torch.nn.Module, args):
    """A closure running one optimizer step on a fixed batch."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, args.in_channels, args.size, args.size, generator=gen).to(args.device)
    target = torch.randn(args.batch, model.out_channels, args.size, args.size, generator=gen).to(args.device)
    t = torch.randint(0, 1000, (args.batch,), generator=gen).to(args.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    dev_type = torch.device(args.device).type

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev_type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = (model(x, t).float() - target).pow(2).mean()
        loss.backward()
        opt.step()
        if dev_type == "cuda":
            torch.cuda.synchronize()
    return step


def timed(step) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) taken by one call; CPU time is robust to other jobs on a shared CPU."""
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> dict:
    """Run the benchmark and print the table; returns the medians."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--res-blocks", type=int, default=2)
    p.add_argument("--attention", type=lambda s: [int(v) for v in s.split(",")], default=[16, 8])
    p.add_argument("--channel-mult", type=lambda s: [int(v) for v in s.split(",")], default=[])
    p.add_argument("--in-channels", type=int, default=1)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--checkpoint", action="store_true", help="gradient checkpointing in both models")
    p.add_argument("--compile", action="store_true", help="torch.compile both models (inductor)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads; 0 = torch's default")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours, guided = build_pair(args)
    if args.compile:
        ours, guided = torch.compile(ours), torch.compile(guided)
    steps = {"irislib": make_step(ours, args), "guided": make_step(guided, args)}
    for _ in range(args.warmup):
        for s in steps.values():
            s()
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in steps}
    for _ in range(args.repeats):  # alternate so drifts in clock speed or load hit both equally
        for k, s in steps.items():
            times[k].append(timed(s))
    med = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else machine.describe()
    print(f"device={device} threads={torch.get_num_threads()} size={args.size} channels={args.channels} "
          f"res_blocks={args.res_blocks} attention={args.attention} batch={args.batch} "
          f"precision={args.precision} checkpoint={args.checkpoint} compile={args.compile} repeats={args.repeats}")
    for k in steps:
        print(f"{k:8s} {med[k] * 1e3:9.1f} ms/step wall   {cpu[k] * 1e3:9.1f} ms/step CPU")
    print(f"ratio irislib/guided = {med['irislib'] / med['guided']:.3f} wall, {cpu['irislib'] / cpu['guided']:.3f} CPU")
    return {"wall": med, "cpu": cpu}


if __name__ == "__main__":
    main()
