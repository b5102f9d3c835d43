"""The on-disk cache of downloaded GHNs: layout, look-up, listing and clearing.

Layout under the cache directory (``GHNCTL_CACHE_DIR``, default the platform cache dir, read at
every call)::

    ghns/<name>/<sha256>.safetensors   the GHN in ghnctl's format; <sha256> is the download's hash
    ghns/<name>/meta.json              written last: an entry counts only once this exists
    ghns/<name>/download-*.part(.json) an unfinished download (resumed by the next pull)
    locks/<name>.lock                  inter-process download lock (may stay after use)
    locks/<name>.lock.pid              ``pid@host`` of the lock's holder, while held

``<name>`` is a registry name (``ghn3tm8``) or ``url-<hash>`` for a GHN given by URL. An entry
whose ``meta.json`` is missing or unreadable, or whose file is missing or of the wrong size, is not
trusted: ``lookup`` ignores it and the next pull downloads again.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ghnctl import settings
from ghnctl.errors import GhnctlError, UsageError

GHNS_DIR = "ghns"
LOCKS_DIR = "locks"
META_FILE = "meta.json"
META_VERSION = 1
PART_SUFFIX = ".part"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class CachedGhn:
    """A GHN in the cache. ``path`` is its safetensors file; the rest comes from ``meta.json``.

    ``sha256``/``size`` describe the downloaded original file; ``sha256_source`` says what the
    hash was checked against: ``registry`` (pinned), ``server`` (declared by the server) or
    ``computed`` (nothing to check against: recorded on first download).
    """

    name: str
    path: Path
    sha256: str
    size: int
    file_size: int
    url: str
    sha256_source: str
    downloaded_at: str
    original_format: str
    params: int | None
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "sha256": self.sha256,
            "size": self.size,
            "file_size": self.file_size,
            "url": self.url,
            "sha256_source": self.sha256_source,
            "downloaded_at": self.downloaded_at,
            "original_format": self.original_format,
            "params": self.params,
            "config": self.config,
        }


@dataclass(frozen=True)
class Partial:
    """An unfinished download: resumable, never used as a GHN."""

    name: str
    path: Path
    size: int


def cache_path() -> Path:
    """The cache directory now (``GHNCTL_CACHE_DIR`` or the platform default); not created."""
    return settings.cache_dir()


def check_name(name: str) -> str:
    """``name`` if it is a safe cache entry name (no path separators, no ``..``)."""
    if not _NAME.match(name) or ".." in name:
        raise UsageError(
            f"{name!r} is not a valid GHN cache name", hint="use a name from `ghnctl ghn list` or `ghnctl cache list`"
        )
    return name


def entry_dir(name: str) -> Path:
    return cache_path() / GHNS_DIR / check_name(name)


def lock_path(name: str) -> Path:
    return cache_path() / LOCKS_DIR / f"{check_name(name)}.lock"


def url_cache_name(url: str) -> str:
    """The cache name of a GHN given by URL: ``url-`` + 16 hex digits of the URL's sha256."""
    return "url-" + hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------
def lookup(name: str) -> CachedGhn | None:
    """The complete, trusted cache entry for ``name``, or None. Never touches the network."""
    directory = entry_dir(name)
    try:
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        path = directory / meta["file"]
        if path.parent != directory or path.stat().st_size != int(meta["file_size"]):
            return None
        return CachedGhn(
            name=name,
            path=path,
            sha256=str(meta["sha256"]),
            size=int(meta["size"]),
            file_size=int(meta["file_size"]),
            url=str(meta["url"]),
            sha256_source=str(meta["sha256_source"]),
            downloaded_at=str(meta["downloaded_at"]),
            original_format=str(meta.get("original_format", "")),
            params=meta.get("params"),
            config=dict(meta.get("config") or {}),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def list_cached() -> list[CachedGhn]:
    """Every complete entry in the cache, sorted by name."""
    root = cache_path() / GHNS_DIR
    if not root.is_dir():
        return []
    entries = (lookup(d.name) for d in sorted(root.iterdir()) if d.is_dir() and _NAME.match(d.name))
    return [e for e in entries if e is not None]


def list_partial() -> list[Partial]:
    """Unfinished downloads in the cache."""
    root = cache_path() / GHNS_DIR
    if not root.is_dir():
        return []
    return [
        Partial(d.name, p, p.stat().st_size)
        for d in sorted(root.iterdir())
        if d.is_dir()
        for p in sorted(d.glob(f"*{PART_SUFFIX}"))
    ]


def write_meta(name: str, meta: dict[str, Any]) -> None:
    """Write ``meta.json`` atomically: the entry becomes visible to ``lookup`` at this moment."""
    from ghnctl.io import atomic_write_text

    data = {"meta_version": META_VERSION, **meta}
    atomic_write_text(entry_dir(name) / META_FILE, json.dumps(data, indent=2, sort_keys=True) + "\n", force=True)


def remove_stale_files(name: str, keep: Path) -> None:
    """After a successful pull (under the lock): delete everything but ``keep`` and ``meta.json``.

    That is older safetensors, partial downloads and temporary files left by interrupted runs.
    """
    for path in entry_dir(name).iterdir():
        if path != keep and path.name != META_FILE and path.is_file():
            path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cleared:
    """What ``clear`` removed."""

    names: list[str]
    freed_bytes: int


def clear(name: str | None = None, *, lock_timeout: float = 0.0) -> Cleared:
    """Delete one entry (``name``) or every entry, partial downloads included.

    Each entry is deleted under its download lock, so a download in progress is never pulled out
    from under its process: that raises ``LockTimeout`` instead. Lock files stay (they are empty).
    """
    from ghnctl.hub.lock import DownloadLock

    root = cache_path() / GHNS_DIR
    if name is not None:
        targets = [entry_dir(name)]
    elif root.is_dir():
        targets = sorted(d for d in root.iterdir() if d.is_dir() and _NAME.match(d.name))
    else:
        targets = []
    removed: list[str] = []
    freed = 0
    for directory in targets:
        if not directory.exists():
            continue
        with DownloadLock(lock_path(directory.name), timeout=lock_timeout):
            freed += _tree_size(directory)
            try:
                shutil.rmtree(directory)
            except OSError as exc:
                raise GhnctlError(
                    f"cannot delete {str(directory)!r}: {exc.strerror}",
                    hint="check the permissions of the cache directory",
                ) from exc
        removed.append(directory.name)
    return Cleared(removed, freed)


def _tree_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
