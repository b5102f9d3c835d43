"""An inter-process lock on a file, so that concurrent ghnctl processes download a GHN once.

On POSIX the lock is ``fcntl.flock`` on a lock file that is never deleted: the kernel drops it
when its holder exits or dies, so a crash leaves no stale lock. Elsewhere the lock is a file
created with ``O_CREAT | O_EXCL`` holding ``pid@host``; a lock whose process is gone (same host) is
stale and is broken.

A waiter gives up with ``LockTimeout`` after ``timeout`` seconds, or earlier when the holder
shows no progress (``probe()`` unchanged) for ``stall_timeout`` seconds.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from ghnctl.errors import GhnctlError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


class LockTimeout(GhnctlError):
    """Another process held a lock for too long."""


class FileLock:
    """``with FileLock(path): ...``: exclusive across processes. Not re-entrant."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float | None = None,
        stall_timeout: float | None = None,
        probe: Callable[[], object] | None = None,
        on_wait: Callable[[str], None] | None = None,
        poll: float = 0.1,
        use_flock: bool | None = None,
    ) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.stall_timeout = stall_timeout
        self.probe = probe
        self.on_wait = on_wait
        self.poll = poll
        self.use_flock = fcntl is not None if use_flock is None else use_flock
        self._fd: int | None = None

    # ------------------------------------------------------------------------------------------
    def acquire(self) -> None:
        start = last_change = time.monotonic()
        last_seen = self.probe() if self.probe else None
        told = False
        while not self._try_acquire_or_fail():
            now = time.monotonic()
            if not told and self.on_wait is not None:
                self.on_wait(self.holder() or "another process")
                told = True
            if self.timeout is not None and now - start >= self.timeout:
                raise self._busy(f" (waited {self.timeout:g} s)" if self.timeout else "")
            if self.probe is not None and self.stall_timeout is not None:
                seen = self.probe()
                if seen != last_seen:
                    last_seen, last_change = seen, now
                elif now - last_change >= self.stall_timeout:
                    raise self._busy(f" and made no progress for {self.stall_timeout:g} s")
            time.sleep(self.poll)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if self.use_flock:
            # Keep the file: deleting a flock'ed file lets a waiter lock an orphaned inode.
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        else:
            os.close(fd)
            self.path.unlink(missing_ok=True)

    def holder(self) -> str | None:
        """``pid@host`` of the process that holds (or last held) the lock, if recorded."""
        try:
            text = self.path.read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            return None
        return f"pid {text}" if text else None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    # ------------------------------------------------------------------------------------------
    def _try_acquire_or_fail(self) -> bool:
        """Try once; an error other than "held by someone else" (no permission, ...) is raised."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._try_flock() if self.use_flock else self._try_exclusive_create()
        except OSError as exc:
            raise GhnctlError(
                f"cannot lock {str(self.path)!r}: {exc.strerror or exc}",
                hint="the GHN cache must be on a local, writable disk: check its permissions or set GHNCTL_CACHE_DIR",
            ) from exc

    def _try_flock(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, _identity().encode("ascii"))
        self._fd = fd
        return True

    def _try_exclusive_create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            self._break_if_stale()
            return False
        os.write(fd, _identity().encode("ascii"))
        self._fd = fd
        return True

    def _break_if_stale(self) -> None:
        """Delete the lock file if its process (on this host) is gone."""
        try:
            text = self.path.read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            return
        pid_text, _, host = text.partition("@")
        if not pid_text.isdigit() or host != socket.gethostname() or _alive(int(pid_text)):
            return
        # Re-read just before deleting, to narrow the race with a waiter that broke it first.
        try:
            if self.path.read_text(encoding="ascii", errors="replace").strip() == text:
                self.path.unlink()
        except OSError:
            pass

    def _busy(self, how: str) -> LockTimeout:
        who = self.holder() or "another process"
        return LockTimeout(
            f"{who} holds the lock {str(self.path)!r}{how}",
            hint="wait for it to finish, or stop it; the lock frees itself when that process exits",
        )


def _identity() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` (on this host) still runs; when unsure, assume it does."""
    if os.name == "nt":
        return _alive_windows(pid)
    try:
        os.kill(pid, 0)  # signal 0: existence check only (POSIX)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _alive_windows(pid: int) -> bool:
    # os.kill would terminate the process on Windows: ask the kernel instead.
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    synchronize, wait_timeout, access_denied = 0x00100000, 0x00000102, 5
    handle = kernel32.OpenProcess(synchronize, False, pid)
    if not handle:
        return ctypes.get_last_error() == access_denied  # type: ignore[attr-defined]
    try:
        return kernel32.WaitForSingleObject(handle, 0) == wait_timeout
    finally:
        kernel32.CloseHandle(handle)
