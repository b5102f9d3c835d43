"""Reading official GHN checkpoints safely, and ghnctl's own safetensors format.

Official files are pickles, and unpickling runs whatever callables a file names. Every pickle here
goes through ``_RestrictedUnpickler``: it resolves only the globals on an explicit allow-list (spec
sections 1.2 and 1.3), each mapped to a stand-in written here (no torch function ever runs on file
data), and refuses everything else with ``UnsafeCheckpoint`` before anything is executed. There is
no fallback to an unrestricted load. Before that, ``pickle_scan`` walks the opcodes once and
refuses deep nesting, oversized claims and ``BUILD`` on anything but a state_dict's ``_metadata``.

Memory: every storage is checked against the bytes the file really has before it is allocated,
every tensor must fit inside its storage, and tensors may not share storage to multiply it, so a
file costs at most about twice its size (half-precision weights become float32).

Formats, told apart by their first bytes:

* ``PK``: torch.save zip archive (``<name>/data.pkl`` + raw ``<name>/data/<key>`` storages), as the
  official trainer writes (``{'state_dict', 'config', 'optimizer', 'args', ...}``);
* ``\\x80``: a pickle: a joblib dump of a state_dict (HuggingFace GHN files; each tensor's storage is
  a nested legacy torch.save blob), or a legacy (pre-zip) torch.save file;
* zlib / gzip / bz2 / xz magic: a compressed joblib dump;
* a safetensors header: ghnctl's own format (``save_ghn``), config JSON in the metadata.
"""

from __future__ import annotations

import bz2
import collections
import io
import lzma
import os
import pickle
import struct
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ..errors import CheckpointError, UnsafeCheckpoint, excerpt
from .config import GhnConfig, infer_config
from .pickle_scan import scan_pickle

# ----------------------------------------------------------------------------------------------------
# Stand-ins for the globals a GHN checkpoint may name

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


@dataclass(frozen=True, slots=True)
class _StorageType:
    """What ``torch.FloatStorage`` & co. resolve to: only a dtype tag (immutable: shared by all loads)."""

    name: str
    dtype: torch.dtype

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize


class _Storage:
    """A flat tensor holding one storage's elements."""

    __slots__ = ("data",)

    def __init__(self, data: torch.Tensor) -> None:
        self.data = data


class _Namespace:
    """Stand-in for ``argparse.Namespace`` (trainer ``args``): keeps string-named attributes."""

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, dict) and all(isinstance(k, str) for k in state)):
            raise UnsafeCheckpoint("checkpoint sets trainer arguments from something other than a dict of names")
        self.__dict__.update(state)


class _StateDict(collections.OrderedDict):
    """Stand-in for ``collections.OrderedDict``; its pickled state may only be torch's ``_metadata``.

    ``module.state_dict()`` carries a ``_metadata`` attribute (per-module versions), so real
    checkpoints BUILD it; anything else (e.g. an ``items`` attribute hiding the method) is refused.
    """

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and state[1] is None:
            state = state[0]
        if not (isinstance(state, dict) and set(state) <= {"_metadata"}):
            names = ", ".join(excerpt(k) for k in list(state)[:3]) if isinstance(state, dict) else excerpt(state)
            raise UnsafeCheckpoint(f"checkpoint sets attributes {names} on a state_dict; only _metadata "
                                   "is expected", "the file is malicious or not a GHN checkpoint")


def _ensure(condition: bool, reason: str) -> None:
    if not condition:
        raise CheckpointError(f"malformed checkpoint: {reason}")


