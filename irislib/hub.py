"""Named checkpoints: a JSON manifest, verified downloads (gdown) and a local cache.

Manifest schema (`checkpoints_manifest.json`, version 1)::

    {"version": 1,
     "checkpoints": [
       {"name": "iris64-unet",                 # unique; what fetch() takes
        "kind": "unet",                        # vae | unet | refiner
        "filename": "ema_0.9999.safetensors",  # optional: name in the cache (default: the first source's basename)
        "sha256": "<64 hex digits>",           # checked BEFORE anything is loaded
        "size": 123456,                        # bytes; a shorter file is a truncated download
        "config": {...},                       # Experiment dict (or the sections needed); saved as config.json
        "trained_on": "synthetic:2000",        # data the weights saw (free text)
        "command": "irislib train-diffusion --preset seed-64 ...",  # how to reproduce them
        "step": 250000,                        # optional: training step of the weights (information)
        "sources": [                           # tried in order until one gives a file with the right hash
          {"type": "repo", "path": "checkpoints/iris64-unet.safetensors"},  # relative to the manifest's folder,
                                               # then to the repository root; "path" is an alias (absolute allowed
                                               # only inside those two folders)
          {"type": "url", "url": "https://example.org/iris64-unet.safetensors"},  # https only (http: allow_http)
          {"type": "gdrive", "id": "1AbCdEf..."}],  # a Drive file shared "Anyone with the link"
        "files": [{"filename": ..., "sha256": ..., "size": ..., "sources": [...]}]}  # optional extra files
     ]}

`fetch(name)` puts the weights in `<cache>/<name>/<filename>` (cache = $IRISLIB_CACHE or ~/.cache/irislib) with
the entry's config beside them as `config.json`, and returns the weights path. `fetch_run(name)` also builds
`<cache>/<name>/run/`, a bare run directory that `irislib.checkpoint.load_run` reads: config.json and the weights
as model.safetensors, plus the entry's extra files (e.g. the VAE's prior.safetensors) at its top level, with a
manifest.json of their sha256 (written by irislib.checkpoint.write_bare_run).

A download goes to a private temp folder in the cache, is checked (HTML error page, size, sha256) and only then
moved into place; a failed source leaves nothing behind and the next source is tried. A cached file whose hash verifies is reused without network.

Manifests are untrusted (docs/design.md, "Threat model"): names and filenames must be single names, repo paths
must stay in the manifest's folder or the repository, URLs must be https; anything else is refused (one line naming
the entry and field, irislib.safepath.UnsafePathError) before the cache is touched.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from . import checkpoint
from .checkpoint import PRIOR_FILE, sha256_file
from .config import ConfigError
from .safepath import UnsafePathError  # noqa: F401  (re-exported: except hub.UnsafePathError)
from .safepath import check_url, contained, inside, plain_name, refuse

KINDS = ("vae", "unet", "refiner")
MANIFEST_NAME = "checkpoints_manifest.json"
LOCAL_MANIFEST_NAME = "checkpoints_manifest.local.json"
REPO_ROOT = Path(__file__).resolve().parents[1]
QUOTA_TEXT = "Too many users have viewed or downloaded this file recently"
DRIVE_ID = re.compile(r"[A-Za-z0-9_-]+")  # fullmatch


class FetchError(FileNotFoundError):
    """No source gave a file with the manifest's size and sha256; the message lists what each source did."""


