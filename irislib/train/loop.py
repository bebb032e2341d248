"""One Trainer for the VAE and the diffusion model: exact micro-batch accumulation, AMP, EMA, LR schedules,
NaN guard (loss and gradients), metrics.jsonl, dead units, run ids, atomic checkpoints with a leased Drive mirror,
exact resume, torchrun/DDP."""
from __future__ import annotations

import contextlib
import copy
import functools
import secrets
import time
import warnings
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from .. import __version__, checkpoint
from ..config import ConfigError, Experiment
from . import distributed, lr as lr_lib, precision as precision_lib, speed
from .ema import EMA
from .diagnostics import LossMeter, Reporter, dead_unit_shares
from .rng import capture_rng_state, derive_seed, epoch_permutation, restore_rng_state, seed_global, seeded_generator
from .tasks import Task

PROBE_SIZE = 8  # images in the fixed dead-unit probe batch


class TrainingDiverged(RuntimeError):
    """The loss stayed NaN/inf for train.nan_patience steps; the last good checkpoint is untouched."""


class Trainer:
    """Trains `model` on `dataset` with a tasks.Task's loss; writes run_dir (config, checkpoints, metrics.jsonl).

    resume: None (fresh, with a new run id; refuses a run_dir or mirror_dir that already holds checkpoints),
    "auto" (newest good checkpoint in run_dir or mirror_dir, else fresh), or a run directory / checkpoint
    folder (which may be another run's, into folders holding no other run). progress: None/True = tqdm bar on rank
    0, False = none, or a callable(record) called at every log. sample_fn(model_or_ema, step) is called on rank 0
    every train.sample_every_steps and at the end, with the EMA of the first rate when there is one.
    Where it runs is not part of `exp`: mirror_dir (a copy of every checkpoint, e.g. on Drive; None = off) and
    device (auto, cpu, cuda, cuda:1, ...; under torchrun each rank takes its local GPU).
    """

    def __init__(self, model, task, dataset, exp: Experiment, run_dir, *, resume=None, progress=None,
                 sample_fn=None, mirror_dir=None, device: str = "auto"):
        if not isinstance(task, Task):
            raise TypeError(f"task {type(task).__name__} is not an irislib.train.tasks.Task; subclass Task and "
                            f"implement loss(model, batch, generator)")
        exp.train.validate("train")
        self.exp, self.cfg, self.task, self.dataset = exp, exp.train, task, dataset
        self.run_dir, self.sample_fn, self.progress = Path(run_dir), sample_fn, progress
        self.mirror_dir = Path(mirror_dir) if mirror_dir else None
        self.dist = distributed.setup(device)
        self.device = self.dist.device
        self.precision = precision_lib.resolve(self.cfg.precision, self.device)  # "auto" -> bf16, fp16 or fp32
        self._setup_batches()
        self.model = model.to(self.device)
        if self.cfg.fast_groupnorm:
            speed.fast_groupnorm(self.model)
        self.ddp_model = self.model
        if self.dist.is_distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model = DDP(self.model, device_ids=ids)
        self.ddp_model = speed.compile_module(self.ddp_model, self.cfg)  # self.model is what is saved
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay,
                                     **speed.optimizer_kwargs(self.cfg, self.device))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision_lib.uses_grad_scaler(self.precision))
        self.device_data = speed.device_data(dataset, self.device, self.cfg)  # train.data_on_device, else None
        self.ema = EMA(self.model, self.cfg.ema_rate, self.cfg.ema_warmup)
        self.step = self.epoch = self.pos = 0
        self.counters = {"nan_steps": 0, "nan_grad_steps": 0, "skipped_steps": 0}
        self.nan_in_row, self.last_checkpoint, self.saved_step, self.run_id = 0, None, None, None
        self.meter, self._grad_norms, self._iter, self._probe_batch = LossMeter(), [], None, None
        is_main = self.dist.is_main
        # The mirror's lease first: a second session on the same Drive folder is refused before it reads anything.
        self.mirror = checkpoint.Mirror(self.mirror_dir, self.cfg.keep_last, self.cfg.milestone_every_steps) \
            if self.mirror_dir and is_main else None
        try:
            self._resume(resume)
            if is_main:
                with self._explain_full():
                    checkpoint.write_config(self.run_dir, exp)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Finish the mirror copy in flight and release the mirror (run() does this at its end)."""
        if self.mirror is not None:
            self.mirror.close()

    def _explain_full(self):
        """Context: a full disk while writing the run directory becomes one DiskFullError line."""
        return checkpoint.explain_disk_full(self.run_dir, "the run directory")

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.dist.is_main

    # --- set-up ----------------------------------------------------------------------------------
    def _setup_batches(self) -> None:
        cfg, world = self.cfg, self.dist.world_size
        if cfg.batch_size % world:
            raise ConfigError(f"train.batch_size={cfg.batch_size} does not divide among {world} processes; "
                              f"use a multiple of {world}")
        self.rank_batch = cfg.batch_size // world
        self.micro = min(cfg.resolved_microbatch, self.rank_batch)
        n = len(self.dataset)
        if n < cfg.batch_size:
            raise ConfigError(f"the dataset has {n} images, fewer than train.batch_size={cfg.batch_size}; "
                              f"add images or lower train.batch_size")
        self.steps_per_epoch = n // cfg.batch_size  # the ragged end of each epoch is dropped (guided-diffusion)
        self.total_steps = lr_lib.total_steps(cfg, self.steps_per_epoch)

    def _resume(self, resume) -> None:
        found, run_id = self._find_resume(resume) if self.dist.is_main else (None, None)
        found, self.run_id = distributed.broadcast_object((str(found) if found else None, run_id))
        if found is None:
            return self._start_fresh()
        data = checkpoint.load(found, map_location=self.device)
        checkpoint.check_compatible(data["exp"], self.exp, self.task.config_sections, source=str(found))
        self.load_state_dict(data)
        self.last_checkpoint, self.saved_step = Path(found), self.step
        if self.dist.is_main:
            checkpoint.restore_metrics(self.run_dir, Path(found).parent.parent, self.step)

    def _find_resume(self, resume) -> tuple[Path | None, str]:
        """(checkpoint to resume or None for a fresh start, run id). A run directory and its mirror hold one run
        each: a checkpoint of another run is refused unless named explicitly, into folders that hold no other run.
        """
        mirror = self.mirror_dir
        for folder in (self.run_dir, mirror):  # as their writer: put back checkpoints a killed save moved aside
            if folder:
                checkpoint.recover(folder)
        if resume is None:
            if checkpoint.list_checkpoints(self.run_dir):
                raise FileExistsError(f"{self.run_dir} already holds checkpoints; pass resume='auto' to continue "
                                      f"that run, or choose a new run directory")
            if mirror and checkpoint.list_checkpoints(mirror):
                raise FileExistsError(
                    f"mirror {mirror} already holds checkpoints (run {checkpoint.run_id_of(mirror)}, "
                    f"newest step {checkpoint.list_checkpoints(mirror)[0][0]}); to continue that run pass "
                    f"resume='auto' (--resume auto), or a new mirror folder (--mirror DIR, mirror_dir=) for a fresh "
                    f"run")
            return None, new_run_id()
        if resume == "auto":
            found = checkpoint.find_resume(self.run_dir, mirror)
            if found is None:
                self._refuse_only_damaged(mirror)
                return None, new_run_id()
        else:
            found = checkpoint.resolve(resume)
            if found is None:
                raise FileNotFoundError(f"resume={resume!r} holds no usable checkpoint")
        run_id = checkpoint.checkpoint_run_id(found)
        self._refuse_other_run(found, run_id, mirror, explicit=resume != "auto")
        return found, run_id or checkpoint.run_id_of(self.run_dir) or new_run_id()

    def _refuse_other_run(self, found, run_id, mirror, explicit: bool) -> None:
        """One clear error if the run directory or the mirror holds checkpoints of a run other than `found`'s."""
        for folder, is_mirror in ((self.run_dir, False), (mirror, True)):
            held = checkpoint.run_id_of(folder) if folder else None
            if not (held and run_id and held != run_id):
                continue
            if is_mirror:
                raise ConfigError(
                    f"mirror {folder} holds checkpoints of run {held}, but {found} belongs to run {run_id}; pass "
                    f"a new mirror folder (--mirror DIR, mirror_dir=), or continue the mirror's run with "
                    f"resume='{folder}' into a new run directory")
            how = "" if explicit else f" (it is newer than {folder}'s own; resume='auto' looks in both)"
            raise ConfigError(
                f"{found} belongs to run {run_id}, but run directory {folder} holds checkpoints of run {held}"
                f"{how}; continue {found} with resume='{found}' into a new run directory (--out), or pass a new "
                f"mirror folder (--mirror DIR, mirror_dir=) to continue {folder}'s own run")

    def _refuse_only_damaged(self, mirror) -> None:
        """resume='auto' found no good checkpoint: starting fresh over damaged ones would bury them."""
        held = [str(d) for d in (self.run_dir, mirror) if d and checkpoint.list_checkpoints(d)]
        if held:
            raise checkpoint.CheckpointError(
                f"{' and '.join(held)} hold checkpoints but none of them verifies (see the warnings above); move "
                f"them away to start fresh, or train into a new run directory")

    def _start_fresh(self) -> None:
        # Seed the global RNGs (dropout, user code) per rank; a resume restores them from the checkpoint instead.
        seed_global(derive_seed(self.cfg.seed, 0, "global", self.dist.rank))
        if self.dist.is_main:
            checkpoint.truncate_metrics(self.run_dir, 0)  # records of a run killed before its first checkpoint

    # --- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """{"model", "ema", "trainer"} for checkpoint.save (collective under DDP: gathers every rank's RNG)."""
        trainer = {"format": 1, "step": self.step, "epoch": self.epoch, "pos": self.pos,
                   "optimizer": self.opt.state_dict(),
                   "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                   "task": self.task.state_dict(),
                   "rng": distributed.all_gather_object(capture_rng_state()),
                   "counters": dict(self.counters), "world_size": self.dist.world_size, "run_id": self.run_id,
                   "irislib_version": __version__, "torch_version": str(torch.__version__), "time": time.time()}
        return {"model": self.model.state_dict(), "ema": self.ema.state_dict(), "trainer": trainer}

    def load_state_dict(self, data: dict) -> None:
        """Restore what state_dict() saved (as returned by checkpoint.load)."""
        tr = data["trainer"]
        self.model.load_state_dict(data["model"])
        self.ema.load_state_dict(data["ema"])
        self.opt.load_state_dict(tr["optimizer"])
        if self.scaler.is_enabled() and tr.get("scaler"):
            self.scaler.load_state_dict(tr["scaler"])
        if tr.get("task") is not None:
            self.task.load_state_dict(tr["task"])
        self.step, self.epoch, self.pos = int(tr["step"]), int(tr["epoch"]), int(tr["pos"])
        self.counters.update(tr.get("counters", {}))
        states = tr["rng"]
        restore_rng_state(states[self.dist.rank % len(states)])

    # --- data ------------------------------------------------------------------------------------
    def _next_batch(self) -> torch.Tensor:
        """This rank's share of the next global batch, [rank_batch, C, H, W], flipped when data.random_flip."""
        B = self.cfg.batch_size
        self._roll_over()  # a resume with a larger train.batch_size can find no full batch left at its position
        if self._iter is None:
            self._iter = iter(self._epoch_loader())
        batch = next(self._iter)
        batch = (batch[0] if isinstance(batch, (list, tuple)) else batch).to(self.device)
        if self.exp.data.random_flip:
            # One mask for the global batch, drawn identically on every rank: same flips at any world size.
            mask = torch.rand(B, generator=seeded_generator(derive_seed(self.cfg.seed, self.step, "flip"))) < 0.5
            mask = mask[self.dist.rank::self.dist.world_size].to(self.device).view(-1, *[1] * (batch.dim() - 1))
            batch = torch.where(mask, batch.flip(-1), batch)
        return batch

    def _epoch_loader(self) -> DataLoader:
        """Batches of this epoch from self.pos; rank r takes every world-th image of each global batch."""
        B, world = self.cfg.batch_size, self.dist.world_size
        perm = epoch_permutation(len(self.dataset), self.cfg.seed, self.epoch).tolist()
        batches = [perm[s:s + B][self.dist.rank::world] for s in range(self.pos, self.steps_per_epoch * B, B)]
        if self.device_data is not None:  # the same batches, gathered on the device
            return speed.device_batches(self.device_data, batches)
        workers = self.exp.data.num_workers
        return DataLoader(self.dataset, batch_sampler=batches, num_workers=workers,
                          pin_memory=self.device.type == "cuda", persistent_workers=False)

    # --- one optimizer step ------------------------------------------------------------------------
    def train_step(self, batch: torch.Tensor) -> bool:
        """Accumulate over micro-batches, then step (or skip a non-finite step); True if the weights changed."""
        for group in self.opt.param_groups:
            group["lr"] = self.lr
        self.task.step = self.step
        finite, terms = self.forward_backward(batch)
        took = False
        if finite:
            for t in terms:
                self.meter.add(t, self.task.num_timesteps)
            took = self._optimizer_step()
        else:
            self._skip_nonfinite()
        self.step, self.pos = self.step + 1, self.pos + self.cfg.batch_size
        self._roll_over()  # (epoch, pos) name the next batch, as saved in the checkpoint
        return took

    def _roll_over(self) -> None:
        """Start the next shuffled epoch when the current one has no full batch left (its ragged end is dropped)."""
        B = self.cfg.batch_size
        if self.pos + B > self.steps_per_epoch * B:
            self.epoch, self.pos, self._iter = self.epoch + 1, 0, None

    @property
    def lr(self) -> float:
        """The LR of the current step (closed form)."""
        return lr_lib.lr_at(self.cfg, self.step, epoch=self.epoch, steps_per_epoch=self.steps_per_epoch,
                            total=self.total_steps)

    def forward_backward(self, batch: torch.Tensor) -> tuple[bool, list[dict]]:
        """Gradients of the mean loss over the global batch: each micro-batch adds sum(loss) / rank_batch."""
        self.opt.zero_grad(set_to_none=True)
        gen = seeded_generator(derive_seed(self.cfg.seed, self.step, "task", self.dist.rank), self.device)
        finite, terms_all = torch.ones((), dtype=torch.bool, device=self.device), []
        for i in range(0, batch.shape[0], self.micro):
            micro = batch[i:i + self.micro]  # [b, C, H, W]; the last one may be smaller
            is_last = i + self.micro >= batch.shape[0]
            sync = contextlib.nullcontext() if is_last or not self.dist.is_distributed else self.ddp_model.no_sync()
            with sync:
                with self._autocast():
                    terms = self.task.loss(self.ddp_model, micro, gen)
                loss = terms["loss"].float().sum() / self.rank_batch
                finite &= torch.isfinite(loss)
                self.scaler.scale(loss).backward()
            terms_all.append({k: v.detach() for k, v in terms.items()})
        flag = distributed.all_reduce_(finite.float().reshape(1), "min")  # every rank skips together
        return bool(flag.item() > 0), terms_all

    def _autocast(self):
        p = self.precision
        if p == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if p == "bf16" else torch.float16)

    def _optimizer_step(self) -> bool:
        """Unscale, clip (norm always measured), step through the GradScaler, update EMA; False if skipped.

        A non-finite gradient norm with a finite loss (fp32/bf16: no GradScaler to catch it) skips the step like a
        non-finite loss: one NaN in the gradients would otherwise reach the weights, the EMA and Adam's moments.
        """
        self.scaler.unscale_(self.opt)
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        if not self.scaler.is_enabled() and not torch.isfinite(norm):
            self._skip_nonfinite("gradient norm")
            return False
        self.nan_in_row = 0
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else None
        self.scaler.step(self.opt)
        self.scaler.update()
        took = scale is None or self.scaler.get_scale() >= scale  # the scale only drops on a skipped step
        if took:
            self.ema.update(self.model, self.step)
            self._grad_norms.append(float(norm))
        else:
            self.counters["skipped_steps"] += 1
        return took

    def _skip_nonfinite(self, what: str = "loss") -> None:
        """Drop this step's gradients; count it; stop after train.nan_patience bad steps in a row."""
        self.opt.zero_grad(set_to_none=True)
        self.counters["nan_steps" if what == "loss" else "nan_grad_steps"] += 1
        self.nan_in_row += 1
        if what != "loss":
            warnings.warn(f"step {self.step}: the {what} is NaN/inf with a finite loss; step skipped "
                          f"({self.nan_in_row} in a row)", RuntimeWarning, stacklevel=3)
        if self.nan_in_row >= self.cfg.nan_patience:
            last = self.last_checkpoint or "none yet"
            raise TrainingDiverged(
                f"training stopped at step {self.step}: the loss or gradient norm was NaN/inf for "
                f"{self.nan_in_row} steps in a row (train.nan_patience={self.cfg.nan_patience}); nothing was saved "
                f"after it went bad. Last good checkpoint: {last}. Lower train.lr, set train.grad_clip, or use "
                f"precision=fp32/bf16, then resume")

    # --- the loop ----------------------------------------------------------------------------------
    def run(self) -> dict:
        """Train until train.max_steps / train.epochs; returns the last metrics record (+ checkpoint path)."""
        reporter = Reporter(self)
        self._last_save_time = time.monotonic()
        try:
            with self._explain_full():
                while self.step < self.total_steps:
                    batch = self._next_batch()
                    self.train_step(batch)
                    reporter.after_step(batch.shape[0] * self.dist.world_size)
                    self._maybe_sample()
                    self._maybe_save()
                if self.saved_step != self.step:
                    self.save()
                self._sample()
        finally:
            reporter.close()
            self.close()
        distributed.barrier()
        return {**reporter.last, "step": self.step, "epoch": self.epoch, "run_dir": str(self.run_dir),
                "checkpoint": str(self.last_checkpoint) if self.last_checkpoint else None}

    def _maybe_save(self) -> None:
        cfg = self.cfg
        due = bool(cfg.save_every_steps) and self.step % cfg.save_every_steps == 0
        due = due or (cfg.save_every_minutes > 0 and time.monotonic() - self._last_save_time
                      >= 60.0 * cfg.save_every_minutes)
        if distributed.broadcast_object(due) and self.step < self.total_steps:
            self.save()

    def save(self) -> Path | None:
        """Checkpoint now (rank 0 writes, every rank waits); refuses while the loss is non-finite."""
        if self.nan_in_row or not all(torch.isfinite(p).all() for p in self.model.parameters()):
            warnings.warn(f"step {self.step}: not saving while the loss or weights are NaN/inf; last good "
                          f"checkpoint {self.last_checkpoint}", RuntimeWarning, stacklevel=2)
            return None
        state = self.state_dict()
        path = None
        if self.dist.is_main:
            if self.mirror is not None:
                self.mirror.join()  # the previous copy must finish before pruning can delete its source
            path = checkpoint.save(self.run_dir, state, self.exp)
            if self.mirror is not None:
                self.mirror.submit(self.run_dir, path)
        distributed.barrier()
        self.last_checkpoint, self.saved_step = path or self.last_checkpoint, self.step
        self._last_save_time = time.monotonic()
        return path

    # --- samples and probes --------------------------------------------------------------------------
    def _maybe_sample(self) -> None:
        every = self.cfg.sample_every_steps
        if every and self.step % every == 0 and self.step < self.total_steps:
            self._sample()

    def _sample(self) -> None:
        if self.sample_fn is None or not self.dist.is_main:
            return
        model = self.model
        if self.ema.rates:
            model = copy.deepcopy(self.model)
            model.load_state_dict(self.ema.shadows[self.ema.rates[0]])
        was_training = model.training
        model.eval()
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # sampling must not shift the training RNG streams
            self.sample_fn(model, self.step)
        model.train(was_training)

    def dead_units(self) -> dict[str, float]:
        """{"dead_units", "dead_units_<type>"}: shares of activation channels dead on a fixed probe batch
        (see metrics.dead_units_by_layer); {"dead_units": None} when the model cannot be probed."""
        if self._probe_batch is False:
            return {"dead_units": None}
        if self._probe_batch is None:
            n = min(len(self.dataset), PROBE_SIZE, max(self.micro, 1))
            items = [self.dataset[i] for i in range(n)]
            items = [x[0] if isinstance(x, (list, tuple)) else x for x in items]
            self._probe_batch = torch.stack(items).to(self.device)
        gen = seeded_generator(derive_seed(self.cfg.seed, 0, "probe"), self.device)
        forward = functools.partial(self.task.probe, self.model, self._probe_batch, gen)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), self._autocast():
                return dead_unit_shares(self.model, forward) or {"dead_units": None}
        except (TypeError, RuntimeError) as e:
            warnings.warn(f"dead-unit probe failed ({e}); override the task's probe(model, batch, generator)",
                          RuntimeWarning, stacklevel=2)
            self._probe_batch = False
            return {"dead_units": None}
        finally:
            self.model.train(was_training)


def new_run_id() -> str:
    """A fresh run id: the UTC start time (readable in messages) plus random hex (unique)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)
