"""Copy finished checkpoints to a second folder (e.g. Google Drive) in a background thread.

The mirror has the run directory's layout. Each checkpoint is copied into a temp folder under this writer's temp
names, renamed into place, and the mirror's latest.json is written last, so the mirror is always resumable on its
own. The mirror is held by one session at a time (a MirrorLease in the folder): a second Colab session on the same
folder is refused, and cleanup only removes this writer's (or a dead writer's) leftovers.
A failing mirror only warns: the local checkpoint is intact and training goes on.
"""
from __future__ import annotations

import json
import shutil
import threading
import warnings
from pathlib import Path

from .files import copy_file, describe_full, fsync_dir, is_disk_full, tmp_path, write_json
from .lock import MirrorLease, RunLockedError
from .metrics_log import METRICS
from .store import MANIFEST, POINTER, _publish, check_names, clean_leftovers, list_checkpoints, own_path, prune


class Mirror:
    """Background copier of checkpoints to mirror_dir; submit() after each save, join() before the next, close()
    at the end. Creating one takes the mirror's lease (RunLockedError while another session holds it)."""

    def __init__(self, mirror_dir, keep_last: int = 3, milestone_every_steps: int = 0):
        self.root = Path(mirror_dir)
        self.keep_last, self.milestone_every_steps = keep_last, milestone_every_steps
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
        self.lease = MirrorLease(self.root)
        try:
            self.lease.acquire()
        except RunLockedError:
            raise
        except OSError as e:  # Drive not reachable yet: warn now, try again at the first copy
            warnings.warn(f"mirror {self.root} is not usable ({type(e).__name__}: {e}); the run trains locally "
                          f"and each checkpoint copy will try again", RuntimeWarning, stacklevel=2)

    def submit(self, run_dir, ckpt_dir) -> None:
        """Start copying ckpt_dir (and config.json, metrics.jsonl, latest.json) once any previous copy finished."""
        self.join()
        pointer = json.loads((Path(run_dir) / POINTER).read_text())  # read now: the next save rewrites it
        self._thread = threading.Thread(target=self._copy_safely, args=(Path(run_dir), Path(ckpt_dir), pointer),
                                        name="irislib-mirror", daemon=True)
        self._thread.start()

    def join(self) -> None:
        """Wait for the copy in flight, if any."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Finish the copy in flight and hand the mirror back (release the lease)."""
        self.join()
        self.lease.release()

    def _copy_safely(self, run_dir: Path, ckpt: Path, pointer: dict) -> None:
        try:
            if self.lease.me is None and not self.lease.lost:
                self.lease.acquire()
            elif not self.lease.renew():
                raise RuntimeError(f"this session no longer holds the mirror ({self.lease.lost or 'released'}); not copying")
            copy_checkpoint(run_dir, ckpt, self.root, pointer)
            prune(self.root, self.keep_last, self.milestone_every_steps)
        except Exception as e:  # noqa: BLE001 - a broken Drive must never stop training
            reason = describe_full(self.root, f"the copy of {ckpt.name}") if is_disk_full(e, self.root) \
                else f"{type(e).__name__}: {e}"
            msg = f"mirror copy of {ckpt.name} to {self.root} failed ({reason}); " \
                  f"the local checkpoint {ckpt} is intact and training continues"
            self.errors.append(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=1)


def copy_checkpoint(run_dir: Path, ckpt: Path, mirror: Path, pointer: dict) -> Path:
    """Copy one checkpoint folder into mirror/checkpoints/, then config.json and metrics.jsonl, pointer last.
    A symbolic link on either side is refused: nothing is read from, written to or deleted in another folder."""
    list_checkpoints(mirror)   # refuses a linked checkpoints/ or step_* in the mirror before anything changes
    names = sorted(p.name for p in ckpt.iterdir() if p.name != MANIFEST) + [MANIFEST]  # manifest last
    check_names(ckpt, dict.fromkeys(names), f"{ckpt} files")
    root = mirror / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    clean_leftovers(root)
    tmp = tmp_path(root / ckpt.name)
    try:
        tmp.mkdir()
        for name in names:
            copy_file(ckpt / name, tmp / name)
        fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full Drive: do not leave a partial copy taking space
        raise
    final = _publish(tmp, root / ckpt.name)
    for name in ("config.json", METRICS):
        if own_path(run_dir / name, run_dir).is_file():
            copy_file(run_dir / name, mirror / name)
    write_json(mirror / POINTER, pointer)
    return final