class UnknownCheckpointError(KeyError, ValueError):
    """No manifest entry has that name (a KeyError and a ValueError, so either `except` works)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class _SourceFailed(Exception):
    """One source failed; the message says why in user terms."""


# --- manifest ----------------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """$IRISLIB_CACHE, else ~/.cache/irislib."""
    return Path(os.environ.get("IRISLIB_CACHE") or Path.home() / ".cache" / "irislib").expanduser()


def default_manifests() -> list[Path]:
    """Manifests read by default: $IRISLIB_MANIFEST or the shipped one, then ./checkpoints_manifest.local.json."""
    if os.environ.get("IRISLIB_MANIFEST"):
        found = [Path(os.environ["IRISLIB_MANIFEST"])]  # a missing file is reported by load_manifest
    else:
        shipped = [REPO_ROOT / MANIFEST_NAME, Path(__file__).resolve().parent / MANIFEST_NAME]
        found = [p for p in shipped if p.is_file()][:1]
    local = Path.cwd() / LOCAL_MANIFEST_NAME
    return found + ([local] if local.is_file() else [])


def load_manifest(manifest: str | Path | dict | None = None) -> list[dict]:
    """Validated entries of a manifest (path, dict or None = the defaults); later manifests override names."""
    if isinstance(manifest, dict):
        docs = [(manifest, Path.cwd(), "manifest")]
    else:
        paths = [Path(manifest)] if manifest is not None else default_manifests()
        docs = [(_read_json(p), p.resolve().parent, str(p)) for p in paths]
    entries: dict[str, dict] = {}
    for doc, base, source in docs:
        for i, entry in enumerate(_validate_doc(doc, source, base)):
            entries[entry["name"]] = {**entry, "_base": str(base), "_manifest": f"{source} checkpoints[{i}]"}
    return list(entries.values())


def list_checkpoints(manifest: str | Path | dict | None = None) -> list[dict]:
    """One summary dict per manifest entry: name, kind, size, trained_on, source types."""
    return [{"name": e["name"], "kind": e["kind"], "size": e["size"], "trained_on": e.get("trained_on", ""),
             "sources": [s["type"] for s in e["sources"]]} for e in load_manifest(manifest)]


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint manifest {path} does not exist; pass manifest=<path to a "
                                f"{MANIFEST_NAME}> or create one with irislib.hub.register(run_dir)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from None


def _validate_doc(doc: dict, source: str, base: Path) -> list[dict]:
    """The entries of a manifest whose folder is `base`, each checked (paths included) before any use."""
    if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(doc.get("checkpoints"), list):
        raise ConfigError(f"{source}: expected {{\"version\": 1, \"checkpoints\": [...]}}")
    for i, entry in enumerate(doc["checkpoints"]):
        where = f"{source} checkpoints[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise ConfigError(f"{where}: every entry needs a non-empty \"name\"")
        plain_name(entry["name"], f"{where}.name")  # the cache folder's name
        if entry.get("kind") not in KINDS:
            raise ConfigError(f"{where}.kind={entry.get('kind')!r}: use one of {', '.join(KINDS)}")
        _validate_file(entry, where, base)
        for j, extra in enumerate(entry.get("files", [])):
            if not isinstance(extra, dict) or "filename" not in extra:
                raise ConfigError(f"{where}.files[{j}] needs a \"filename\"")
            _validate_file(extra, f"{where}.files[{j}]", base)
    return doc["checkpoints"]


def _validate_file(spec: dict, where: str, base: Path) -> None:
    sha = spec.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha.lower()):
        raise ConfigError(f"{where}.sha256 must be 64 hex digits (sha256sum of the file)")
    if not isinstance(spec.get("size"), int) or spec["size"] < 0:
        raise ConfigError(f"{where}.size must be the file size in bytes")
    if not isinstance(spec.get("sources"), list) or not spec["sources"]:
        raise ConfigError(f"{where}.sources must list at least one source (repo path, url or gdrive id)")
    if spec.get("filename") is not None:
        plain_name(spec["filename"], f"{where}.filename")  # a file directly in the cache folder
    for k, src in enumerate(spec["sources"]):
        key = {"repo": "path", "path": "path", "url": "url", "gdrive": "id"}.get(src.get("type")) \
            if isinstance(src, dict) else None
        if key is None or not isinstance(src.get(key), str) or not src[key]:
            raise ConfigError(f"{where}.sources[{k}] must be {{\"type\": \"repo\", \"path\": ...}}, "
                              f"{{\"type\": \"url\", \"url\": ...}} or {{\"type\": \"gdrive\", \"id\": ...}}")
        _validate_source(src, key, f"{where}.sources[{k}].{key}", base)


def _validate_source(src: dict, key: str, where: str, base: Path) -> None:
    """A repo path inside the manifest's folder or the repository, an http(s) URL, a Drive id of id characters."""
    value = src[key]
    if key == "path" and not _repo_file(value, base)[1]:
        raise refuse(where, value, f"a repo path must stay inside the manifest's folder {base} or the "
                                   f"repository {REPO_ROOT}")
    if key == "url":
        check_url(value, where, allow_http=True)  # the scheme; plain http is refused later unless allowed
    if key == "id" and not DRIVE_ID.fullmatch(value):
        raise refuse(where, value, "a Google Drive id has only letters, digits, '-' and '_'")


