"""Hostile manifests (irislib.hub, `irislib fetch`): refused in one line naming the entry and field, and nothing is
created, copied or overwritten outside the download cache. No network: repo sources and refused URLs only."""
import hashlib
import json
from pathlib import Path

import pytest
import torch

from irislib import checkpoint, cli, hub, presets
from irislib.config import ConfigError  # safepath.ConfigError is one; the tests run on older code too

DATA = b"irislib weights " * 64


@pytest.fixture
def share(tmp_path, monkeypatch):
    """A shared folder holding weights.safetensors, the cache at tmp/cache, and the work folder as cwd."""
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "weights.safetensors").write_bytes(DATA)
    monkeypatch.setenv("IRISLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(folder)
    return folder


def entry(name="ckpt", filename="weights.safetensors", sources=None, **extra):
    return {"name": name, "kind": "unet", "filename": filename, "size": len(DATA),
            "sha256": hashlib.sha256(DATA).hexdigest(),
            "sources": sources or [{"type": "repo", "path": "weights.safetensors"}], **extra}


def write_manifest(folder: Path, *entries) -> Path:
    path = folder / "m.json"
    path.write_text(json.dumps({"version": 1, "checkpoints": list(entries)}))
    return path


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def cli_fetch(name, manifest, capsys, *flags) -> tuple[int, str]:
    code = cli.main(["fetch", name, "--manifest", str(manifest), *flags])
    return code, capsys.readouterr().err


def assert_one_line_refusal(code, err, field):
    assert code == 2
    assert err.count("\n") == 1 and field in err and "refused" in err, err


HOSTILE = {  # (name, filename, field the error names)
    "absolute filename": ("ckpt", "{tmp}/outside/pwned.safetensors", "checkpoints[0].filename"),
    "climbing name": ("../outside/x1", "weights.safetensors", "checkpoints[0].name"),
    "climbing name and filename": ("../../escape", "../../../some/dir/pwned.safetensors", "checkpoints[0].name"),
    "climbing filename": ("ckpt", "../outside.safetensors", "checkpoints[0].filename"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_cli_fetch_refuses_names_that_leave_the_cache(share, tmp_path, capsys, case):
    name, filename, field = HOSTILE[case]
    manifest = write_manifest(share, entry(name=name, filename=filename.format(tmp=tmp_path)))
    before = files_under(tmp_path)
    code, err = cli_fetch(name, manifest, capsys)
    assert_one_line_refusal(code, err, field)
    assert files_under(tmp_path) == before           # no cache, no folder or file anywhere, in or out of it


def test_api_fetch_refuses_climbing_name_and_filename(share, tmp_path):
    """The case that wrote a file outside through the Python API: now refused before anything is made."""
    bad = entry(name="../../escape", filename="../../../some/dir/pwned.safetensors")
    cache = tmp_path / "a" / "b" / "c" / "cache"     # deep enough that the climb stays inside tmp_path
    manifest = write_manifest(share, bad)
    before = files_under(tmp_path)
    with pytest.raises(ConfigError, match=r"checkpoints\[0\]\.name='\.\./\.\./escape' refused"):
        hub.fetch("../../escape", manifest=manifest, cache_dir=cache)
    assert files_under(tmp_path) == before and not (tmp_path / "a").exists()


def test_cli_fetch_refuses_a_climbing_extra_file(share, tmp_path, capsys):
    extra = {"filename": "../../outside/prior.safetensors", "size": len(DATA),
             "sha256": hashlib.sha256(DATA).hexdigest(), "sources": [{"type": "repo", "path": "weights.safetensors"}]}
    manifest = write_manifest(share, entry(files=[extra]))
    before = files_under(tmp_path)
    code, err = cli_fetch("ckpt", manifest, capsys)
    assert_one_line_refusal(code, err, "checkpoints[0].files[0].filename")
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("path", ["../secret.safetensors", "{tmp}/secret.safetensors", "link.safetensors"])
def test_cli_fetch_refuses_a_repo_path_outside_the_manifest_folder(share, tmp_path, capsys, path):
    """A file outside the manifest's folder (and the repository) is never read, also through a symbolic link."""
    (tmp_path / "secret.safetensors").write_bytes(DATA)  # what the manifest hopes to copy into the cache
    (share / "link.safetensors").symlink_to(tmp_path / "secret.safetensors")
    manifest = write_manifest(share, entry(sources=[{"type": "repo", "path": path.format(tmp=tmp_path)}]))
    code, err = cli_fetch("ckpt", manifest, capsys)
    assert_one_line_refusal(code, err, "checkpoints[0].sources[0].path")
    assert not (tmp_path / "cache").exists()


def test_repo_path_inside_the_manifest_folder_still_works(share, tmp_path, capsys):
    (share / "sub").mkdir()
    (share / "sub" / "w.safetensors").write_bytes(DATA)
    manifest = write_manifest(share, entry(sources=[{"type": "repo", "path": str(share / "sub" / "w.safetensors")}]))
    assert cli.main(["fetch", "ckpt", "--manifest", str(manifest)]) == 0
    assert (tmp_path / "cache" / "ckpt" / "weights.safetensors").read_bytes() == DATA


@pytest.mark.parametrize("url", ["file:///etc/passwd", "FILE:/etc/passwd", "ftp://example.org/w.safetensors",
                                 "data:application/octet-stream;base64,AAAA", "gopher://example.org/1",
                                 "https:///no-host", "//example.org/w.safetensors"])
def test_cli_fetch_refuses_url_schemes_other_than_https(share, tmp_path, capsys, url):
    manifest = write_manifest(share, entry(sources=[{"type": "url", "url": url}]))
    code, err = cli_fetch("ckpt", manifest, capsys)
    assert_one_line_refusal(code, err, "checkpoints[0].sources[0].url")
    assert not (tmp_path / "cache").exists()
    with pytest.raises(ConfigError, match=r"sources\[0\]\.url=.* refused: (only https|the URL names no host)"):
        hub.list_checkpoints(manifest)


def test_plain_http_only_when_the_user_allows_it(share, tmp_path, capsys, monkeypatch):
    url = "http://example.org/w.safetensors"
    manifest = write_manifest(share, entry(sources=[{"type": "url", "url": url}]))
    assert hub.list_checkpoints(manifest)[0]["name"] == "ckpt"   # listing is fine; fetching is what is refused
    code, err = cli_fetch("ckpt", manifest, capsys)
    assert_one_line_refusal(code, err, "checkpoints[0].sources[0].url")
    assert "--allow-http" in err and not (tmp_path / "cache").exists()
    tried = []

    def offline(src, tmp, base, quiet):             # the transport: no network here
        tried.append(src)
        raise hub._SourceFailed("offline")

    monkeypatch.setattr(hub, "_obtain", offline)
    code, err = cli_fetch("ckpt", manifest, capsys, "--allow-http")
    assert code == 2 and "offline" in err and tried == [{"type": "url", "url": url}]   # allowed: tried


@pytest.mark.parametrize("drive_id", ["../x", "a/b", "id?export=download&x=1", "abc\n"])
def test_gdrive_id_must_be_an_id(share, drive_id):
    manifest = write_manifest(share, entry(sources=[{"type": "gdrive", "id": drive_id}]))
    with pytest.raises(ConfigError, match=r"checkpoints\[0\]\.sources\[0\]"):
        hub.load_manifest(manifest)


def test_register_writes_only_paths_inside_the_manifest_folder(share, tmp_path):
    """A manifest may only name files below its folder, so register refuses to write an absolute path there."""
    run = tmp_path / "elsewhere" / "run"
    checkpoint.save(run, {"model": {"input_blocks.0.0.weight": torch.ones(2, 2)}, "trainer": {"step": 2}},
                    presets.get("tiny"))
    with pytest.raises(ValueError, match="outside .*the manifest's folder"):
        hub.register(run, name="r", manifest_path=share / "m.json")
    assert not (share / "m.json").exists()
    entry_ = hub.register(run, name="r", manifest_path=tmp_path / "m.json")
    assert entry_["sources"] == [{"type": "path", "path": "elsewhere/run/checkpoints/step_000002/model.safetensors"}]
    with pytest.raises(ConfigError, match="name=.*refused"):
        hub.register(run, name="../r", manifest_path=tmp_path / "m.json")