def _is_int_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                    hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v2``: a strided view of a storage, bounds-checked."""
    _ensure(isinstance(storage, _Storage), "a tensor's storage is not a storage")
    _ensure(isinstance(offset, int) and offset >= 0, "bad storage offset")
    _ensure(_is_int_tuple(size) and _is_int_tuple(stride) and len(size) == len(stride),
            "bad tensor size/stride")
    _ensure(all(s >= 0 for s in size) and all(s >= 0 for s in stride), "negative size or stride")
    numel = storage.data.numel()
    if all(s > 0 for s in size):
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        _ensure(last < numel, f"tensor view reaches element {last} of a storage of {numel}")
        # A view with more elements than its storage repeats elements (stride 0, overlaps): real
        # checkpoints never do, and a copy of it (e.g. to float32) could cost far more than the file.
        count = 1
        for n in size:
            count *= n
        _ensure(count <= numel - offset, f"a tensor of {count} elements views a storage of {numel - offset}")
    return storage.data.as_strided(size, stride, offset)


def _rebuild_parameter(data: Any, requires_grad: Any = False, hooks: Any = None,
                       state: Any = None) -> torch.Tensor:
    """``torch._utils._rebuild_parameter``: checkpoints only need the values."""
    _ensure(isinstance(data, torch.Tensor), "a parameter without tensor data")
    return data


# ----------------------------------------------------------------------------------------------------
# The restricted unpickler

_COMMON_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _StateDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only allow-listed globals and validated persistent ids."""

    def __init__(self, file: BinaryIO, allowed: Mapping[tuple[str, str], Any],
                 persistent: Callable[[Any], Any] | None = None) -> None:
        super().__init__(file)
        self._allowed = allowed
        self._persistent = persistent

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except (KeyError, TypeError):
            raise UnsafeCheckpoint(
                f"checkpoint refers to {excerpt(f'{module}.{name}', 80)}, which is not allowed in a GHN checkpoint; "
                "nothing from the file was executed",
                "only load checkpoints from sources you trust; the file may be malicious or not a GHN",
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise UnsafeCheckpoint("checkpoint uses a persistent id where none is expected",
                                   "the file is not a GHN checkpoint of a known format")
        return self._persistent(pid)


# Globals whose instances a pickle may BUILD (their stand-ins check the state themselves).
_BUILDABLE = ("collections.OrderedDict", "argparse.Namespace")


def _unpickle(stream: BinaryIO, allowed: Mapping[tuple[str, str], Any],
              persistent: Callable[[Any], Any] | None = None) -> Any:
    scan_pickle(stream, buildable=_BUILDABLE)
    try:
        return _RestrictedUnpickler(stream, allowed, persistent).load()
    except CheckpointError:
        raise
    except RecursionError:
        raise CheckpointError("malformed checkpoint: pickle nests too deeply") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, struct.error, MemoryError, OverflowError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"truncated or corrupt checkpoint: {reason}") from None


def _new_storage(numel: int, storage_type: _StorageType) -> tuple[_Storage, bytearray]:
    """A zero-filled storage and the writable buffer it views (fill the buffer to fill the storage)."""
    buffer = bytearray(numel * storage_type.itemsize)
    data = torch.frombuffer(buffer, dtype=storage_type.dtype) if buffer else torch.empty(0, dtype=storage_type.dtype)
    return _Storage(data), buffer


def _storage_type_of(value: Any) -> _StorageType:
    if not isinstance(value, _StorageType):
        raise UnsafeCheckpoint("checkpoint storage record names no known storage type")
    return value


# ----------------------------------------------------------------------------------------------------
# Legacy (pre-zip) torch.save streams: the nested blobs of joblib files, and old .pt files

def _load_legacy(stream: BinaryIO, allowed: Mapping[tuple[str, str], Any], size: int) -> Any:
    """Parse a legacy torch.save stream of ``size`` bytes: magic, protocol, sys info, object, keys, data.

    Storages are allocated when the object pickle names them (tensors are views of them) and
    filled in place from the raw section that follows; a storage may not claim more bytes than the
    stream has.
    """
    plain: dict[tuple[str, str], Any] = {}
    magic = _unpickle(stream, plain)
    _ensure(magic == _LEGACY_MAGIC, "legacy torch.save magic number missing")
    protocol = _unpickle(stream, plain)
    _ensure(protocol == _LEGACY_PROTOCOL, f"unsupported legacy torch.save protocol {protocol!r}")
    sys_info = _unpickle(stream, plain)
    _ensure(isinstance(sys_info, dict), "legacy torch.save system info missing")
    _ensure(sys_info.get("little_endian", True) is True, "big-endian checkpoints are not supported")

    storages: dict[str, tuple[_Storage, bytearray]] = {}
    claimed = 0

    def persistent(pid: Any) -> _Storage:
        nonlocal claimed
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise UnsafeCheckpoint(f"unknown persistent id in legacy checkpoint: {excerpt(pid)}")
        _, storage_type, key, _location, numel, view = pid
        storage_type = _storage_type_of(storage_type)
        _ensure(isinstance(key, str) and isinstance(numel, int) and numel >= 0, "bad legacy storage record")
        _ensure(view is None, "legacy storage views are not supported")
        if key not in storages:
            claimed += numel * storage_type.itemsize
            _ensure(claimed <= size, "storages claim more bytes than the file has")
            storages[key] = _new_storage(numel, storage_type)
        return storages[key][0]

    obj = _unpickle(stream, allowed, persistent)
    keys = _unpickle(stream, plain)
    _ensure(isinstance(keys, list) and all(isinstance(k, str) for k in keys), "legacy storage key list")
    _ensure(sorted(keys) == sorted(storages), "legacy storage keys do not match the storage records")
    for key in keys:
        storage, buffer = storages[key]
        header = stream.read(8)
        _ensure(len(header) == 8, "truncated storage data")
        (count,) = struct.unpack("<q", header)
        _ensure(count == storage.data.numel(),
                f"storage {excerpt(key)} holds {count} elements, expected {storage.data.numel()}")
        _ensure(stream.readinto(buffer) == len(buffer), "truncated storage data")
    return obj


