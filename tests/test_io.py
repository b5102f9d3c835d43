"""Output files (atomic writes, overwrite refusal, safetensors) and the environment settings they use.

The settings tests live here because settings.py is the other half of "where files go".
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
import torch

from ghnctl import io, settings
from ghnctl.errors import OutputExists, OutputNotWritable, UsageError


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------------------------------------
# atomic writes


def test_atomic_write_text_creates_file(tmp_path: Path) -> None:
    out = io.atomic_write_text(tmp_path / "a.txt", "hello")
    assert out == tmp_path / "a.txt"
    assert out.read_text() == "hello"
    assert _leftovers(tmp_path) == []


def test_atomic_write_gets_normal_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        out = io.atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # not mkstemp's 0600


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "a.txt"
    out.write_text("old")
    with pytest.raises(OutputExists) as info:
        io.atomic_write_text(out, "new")
    assert "--force" in info.value.hint
    assert out.read_text() == "old"
    io.atomic_write_text(out, "new", force=True)
    assert out.read_text() == "new"
    assert _leftovers(tmp_path) == []


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "a.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError), io.atomic_path(out, force=True) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer crashed")
    assert out.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_failed_first_write_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), io.atomic_path(tmp_path / "new.txt") as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_file_that_appears_during_the_write_is_not_clobbered(tmp_path: Path) -> None:
    out = tmp_path / "a.txt"
    with pytest.raises(OutputExists), io.atomic_path(out) as tmp:
        tmp.write_text("mine")
        out.write_text("someone else's")
    assert out.read_text() == "someone else's"
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------
# check_output_path


def test_check_output_path_accepts_new_file(tmp_path: Path) -> None:
    assert io.check_output_path(str(tmp_path / "x.svg")) == tmp_path / "x.svg"


def test_check_output_path_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputExists):
        io.check_output_path(tmp_path / "file")
    assert io.check_output_path(tmp_path / "file", force=True) == tmp_path / "file"
    with pytest.raises(OutputNotWritable, match="is a directory"):
        io.check_output_path(tmp_path, force=True)
    with pytest.raises(OutputNotWritable, match="does not exist"):
        io.check_output_path(tmp_path / "missing" / "x.svg")
    with pytest.raises(OutputNotWritable, match="not a directory"):
        io.check_output_path(tmp_path / "file" / "x.svg")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write to read-only directories")
def test_check_output_path_read_only_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(OutputNotWritable, match="not writable"):
            io.check_output_path(locked / "x.svg")
    finally:
        locked.chmod(0o755)


# ------------------------------------------------------------------------------------------------
# safetensors


def test_save_safetensors_roundtrip_with_metadata(tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    weight = torch.randn(4, 3)
    tensors = {"fc.weight": weight, "fc.bias": torch.zeros(4), "head.weight": weight}  # tied weights
    out = io.save_safetensors_atomic(
        tensors, tmp_path / "m.safetensors", metadata={"arch": "resnet18", "num_classes": 10}
    )
    loaded = load_file(out)
    assert torch.equal(loaded["fc.weight"], weight)
    assert torch.equal(loaded["head.weight"], weight)
    with safe_open(out, framework="pt") as f:
        meta = f.metadata()
    assert meta == {"arch": "resnet18", "num_classes": "10"}
    assert json.loads(meta["num_classes"]) == 10
    assert _leftovers(tmp_path) == []


def test_save_safetensors_handles_views(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    base = torch.arange(12.0).reshape(3, 4)
    out = io.save_safetensors_atomic({"t": base.t(), "row": base[1]}, tmp_path / "v.safetensors")
    loaded = load_file(out)
    assert torch.equal(loaded["t"], base.t())
    assert torch.equal(loaded["row"], base[1])


def test_save_safetensors_refuses_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"old")
    with pytest.raises(OutputExists):
        io.save_safetensors_atomic({"a": torch.ones(1)}, out)
    assert out.read_bytes() == b"old"


# ------------------------------------------------------------------------------------------------
# settings (environment read at call time)


def test_dirs_default_to_platformdirs() -> None:
    import platformdirs

    assert settings.cache_dir() == Path(platformdirs.user_cache_dir("ghnctl"))
    assert settings.data_dir() == Path(platformdirs.user_data_dir("ghnctl"))


def test_dirs_follow_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GHNCTL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GHNCTL_DATA_DIR", "~/ghn-data")
    assert settings.cache_dir() == tmp_path / "cache"
    assert settings.data_dir() == Path.home() / "ghn-data"
    monkeypatch.setenv("GHNCTL_CACHE_DIR", "")  # empty means unset
    assert settings.cache_dir() != tmp_path / "cache"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"GHNCTL_OFFLINE": "1"}, True),
        ({"GHNCTL_OFFLINE": "true"}, True),
        ({"GHNCTL_OFFLINE": "0"}, False),
        ({"HF_HUB_OFFLINE": "1"}, True),
        ({"GHNCTL_OFFLINE": "no", "HF_HUB_OFFLINE": "yes"}, True),
    ],
)
def test_offline(monkeypatch, env: dict[str, str], expected: bool) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert settings.offline() is expected


def test_offline_typo_is_an_error(monkeypatch) -> None:
    monkeypatch.setenv("GHNCTL_OFFLINE", "ture")
    with pytest.raises(UsageError, match="GHNCTL_OFFLINE"):
        settings.offline()


def test_hub_url(monkeypatch) -> None:
    assert settings.hub_url() == settings.DEFAULT_HUB_URL
    monkeypatch.setenv("GHNCTL_HUB_URL", "http://127.0.0.1:8000/hub/")
    assert settings.hub_url() == "http://127.0.0.1:8000/hub"


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_weights_file_gets_the_permissions_of_any_new_file(tmp_path: Path, umask: int) -> None:
    import torch

    from ghnctl.io import save_safetensors_atomic

    old = os.umask(umask)
    try:
        out = save_safetensors_atomic({"w": torch.ones(2)}, tmp_path / "w.safetensors")
        plain = tmp_path / "plain.bin"
        plain.write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.bin", "w.safetensors"]  # no temporaries


def test_safetensors_writer_round_trips_every_dtype_and_shape(tmp_path: Path) -> None:
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    from ghnctl.io import save_safetensors_atomic

    tensors = {
        "f32": torch.randn(3, 4), "f64": torch.randn(2, dtype=torch.float64), "f16": torch.randn(5).half(),
        "bf16": torch.randn(2, 3).bfloat16(), "i64": torch.arange(7), "i8": torch.tensor([-3, 4], dtype=torch.int8),
        "u8": torch.tensor([250], dtype=torch.uint8), "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3), "strided": torch.randn(4, 6)[:, ::2],
    }
    path = save_safetensors_atomic(tensors, tmp_path / "all.safetensors", metadata={"a": "b", "n": 3})
    loaded = load_file(str(path))
    assert loaded.keys() == tensors.keys()
    for name, value in tensors.items():
        assert loaded[name].dtype == value.dtype and torch.equal(loaded[name], value), name
    with safe_open(str(path), "pt") as f:
        assert f.metadata() == {"a": "b", "n": "3"}


def test_stale_temporaries_of_ours_are_removed_on_the_next_write(tmp_path: Path) -> None:
    from ghnctl.io import STALE_TEMP_SECONDS, atomic_write_text

    stale = tmp_path / ".out.txt.0123456789ab.tmp"  # left by a process killed mid-write
    fresh = tmp_path / ".out.txt.ba9876543210.tmp"  # maybe another process writing right now
    foreign = tmp_path / ".out.txt.tmpxyz"  # not our pattern: never ours to delete
    for p in (stale, fresh, foreign):
        p.write_bytes(b"partial")
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(foreign, (old, old))
    atomic_write_text(tmp_path / "out.txt", "done")
    assert not stale.exists() and fresh.exists() and foreign.exists()
    assert (tmp_path / "out.txt").read_text() == "done"


def test_a_write_killed_midway_leaves_only_our_temporary_which_the_next_write_removes(tmp_path: Path) -> None:
    """SIGKILL during a weights write: no output, no foreign temporary; the next write cleans up."""
    import signal
    import subprocess
    import sys

    from ghnctl.io import STALE_TEMP_SECONDS, remove_stale_temporaries

    out = tmp_path / "w.safetensors"
    script = f"""
import time, torch, ghnctl.io as io
real = io.write_safetensors
def slow(f, tensors, metadata):
    f.write(b"partial"); f.flush(); print("writing", flush=True); time.sleep(60)
io.write_safetensors = slow
io.save_safetensors_atomic({{"w": torch.ones(4)}}, {str(out)!r})
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "writing"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    left = list(tmp_path.iterdir())
    assert not out.exists() and len(left) == 1 and left[0].name.startswith(".w.safetensors.")
    assert remove_stale_temporaries(out) == []  # too fresh to be judged dead
    old = time.time() - STALE_TEMP_SECONDS - 1
    os.utime(left[0], (old, old))
    io.save_safetensors_atomic({"w": torch.zeros(2)}, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]
