"""The GPU suite of issue 13: the GPU tests, then every benchmark, irislib and guided-diffusion-sdk side by side.

    bash benchmarks/gpu_suite.sh                    # on one CUDA GPU: everything, designed for < 8 min on an H200
    python benchmarks/gpu_suite.py --json OUT.json  # the same; --skip-tests, --only train64,cap128,sample,p320,compile

One process measures both libraries on the same card, alternating nothing (each row is timed on its own after
warm-up steps, with cudnn.benchmark on for both). Rows:
- train64: seed-64 UNet (121.1M params) training steps at batch 128: guided fp16 (its MixedPrecisionTrainer,
  master weights, EMA) vs irislib's Trainer, plain fp32 and with levers (bf16, channels_last, fused AdamW, bf16
  GroupNorm, data on the device); last, with torch.compile too (compile time measured).
- cap128: seed-128 UNet (348.9M) at batch 120 under a 16 GiB cap (torch.cuda.set_per_process_memory_fraction, as
  a 16 GB T4/V100 would have): guided at micro-batch 3 (fp32 and fp16) vs irislib with levers at the largest
  micro-batch that fits, with and without activation checkpointing per block.
- sample: hybrid sampling at 128 px (seed-128 VAE draft + 20 DDIM UNet calls from strength 0.5, batch 64, bf16)
  vs guided's 4000-step ancestral sampling at batch 64, timed over a few steps and extrapolated to 4000 (said so).
- p320: a 320 px UNet (candidate seed-320 preset) training within 16 GiB: the largest micro-batch, throughput.
Each row: img/s, ratio to its baseline, peak memory, model TFLOP/s from FLOPs measured by
torch.utils.flop_counter, and MFU against the bf16 matrix-product rate measured on the card at the start.
Without CUDA the same code runs a reduced set at tiny sizes (a dry run: figures are not benchmarks).
"""
from __future__ import annotations

import os

os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")  # before CUDA starts: less fragmentation

import argparse  # noqa: E402
import contextlib  # noqa: E402
import copy  # noqa: E402
import dataclasses  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from irislib import presets  # noqa: E402
from irislib.config import DiffusionConfig, Experiment, TrainConfig, UNetConfig, VAEConfig  # noqa: E402
from irislib.generate import hybrid  # noqa: E402
from irislib.diffusion import GaussianDiffusion  # noqa: E402
from irislib.generate.loading import build_diffusion  # noqa: E402
from irislib.diffusion.resample import make_t_sampler  # noqa: E402
from irislib.models.layers import AttentionBlock, ResBlock  # noqa: E402
from irislib.models.unet import UNet, count_parameters  # noqa: E402
from irislib.models.vae import VAE  # noqa: E402
from irislib.train import DiffusionTask, Trainer, precision, speed  # noqa: E402

warnings.filterwarnings("ignore", message=".*torch.cuda.amp.custom_(fwd|bwd).*")  # guided's nn.py decorators

GIB = 2 ** 30
CAP_GIB = 16.0
SECTIONS = ("train64", "cap128", "sample", "p320", "compile")
LEVERS = dict(precision="auto", channels_last=True, fused_optimizer=True, fast_groupnorm=True, data_on_device=True)
TEST_CMD = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:randomly", "tests/gpu",
            "tests/models/test_unet.py"]


def seed_320_unet() -> UNetConfig:
    """Candidate seed-320 UNet: guided's 256 px layout (6 levels, 10 px at the bottom), 128 channels, attention at
    20 and 10 px, 64-channel heads, activation checkpointing per block."""
    return UNetConfig(image_size=320, num_channels=128, num_res_blocks=2, channel_mult=[1, 1, 2, 2, 4, 4],
                      attention_resolutions=[20, 10], num_head_channels=64, use_checkpoint=True)


