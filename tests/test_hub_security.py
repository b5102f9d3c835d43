"""Hostile checkpoints are refused by the restricted reader, directly and through the hub download.

Each payload tries to create a marker file. The tests check that ``ghnctl.ghn.checkpoint``
refuses it with ``UnsafeCheckpoint`` and that the marker never appears; a control run with an
unrestricted loader (plain ``pickle.loads`` / ``torch.load(weights_only=False)``) shows that the
payload really would have created it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shlex
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ghnctl.errors import UnsafeCheckpoint
from ghnctl.ghn.checkpoint import read_checkpoint
from ghnctl.hub import list_partial, lookup, resolve_ghn
from ghnctl.hub.registry import HF_REPO
from test_hub_server import HubServer

# ------------------------------------------------------------------------------------------------
# Pickle opcodes, written by hand so that each payload is exactly the attack it names.

PROTO2, PROTO4 = b"\x80\x02", b"\x80\x04"
MARK, STOP, REDUCE, TUPLE1, TUPLE2, LIST = b"(", b".", b"R", b"\x85", b"\x86", b"l"
STACK_GLOBAL, BINPERSID, OBJ, EMPTY_DICT, SETITEM = b"\x93", b"Q", b"o", b"}", b"s"


def s(text: str) -> bytes:
    """BINUNICODE."""
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def binbytes(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


def glob(module: str, name: str) -> bytes:
    """GLOBAL (protocols 0-3)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def sglob(module: str, name: str) -> bytes:
    """STACK_GLOBAL (protocol 4+)."""
    return s(module) + s(name) + STACK_GLOBAL


def touch(marker: Path) -> str:
    return f"touch {shlex.quote(str(marker))}"


def python_touch(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


class _Evil:
    """Pickles as ``os.system(<touch marker>)``."""

    def __init__(self, marker: Path) -> None:
        self.command = touch(marker)

    def __reduce__(self):
        return (os.system, (self.command,))


def _legacy_header() -> bytes:
    """The first three pickles of a legacy torch.save stream: magic, protocol, sys info."""
    return (
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
        + pickle.dumps(1001, protocol=2)
        + pickle.dumps(
            {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 8}},
            protocol=2,
        )
    )


def _joblib_style(marker: Path) -> bytes:
    """A joblib-style dump of a state_dict (real tensors) with one hostile value."""
    return pickle.dumps(
        {"decoder.conv.2.weight": torch.zeros(4, 4), "evil": _Evil(marker), "decoder.conv.0.weight": torch.ones(2)},
        protocol=4,
    )


def _torch_zip(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"state_dict": {"w": torch.zeros(3)}, "config": {"hid": 32}, "epoch": 0, "evil": _Evil(marker)}, buffer)
    return buffer.getvalue()


