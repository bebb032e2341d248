"""irislib.hub: manifest, gdown downloads from a local HTTP server, hash checks, fallbacks, cache, register."""
import hashlib
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import gdown  # noqa: F401  (registers the gdown.download module patched below)
import pytest
import requests
import torch
from safetensors.torch import save_file

from irislib import checkpoint, hub, presets
from irislib.config import ConfigError

GOOD = bytes(range(256)) * 40 + b"irislib weights"       # 10 255 bytes
WRONG = bytes(reversed(GOOD))                                # same size, other hash
QUOTA_PAGE = (b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>"
              b"<p class=\"uc-error-caption\">Sorry, you can't view or download this file at this time.</p>"
              b"<p class=\"uc-error-subcaption\">Too many users have viewed or downloaded this file recently. "
              b"Please try accessing the file again later. If the file you are trying to access is particularly "
              b"large or is shared with many people, it may take up to 24 hours to be able to view or download "
              b"the file.</p></body></html>")
LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Sign in - Google Accounts</title></head><body>Sign in</body></html>"
CONFIRM_PAGE = (b"<!DOCTYPE html><html><body><form id=\"download-form\" "
                b"action=\"https://drive.usercontent.google.com/download\" method=\"get\">"
                b"<input type=\"hidden\" name=\"id\" value=\"BIGID\">"
                b"<input type=\"hidden\" name=\"confirm\" value=\"t\">"
                b"</form></body></html>")
GOOGLE_HOSTS = ("drive.google.com", "docs.google.com", "drive.usercontent.google.com")


