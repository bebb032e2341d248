"""The only code that reads or writes a run directory: atomic checkpoints, verification, resume, Drive mirror.

Trained runs (store.py), bare runs from the hub or a guided-diffusion import (bare.py), the VAE's prior and sample
grids (artifacts.py) and metrics.jsonl (metrics_log.py) are all written here, atomically; tests/checkpoint checks that
no other module writes into a run directory.

`save(run_dir, trainer.state_dict(), exp)` -> checkpoint folder; `find_resume(run_dir, mirror_dir)` -> newest
good folder or None; `load(folder)` -> dict; `load_run(run_dir, use_ema=True)` -> (exp, state_dict) for sampling;
`load_run_all(run_dir)` -> (exp, model_state, {rate: ema_state}). A run directory and its mirror hold checkpoints of
one run: `run_id_of(dir)`; `MirrorLease` keeps a mirror to one session; a full disk raises `DiskFullError`.
"""
from .artifacts import PRIOR_FILE, attach_prior, load_prior, prior_path, write_sample_grid
from .bare import bare_run_is_current, is_bare_run, write_bare_run
from .files import DiskFullError, sha256_file
from .lock import MirrorLease, RunLockedError, run_lock
from .metrics_log import append_metrics, read_metrics, restore_metrics, truncate_metrics
from .mirror import Mirror
from .store import (POINTER, CheckpointError, UnsafeCheckpointError, check_compatible, checkpoint_run_id,
                    explain_disk_full, find_resume, list_checkpoints, load, load_run, load_run_all, load_trainer_state,
                    prune, read_pointer, recover, resolve, run_id_of, sampling_weights_file, save, verify,
                    write_config)

__all__ = ["save", "sampling_weights_file", "find_resume", "resolve", "load", "load_run", "load_run_all", "load_trainer_state", "verify",
           "prune", "list_checkpoints", "check_compatible", "CheckpointError", "Mirror", "append_metrics",
           "read_metrics", "restore_metrics", "truncate_metrics", "write_config", "write_sample_grid",
           "attach_prior", "load_prior", "prior_path", "PRIOR_FILE", "write_bare_run", "bare_run_is_current",
           "is_bare_run", "sha256_file", "POINTER", "run_lock", "RunLockedError", "MirrorLease", "DiskFullError",
           "run_id_of", "checkpoint_run_id", "explain_disk_full", "recover", "read_pointer", "UnsafeCheckpointError"]