# --- fetch -------------------------------------------------------------------------------------------------
def fetch(name: str, manifest: str | Path | dict | None = None, cache_dir: str | Path | None = None,
          quiet: bool = True, allow_http: bool = False) -> Path:
    """Path of the verified weights of checkpoint `name`, fetched into the cache if needed.

    URL sources must be https unless allow_http (the sha256 check still applies to what http brings)."""
    entries = {e["name"]: e for e in load_manifest(manifest)}
    if name not in entries:
        hint = difflib.get_close_matches(name, list(entries), n=1)
        raise UnknownCheckpointError(f"no checkpoint named {name!r} in the manifest"
                         + (f"; did you mean {hint[0]!r}?" if hint else f"; known: {', '.join(entries) or 'none'}"))
    entry = entries[name]
    _check_urls(entry, allow_http)
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    dest = contained(cache / name, cache, f"{entry['_manifest']}.name")  # before mkdir: nothing made outside
    main = {**entry, "filename": entry.get("filename") or _default_filename(entry)}
    plain_name(main["filename"], f"{entry['_manifest']}.filename")
    dest.mkdir(parents=True, exist_ok=True)
    path = _fetch_file(main, dest, Path(entry["_base"]), quiet, f"checkpoint {name!r}")
    for extra in entry.get("files", []):
        _fetch_file(extra, dest, Path(entry["_base"]), quiet, f"checkpoint {name!r} file {extra['filename']!r}")
    if "config" in entry:
        _write_atomic(dest / "config.json", json.dumps(entry["config"], indent=2) + "\n")
    return path


def fetch_run(name: str, manifest: str | Path | dict | None = None, cache_dir: str | Path | None = None,
              quiet: bool = True, allow_http: bool = False) -> Path:
    """A run directory for checkpoint `name` that irislib.checkpoint.load_run reads, built from the verified files."""
    weights = fetch(name, manifest, cache_dir, quiet, allow_http)
    entry = {e["name"]: e for e in load_manifest(manifest)}[name]
    if "config" not in entry:
        raise ConfigError(f"{entry['_manifest']} has no \"config\"; fetch_run needs it to rebuild the model")
    run = weights.parent / "run"
    # name in run/ -> (verified cache file, sha256): run/ is reused only while it holds exactly these files.
    files = {"model.safetensors": (weights, entry["sha256"]),
             **{e["filename"]: (weights.parent / e["filename"], e["sha256"]) for e in entry.get("files", [])}}
    if not checkpoint.bare_run_is_current(run, files, source=entry["sha256"]):
        checkpoint.write_bare_run(run, entry["config"], {k: src for k, (src, _) in files.items()},
                                  source=entry["sha256"])
    return run


def _check_urls(entry: dict, allow_http: bool) -> None:
    """Refuse the whole entry up front if any URL is plain http and the user did not allow it."""
    for j, spec in [(None, entry)] + list(enumerate(entry.get("files", []))):
        for k, src in enumerate(spec["sources"]):
            if src["type"] == "url":
                part = "" if j is None else f".files[{j}]"
                check_url(src["url"], f"{entry['_manifest']}{part}.sources[{k}].url", allow_http)


def _default_filename(entry: dict) -> str:
    first = entry["sources"][0]
    base = os.path.basename(first.get("path") or first.get("url", "").split("?")[0])
    return base if base.endswith((".safetensors", ".pt", ".pth")) else f"{entry['name']}.safetensors"