class Handler(BaseHTTPRequestHandler):
    """Plain URLs under /f/, Google Drive's endpoints under /g/<host>/ (the tests reroute Google hosts here)."""
    hits: list = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status, body, ctype="application/octet-stream", length=None, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def do_GET(self):
        Handler.hits.append(self.path)
        parts = urllib.parse.urlsplit(self.path)
        if parts.path.startswith("/g/"):
            return self._drive(parts)
        routes = {"/f/good.safetensors": (200, GOOD, "application/octet-stream", None),
                  "/f/wrong.safetensors": (200, WRONG, "application/octet-stream", None),
                  "/f/forbidden": (403, b"<html><body>403 Forbidden</body></html>", "text/html", None),
                  "/f/missing": (404, b"<html><body>404 Not Found</body></html>", "text/html", None),
                  "/f/quota": (200, QUOTA_PAGE, "text/html; charset=utf-8", None),
                  "/f/cut": (200, GOOD[:3000], "application/octet-stream", len(GOOD)),  # connection drops early
                  "/f/short": (200, GOOD[:3000], "application/octet-stream", None)}    # a complete but short file
        status, body, ctype, length = routes.get(parts.path, (404, b"not found", "text/plain", None))
        self._send(status, body, ctype, length)

    def _drive(self, parts):
        file_id = urllib.parse.parse_qs(parts.query).get("id", [""])[0]
        attachment = [("Content-Disposition", 'attachment; filename="weights.safetensors"')]
        if parts.path.endswith("/download") and file_id == "BIGID":
            return self._send(200, GOOD, headers=attachment)
        if file_id == "GOODID":
            return self._send(200, GOOD, headers=attachment)
        page = {"BIGID": CONFIRM_PAGE, "QUOTAID": QUOTA_PAGE}.get(file_id, LOGIN_PAGE)
        self._send(200, page, "text/html; charset=utf-8")


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def sandbox(tmp_path, monkeypatch, server):
    """Cache in tmp, gdown's cookie file in tmp, Google hosts routed to the local server, loading forbidden."""
    monkeypatch.setenv("IRISLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".cache" / "gdown").mkdir(parents=True)  # gdown 5.x makes it at import, under the real home
    monkeypatch.setattr(sys.modules["gdown.download"], "DEFAULT_COOKIES_FILE",
                        str(tmp_path / ".cache" / "gdown" / "cookies.txt"), raising=False)
    monkeypatch.setattr(sys.modules["gdown.download"], "home", str(tmp_path), raising=False)  # gdown 5.x
    orig_send = requests.adapters.HTTPAdapter.send

    def send(self, request, **kwargs):  # transport only: gdown builds the real Drive URLs itself
        p = urllib.parse.urlsplit(request.url)
        if p.hostname in GOOGLE_HOSTS:
            request.url = f"{server}/g/{p.hostname}{p.path}?{p.query}"
        return orig_send(self, request, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)

    def no_load(*a, **k):
        raise AssertionError("hub must not load weights")

    monkeypatch.setattr(torch, "load", no_load)
    Handler.hits.clear()
    yield tmp_path


def manifest(*sources, name="ckpt", data=GOOD, **extra):
    entry = {"name": name, "kind": "unet", "filename": "weights.safetensors", "size": len(data),
             "sha256": hashlib.sha256(data).hexdigest(), "config": {"unet": {"image_size": 32}},
             "trained_on": "synthetic:16", "command": "irislib train-diffusion --preset tiny",
             "sources": list(sources), **extra}
    return {"version": 1, "checkpoints": [entry]}


def url(server, path):
    return {"type": "url", "url": f"{server}/f/{path}"}


def cache_files(tmp_path):
    root = tmp_path / "cache"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_url_download_verifies_writes_config_and_reuses_cache(server, sandbox):
    m = manifest(url(server, "good.safetensors"))
    path = hub.fetch("ckpt", manifest=m, allow_http=True)        # the test server is plain http
    assert path == sandbox / "cache" / "ckpt" / "weights.safetensors"
    assert path.read_bytes() == GOOD
    assert json.loads((path.parent / "config.json").read_text()) == {"unet": {"image_size": 32}}
    assert Handler.hits == ["/f/good.safetensors"]
    assert hub.fetch("ckpt", manifest=m, allow_http=True) == path   # cached: hash verifies, no request
    assert Handler.hits == ["/f/good.safetensors"]


@pytest.mark.parametrize("path, reason", [
    ("wrong.safetensors", "sha256 mismatch"),
    ("forbidden", "permission denied"),
    ("missing", "not found"),
    ("quota", "Too many users have viewed or downloaded this file recently"),
    ("cut", "truncated download"),
    ("short", "truncated download: got 3000 bytes"),
])
def test_failed_download_names_reason_and_leaves_nothing(server, sandbox, path, reason):
    with pytest.raises(hub.FetchError) as err:
        hub.fetch("ckpt", manifest=manifest(url(server, path)), allow_http=True)
    assert reason in str(err.value)
    assert f"{server}/f/{path}" in str(err.value)
    assert cache_files(sandbox) == ["ckpt"]                # no partial, temp or config file


def test_falls_back_through_sources_in_order(server, sandbox, capsys):
    m = manifest(url(server, "missing"), url(server, "quota"), {"type": "gdrive", "id": "GOODID"})
    path = hub.fetch("ckpt", manifest=m, allow_http=True)
    assert path.read_bytes() == GOOD
    err = capsys.readouterr().err
    assert "source 1/3" in err and "not found" in err and f"trying source 2 (URL {server}/f/quota)" in err
    assert "quota exceeded" in err and "trying source 3 (Google Drive id GOODID)" in err
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json", "weights.safetensors"]


@pytest.mark.parametrize("file_id, reason", [
    ("GOODID", None), ("BIGID", None),                     # direct file; virus-scan confirmation form
    ("QUOTAID", "Too many users have viewed or downloaded this file recently"),
    ("PRIVATEID", "not shared publicly"),
])
def test_gdrive_id_through_gdown(sandbox, file_id, reason):
    m = manifest({"type": "gdrive", "id": file_id})
    if reason is None:
        assert hub.fetch("ckpt", manifest=m).read_bytes() == GOOD
        assert any(h.startswith("/g/drive.google.com/uc?id=" + file_id) for h in Handler.hits)
    else:
        with pytest.raises(hub.FetchError, match=reason):
            hub.fetch("ckpt", manifest=m)
        assert cache_files(sandbox) == ["ckpt"]


def test_corrupt_cached_file_is_replaced(server, sandbox):
    target = sandbox / "cache" / "ckpt" / "weights.safetensors"
    target.parent.mkdir(parents=True)
    target.write_bytes(WRONG)
    assert hub.fetch("ckpt", manifest=manifest(url(server, "good.safetensors")), allow_http=True).read_bytes() == GOOD


def test_repo_source_relative_to_manifest_folder(sandbox):
    (sandbox / "ckpts").mkdir()
    (sandbox / "ckpts" / "w.safetensors").write_bytes(GOOD)
    mpath = sandbox / "m.json"
    mpath.write_text(json.dumps(manifest({"type": "repo", "path": "ckpts/w.safetensors"})))
    assert hub.fetch("ckpt", manifest=mpath).read_bytes() == GOOD
    assert hub.list_checkpoints(mpath) == [{"name": "ckpt", "kind": "unet", "size": len(GOOD),
                                            "trained_on": "synthetic:16", "sources": ["repo"]}]


def test_manifest_errors_name_the_field(sandbox, monkeypatch):
    bad = manifest({"type": "repo", "path": "x"})
    bad["checkpoints"][0]["sha256"] = "abc"
    with pytest.raises(ConfigError, match=r"checkpoints\[0\]\.sha256"):
        hub.fetch("ckpt", manifest=bad)
    with pytest.raises(ConfigError, match="sources"):
        hub.load_manifest(manifest({"type": "ftp", "path": "x"}))
    monkeypatch.setenv("IRISLIB_MANIFEST", str(sandbox / "missing.json"))
    with pytest.raises(FileNotFoundError, match="missing.json"):
        hub.list_checkpoints()
    for exc in (ValueError, KeyError):                     # the pipeline catches KeyError
        with pytest.raises(exc, match="did you mean 'ckpt'"):
            hub.fetch("ckpd", manifest=manifest({"type": "repo", "path": "x"}))


def make_run(root: Path, unet: bool = True) -> Path:
    """A run directory written by the trainer's own checkpoint.save (model + EMA, latest.json pointer)."""
    key = "input_blocks.0.0.weight" if unet else "encoder.conv_in.weight"
    state = {"model": {key: torch.full((2, 2), 1.0)}, "ema": {"ema_0.999": {key: torch.full((2, 2), 2.0)}},
             "trainer": {"step": 2}}
    exp = presets.get("tiny").override(["data.path=synthetic:16"])
    checkpoint.save(root / "run-a", state, exp)
    return root / "run-a"


def test_register_then_fetch_by_name(sandbox):
    run = make_run(sandbox)
    entry = hub.register(run, name="my-unet")
    ema = run / "checkpoints" / "step_000002" / "ema_0.999.safetensors"
    assert entry["kind"] == "unet" and entry["filename"] == "ema_0.999.safetensors"
    assert entry["sha256"] == hashlib.sha256(ema.read_bytes()).hexdigest()
    doc = json.loads((sandbox / hub.LOCAL_MANIFEST_NAME).read_text())
    assert [e["name"] for e in doc["checkpoints"]] == ["my-unet"]
    hub.register(run, name="my-unet")                      # re-register replaces, never duplicates
    assert len(json.loads((sandbox / hub.LOCAL_MANIFEST_NAME).read_text())["checkpoints"]) == 1
    path = hub.fetch("my-unet")                            # default manifests include ./checkpoints_manifest.local.json
    assert path.read_bytes() == ema.read_bytes()
    assert json.loads((path.parent / "config.json").read_text())["data"]["path"] == "synthetic:16"


def test_register_without_pointer_and_vae_kind(sandbox):
    run = make_run(sandbox, unet=False)
    (run / "latest.json").unlink()
    assert hub.register(run, manifest_path=sandbox / "m.json")["kind"] == "vae"
    ema = run / "checkpoints" / "step_000002" / "ema_0.999.safetensors"
    ema.write_bytes(ema.read_bytes()[:-1] + b"!")            # a damaged checkpoint (its manifest no longer verifies)
    with pytest.warns(UserWarning, match="skipping damaged checkpoint"), \
            pytest.raises(FileNotFoundError, match="no checkpoint that verifies"):
        hub.register(run, manifest_path=sandbox / "m.json")
    assert ema.exists()


def test_fetch_run_builds_a_run_directory_that_load_run_reads(sandbox):
    run = make_run(sandbox, unet=False)
    prior = {"means": torch.arange(6.0).reshape(2, 3)}
    save_file(prior, str(run / hub.PRIOR_FILE))                 # a VAE run with its fitted prior
    entry = hub.register(run, name="v")
    assert entry["kind"] == "vae" and [f["filename"] for f in entry["files"]] == [hub.PRIOR_FILE]
    run_copy = hub.fetch_run("v")
    exp, state = checkpoint.load_run(run_copy)
    assert exp.to_dict() == json.loads((run / "config.json").read_text())
    assert torch.equal(state["encoder.conv_in.weight"], torch.full((2, 2), 2.0))   # the published EMA weights
    assert torch.equal(checkpoint.load_prior(run_copy)["means"], prior["means"])
    stamp = run_copy / "manifest.json"                         # the bare run's sha256 list, written by checkpoint/
    assert json.loads(stamp.read_text())["source"] == entry["sha256"]
    before = stamp.stat().st_mtime_ns
    assert hub.fetch_run("v") == run_copy and stamp.stat().st_mtime_ns == before   # built once, then reused


def test_package_copy_of_the_manifest_equals_the_root_manifest():
    """pip installs (Colab's %pip install git+...) only carry irislib/; its copy must not drift from the root one."""
    root = Path(__file__).resolve().parents[1]
    assert (root / "irislib" / "checkpoints_manifest.json").read_text() == \
        (root / "checkpoints_manifest.json").read_text()


def test_shipped_pair_verifies_and_loads(tmp_path, monkeypatch):
    """The checkpoint pair in the repository passes its sha256 check and builds models from its config alone."""
    from irislib.train import pipeline
    monkeypatch.setenv("IRISLIB_CACHE", str(tmp_path / "cache"))
    unet, diffusion, exp = pipeline.load_unet("tiny-synthetic-unet")
    vae, prior = pipeline.load_vae("tiny-synthetic-vae")
    assert exp.unet.image_size == vae.cfg.image_size == 32 and prior is not None
    assert diffusion.num_timesteps == exp.diffusion.diffusion_steps


def test_fetch_run_never_serves_weights_the_cache_replaced(sandbox):
    run = make_run(sandbox, unet=False)
    entry = hub.register(run, name="v")
    run_copy = hub.fetch_run("v")
    cached = hub.fetch("v")
    with open(cached, "r+b") as f:  # damaged in place: the cache file and run/model.safetensors share the inode
        f.seek(100)
        f.write(b"\x00garbage\x00")
    again = hub.fetch_run("v")  # fetch() deletes and re-downloads the damaged cache file; run/ must follow it
    assert hub.sha256_file(cached) == entry["sha256"]
    assert hub.sha256_file(again / "model.safetensors") == entry["sha256"]
    exp, state = checkpoint.load_run(again)
    assert torch.equal(state["encoder.conv_in.weight"], torch.full((2, 2), 2.0))
    assert again == run_copy
