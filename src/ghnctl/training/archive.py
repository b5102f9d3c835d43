"""Safe, once-only extraction of a ``.tar.gz`` / ``.tgz`` / ``.tar`` data archive.

Every member is checked before anything is written: absolute paths, ``..``, links and device files
make the whole archive refused. Extraction goes to a temporary folder that is renamed into place
with a completion marker, so an interrupted extraction is never mistaken for a complete one, and
two processes extracting the same archive end with one folder.

The members are written by ``_write_members``, not by ``TarFile.extractall(filter="data")``: once
every member is known to be a plain file or folder with a relative path inside the archive, the
data filter's per-member ``realpath`` of the destination and of the target (an ``lstat`` per path
component, ~13 per file here) and its per-member ``TarInfo`` copies only repeat those checks, and
they were most of the time spent on archives of many small images. Only the bytes are kept: files
get the default permissions (0o644 less the umask) and the time of extraction.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ghnctl.training.errors import DataError
from ghnctl.training.sources import PHASE_EXTRACT, PHASE_READ, OnProgress, Progress

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
COMPLETE_MARKER = ".ghnctl-extracted"


def is_archive(path: str | os.PathLike[str]) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def extract_archive(
    archive: Path,
    cache_root: Path,
    status: Callable[[str], None] | None = None,
    *,
    on_progress: OnProgress | None = None,
) -> Path:
    """Extract ``archive`` once into ``cache_root/<name>-<key>/`` and return that folder.

    The key changes when the archive's path, size or modification time does, so an edited archive
    is extracted again. ``status`` hears one line before a (slow) extraction starts; ``on_progress``
    hears ``(PHASE_READ, bytes read, archive size)`` while the members are listed and checked, then
    ``(PHASE_EXTRACT, members written, members)``. Nothing is heard when the folder is reused.
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
        _extract_checked(archive, tmp, on_progress)
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


def _extract_checked(archive: Path, into: Path, on_progress: OnProgress | None = None) -> None:
    try:
        with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
            members = _checked_members(tar, raw, archive, on_progress)
            _write_members(tar, members, into, Progress(on_progress, PHASE_EXTRACT, len(members)))
    except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error) as exc:
        raise DataError(f"cannot extract {str(archive)!r}: {exc}", hint="is it a complete .tar.gz?") from exc


def _checked_members(
    tar: tarfile.TarFile, raw: BinaryIO, archive: Path, on_progress: OnProgress | None
) -> list[tarfile.TarInfo]:
    """Every member's header, each checked as it is read (the first bad one stops the reading).

    Progress is the position in the (compressed) file, the only total known before the end.
    """
    progress = Progress(on_progress, PHASE_READ, os.fstat(raw.fileno()).st_size)
    members = []
    for member in tar:
        check_member(member, archive)
        members.append(member)
        progress.advance(min(raw.tell(), progress.total))
    progress.finish()
    return members


def _write_members(tar: tarfile.TarFile, members: list[tarfile.TarInfo], into: Path, progress: Progress) -> None:
    """Write the (checked) ``members`` under ``into``, a fresh folder: folders, then file bytes.

    A file written twice keeps its last copy, as with ``tar``. Each target is checked to lie under
    ``into`` by its normalised name (no file-system call): the member checks already exclude
    ``..`` and absolute paths, and nothing here creates a link that a later path could follow.
    """
    root = os.path.abspath(into)
    os.makedirs(root)
    made = {root}  # folders known to exist: one makedirs per folder, not one per file
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    for done, member in enumerate(members, 1):
        target = os.path.normpath(os.path.join(root, member.name))
        if target != root and not target.startswith(root + os.sep):
            raise DataError(f"refusing member {member.name!r}: it points outside the destination")
        if member.isdir():
            _make_folder(target, made)
        else:
            _make_folder(os.path.dirname(target), made)
            source = tar.extractfile(member)
            if source is None:  # not reachable for checked members; keeps the type checker honest
                raise DataError(f"cannot read member {member.name!r}")
            with source, open(os.open(target, flags, 0o644), "wb") as out:
                shutil.copyfileobj(source, out)
        progress.advance(done)
    progress.finish()


def _make_folder(path: str, made: set[str]) -> None:
    if path in made:
        return
    os.makedirs(path, exist_ok=True)
    while path not in made:  # its parents exist now too
        made.add(path)
        path = os.path.dirname(path)


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
