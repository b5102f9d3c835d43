"""The download lock, and two processes pulling the same GHN at once (one download, both succeed)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from ghnctl.errors import GhnctlError
from ghnctl.hub import LockTimeout, cache, pull
from ghnctl.hub.lock import DownloadLock
from ghnctl.hub.registry import HF_REPO
from test_hub_server import Fault, HubServer, make_ghn_bytes

REPO = Path(__file__).resolve().parent.parent


def test_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "x.lock"
    with DownloadLock(path):
        waits = []
        with pytest.raises(LockTimeout, match=f"pid {os.getpid()}@") as info:
            DownloadLock(path, timeout=0.2, on_wait=waits.append).acquire()
        assert info.value.hint
        assert waits == [f"pid {os.getpid()}@{socket.gethostname()}"]
    with DownloadLock(path, timeout=0.2):
        pass


def test_holder_is_recorded_beside_the_lock_while_held(tmp_path: Path) -> None:
    lock = DownloadLock(tmp_path / "x.lock")
    with lock:
        assert lock.holder_path.read_text() == f"{os.getpid()}@{socket.gethostname()}"
        assert lock.holder() == f"pid {os.getpid()}@{socket.gethostname()}"
    assert not lock.holder_path.exists() and lock.holder() is None  # never names a process that let go


def test_lock_is_filelock_compatible(tmp_path: Path) -> None:
    """The lock is filelock's: a filelock.FileLock on the same file (another tool, say) excludes it."""
    import filelock

    path = tmp_path / "x.lock"
    with filelock.FileLock(str(path)), pytest.raises(LockTimeout, match="another process holds"):
        DownloadLock(path, timeout=0.2).acquire()
    with DownloadLock(path), pytest.raises(filelock.Timeout):
        filelock.FileLock(str(path)).acquire(timeout=0)


def test_waiter_gives_up_when_the_holder_makes_no_progress(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with DownloadLock(path), pytest.raises(LockTimeout, match="no progress"):
        DownloadLock(path, stall_timeout=0.3, probe=lambda: 42).acquire()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], env=child_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "HELD"
        with pytest.raises(LockTimeout, match=f"pid {holder.pid}@"):
            DownloadLock(path, timeout=0.2).acquire()
    finally:
        holder.kill()
        holder.wait(10)
    with DownloadLock(path, timeout=2.0):  # the operating system released it with the process
        pass


def test_lock_in_a_read_only_directory_is_an_error_not_a_wait(tmp_path: Path) -> None:
    """A read-only cache directory: the error says where and what to do, at once (as root too)."""
    shared = Path(tempfile.mkdtemp(prefix="ghnctl-lock-"))  # outside pytest's private tmp: other users can enter
    try:
        shared.chmod(0o755)
        locks = shared / "locks"
        locks.mkdir(mode=0o555)
        locks.chmod(0o555)  # mkdir's mode is masked by the umask
        child = subprocess.run(
            [sys.executable, "-c", TRY_LOCK, str(locks / "x.lock")],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    assert child.returncode == 0, child.stderr
    message, hint, elapsed = child.stdout.strip().split("|")
    assert message == f"cannot lock {str(locks / 'x.lock')!r}: Permission denied"
    assert "writable" in hint and "GHNCTL_CACHE_DIR" in hint
    assert float(elapsed) < 1.0


def test_lock_under_a_file_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(GhnctlError, match="cannot lock .*Not a directory") as info:
        DownloadLock(blocker / "locks" / "x.lock", timeout=5).acquire()
    assert "GHNCTL_CACHE_DIR" in info.value.hint


def test_clear_refuses_an_entry_being_downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHNCTL_CACHE_DIR", str(tmp_path))
    cache.entry_dir("ghn3tm8").mkdir(parents=True)
    with DownloadLock(cache.lock_path("ghn3tm8")), pytest.raises(LockTimeout):
        cache.clear("ghn3tm8")
    assert cache.entry_dir("ghn3tm8").exists()
    assert cache.clear("ghn3tm8").names == ["ghn3tm8"]


# ------------------------------------------------------------------------------------------------
HOLD = textwrap.dedent(
    """
    import sys, time
    from ghnctl.hub.lock import DownloadLock

    with DownloadLock(sys.argv[1]):
        print("HELD", flush=True)
        time.sleep(60)
    """
)

TRY_LOCK = textwrap.dedent(
    """
    import os, sys, time
    from ghnctl.errors import GhnctlError
    from ghnctl.hub.lock import DownloadLock

    if os.geteuid() == 0:  # root writes anywhere: become nobody, for whom read-only is read-only
        import filelock  # first, while the interpreter's own files (maybe in ~root) can still be read

        os.setgid(65534)
        os.setuid(65534)
    started = time.monotonic()
    try:
        DownloadLock(sys.argv[1], timeout=10).acquire()
    except GhnctlError as exc:
        print(f"{exc.message}|{exc.hint}|{time.monotonic() - started:.3f}")
    else:
        print("locked a read-only directory")
    """
)


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}


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
