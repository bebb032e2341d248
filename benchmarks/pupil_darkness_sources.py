"""Where hybrid pupils lose their darkness: the pupil grey level (metrics `pupil_darkness`, 0-255, median over
images) at each stage of the pipeline, against held-out references.

Stages per VAE run: its reconstructions of the references (posterior mean: what the decoder can draw), its drafts
from the fitted prior (what hybrid sampling starts from), and with the UNet: hybrid from those drafts at each
strength, and hybrid from the reconstructions (the UNet's own effect on a draft as dark as the decoder can make).

    python benchmarks/pupil_darkness_sources.py --vae iris64-vae --unet iris64-unet --n 32
    python benchmarks/pupil_darkness_sources.py --vae runs/vae_mse,runs/vae_l1 --unet runs/unet --n 32
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from irislib.metrics import measure_set
from irislib.generate.loading import load_unet, load_vae
from irislib.evaluation.report import held_out_reference
from irislib.generate.hybrid import denoise_batch, draw_drafts


def darkness_row(name: str, images) -> str:
    m = measure_set(images)
    dark, contrast = m["pupil_darkness"], m["iris_pupil_contrast"]
    return (f"| {name} | {np.nanmedian(dark):.1f} | {np.nanpercentile(dark, 90):.1f} | {np.nanmedian(contrast):.1f} "
            f"| {m['found'].mean():.2f} |")


@torch.no_grad()
def stages(vae_ref: str, unet, diffusion, ref: torch.Tensor, strengths, steps: int, use_ema: bool) -> list[str]:
    vae, prior = load_vae(vae_ref, "cpu", use_ema)
    seeds = list(range(len(ref)))
    recon = vae.decode(vae.encode(ref)[0]).clamp(-1, 1)
    drafts = draw_drafts(vae, seeds, prior=prior)
    tag = f"{vae_ref}{'' if use_ema else ' (raw weights)'}"
    rows = [darkness_row(f"{tag}: reconstruction", recon), darkness_row(f"{tag}: prior drafts", drafts)]
    for s in strengths:
        for start, what in ((drafts, "drafts"), (recon, "reconstructions")):
            out = denoise_batch(unet, diffusion, seeds, start, strength=s, steps=steps)
            rows.append(darkness_row(f"{tag}: hybrid s{s:g} from {what}", out.images))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vae", required=True, help="VAE runs or manifest names, comma-separated")
    p.add_argument("--unet", required=True, help="truncated UNet run for the hybrid stages (and the data)")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--strengths", default="0.3,0.5,0.7")
    p.add_argument("--raw", action="store_true", help="also the VAEs' raw (non-EMA) weights")
    args = p.parse_args()
    torch.set_num_threads(1)
    unet, diffusion, exp = load_unet(args.unet, "cpu")
    _, ref01 = held_out_reference(exp.data.path, exp, args.n)
    ref = torch.from_numpy(ref01 * 2 - 1).float()[:, None]
    print(f"# {args.n} held-out references, {exp.unet.image_size} px; pupil grey level 0-255")
    print("| stage | darkness median | darkness p90 | iris-pupil contrast median | found |")
    print("|---|---|---|---|---|")
    print(darkness_row("reference (held out)", ref))
    strengths = [float(s) for s in args.strengths.split(",")]
    for v in args.vae.split(","):
        for ema in (True, False) if args.raw else (True,):
            print("\n".join(stages(v, unet, diffusion, ref, strengths, args.steps, ema)))


if __name__ == "__main__":
    main()