def _fetch_file(spec: dict, dest: Path, base: Path, quiet: bool, label: str) -> Path:
    """Cached copy if it verifies, else each source in turn into a temp folder, verify, then os.replace."""
    target = contained(dest / spec["filename"], dest, f"{label} filename")  # a symlink planted in the cache
    if target.is_file():
        problem = _check_file(target, spec)
        if problem is None:
            _say(f"{label}: using verified cached file {target}", quiet, sys.stdout)
            return target
        _say(f"{label}: cached file {target} fails its check ({problem}); deleting it and fetching again", False)
        target.unlink()
    sources, errors = spec["sources"], []
    for i, src in enumerate(sources):
        tmpdir = Path(tempfile.mkdtemp(prefix=".fetch-", dir=dest))
        try:
            tmp = tmpdir / spec["filename"]
            _obtain(src, tmp, base, quiet)
            problem = _check_file(tmp, spec)
            if problem is not None:
                raise _SourceFailed(f"{problem}; the downloaded file was deleted")
            os.replace(tmp, target)  # same filesystem: atomic
            _say(f"{label}: fetched from {_describe(src)} and verified sha256", quiet, sys.stdout)
            return target
        except _SourceFailed as e:
            msg = f"source {i + 1}/{len(sources)} ({_describe(src)}) failed: {e}"
            errors.append(msg)
            nxt = f"; trying source {i + 2} ({_describe(sources[i + 1])})" if i + 1 < len(sources) else ""
            _say(f"{label}: {msg}{nxt}", False)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    raise FetchError(f"could not fetch {label}; every source failed:\n  " + "\n  ".join(errors)
                     + f"\nPut a copy with sha256 {spec['sha256']} at {target}, or add a working source to the "
                       f"manifest.")


def _obtain(src: dict, tmp: Path, base: Path, quiet: bool) -> None:
    """Copy or download one source to `tmp`; raise _SourceFailed with a user-level reason."""
    if src["type"] in ("repo", "path"):
        found, allowed = _repo_file(src["path"], base)  # again: a symbolic link may have appeared since loading
        if found is None or not allowed:
            raise _SourceFailed(f"no file at {src['path']} inside {base} or {REPO_ROOT}")
        shutil.copyfile(found, tmp)
        return
    import gdown  # lazy: pulls in requests and bs4
    try:
        # Only url/id/output/quiet: the keywords gdown 5.x and 6.x share (6.0 dropped fuzzy=).
        if src["type"] == "url":
            result = gdown.download(url=src["url"], output=str(tmp), quiet=quiet)
        else:
            result = gdown.download(id=src["id"], output=str(tmp), quiet=quiet)
    except Exception as e:  # gdown/requests raise many types; each becomes a reason and the next source
        raise _SourceFailed(_explain(e)) from None
    if result is None or not tmp.is_file():  # gdown < 6 returned None on some failures
        raise _SourceFailed("gdown returned no file")


def _repo_file(path: str, base: Path) -> tuple[Path | None, bool]:
    """(the file a repo path names, or None; whether it is allowed). It is looked for in the manifest's folder, then
    the repository, and must resolve inside the folder it was found in (symbolic links followed); an absolute path
    is itself in both places."""
    pairs = [(base / Path(path).expanduser(), base), (REPO_ROOT / Path(path).expanduser(), REPO_ROOT)]
    for candidate, root in pairs:
        if candidate.is_file():
            return candidate, inside(candidate, root)
    return None, any(inside(candidate, root) for candidate, root in pairs)


def _explain(e: Exception) -> str:
    """A gdown/requests exception as a reason a user can act on."""
    text = str(e)
    status = getattr(getattr(e, "response", None), "status_code", None)
    if QUOTA_TEXT.lower() in text.lower():
        return _quota_reason()
    if status == 404:
        return "HTTP 404 not found: the URL or Drive id is wrong, or the file was moved or deleted"
    if status in (401, 403):
        return (f"HTTP {status} permission denied: the file is not public (a Drive file must be shared as "
                f"'Anyone with the link')")
    if status is not None:
        return f"HTTP {status} error from the server: {text.splitlines()[0] if text else ''}"
    if "public link" in text or "permission" in text.lower():
        return ("Google Drive refused the file: it is not shared publicly ('Anyone with the link') or does not "
                "exist; check the id")
    if "incomplete" in text.lower() or "IncompleteRead" in text or "ChunkedEncoding" in type(e).__name__:
        return f"truncated download (the connection closed early): {text.splitlines()[0]}"
    return f"{type(e).__name__}: {text.splitlines()[0] if text else 'download failed'}"


def _quota_reason() -> str:
    return (f"Google Drive download quota exceeded (\"{QUOTA_TEXT}\"): wait up to 24 h, or download it in a "
            f"browser and put it in the cache, or use another source")