def sizes(full: bool) -> dict:
    """Models and batches of each section: the issue's on a GPU, tiny ones for the CPU dry run."""
    if full:
        s128 = presets.get("seed-128")
        return dict(u64=presets.get("seed-64").unet, b64=128, steps64=5,
                    u128=s128.unet, v128=s128.vae, b128=120, guided_micro=3, steps128=2,
                    sample_batch=64, sample_calls=20, guided_T=4000, guided_timed=5,
                    u320=seed_320_unet(), b320=32, cap_gib=CAP_GIB)
    tiny = UNetConfig(image_size=32, num_channels=32, num_res_blocks=1, channel_mult=[1, 2],
                      attention_resolutions=[16], num_heads=2)
    return dict(u64=tiny, b64=8, steps64=2, u128=tiny, v128=VAEConfig(image_size=32, base_channels=32,
                channel_mult=[1, 2], latent_channels=4), b128=12, guided_micro=3, steps128=1,
                sample_batch=4, sample_calls=3, guided_T=1000, guided_timed=2,
                u320=UNetConfig(image_size=40, num_channels=32, num_res_blocks=1, channel_mult=[1, 2, 2],
                                attention_resolutions=[10], num_head_channels=32, use_checkpoint=True),
                b320=4, cap_gib=None)


# --- context: device, clock, peak rate, rows ---------------------------------------------------------------------
class Suite:
    def __init__(self, args):
        self.args = args
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.cuda = self.device.type == "cuda"
        self.full = self.cuda and not args.tiny
        self.sz = sizes(self.full)
        self.start = time.monotonic()
        self.rows: list[dict] = []
        self.skipped: list[dict] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="gpu_suite_"))
        self.peak = None  # measured bf16 matrix-product FLOP/s (CUDA only)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def time_left(self) -> float:
        return self.args.budget_s - self.elapsed()

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def add(self, row: dict) -> dict:
        row = {"elapsed_s": round(self.elapsed(), 1), **row}
        self.rows.append(row)
        print(f"[{row['elapsed_s']:6.1f}s] {row['id']}: {fmt(row.get('img_s'))} img/s  peak "
              f"{fmt(row.get('peak_gib'))} GiB  {row.get('note', '')}", flush=True)
        return row

    def skip(self, what: str, why: str) -> None:
        self.skipped.append({"id": what, "why": why})
        print(f"[{self.elapsed():6.1f}s] skipped {what}: {why}", flush=True)

    def free(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        return torch.cuda.max_memory_allocated() / GIB if self.cuda else None

    @contextlib.contextmanager
    def memory_cap(self, gib: float | None):
        """At most `gib` of the card for this process (a 16 GB card's budget on the big one); None = no cap."""
        if not self.cuda or gib is None:
            yield
            return
        self.free()
        left = torch.cuda.memory_allocated(self.device) / GIB  # counts against the cap: should be ~0
        print(f"[{self.elapsed():6.1f}s] cap {gib:g} GiB ({left:.2f} GiB still allocated)", flush=True)
        total = torch.cuda.get_device_properties(self.device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, gib * GIB / total), self.device)
        try:
            yield
        finally:
            self.free()
            torch.cuda.set_per_process_memory_fraction(1.0, self.device)


def fmt(v, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}" if abs(v) >= 0.01 or v == 0 else f"{v:.2e}"
    return str(v)


def timed(suite: Suite, step, warmup: int, steps: int) -> tuple[float, float]:
    """(seconds of the warm-up steps, seconds per timed step); the clock stops after a device sync."""
    suite.sync()
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    suite.sync()
    t1 = time.perf_counter()
    for _ in range(steps):
        step()
    suite.sync()
    return t1 - t0, (time.perf_counter() - t1) / max(steps, 1)


def measure_matmul_peak(suite: Suite) -> float | None:
    """bf16 dense matrix-product rate of this card (8192^3, mean of 10 after 3 warm-ups), FLOP/s."""
    if not suite.cuda:
        return None
    n = 8192
    a = torch.randn(n, n, device=suite.device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=suite.device, dtype=torch.bfloat16)
    _, per = timed(suite, lambda: a @ b, 3, 10)
    del a, b
    suite.free()
    return 2 * n ** 3 / per


