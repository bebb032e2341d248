"""metrics.jsonl in a run directory: append records, read them, cut them back to a resumed step."""
from __future__ import annotations

import json
from pathlib import Path

from .files import write_bytes
from .store import own_path

METRICS = "metrics.jsonl"


def metrics_path(run_dir) -> Path:
    """run_dir/metrics.jsonl, refused if it is a symbolic link (appending through it would write elsewhere)."""
    return own_path(Path(run_dir) / METRICS, Path(run_dir))


def append_metrics(run_dir, record: dict) -> None:
    """Append one JSON record as a line."""
    path = metrics_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def read_metrics(run_dir) -> list[dict]:
    """All complete records of run_dir/metrics.jsonl (or of a metrics.jsonl path); [] when there is none."""
    path = Path(run_dir)
    path = metrics_path(path) if path.is_dir() or path.suffix != ".jsonl" else path  # a file named: the user's
    return read_jsonl(path) if path.is_file() else []


def read_jsonl(path) -> list[dict]:
    """Records of a JSON-lines file; a line cut by a crash (or still being written) is skipped."""
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def truncate_metrics(run_dir, step: int) -> None:
    """Keep only records with record["step"] <= step (those after a resumed checkpoint will be logged again)."""
    path = metrics_path(run_dir)
    if not path.is_file():
        return
    kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= step]
    write_bytes(path, "".join(json.dumps(r) + "\n" for r in kept).encode())


def restore_metrics(run_dir, source_run_dir, step: int) -> None:
    """Before resuming at `step`: take metrics.jsonl from the checkpoint's run (e.g. the mirror) if run_dir has none,
    then drop records after `step`."""
    src, dst = metrics_path(source_run_dir), metrics_path(run_dir)
    if not dst.is_file() and src.is_file() and src.resolve() != dst.resolve():
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(dst, src.read_bytes())
    truncate_metrics(run_dir, step)