def _check_file(path: Path, spec: dict) -> str | None:
    """None if `path` has the manifest's size and sha256, else what is wrong (an HTML page, truncation, hash)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")) and size != spec["size"]:
        return _html_reason(path)
    if size != spec["size"]:
        kind = "truncated download" if size < spec["size"] else "file larger than expected"
        return f"{kind}: got {size} bytes, the manifest says {spec['size']}"
    digest = sha256_file(path)
    if digest != spec["sha256"].lower():
        return f"sha256 mismatch: got {digest}, the manifest says {spec['sha256'].lower()}"
    return None


def _html_reason(path: Path) -> str:
    text = path.read_bytes()[:200_000].decode("utf-8", "replace")
    if QUOTA_TEXT.lower() in text.lower():
        return _quota_reason() + " (the server sent an HTML page instead of the file)"
    low = text.lower()
    if "404" in low or "not found" in low:
        return ("not found: the server sent an HTML 'not found' page instead of the file; the URL or id is wrong "
                "or the file was moved or deleted")
    if "403" in low or "forbidden" in low or "permission" in low or "access denied" in low:
        return ("permission denied: the server sent an HTML 'access denied' page instead of the file; it is not "
                "shared publicly (a Drive file must be shared as 'Anyone with the link')")
    return "got an HTML page instead of the file (a login, error or quota page)"


def _describe(src: dict) -> str:
    return {"repo": "repo path {path}", "path": "path {path}", "url": "URL {url}",
            "gdrive": "Google Drive id {id}"}[src["type"]].format(**src)


def _say(msg: str, quiet: bool, stream=None) -> None:
    if not quiet:  # success lines on stdout (a notebook shows stderr as an error); problems on stderr
        print(f"irislib.hub: {msg}", file=stream or sys.stderr)


def _write_atomic(path: Path, text: str) -> None:
    """Temp name per process: two sessions fetching the same checkpoint at once must not rename each other's file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- register ----------------------------------------------------------------------------------------------
def register(run_dir: str | Path, name: str | None = None, manifest_path: str | Path = LOCAL_MANIFEST_NAME,
             kind: str | None = None) -> dict:
    """Add a run directory's weights to a local manifest (sha256, size, config, a path source); returns the entry.

    Add a {"type": "gdrive", "id": ...} source by hand after uploading the file to Drive to share it.
    """
    run = Path(run_dir)
    cfg_path = run / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} does not exist; register takes a run directory written by "
                                f"irislib.train_vae / train_diffusion")
    weights = _run_weights(run)
    kind = kind or _guess_kind(weights, json.loads(cfg_path.read_text()))
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: use one of {', '.join(KINDS)}")
    manifest_path = Path(manifest_path)
    base = manifest_path.resolve().parent
    src_path = _source_path(weights, base)
    config = json.loads(cfg_path.read_text())
    name = plain_name(name or run.resolve().name, "name", "give a name without '/' or '..' (it names a folder)")
    entry = {"name": name, "kind": kind, "filename": weights.name,
             "sha256": sha256_file(weights), "size": weights.stat().st_size, "config": config,
             "trained_on": config.get("data", {}).get("path", ""), "command": "",
             "sources": [{"type": "path", "path": src_path}]}
    prior = checkpoint.prior_path(run)
    extras = [prior] if prior is not None else []  # the VAE's fitted latent prior
    if extras:
        entry["files"] = [{"filename": p.name, "sha256": sha256_file(p), "size": p.stat().st_size,
                           "sources": [{"type": "path", "path": _source_path(p, base)}]} for p in extras]
    doc = _read_json(manifest_path) if manifest_path.is_file() else {"version": 1, "checkpoints": []}
    _validate_doc(doc, str(manifest_path), base)
    doc["checkpoints"] = [e for e in doc["checkpoints"] if e["name"] != entry["name"]] + [entry]
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(manifest_path, json.dumps(doc, indent=2) + "\n")
    return entry


def _source_path(path: Path, base: Path) -> str:
    """`path` relative to the manifest's folder (the manifest can move with it); fetch refuses paths outside it."""
    try:
        return str(path.resolve().relative_to(base))
    except ValueError:
        raise ValueError(f"{path} is outside {base}, the manifest's folder, and a manifest may only name files "
                         f"below its own folder: put the manifest in a folder that holds the run (register "
                         f"--manifest / manifest_path=)") from None