# --- FLOPs ---------------------------------------------------------------------------------------------------------
def unet_flops(suite: Suite, cfg: UNetConfig, train: bool, batch: int = 2) -> float:
    """Model FLOPs per image of one UNet forward (+ backward when train), counted by torch.utils.flop_counter on
    the eager fp32 model without checkpointing (recomputation is not model work)."""
    cfg = dataclasses.replace(cfg, use_checkpoint=False)
    with torch.device(suite.device):
        model = UNet(cfg)
    s = cfg.image_size
    x = torch.randn(batch, cfg.in_channels, s, s, device=suite.device)
    t = torch.randint(0, 1000, (batch,), device=suite.device)
    counter = FlopCounterMode(display=False)
    with counter, (contextlib.nullcontext() if train else torch.no_grad()):
        out = model(x, t)
        if train:
            out.float().pow(2).mean().backward()
    flops = counter.get_total_flops() / batch
    del model, out
    suite.free()
    return float(flops)


def rate_row(suite: Suite, row: dict, flops_per_img: float | None) -> dict:
    """Add TFLOP/s and MFU (against the measured bf16 matrix-product rate) to a row with img_s."""
    if flops_per_img and row.get("img_s"):
        achieved = row["img_s"] * flops_per_img
        row["tflop_per_img"] = flops_per_img / 1e12
        row["tflop_s"] = achieved / 1e12
        row["mfu"] = achieved / suite.peak if suite.peak else None
    return row


