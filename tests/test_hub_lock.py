"""The download lock, and two processes pulling the same GHN at once (one download, both succeed)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ghnctl.hub import LockTimeout, cache, pull
from ghnctl.hub.lock import FileLock
from ghnctl.hub.registry import HF_REPO
from test_hub_server import Fault, HubServer, make_ghn_bytes

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("use_flock", [True, False], ids=["flock", "exclusive-create"])
def test_lock_excludes_a_second_holder(tmp_path: Path, use_flock: bool) -> None:
    path = tmp_path / "locks" / "x.lock"
    with FileLock(path, use_flock=use_flock):
        waits = []
        with pytest.raises(LockTimeout, match=f"pid {os.getpid()}@") as info:
            FileLock(path, timeout=0.2, use_flock=use_flock, on_wait=waits.append).acquire()
        assert info.value.hint
        assert len(waits) == 1
    with FileLock(path, timeout=0.2, use_flock=use_flock):
        pass
    assert path.exists() == use_flock  # flock files stay; exclusive-create files go


def test_exclusive_create_lock_of_a_dead_process_is_broken(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    path.write_text(f"{2**22 + 12345}@{socket.gethostname()}")  # above Linux's pid_max: no such process
    with FileLock(path, timeout=1.0, use_flock=False):
        assert path.read_text() == f"{os.getpid()}@{socket.gethostname()}"


def test_exclusive_create_lock_of_another_host_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    path.write_text("1@some-other-host")
    with pytest.raises(LockTimeout):
        FileLock(path, timeout=0.3, use_flock=False).acquire()


def test_waiter_gives_up_when_the_holder_makes_no_progress(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with FileLock(path), pytest.raises(LockTimeout, match="no progress"):
        FileLock(path, stall_timeout=0.3, probe=lambda: 42).acquire()


def test_clear_refuses_an_entry_being_downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHNCTL_CACHE_DIR", str(tmp_path))
    cache.entry_dir("ghn3tm8").mkdir(parents=True)
    with FileLock(cache.lock_path("ghn3tm8")), pytest.raises(LockTimeout):
        cache.clear("ghn3tm8")
    assert cache.entry_dir("ghn3tm8").exists()
    assert cache.clear("ghn3tm8").names == ["ghn3tm8"]


# ------------------------------------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import json, sys
    from ghnctl.hub import pull

    def on_progress(event):
        if event.kind == "wait":
            print("WAITED", flush=True)

    cached, downloaded = pull("ghn3tm8", on_progress=on_progress)
    print(json.dumps({"path": str(cached.path), "downloaded": downloaded}), flush=True)
    """
)


def test_two_processes_download_once(tmp_path: Path) -> None:
    data = make_ghn_bytes(filler=500_000, seed=4)  # ~2 MB, sent in 64 KiB blocks
    with HubServer() as server:
        server.add_hf(HF_REPO, "ghn3tm8.pt", data, fault=Fault(delay=0.1))  # ~3 s to send
        env = {
            **os.environ,
            "GHNCTL_CACHE_DIR": str(tmp_path / "cache"),
            "GHNCTL_HUB_URL": server.url,
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        }
        first = subprocess.Popen(
            [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 60
        while not server.data_requests():  # the first process holds the lock and is downloading
            assert time.monotonic() < deadline and first.poll() is None, first.communicate()
            time.sleep(0.02)
        second = subprocess.Popen(
            [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        outs = [p.communicate(timeout=120) for p in (first, second)]

    for process, (_, stderr) in zip((first, second), outs):
        assert process.returncode == 0, stderr
    results = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outs]
    assert results[0]["path"] == results[1]["path"]
    assert [r["downloaded"] for r in results] == [True, False]
    assert "WAITED" in outs[1][0]  # the second one waited for the lock instead of downloading
    assert len(server.data_requests()) == 1


def test_in_process_pulls_share_the_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads of one process are serialised by the same lock (flock is per open file)."""
    import threading

    data = make_ghn_bytes(seed=6)
    with HubServer() as server:
        server.add_hf(HF_REPO, "ghn3tm8.pt", data, fault=Fault(delay=0.05))
        monkeypatch.setenv("GHNCTL_CACHE_DIR", str(tmp_path))
        monkeypatch.setenv("GHNCTL_HUB_URL", server.url)
        results = []
        threads = [threading.Thread(target=lambda: results.append(pull("ghn3tm8"))) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(results) == 3 and len({r[0].path for r in results}) == 1
        assert sum(downloaded for _, downloaded in results) == 1
        assert len(server.data_requests()) == 1