def _run_weights(run: Path) -> Path:
    """The weights to publish from the run's newest checkpoint that verifies (EMA preferred), or a bare run's."""
    if checkpoint.is_bare_run(run):  # a run folder from elsewhere: its weights must not link outside it
        return contained(run / "model.safetensors", run, f"{run} model.safetensors")
    ckpt = checkpoint.find_resume(run) if (run / "checkpoints").is_dir() else None
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint that verifies in {run}; train first, or pass the run directory "
                                f"that holds the checkpoints")
    ema = sorted(ckpt.glob("ema_*.safetensors"), key=lambda p: p.name)
    return ema[-1] if ema else ckpt / "model.safetensors"


def _guess_kind(weights: Path, config: dict) -> str:
    """unet/refiner if the tensor names are guided-diffusion's UNet layout, else vae (read from the header only)."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        keys = list(f.keys())
    if any(k.startswith(("input_blocks.", "middle_block.", "output_blocks.")) for k in keys):
        return "refiner" if config.get("unet", {}).get("cond_channels", 0) > 0 else "unet"
    return "vae"


# --- publishing a run as a shipped checkpoint ------------------------------------------------------------------
HALF = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


def publish(run_dir: str | Path, name: str, *, dest_dir: str | Path = "checkpoints",
            manifest_path: str | Path = MANIFEST_NAME, dtype: str = "fp16", command: str = "",
            trained_on: str = "", kind: str | None = None, url_base: str = "") -> dict:
    """Write a run's EMA weights as `<name>.safetensors` in `dtype` (fp16 halves the file; loading casts back to
    the model's float32) and its prior as `<name>.prior.safetensors` into dest_dir, and list them in the manifest
    (sha256, size, config, step, command, repo source + optional URL under url_base). Returns the entry."""
    import torch
    from safetensors.torch import load_file, save_file
    if dtype not in HALF:
        raise ValueError(f"dtype={dtype!r}: use one of {', '.join(HALF)}")
    run, dest, manifest_path = Path(run_dir), Path(dest_dir), Path(manifest_path)
    plain_name(name, "name", "give a name without '/' or '..' (it names files)")
    config = json.loads((run / "config.json").read_text())
    weights = _run_weights(run)
    target = getattr(torch, HALF[dtype])
    tensors = {k: (v.to(target) if v.is_floating_point() else v).contiguous() for k, v in load_file(weights).items()}
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / f"{name}.safetensors"
    tmp = out.with_name(f".{out.name}.tmp")
    save_file(tensors, str(tmp), metadata={"irislib_name": name, "dtype": dtype})
    os.chmod(tmp, 0o644)  # readable like any repository file (save_file writes 0600)
    os.replace(tmp, out)
    base = manifest_path.resolve().parent
    entry = {"name": name, "kind": kind or _guess_kind(weights, config), "filename": f"{name}.safetensors",
             **_file_fields(out, base, url_base), "config": config, "trained_on": trained_on or config["data"]["path"],
             "step": _step_of(run), "command": command, "dtype": dtype}
    fitted = checkpoint.prior_path(run)
    if fitted is not None:
        prior = dest / f"{name}.prior.safetensors"
        shutil.copyfile(fitted, prior)
        entry["files"] = [{"filename": PRIOR_FILE, **_file_fields(prior, base, url_base)}]
    doc = _read_json(manifest_path) if manifest_path.is_file() else {"version": 1, "checkpoints": []}
    doc["checkpoints"] = [e for e in doc["checkpoints"] if e["name"] != name] + [entry]
    _validate_doc(doc, str(manifest_path), base)
    _write_atomic(manifest_path, json.dumps(doc, indent=2) + "\n")
    return entry


def _file_fields(path: Path, base: Path, url_base: str) -> dict:
    sources = [{"type": "repo", "path": _source_path(path, base)}]
    if url_base:
        sources.append({"type": "url", "url": f"{url_base.rstrip('/')}/{_source_path(path, base)}"})
    return {"sha256": sha256_file(path), "size": path.stat().st_size, "sources": sources}


def _step_of(run: Path) -> int | None:
    return (checkpoint.read_pointer(run) or {}).get("step")
