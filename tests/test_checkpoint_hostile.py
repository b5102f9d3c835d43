"""Hostile pickles are refused before anything runs: every test checks that its marker file
(the side effect the payload would have) was never created."""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from ghnctl.errors import UnsafeCheckpoint
from ghnctl.ghn import load_ghn, read_checkpoint


def _unicode(text: str) -> bytes:
    """SHORT_BINUNICODE (protocol 4) of ``text``."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def _binunicode(text: str) -> bytes:
    """BINUNICODE (protocol 2) of ``text``."""
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _global_call(module: str, name: str, arg: str) -> bytes:
    """Protocol-2 body: GLOBAL module.name, then call it with one string argument."""
    return f"c{module}\n{name}\n".encode() + _binunicode(arg) + b"\x85R"


def _assert_refused(path: Path, marker: Path, offending: str) -> None:
    with pytest.raises(UnsafeCheckpoint, match=offending.replace(".", r"\.")) as exc:
        read_checkpoint(path)
    assert "\n" not in str(exc.value)
    with pytest.raises(UnsafeCheckpoint):
        load_ghn(path)
    assert not marker.exists(), "the payload ran"


def test_os_system_via_global(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "global.pt"
    path.write_bytes(b"\x80\x02" + _global_call("os", "system", f"touch {marker}") + b".")
    _assert_refused(path, marker, "os.system")


def test_builtins_eval_via_stack_global_and_reduce(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    code = f"open({str(marker)!r}, 'w').write('x')"
    payload = (b"\x80\x04" + _unicode("builtins") + _unicode("eval") + b"\x93"
               + _unicode(code) + b"\x85R.")
    path = tmp_path / "stack_global.pt"
    path.write_bytes(payload)
    _assert_refused(path, marker, "builtins.eval")


def test_subprocess_inside_a_zip_data_pkl(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "archive.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02" + _global_call("subprocess", "getoutput",
                                                                        f"touch {marker}") + b".")
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    _assert_refused(path, marker, "subprocess.getoutput")


def test_payload_hidden_in_a_nested_storage_blob(tmp_path: Path) -> None:
    """A joblib file whose legitimate-looking ``_load_from_bytes`` blob carries the payload."""
    marker = tmp_path / "pwned"
    blob = b"\x80\x02" + _global_call("os", "system", f"touch {marker}") + b"."
    payload = (b"\x80\x04}" + _unicode("w") + _unicode("torch.storage") + _unicode("_load_from_bytes")
               + b"\x93B" + struct.pack("<I", len(blob)) + blob + b"\x85Rs.")
    path = tmp_path / "nested.pt"
    path.write_bytes(payload)
    _assert_refused(path, marker, "os.system")


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_real_pickle_with_reduce_exploit_inside_a_state_dict(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "reduce.pt"
    path.write_bytes(pickle.dumps({"embed.weight": torch.zeros(2), "x": _Exploit(marker)}, protocol=4))
    _assert_refused(path, marker, os.system.__module__ + ".system")  # posix.system on Linux


def test_torch_save_with_exploit_in_a_trainer_dict(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "trainer.pt"
    torch.save({"state_dict": {"embed.weight": torch.zeros(2)}, "args": _Exploit(marker)}, path)
    _assert_refused(path, marker, ".system")


def test_legacy_torch_save_with_exploit(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "legacy.pt"
    torch.save({"state_dict": {"embed.weight": torch.zeros(2)}, "args": _Exploit(marker)}, path,
               _use_new_zipfile_serialization=False)
    _assert_refused(path, marker, ".system")


def test_inst_opcode_goes_through_the_allow_list(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = b"\x80\x02(" + _binunicode(f"touch {marker}") + b"ios\nsystem\n."
    path = tmp_path / "inst.pt"
    path.write_bytes(payload)
    _assert_refused(path, marker, "os.system")


def test_unknown_persistent_id_in_a_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pid.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02" + _binunicode("evil") + b"\x85Q.")
    with pytest.raises(UnsafeCheckpoint, match="persistent id"):
        read_checkpoint(path)


def test_persistent_id_in_a_plain_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pid.pt"
    path.write_bytes(b"\x80\x04" + _unicode("anything") + b"Q.")
    with pytest.raises(UnsafeCheckpoint, match="persistent id"):
        read_checkpoint(path)


def test_allowed_globals_are_only_the_stand_ins() -> None:
    """The allow-lists resolve to ghnctl's own functions/markers, never to torch's loaders."""
    from ghnctl.ghn import checkpoint

    for table in (checkpoint._JOBLIB_GLOBALS, checkpoint._TRAINER_GLOBALS):
        for (module, name), value in table.items():
            assert getattr(value, "__module__", "ghnctl").startswith(("ghnctl", "collections")), (module, name)
    assert ("torch.storage", "_load_from_bytes") not in checkpoint._TRAINER_GLOBALS
    buffer = io.BytesIO(b"\x80\x02ctorch\nload\n.")
    with pytest.raises(UnsafeCheckpoint, match="torch.load"):
        checkpoint._unpickle(buffer, checkpoint._JOBLIB_GLOBALS)