# --- guided-diffusion-sdk: its own training step (TrainLoop.run_step without DDP/logging) --------------------------
def guided_unet(cfg: UNetConfig, use_fp16: bool):
    from guided_diffusion.unet import UNetModel
    return UNetModel(image_size=cfg.image_size, in_channels=cfg.in_channels, model_channels=cfg.num_channels,
                     out_channels=cfg.in_channels * (2 if cfg.learn_sigma else 1), num_res_blocks=cfg.num_res_blocks,
                     attention_resolutions=tuple(cfg.image_size // r for r in cfg.attention_resolutions),
                     dropout=cfg.dropout, channel_mult=tuple(cfg.resolved_channel_mult()),
                     use_checkpoint=cfg.use_checkpoint, use_fp16=use_fp16, num_heads=cfg.num_heads,
                     num_head_channels=cfg.num_head_channels, num_heads_upsample=cfg.num_heads_upsample,
                     use_scale_shift_norm=cfg.use_scale_shift_norm, resblock_updown=cfg.resblock_updown,
                     use_new_attention_order=cfg.use_new_attention_order)


def guided_diffusion(steps: int):
    from guided_diffusion.script_util import create_gaussian_diffusion
    return create_gaussian_diffusion(steps=steps, learn_sigma=True, noise_schedule="linear")


class GuidedStep:
    """One guided-diffusion optimizer step as its TrainLoop runs it: MixedPrecisionTrainer (fp16 master weights and
    loss scaling when use_fp16), UniformSampler, AdamW, one EMA rate. Data already on the device."""

    def __init__(self, suite: Suite, cfg: UNetConfig, use_fp16: bool, batch: int, micro: int, T: int):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            from guided_diffusion import logger
            from guided_diffusion.fp16_util import MixedPrecisionTrainer
            from guided_diffusion.resample import UniformSampler
        logger.configure(dir=str(suite.tmp / "guided_log"), format_strs=[])
        with torch.device(suite.device):
            self.model = guided_unet(cfg, use_fp16)
        self.diffusion = guided_diffusion(T)
        self.mp = MixedPrecisionTrainer(model=self.model, use_fp16=use_fp16, fp16_scale_growth=1e-3)
        self.opt = torch.optim.AdamW(self.mp.master_params, lr=1e-4, weight_decay=0.0)
        self.ema = copy.deepcopy(self.mp.master_params)
        self.sampler = UniformSampler(self.diffusion)
        self.micro, self.device = micro, suite.device
        s = cfg.image_size
        self.batch = torch.rand(batch, cfg.in_channels, s, s, device=suite.device) * 2 - 1

    def __call__(self) -> None:
        from guided_diffusion.nn import update_ema
        self.mp.zero_grad()
        for i in range(0, self.batch.shape[0], self.micro):
            micro = self.batch[i:i + self.micro]
            t, weights = self.sampler.sample(micro.shape[0], self.device)
            losses = self.diffusion.training_losses(self.model, micro, t)
            self.mp.backward((losses["loss"] * weights).mean())
        if self.mp.optimize(self.opt):
            update_ema(self.ema, self.mp.master_params, rate=0.9999)


def guided_train_row(suite: Suite, rid: str, cfg: UNetConfig, fp16: bool, batch: int, micro: int, steps: int,
                     flops: float, cap: float | None = None) -> dict | None:
    use_fp16 = fp16 and suite.cuda  # guided's fp16 path needs CUDA; the CPU dry run times its fp32 path instead
    with suite.memory_cap(cap):
        suite.free()
        step = GuidedStep(suite, cfg, use_fp16, batch, micro, 1000)
        warm_s, per = timed(suite, step, 1, steps)
        row = dict(id=rid, system="guided-diffusion-sdk", setting=("fp16" if use_fp16 else "fp32") +
                   (f", cap {cap:g} GiB" if cap else ""), batch=batch, micro=micro, img_s=batch / per,
                   step_s=per, peak_gib=suite.peak_gib(), warmup_s=warm_s,
                   note="no CUDA: its fp32 path timed" if fp16 and not use_fp16 else "")
        del step
    return suite.add(rate_row(suite, row, flops))


# --- irislib: its Trainer, as users run it -------------------------------------------------------------------------
class Images(torch.utils.data.Dataset):
    """n random images in [-1, 1] (training speed does not depend on content)."""

    def __init__(self, n: int, channels: int, size: int):
        self.x = torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def irislib_trainer(suite: Suite, name: str, cfg: UNetConfig, batch: int, micro: int = -1, **levers) -> Trainer:
    """irislib's Trainer for a diffusion UNet with train.* levers, on 2 batches of random images."""
    exp = Experiment(unet=cfg, diffusion=DiffusionConfig(diffusion_steps=4000),
                     train=TrainConfig(batch_size=batch, microbatch=micro, max_steps=10 ** 6, save_every_steps=0,
                                       save_every_minutes=0, sample_grid_images=0, log_every_steps=10 ** 6,
                                       **levers))
    torch.manual_seed(0)
    with torch.device(suite.device):
        model = UNet(cfg)
    if exp.train.channels_last:
        model = model.to(memory_format=torch.channels_last)  # as irislib.train.pipeline._memory_format
    diffusion = build_diffusion(exp)   # learn_sigma from the experiment's unet section, as training does
    task = DiffusionTask(diffusion, make_t_sampler("uniform", diffusion))
    data = Images(2 * batch, cfg.in_channels, cfg.image_size)
    return Trainer(model, task, data, exp, suite.tmp / name, resume=None, progress=False, device=str(suite.device))


SHORT = {"channels_last": "NHWC", "fused_optimizer": "fused AdamW", "fast_groupnorm": "half GN",
         "data_on_device": "data on device", "compile": "compile"}


def setting_of(levers: dict, tr: Trainer) -> str:
    """e.g. "bf16, NHWC, fused AdamW, half GN, data on device, ckpt" (the train.* levers that are on)."""
    on = [short for k, short in SHORT.items()
          if levers.get(k) and not (k == "fast_groupnorm" and tr.precision == "fp32")]  # no half dtype: inactive
    ckpt = any(getattr(m, "use_checkpoint", False) for m in tr.model.modules())
    return ", ".join([tr.precision] + on + (["ckpt"] if ckpt else []))


def irislib_train_row(suite: Suite, rid: str, tr: Trainer, levers: dict, steps: int, flops: float,
                      warmup: int = 1, note: str = "") -> dict:
    """Time Trainer.train_step on Trainer._next_batch (data path included), after `warmup` steps."""
    torch.cuda.reset_peak_memory_stats() if suite.cuda else None
    warm_s, per = timed(suite, lambda: tr.train_step(tr._next_batch()), warmup, steps)
    row = dict(id=rid, system="irislib", setting=setting_of(levers, tr), batch=tr.rank_batch, micro=tr.micro,
               img_s=tr.rank_batch / per, step_s=per, peak_gib=suite.peak_gib(), warmup_s=warm_s, note=note)
    if levers.get("compile"):
        row["compile_s"] = max(0.0, warm_s - warmup * per)
        row["note"] = (note + f"; compile + first steps {warm_s:.0f} s").lstrip("; ")
    return suite.add(rate_row(suite, row, flops))


def set_checkpointing(model: torch.nn.Module, on: bool) -> None:
    """unet.use_checkpoint on an existing model (the flag is read at every forward)."""
    for m in model.modules():
        if isinstance(m, (ResBlock, AttentionBlock)):
            m.use_checkpoint = on


def fits(suite: Suite, tr: Trainer, micro: int) -> float | None:
    """Peak GiB of one optimizer step on one micro-batch of `micro` images, or None if it ran out of memory."""
    tr.micro = micro
    suite.free()
    oom = False
    try:
        tr.train_step(tr._next_batch()[:micro])
        suite.sync()
    except torch.OutOfMemoryError:
        oom = True
    if oom:  # outside the except block: the traceback (and the graph it holds) is gone
        tr.opt.zero_grad(set_to_none=True)
        suite.free()
        return None
    return suite.peak_gib() if suite.cuda else 0.0


def largest_micro(suite: Suite, tr: Trainer, batch: int, cap: float | None) -> tuple[int, list]:
    """The largest divisor of `batch` whose step fits under the cap: predicted from two small probes (static +
    per-image memory), then confirmed, stepping down on out-of-memory. No cap (CPU): the whole batch."""
    divisors = [d for d in range(batch, 0, -1) if batch % d == 0]
    if cap is None:
        return batch, []
    probes = [(m, fits(suite, tr, m)) for m in (1, 2)]
    tried = list(probes)
    if any(p is None for _, p in probes):
        return 0, tried
    per_img = max(probes[1][1] - probes[0][1], 1e-3)
    static = probes[0][1] - per_img
    guess = int((0.97 * cap - static) / per_img)
    for m in [d for d in divisors if d <= max(1, guess)]:
        peak = fits(suite, tr, m)
        tried.append((m, peak))
        if peak is not None:
            return m, tried
    return 0, tried


# --- sections ------------------------------------------------------------------------------------------------------
def section_train64(suite: Suite) -> None:
    sz = suite.sz
    cfg, B = sz["u64"], sz["b64"]
    flops = unet_flops(suite, cfg, train=True)
    suite.flops64 = flops
    base = guided_train_row(suite, "train64.guided_fp16", cfg, True, B, B, sz["steps64"], flops)
    for rid, levers in (("train64.irislib_plain", {}), ("train64.irislib_levers", LEVERS)):
        suite.free()
        tr = irislib_trainer(suite, rid, cfg, B, **levers)
        row = irislib_train_row(suite, rid, tr, levers, sz["steps64"], flops)
        row["ratio"], row["baseline"] = row["img_s"] / base["img_s"], base["id"]
        del tr


def section_compile(suite: Suite) -> None:
    """seed-64 with every lever and torch.compile (inductor on CUDA; aot_eager in the CPU dry run)."""
    sz = suite.sz
    levers = {**LEVERS, "compile": True}
    if not suite.cuda:
        speed.COMPILE_OPTIONS = {"backend": "aot_eager"}  # inductor's C++ build would take minutes on a CPU
    torch._dynamo.reset()
    suite.free()
    tr = irislib_trainer(suite, "train64.compile", sz["u64"], sz["b64"], **levers)
    row = irislib_train_row(suite, "train64.irislib_levers_compile", tr, levers, sz["steps64"],
                            getattr(suite, "flops64", None) or unet_flops(suite, sz["u64"], True), warmup=2,
                            note="" if suite.cuda else "aot_eager backend (code path only)")
    base = next((r for r in suite.rows if r["id"] == "train64.guided_fp16"), None)
    if base:
        row["ratio"], row["baseline"] = row["img_s"] / base["img_s"], base["id"]
    del tr


def section_cap128(suite: Suite) -> None:
    sz = suite.sz
    cfg, B, cap = sz["u128"], sz["b128"], sz["cap_gib"]
    flops = unet_flops(suite, cfg, train=True)
    bases = [guided_train_row(suite, f"cap128.guided_{p}_mb{sz['guided_micro']}", cfg, p == "fp16", B,
                              sz["guided_micro"], sz["steps128"], flops, cap) for p in ("fp32", "fp16")]
    base = max(bases, key=lambda r: r["img_s"])
    with suite.memory_cap(cap):
        tr = irislib_trainer(suite, "cap128", cfg, B, micro=min(B, 8), **LEVERS)
        for ckpt in (False, True):
            set_checkpointing(tr.model, ckpt)
            rid = "cap128.irislib_levers" + ("_checkpointing" if ckpt else "")
            micro, tried = largest_micro(suite, tr, B, cap)
            if not micro:
                suite.skip(rid, f"no micro-batch fits in {cap} GiB (tried {tried})")
                continue
            tr.micro = micro
            row = irislib_train_row(suite, rid, tr, {**LEVERS}, sz["steps128"], flops,
                                    note=f"cap {cap} GiB; largest micro {micro}" if cap else "no cap (CPU)")
            row["ratio"], row["baseline"], row["probes"] = row["img_s"] / base["img_s"], base["id"], tried
        del tr


def section_sample(suite: Suite) -> None:
    sz = suite.sz
    cfg, n, calls = sz["u128"], sz["sample_batch"], sz["sample_calls"]
    s = cfg.image_size
    fwd = unet_flops(suite, cfg, train=False)
    # guided: its p_sample at batch n, a few steps timed, extrapolated to the whole chain
    best = None
    for fp16 in ((False, True) if suite.cuda else (False,)):
        suite.free()
        with torch.device(suite.device):
            model = guided_unet(cfg, fp16).eval()
        if fp16:
            model.convert_to_fp16()
        diffusion = guided_diffusion(sz["guided_T"])
        x = torch.randn(n, cfg.in_channels, s, s, device=suite.device)
        t = torch.full((n,), sz["guided_T"] - 1, device=suite.device, dtype=torch.long)
        with torch.no_grad():
            _, per = timed(suite, lambda: diffusion.p_sample(model, x, t), 2, sz["guided_timed"])
        row = dict(id=f"sample.guided_{'fp16' if fp16 else 'fp32'}_{sz['guided_T']}steps",
                   system="guided-diffusion-sdk",
                   setting=("fp16" if fp16 else "fp32") + f", p_sample x {sz['guided_T']}", batch=n, micro=n,
                   img_s=n / (per * sz["guided_T"]), call_ms=per * 1e3, peak_gib=suite.peak_gib(),
                   note=f"{sz['guided_timed']} steps timed, extrapolated to {sz['guided_T']}")
        best = row if best is None or row["img_s"] > best["img_s"] else best
        suite.add(rate_row(suite, row, fwd * sz["guided_T"]))
        del model
    # irislib: VAE draft, noised to strength 0.5, `calls` DDIM UNet calls, end to end
    for rid, levers in (("sample.irislib_plain", False), ("sample.irislib_levers", True)):
        suite.free()
        torch.manual_seed(0)
        with torch.device(suite.device):
            unet, vae = UNet(cfg).eval(), VAE(sz["v128"]).eval()
        diffusion = GaussianDiffusion(DiffusionConfig(diffusion_steps=4000), learn_sigma=cfg.learn_sigma)
        p = precision.resolve("auto", suite.device) if levers else "fp32"
        if levers:
            unet, vae = unet.to(memory_format=torch.channels_last), vae.to(memory_format=torch.channels_last)
            speed.fast_groupnorm(unet)
            speed.fast_groupnorm(vae)
        dtype = precision.autocast_dtype(p)

        def draw():
            with torch.autocast(suite.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                seeds = list(range(n))
                drafts = hybrid.draw_drafts(vae, seeds, device=suite.device)   # N(0, I): an untrained VAE, no prior
                hybrid.denoise_batch(unet, diffusion, seeds, drafts, strength=0.5, steps=calls)
        _, per = timed(suite, draw, 1, 2)
        row = dict(id=rid, system="irislib", setting=p + ((", NHWC" + (", half GN" if dtype else "")) if levers else ""),
                   batch=n, micro=n, img_s=n / per, call_ms=per / calls * 1e3, peak_gib=suite.peak_gib(),
                   ratio=n / per / best["img_s"], baseline=best["id"],
                   note=f"VAE draft + {calls} DDIM calls from strength 0.5, end to end")
        suite.add(rate_row(suite, row, fwd * calls))
        del unet, vae


def section_p320(suite: Suite) -> None:
    sz = suite.sz
    cfg, B, cap = sz["u320"], sz["b320"], sz["cap_gib"]
    flops = unet_flops(suite, cfg, train=True)
    with suite.memory_cap(cap):
        tr = irislib_trainer(suite, "p320", cfg, B, micro=1, **LEVERS)
        params = count_parameters(tr.model)
        micro, tried = largest_micro(suite, tr, B, cap)
        if not micro:
            suite.skip("p320.irislib_levers_checkpointing", f"no micro-batch fits in {cap} GiB (tried {tried})")
            return
        tr.micro = micro
        row = irislib_train_row(suite, "p320.irislib_levers_checkpointing", tr, LEVERS, sz["steps128"], flops,
                                note=f"{params / 1e6:.1f}M params; cap {cap} GiB; largest micro {micro}"
                                if cap else f"{params / 1e6:.1f}M params; no cap (CPU)")
        row["probes"], row["unet"] = tried, dataclasses.asdict(cfg)
        del tr


SECTION_FNS = {"train64": section_train64, "cap128": section_cap128, "sample": section_sample,
               "p320": section_p320, "compile": section_compile}
# seconds a section needs on an H200 (for the budget): compile last, it is the slowest and optional
NEEDS_S = {"train64": 40, "cap128": 100, "sample": 40, "p320": 40, "compile": 170}


# --- tests, targets, table -----------------------------------------------------------------------------------------
def run_tests(suite: Suite) -> dict:
    """pytest -m gpu on the GPU test files, in a subprocess with a time limit; its summary line and failures."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.monotonic()
    try:
        p = subprocess.run(TEST_CMD, cwd=REPO, env=env, capture_output=True, text=True, timeout=suite.args.tests_s)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = "timeout", e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    summary = lines[-1] if lines else ""
    res = {"command": " ".join(TEST_CMD[2:]), "rc": rc, "summary": summary,
           "seconds": round(time.monotonic() - t0, 1),
           "failures": [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))][:40]}
    print(f"[{suite.elapsed():6.1f}s] GPU tests: {summary} (rc {rc})", flush=True)
    if rc not in (0, 5):
        print("\n".join(lines[-80:]), flush=True)
    return res


def targets(suite: Suite, tests: dict | None) -> list[dict]:
    rows = {r["id"]: r for r in suite.rows}

    def best(prefix):
        c = [r for r in suite.rows if r["id"].startswith(prefix) and r.get("ratio") is not None]
        return max(c, key=lambda r: r["ratio"]) if c else None

    out = []
    if tests is not None:
        passed = tests["rc"] == 0 and suite.cuda
        out.append(dict(target="1. GPU tests pass on CUDA", met=passed if suite.cuda else None,
                        value=tests["summary"]))
    for name, prefix, goal in (("2. seed-64 training >= 2.0x guided fp16", "train64.irislib", 2.0),
                               ("3. seed-128 in 16 GiB >= 3x guided micro-batch 3", "cap128.irislib", 3.0),
                               ("4. hybrid sampling >= 200x guided 4000 steps", "sample.irislib", 200.0)):
        r = best(prefix)
        out.append(dict(target=name, met=(r["ratio"] >= goal) if r and suite.full else None,
                        value=f"{r['ratio']:.2f}x ({r['id']})" if r else "not measured"))
    p320 = rows.get("p320.irislib_levers_checkpointing")
    out.append(dict(target="5. 320 px trains within 16 GiB", met=bool(p320) if suite.full else None,
                    value=f"micro {p320['micro']}, {p320['img_s']:.1f} img/s" if p320 else "not measured"))
    out.append(dict(target="6. precision=auto on this card", met=None,
                    value=precision.resolve("auto", suite.device)))
    return out


COLUMNS = (("id", 36), ("setting", 50), ("batch", 5), ("micro", 5), ("img_s", 9), ("ratio", 8), ("peak_gib", 8),
           ("tflop_s", 7), ("mfu", 6))


def table(suite: Suite) -> str:
    head = " | ".join(name.ljust(w) for name, w in COLUMNS)
    lines = [head, "-" * len(head)]
    for r in suite.rows:
        cells = []
        for name, w in COLUMNS:
            v = r.get(name)
            if name == "mfu" and v is not None:
                v = f"{100 * v:.1f}%"
            elif name == "ratio" and v is not None:
                v = f"{v:.2f}x"
            elif name == "img_s" and isinstance(v, float) and v < 1:
                v = f"{v:.4f}"
            elif name == "tflop_s" and isinstance(v, float):
                v = f"{v:.1f}" if v >= 1 else f"{v:.3f}"
            cells.append(fmt(v).ljust(w)[:max(w, len(fmt(v)))])
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def meta(suite: Suite) -> dict:
    m = {"date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "torch": torch.__version__,
         "python": platform.python_version(), "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
         "device": torch.cuda.get_device_name(suite.device) if suite.cuda else (platform.processor() or "cpu"),
         "full": suite.full, "threads": torch.get_num_threads(), "cudnn_benchmark": torch.backends.cudnn.benchmark,
         "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"),
         "bf16_matmul_tflop_s": suite.peak / 1e12 if suite.peak else None,
         "mfu_basis": "measured bf16 8192^3 matrix-product rate" if suite.peak else None}
    if suite.cuda:
        props = torch.cuda.get_device_properties(suite.device)
        m.update(capability=f"{props.major}.{props.minor}", memory_gib=round(props.total_memory / GIB, 1),
                 cuda=torch.version.cuda)
    try:
        import guided_diffusion
        m["guided_diffusion"] = str(Path(guided_diffusion.__file__).parent)
    except ImportError:
        m["guided_diffusion"] = None
    return m


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", default="gpu_suite.json", help="where the results go")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {','.join(SECTIONS)}")
    p.add_argument("--skip-tests", action="store_true", help="do not run the GPU tests first")
    p.add_argument("--tiny", action="store_true", help="the CPU dry run's sizes, also on a GPU")
    p.add_argument("--budget-s", type=float, default=480.0, help="skip sections that would end past this")
    p.add_argument("--tests-s", type=float, default=200.0, help="time limit of the GPU tests")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: 1 without CUDA)")
    args = p.parse_args(argv)
    suite = Suite(args)
    torch.set_num_threads(args.threads or (torch.get_num_threads() if suite.cuda else 1))
    torch.backends.cudnn.benchmark = True
    print(f"gpu_suite on {suite.device} ({'full' if suite.full else 'reduced, tiny sizes'})", flush=True)
    tests = None if args.skip_tests else run_tests(suite)
    suite.peak = measure_matmul_peak(suite)
    chosen = [s for s in SECTIONS if s in args.only.split(",")]
    for name in chosen:
        need = NEEDS_S[name] if suite.full else 0
        if suite.time_left() < need:
            suite.skip(name, f"{suite.time_left():.0f} s of the {args.budget_s:.0f} s budget left, needs ~{need} s")
            continue
        try:
            SECTION_FNS[name](suite)
        except Exception as e:  # one broken section must not cost the others' figures
            import traceback
            traceback.print_exc()
            suite.skip(name, f"{type(e).__name__}: {e}"[:500])
        suite.free()
    result = {"meta": meta(suite), "tests": tests, "rows": suite.rows, "skipped": suite.skipped,
              "targets": targets(suite, tests), "seconds": round(suite.elapsed(), 1)}
    print("\n" + table(suite))
    for t in result["targets"]:
        print(f"{t['target']}: {t['value']}  [{'met' if t['met'] else 'NOT met' if t['met'] is False else '-'}]")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwrote {args.json} after {suite.elapsed():.0f} s", flush=True)
    return result


if __name__ == "__main__":
    main()
