"""Safe output files: refuse to overwrite without ``force``, write atomically, save safetensors.

An atomic write goes to a temporary file in the destination's directory (so the final
``os.replace`` is a rename on one file system), is fsynced, then replaces the destination. A reader
sees the old file or the complete new one, never a partial one, and a failed write leaves no
temporary file behind. The temporary name is ghnctl's own (``.<name>.<12 hex>.tmp``, created with
the permissions a plain ``open()`` gives under the umask), so the output gets those permissions
and a process killed mid-write leaves a file the next write to the same path removes once stale.
safetensors files are serialised here, one tensor at a time, rather than by
``safetensors.torch.save_file``, which writes through a 0600 temporary file of its own naming.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import struct
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ghnctl.errors import OutputExists, OutputNotWritable

if TYPE_CHECKING:
    import torch


def check_output_path(path: str | os.PathLike[str], force: bool = False) -> Path:
    """Check that ``path`` can be written, before any expensive work; return it as a Path.

    Raises OutputExists when it exists and ``force`` is false, OutputNotWritable when it is a
    directory or its parent is missing, not a directory, or not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputNotWritable(f"output {str(path)!r} is a directory", hint="give a file name")
    if path.exists() and not force:
        raise OutputExists(f"output {str(path)!r} already exists", hint="use --force to overwrite it")
    parent = path.parent
    if not parent.exists():
        raise OutputNotWritable(
            f"cannot write {str(path)!r}: directory {str(parent)!r} does not exist",
            hint="create it first",
        )
    if not parent.is_dir():
        raise OutputNotWritable(f"cannot write {str(path)!r}: {str(parent)!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputNotWritable(f"cannot write {str(path)!r}: directory {str(parent)!r} is not writable")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on clean exit it replaces ``path`` atomically.

    For writers that want a file name (``safetensors.save_file``, graphviz): write to the yielded
    path and return. On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = check_output_path(path, force)
    remove_stale_temporaries(path)
    tmp = _create_temp_beside(path)
    try:
        yield tmp
        _fsync_file(tmp)
        if not force and path.exists():
            # Something created the file while we were writing: still refuse to clobber it.
            raise OutputExists(f"output {str(path)!r} already exists", hint="use --force to overwrite it")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, force: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_path(path, force) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, force: bool = False, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; return the path."""
    return atomic_write_bytes(path, text.encode(encoding), force)


def save_safetensors_atomic(
    tensors: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    metadata: Mapping[str, Any] | None = None,
    force: bool = False,
) -> Path:
    """Save ``tensors`` as a safetensors file, atomically; return the path.

    safetensors metadata must be ``str -> str``: string values are stored as they are, any other
    value as JSON. Tensors are moved to the CPU and made contiguous; a tensor that shares storage
    with an earlier one (tied weights) is stored as its own copy, because safetensors refuses
    shared storage.
    """
    prepared: dict[str, torch.Tensor] = {}
    seen_storages: set[int] = set()
    for name, tensor in tensors.items():
        t = tensor.detach().cpu().contiguous()
        storage = t.untyped_storage().data_ptr()
        if storage in seen_storages and t.numel():
            t = t.clone()
        seen_storages.add(storage)
        prepared[name] = t
    str_metadata = {
        str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in (metadata or {}).items()
    }
    with atomic_path(path, force) as tmp, open(tmp, "wb") as f:
        write_safetensors(f, prepared, str_metadata)
    return Path(path)


def _safetensors_dtypes() -> dict[Any, str]:
    import torch

    return {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
            torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
            torch.uint8: "U8", torch.bool: "BOOL"}


def write_safetensors(f: Any, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> None:
    """Write the safetensors format to the binary file ``f``: an 8-byte little-endian header length,
    the JSON header (padded with spaces so the data starts 8-byte aligned), then each tensor's
    bytes in header order. Tensors must be contiguous CPU tensors; one is copied at a time.
    """
    import torch

    dtypes = _safetensors_dtypes()
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, tensor in tensors.items():
        if tensor.dtype not in dtypes:
            raise ValueError(f"cannot save {name!r}: dtype {tensor.dtype} is not supported")
        size = tensor.numel() * tensor.element_size()
        header[name] = {"dtype": dtypes[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    f.write(struct.pack("<Q", len(raw)))
    f.write(raw)
    for tensor in tensors.values():
        if tensor.numel():
            f.write(memoryview(tensor.reshape(-1).view(torch.uint8).numpy()))


# A temporary file of ours that has not been written to for this long belongs to a dead process.
STALE_TEMP_SECONDS = 15 * 60


def remove_stale_temporaries(path: Path, max_age: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Delete ``.<path.name>.<12 hex>.tmp`` files beside ``path`` untouched for ``max_age`` s."""
    pattern = re.compile(re.escape(f".{path.name}.") + r"[0-9a-f]{12}\.tmp")
    removed: list[Path] = []
    try:
        candidates = list(path.parent.iterdir())
    except OSError:
        return removed
    now = time.time()
    for candidate in candidates:
        if not pattern.fullmatch(candidate.name):
            continue
        try:
            if now - candidate.stat().st_mtime > max_age:
                candidate.unlink()
                removed.append(candidate)
        except OSError:
            continue  # another process removed or renamed it first
    return removed


def _create_temp_beside(path: Path) -> Path:
    """Create an empty, uniquely named hidden file in ``path``'s directory.

    Not ``tempfile.mkstemp``: that creates the file 0600, while the output should get the
    permissions a plain ``open()`` gives (0666 less the umask).
    """
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputNotWritable(f"cannot write {str(path)!r}: {exc.strerror}") from exc
        os.close(fd)
        return tmp
    raise OutputNotWritable(f"cannot create a temporary file beside {str(path)!r}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable; not every platform can open a directory, which is fine."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()
