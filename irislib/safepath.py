"""Names, paths and URLs read from files irislib does not trust: checked before anything is opened or written.

Manifests, run folders from Drive and crop CSVs come from other people (docs/design.md, "Threat model"). Every
name or path they hold goes through one of these checks, so a hostile value cannot point a read or a write
outside the folder it belongs to. Each error is one line naming the file, the entry and the field.
"""
from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

from .config import ConfigError

_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")


class UnsafePathError(ConfigError):
    """A name, path or URL read from a file points outside where it may; the message names the entry and field."""


def refuse(where: str, value, problem: str, fix: str = "fix or delete that entry") -> UnsafePathError:
    """The one-line error for `value` read at `where` (file, entry and field): what is wrong, what to do."""
    return UnsafePathError(f"{where}={value!r} refused: {problem}; {fix}")


def _climbs_or_absolute(value: str) -> str | None:
    """Why `value` (a relative path as written in a file, '/' or '\\' separated) is unsafe, or None."""
    if value.startswith(("/", "\\")) or _DRIVE_LETTER.match(value):
        return "it is an absolute path"
    if value.startswith("~"):
        return "it starts at a home folder ('~')"
    if ".." in re.split(r"[\\/]", value):
        return "it climbs out of its folder with '..'"
    if "\0" in value:
        return "it holds a NUL character"
    return None


def plain_name(value, where: str, fix: str = "fix or delete that entry") -> str:
    """`value` if it is one file or folder name (no separator, not '.' or '..'), else UnsafePathError."""
    if not isinstance(value, str) or not value:
        raise refuse(where, value, "it must be a non-empty string", fix)
    problem = _climbs_or_absolute(value)
    if problem is None and (value in (".", "..") or "/" in value or "\\" in value):
        problem = "it must be a single file name, without a folder"
    if problem is not None:
        raise refuse(where, value, problem, fix)
    return value


def relative_name(value, where: str) -> str:
    """`value` if it is a relative path that stays below its folder (sub/folder/x.png), else UnsafePathError."""
    if not isinstance(value, str) or not value:
        raise refuse(where, value, "it must be a non-empty string")
    problem = _climbs_or_absolute(value)
    if problem is not None:
        raise refuse(where, value, problem)
    return value


def inside(path: str | Path, root: str | Path) -> bool:
    """True if `path` is `root` or below it once both are resolved (symbolic links followed, '..' removed).

    `root` is resolved too, so a linked folder contains whatever its target holds: for folders inside an
    untrusted one (a run folder's checkpoints/), use `unlinked` from the untrusted folder itself."""
    real, top = Path(path).resolve(), Path(root).resolve()
    return real == top or top in real.parents


def is_link(path: str | Path) -> bool:
    """A symbolic link (or a Windows junction, which redirects a folder the same way)."""
    return os.path.islink(path) or bool(getattr(os.path, "isjunction", lambda _: False)(path))


def first_link(path: str | Path, root: str | Path) -> Path | None:
    """The first part of `path` below `root` (root / a / b ...) that is a link, or None. `root` itself may be one:
    it is the folder the user named."""
    root, path = Path(root), Path(path)
    part = root
    for name in path.relative_to(root).parts:
        part = part / name
        if is_link(part):
            return part
    return None


def unlinked(path: str | Path, root: str | Path, where: str) -> Path:
    """`path` (written as root/...) if no folder or file between `root` and it is a link and it resolves inside
    `root`, else UnsafePathError: a link in an untrusted folder can point a read, write or delete anywhere."""
    link = first_link(path, root)
    if link is not None:
        raise refuse(where, str(link), f"it is a symbolic link (to {os.path.realpath(link)}), and {root} may not "
                                       f"hold links", "replace the link by the folder or file itself, or delete it")
    return contained(path, root, where)


def contained(path: str | Path, root: str | Path, where: str) -> Path:
    """`path` if it resolves inside `root` (call before creating or writing it), else UnsafePathError."""
    if not inside(path, root):
        raise refuse(where, str(path), f"it resolves to {Path(path).resolve()}, outside {Path(root).resolve()}")
    return Path(path)


def check_url(url, where: str, allow_http: bool = False) -> str:
    """`url` if it is https (or http when the user allowed it) with a host, else UnsafePathError.

    file:, ftp:, data: and the rest are refused: a manifest must not make irislib read local files or talk to
    anything but a web server."""
    if not isinstance(url, str) or not url:
        raise refuse(where, url, "it must be a non-empty https URL")
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme == "http" and not allow_http:
        raise refuse(where, url, "plain http can be altered in transit; use an https URL, or allow http "
                                  "explicitly (fetch(..., allow_http=True), `irislib fetch --allow-http`)")
    if scheme not in ("https", "http"):
        raise refuse(where, url, f"only https URLs are allowed, not {scheme + ':' if scheme else 'no scheme'}")
    if not parts.hostname:
        raise refuse(where, url, "the URL names no host")
    return url
