"""Safe, once-only extraction of a ``.tar.gz`` / ``.tgz`` / ``.tar`` data archive.

Every member is checked before anything is written: absolute paths, ``..``, links and device files
make the whole archive refused. Extraction goes to a temporary folder that is renamed into place
with a completion marker, so an interrupted extraction is never mistaken for a complete one, and
two processes extracting the same archive end with one folder.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

from ghnctl.training.errors import DataError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
COMPLETE_MARKER = ".ghnctl-extracted"


def is_archive(path: str | os.PathLike[str]) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def extract_archive(archive: Path, cache_root: Path, status: Callable[[str], None] | None = None) -> Path:
    """Extract ``archive`` once into ``cache_root/<name>-<key>/`` and return that folder.

    The key changes when the archive's path, size or modification time does, so an edited archive
    is extracted again. ``status`` hears one line before a (slow) extraction starts.
    """
    archive = archive.resolve()
    stat = archive.stat()
    key = hashlib.sha1(f"{archive}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = _strip_suffix(archive.name)
    dest = cache_root / f"{stem}-{key}"
    if (dest / COMPLETE_MARKER).is_file():
        return dest
    try:
        cache_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {str(cache_root)!r}: {exc.strerror}", hint="set --data-dir") from exc
    if status is not None:
        status(f"extracting {archive.name} into {dest} (once) ...")
    tmp = cache_root / f".{stem}-{key}.{secrets.token_hex(4)}.tmp"
    try:
        _extract_checked(archive, tmp)
        (tmp / COMPLETE_MARKER).write_text(str(archive) + "\n")
        _move_into_place(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _strip_suffix(name: str) -> str:
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _extract_checked(archive: Path, into: Path) -> None:
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                check_member(member, archive)
            tar.extractall(into, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise DataError(f"cannot extract {str(archive)!r}: {exc}", hint="is it a complete .tar.gz?") from exc


def _move_into_place(tmp: Path, dest: Path) -> None:
    try:
        os.replace(tmp, dest)
    except OSError:
        # Another process finished the same extraction first (dest exists and is not empty);
        # a dest without the marker is a leftover of a crash and is replaced.
        if not (dest / COMPLETE_MARKER).is_file():
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(tmp, dest)


def check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse (DataError) a member that could write outside the destination or is not plain data."""
    name = member.name
    parts = Path(name).parts
    if name.startswith(("/", "\\")) or os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"refusing {archive.name}: member {name!r} has an absolute path")
    if ".." in parts:
        raise DataError(f"refusing {archive.name}: member {name!r} points outside the archive ('..')")
    if member.issym() or member.islnk():
        raise DataError(f"refusing {archive.name}: member {name!r} is a link")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"refusing {archive.name}: member {name!r} is not a regular file or folder")