def _torch_legacy(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save(
        {"state_dict": {"w": torch.zeros(3)}, "evil": _Evil(marker)}, buffer, _use_new_zipfile_serialization=False
    )
    return buffer.getvalue()


def _nested_blob(inner: bytes) -> bytes:
    """A joblib-style tensor whose storage blob (torch.storage._load_from_bytes) holds ``inner``."""
    return (
        PROTO4
        + EMPTY_DICT
        + s("w")
        + sglob("torch.storage", "_load_from_bytes")
        + binbytes(inner)
        + TUPLE1
        + REDUCE
        + SETITEM
        + STOP
    )


PAYLOADS: dict[str, tuple[Callable[[Path], bytes], str | None, str]] = {
    # name: (payload(marker) -> bytes, control loader or None, text the error must contain)
    "GLOBAL os.system + REDUCE": (
        lambda m: PROTO2 + glob("os", "system") + s(touch(m)) + TUPLE1 + REDUCE + STOP,
        "pickle",
        "os.system",
    ),
    "STACK_GLOBAL posix.system + REDUCE": (
        lambda m: PROTO4 + sglob("posix", "system") + s(touch(m)) + TUPLE1 + REDUCE + STOP,
        "pickle",
        "posix.system",
    ),
    "GLOBAL subprocess.Popen": (
        lambda m: PROTO2 + glob("subprocess", "Popen") + MARK + s("touch") + s(str(m)) + LIST + TUPLE1 + REDUCE + STOP,
        "pickle",
        "subprocess.Popen",
    ),
    "STACK_GLOBAL builtins.eval": (
        lambda m: PROTO4 + sglob("builtins", "eval") + s(python_touch(m)) + TUPLE1 + REDUCE + STOP,
        "pickle",
        "builtins.eval",
    ),
    "GLOBAL builtins.exec": (
        lambda m: PROTO2 + glob("builtins", "exec") + s(python_touch(m)) + TUPLE1 + REDUCE + STOP,
        "pickle",
        "builtins.exec",
    ),
    "INST os.system": (lambda m: PROTO2 + MARK + s(touch(m)) + b"ios\nsystem\n" + STOP, "pickle", "os.system"),
    "OBJ os.system": (lambda m: PROTO2 + MARK + glob("os", "system") + s(touch(m)) + OBJ + STOP, "pickle", "os.system"),
    "getattr(__import__('os'), 'system')": (
        lambda m: (
            PROTO4
            + sglob("builtins", "getattr")
            + sglob("builtins", "__import__")
            + s("os")
            + TUPLE1
            + REDUCE
            + s("system")
            + TUPLE2
            + REDUCE
            + s(touch(m))
            + TUPLE1
            + REDUCE
            + STOP
        ),
        "pickle",
        "builtins.getattr",
    ),
    "joblib-style state_dict with one hostile value": (_joblib_style, "pickle", "posix.system"),
    "gzip-compressed joblib-style dump": (lambda m: gzip.compress(_joblib_style(m)), None, "posix.system"),
    "torch.save zip, hostile data.pkl": (_torch_zip, "torch", "posix.system"),
    "legacy torch.save file, hostile object": (_torch_legacy, "torch", "posix.system"),
    "unexpected torch global: torch.save writes a file": (
        lambda m: PROTO4 + sglob("torch", "save") + s("payload") + s(str(m)) + TUPLE2 + REDUCE + STOP,
        "pickle",
        "torch.save",
    ),
    "unexpected torch global: torch.load": (
        lambda m: PROTO4 + sglob("torch", "load") + s(str(m)) + TUPLE1 + REDUCE + STOP,
        None,
        "torch.load",
    ),
    "unexpected torch global: torch._C": (
        lambda m: PROTO2 + glob("torch._C", "_jit_get_operation") + s("aten::add") + TUPLE1 + REDUCE + STOP,
        None,
        "torch._C._jit_get_operation",
    ),
    "nested legacy storage blob, hostile object pickle": (
        lambda m: _nested_blob(_legacy_header() + PROTO2 + glob("os", "system") + s(touch(m)) + TUPLE1 + REDUCE + STOP),
        "pickle",
        "os.system",
    ),
    "nested legacy storage blob, hostile magic number pickle": (
        lambda m: _nested_blob(PROTO2 + glob("os", "system") + s(touch(m)) + TUPLE1 + REDUCE + STOP),
        "pickle",
        "os.system",
    ),
    "nested legacy storage blob, hostile storage type in the persistent id": (
        lambda m: _nested_blob(
            _legacy_header()
            + PROTO2
            + MARK
            + s("storage")
            + glob("os", "system")
            + s("0")
            + s("cpu")
            + b"K\x04"
            + b"N"
            + b"t"
            + BINPERSID
            + STOP
        ),
        None,
        "os.system",
    ),
}


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "side-effect-happened"


def _control(kind: str, path: Path, marker: Path) -> None:
    """Load with an unrestricted loader: the payload must create the marker."""
    try:
        if kind == "pickle":
            data = path.read_bytes()
            pickle.loads(data)
        else:
            torch.load(path, weights_only=False)
    except Exception:
        pass  # the side effect happens before whatever fails afterwards
    deadline = time.monotonic() + 10  # subprocess.Popen runs touch asynchronously
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), "the payload is not effective: the test would prove nothing"


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_hostile_checkpoint_is_refused(name: str, tmp_path: Path, marker: Path) -> None:
    make, control, names = PAYLOADS[name]
    path = tmp_path / "evil.pt"
    path.write_bytes(make(marker))

    with pytest.raises(UnsafeCheckpoint) as info:
        read_checkpoint(path)

    assert names in info.value.message
    assert "\n" not in str(info.value) and info.value.hint
    time.sleep(0.05)
    assert not marker.exists()
    if control is not None:
        _control(control, path, marker)


def test_payload_list_is_broad_enough() -> None:
    assert len(PAYLOADS) >= 10


# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "joblib-style state_dict with one hostile value",
        "torch.save zip, hostile data.pkl",
        "nested legacy storage blob, hostile object pickle",
        "GLOBAL builtins.exec",
    ],
)
def test_hostile_download_is_refused_and_deleted(
    name: str, tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Served with a valid sha256 (the attacker controls the server): verification passes, parsing refuses."""
    payload = PAYLOADS[name][0](marker)
    monkeypatch.setenv("GHNCTL_CACHE_DIR", str(tmp_path / "cache"))
    with HubServer() as server:
        monkeypatch.setenv("GHNCTL_HUB_URL", server.url)
        server.add_hf(HF_REPO, "ghn3tm8.pt", payload)
        with pytest.raises(UnsafeCheckpoint):
            resolve_ghn("ghn3tm8")
        assert len(server.requests_for(f"/cdn/{hashlib.sha256(payload).hexdigest()}")) == 1
    time.sleep(0.05)
    assert not marker.exists()
    assert lookup("ghn3tm8") is None and list_partial() == []
    directory = tmp_path / "cache" / "ghns" / "ghn3tm8"
    assert not directory.exists() or list(directory.iterdir()) == []