def _load_storage_from_bytes(blob: Any) -> _Storage:
    """``torch.storage._load_from_bytes``: one storage saved as a legacy torch.save byte string."""
    _ensure(isinstance(blob, bytes | bytearray), "storage blob is not bytes")
    storage = _load_legacy(io.BytesIO(blob), _COMMON_GLOBALS, len(blob))
    _ensure(isinstance(storage, _Storage), "storage blob does not hold a storage")
    return storage


_JOBLIB_GLOBALS: dict[tuple[str, str], Any] = {
    **_COMMON_GLOBALS,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
}


# ----------------------------------------------------------------------------------------------------
# torch.save zip archives

_TRAINER_GLOBALS: dict[tuple[str, str], Any] = {
    **_COMMON_GLOBALS,
    ("argparse", "Namespace"): _Namespace,
}


def _load_zip(path: Path) -> Any:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"truncated or corrupt checkpoint archive: {exc}") from None
    with archive:
        pickles = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
        _ensure(len(pickles) == 1, "a torch.save archive needs exactly one data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        names = set(archive.namelist())
        if prefix + "byteorder" in names:
            order = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
            _ensure(order == "little", f"byte order {order!r} is not supported")
        storages: dict[str, _Storage] = {}
        archive_size = path.stat().st_size
        claimed = [0]

        def persistent(pid: Any) -> _Storage:
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
                raise UnsafeCheckpoint(f"unknown persistent id in checkpoint: {excerpt(pid)}")
            _, storage_type, key, _location, numel = pid
            storage_type = _storage_type_of(storage_type)
            _ensure(isinstance(key, str) and isinstance(numel, int) and numel >= 0, "bad storage record")
            if key not in storages:
                entry = f"{prefix}data/{key}"
                _ensure(entry in names, f"storage {excerpt(key)} is missing from the archive")
                nbytes = numel * storage_type.itemsize
                info = archive.getinfo(entry)
                _ensure(info.compress_type == zipfile.ZIP_STORED,
                        f"storage {excerpt(key)} is compressed (torch.save never compresses storages)")
                _ensure(info.file_size == nbytes, f"storage {excerpt(key)} has {info.file_size} bytes, "
                        f"expected {nbytes}")
                # The directory's sizes are claims: the bytes must really be in the file before
                # a buffer of that size is allocated.
                _ensure(info.compress_size == info.file_size
                        and info.header_offset + info.compress_size <= archive_size,
                        f"storage {excerpt(key)} claims {nbytes} bytes the archive does not have")
                claimed[0] += nbytes
                _ensure(claimed[0] <= archive_size, "storages claim more bytes than the file has")
                storage, buffer = _new_storage(numel, storage_type)
                with archive.open(entry) as f:
                    _ensure(f.readinto(buffer) == nbytes, f"storage {excerpt(key)} is truncated")
                storages[key] = storage
            return storages[key]

        try:
            with archive.open(pickles[0]) as f:
                return _unpickle(io.BytesIO(f.read()), _TRAINER_GLOBALS, persistent)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
            raise CheckpointError(f"truncated or corrupt checkpoint archive: {exc}") from None


# ----------------------------------------------------------------------------------------------------
# Format detection and the public readers

_SAFETENSORS_FORMAT = "ghnctl-ghn"
_META_FORMAT = "format"
_META_CONFIG = "ghn_config"
_META_VERSION = "format_version"
_META_IMAGE_SIZE = "trained_image_size"  # written by `ghnctl train`: the image size the GHN saw

# Compressed joblib dumps: magic -> (kind, a fresh incremental decompressor).
_DECOMPRESSORS: tuple[tuple[bytes, str, Callable[[], Any]], ...] = (
    (b"\x1f\x8b", "gzip", lambda: zlib.decompressobj(wbits=31)),
    (b"BZh", "bz2", bz2.BZ2Decompressor),
    (b"\xfd7zXZ\x00", "xz", lzma.LZMADecompressor),
    *((magic, "zlib", zlib.decompressobj) for magic in (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")),
)
_MAX_EXPANSION = 64  # float weights barely compress; a larger ratio is a decompression bomb


@dataclass
class Checkpoint:
    """What a GHN file holds: the GHN state_dict in ghnctl's layout and its configuration.

    ``state_dict`` keys equal ``GHN.state_dict()`` keys (Graphormer embeddings under ``gnn.0.``,
    GHN-2 decoder weights 2-D). ``format`` is ``joblib``, ``torch-zip``, ``torch-legacy`` or
    ``safetensors``; ``extra`` keeps plain metadata the file carried (epoch, step, ...).
    """

    state_dict: dict[str, torch.Tensor]
    config: GhnConfig
    format: str
    extra: dict[str, Any]


def detect_format(path: str | os.PathLike[str]) -> str:
    """``torch-zip``, ``pickle``, ``safetensors`` or ``compressed-<kind>`` from the file's magic."""
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise CheckpointError(f"checkpoint {str(path)!r} is empty")
    if head.startswith(b"PK"):
        return "torch-zip"
    if head[0] == 0x80:
        return "pickle"
    # Before the compressed formats: a safetensors header length such as 0x0178 starts with the
    # bytes of a zlib magic number, while the safetensors check (a plausible length, then '{') is
    # specific.
    if _looks_like_safetensors(head):
        return "safetensors"
    for magic, kind, _ in _DECOMPRESSORS:
        if head.startswith(magic):
            return f"compressed-{kind}"
    raise CheckpointError(f"checkpoint {str(path)!r} is not a known GHN file format "
                          f"(starts with {head[:4].hex()})",
                          "expected a torch.save/joblib GHN checkpoint or a ghnctl .safetensors file")


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read any supported GHN file into a ghnctl-layout state_dict plus its config."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist or is not a file")
    kind = detect_format(path)
    if kind == "safetensors":
        return _read_safetensors(path)
    if kind == "torch-zip":
        return _from_official(_load_zip(path), "torch-zip")
    if kind.startswith("compressed-"):
        raw = _decompress(path.read_bytes())
        _ensure(raw[:1] == b"\x80", "compressed file does not hold a pickle")
        return _from_pickle_stream(io.BytesIO(raw), len(raw))
    with open(path, "rb") as f:
        return _from_pickle_stream(f, path.stat().st_size)


def _decompress(data: bytes) -> bytes:
    """Decompress a whole compressed file, refusing more than ``_MAX_EXPANSION`` times its size."""
    decompressor = next(make() for magic, _, make in _DECOMPRESSORS if data.startswith(magic))
    limit = _MAX_EXPANSION * len(data) + (1 << 20)
    try:
        out = decompressor.decompress(data, limit + 1)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        raise CheckpointError(f"truncated or corrupt compressed checkpoint: {exc}") from None
    _ensure(len(out) <= limit, "compressed checkpoint expands too much (a decompression bomb?)")
    _ensure(decompressor.eof, "truncated compressed checkpoint")
    return out


def _from_pickle_stream(stream: BinaryIO, size: int) -> Checkpoint:
    """A pickle stream: a legacy torch.save file (pickled magic number first) or a joblib dump."""
    head = stream.read(4)
    stream.seek(0)
    if head == b"\x80\x02\x8a\x0a":  # a pickled 10-byte long: the legacy torch.save magic number
        return _from_official(_load_legacy(stream, _TRAINER_GLOBALS, size), "torch-legacy")
    return _from_official(_unpickle(stream, _JOBLIB_GLOBALS), "joblib")


def _from_official(obj: Any, fmt: str) -> Checkpoint:
    """Turn an official checkpoint object (state_dict or trainer dict) into a Checkpoint."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint holds a {type(obj).__name__}, not a state_dict or a dict")
    official_config = None
    extra: dict[str, Any] = {}
    if "state_dict" in obj:
        state_dict = obj["state_dict"]
        official_config = obj.get("config")
        extra = {k: v for k, v in obj.items() if isinstance(v, int | float | str) and k != "state_dict"}
    else:
        state_dict = obj
    if not isinstance(state_dict, dict) or not state_dict:
        raise CheckpointError("checkpoint has no state_dict of tensors")
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"checkpoint state_dict entry {excerpt(key)} is not a named tensor")
        _ensure(len(key) <= 256, f"state_dict key {excerpt(key)} is {len(key)} characters long")
    _check_no_amplification(state_dict)
    state_dict = dict(state_dict)
    is_ghn2 = any("gnn.gru." in k for k in state_dict)
    if official_config is None:
        config = infer_config(state_dict)
    elif isinstance(official_config, dict):
        config = GhnConfig.from_official(official_config, is_ghn2=is_ghn2)
    else:
        raise CheckpointError(f"checkpoint config is a {type(official_config).__name__}, not a dict")
    return Checkpoint(to_ghnctl_layout(state_dict, config), config, fmt, extra)


def _check_no_amplification(state_dict: Mapping[str, torch.Tensor]) -> None:
    """The tensors may not hold more bytes than their distinct storages (no storage used twice)."""
    storages: dict[int, int] = {}
    total = 0
    for tensor in state_dict.values():
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        total += tensor.numel() * tensor.element_size()
    _ensure(total <= sum(storages.values()), f"tensors hold {total} bytes but their storages only "
            f"{sum(storages.values())} (views reused to multiply memory)")


_TOP_LEVEL_EMBEDDINGS = ("centrality_embed_in", "centrality_embed_out", "input_dist_embed")


def to_ghnctl_layout(state_dict: Mapping[str, torch.Tensor], config: GhnConfig) -> dict[str, torch.Tensor]:
    """Official key layout -> ghnctl's: embeddings under ``gnn.0.``, GHN-2 decoder weights 2-D, fp32."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if not config.is_ghn2 and key.split(".", 1)[0] in _TOP_LEVEL_EMBEDDINGS:
            key = "gnn.0." + key
        if config.is_ghn2 and "decoder." in key and tensor.dim() == 4:
            tensor = tensor.reshape(tensor.shape[:2]) if tensor.shape[2:] == (1, 1) else tensor.squeeze()
        if tensor.is_floating_point() and tensor.dtype != torch.float32:
            tensor = tensor.float()
        if key in out:
            raise CheckpointError(f"checkpoint has the key {excerpt(key)} twice (top level and under gnn.0.)")
        out[key] = tensor
    return out


def to_official_layout(state_dict: Mapping[str, torch.Tensor], config: GhnConfig) -> dict[str, torch.Tensor]:
    """ghnctl layout -> the official HuggingFace layout (inverse of ``to_ghnctl_layout``)."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        head, _, rest = key.partition("gnn.0.")
        if config.pretrained_layout and not head and rest.split(".", 1)[0] in _TOP_LEVEL_EMBEDDINGS:
            key = rest
        out[key] = tensor
    return out


# ----------------------------------------------------------------------------------------------------
# ghnctl's own format

def save_ghn(path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor], config: GhnConfig,
             *, force: bool = False, trained_image_size: int | None = None) -> Path:
    """Save a GHN as safetensors (ghnctl layout) with its config as JSON metadata, atomically.
    ``trained_image_size``: the image size it was trained on, when known (read back into
    ``Checkpoint.extra["trained_image_size"]``)."""
    from ..io import save_safetensors_atomic

    metadata = {_META_FORMAT: _SAFETENSORS_FORMAT, _META_VERSION: "1", _META_CONFIG: config.to_json()}
    if trained_image_size is not None:
        metadata[_META_IMAGE_SIZE] = str(int(trained_image_size))
    return save_safetensors_atomic(state_dict, path, metadata=metadata, force=force)


def convert(official_path: str | os.PathLike[str], out_path: str | os.PathLike[str], *,
            force: bool = False) -> Checkpoint:
    """Read an official (or any supported) GHN file and save it in ghnctl's safetensors format."""
    checkpoint = read_checkpoint(official_path)
    save_ghn(out_path, checkpoint.state_dict, checkpoint.config, force=force)
    return checkpoint


def _read_safetensors(path: Path) -> Checkpoint:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"truncated or corrupt safetensors file: {exc}") from None
    if metadata.get(_META_FORMAT) != _SAFETENSORS_FORMAT or _META_CONFIG not in metadata:
        raise CheckpointError(f"{str(path)!r} is a safetensors file but not a ghnctl GHN",
                              "convert official checkpoints with ghnctl.ghn.convert()")
    try:
        config = GhnConfig.from_json(metadata[_META_CONFIG])
    except ValueError as exc:
        raise CheckpointError(f"invalid GHN config in {str(path)!r}: {exc}") from None
    extra: dict[str, Any] = {}
    size = metadata.get(_META_IMAGE_SIZE)
    if size is not None:
        if not (size.isdigit() and 0 < int(size) <= 100_000):
            raise CheckpointError(f"invalid {_META_IMAGE_SIZE} {excerpt(size)} in {str(path)!r}: expected a "
                                  f"positive integer")
        extra["trained_image_size"] = int(size)
    return Checkpoint(tensors, config, "safetensors", extra)


def _looks_like_safetensors(head: bytes) -> bool:
    if len(head) < 9:
        return False
    (size,) = struct.unpack("<Q", head[:8])
    return 2 <= size < 100_000_000 and head[8:9] == b"{"
