"""Throughput of irislib.dataset against drawing every capture from scratch, same pair, same CPU, same run.

A dataset draws each identity once (VAE draft + UNet, `steps` calls) and renders its captures without the UNet;
the peer draws every capture as its own hybrid sample (same strength and steps). Prints captures/s of both, their
ratio, and the estimated time for 1,000 identities x 10 captures.
Usage (a few minutes on one core):
    OMP_NUM_THREADS=1 python benchmarks/bench_dataset.py --identities 8 --captures 8
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

import irislib
from irislib.generate.sampler import HybridSampler, SampleConfig


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--unet", default="iris128-unet")
    p.add_argument("--vae", default="iris128-vae")
    p.add_argument("--identities", type=int, default=8)
    p.add_argument("--captures", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args(argv)
    n = args.identities * args.captures
    smp = HybridSampler.load(args.unet, args.vae, device="cpu")     # loaded once: both sides start warm
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        irislib.dataset(f"{tmp}/set", args.unet, args.vae, args.identities, args.captures, steps=args.steps,
                        device="cpu", progress=False)
        dataset_s = time.perf_counter() - t
    t = time.perf_counter()
    smp.sample(SampleConfig(n=n, strength=0.5, steps=args.steps, batch_size=8))
    scratch_s = time.perf_counter() - t
    rate, peer = n / dataset_s, n / scratch_s
    print(f"| {args.unet} + {args.vae}, {args.steps} UNet calls | {torch.get_num_threads()} thread(s) | "
          f"{args.identities} x {args.captures} | dataset {rate:.2f} captures/s | from scratch {peer:.3f} captures/s "
          f"| {rate / peer:.1f}x | 1,000 x 10: {10000 / rate / 3600:.1f} h (from scratch {10000 / peer / 3600:.1f} h) |")


if __name__ == "__main__":
    main()
