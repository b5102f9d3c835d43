"""The inter-process lock that makes concurrent ghnctl processes download a GHN once.

The lock itself is ``filelock.FileLock`` (``flock`` on POSIX, ``msvcrt.locking`` on Windows): the
operating system drops it when its holder exits or dies, so a crash leaves no stale lock. What
ghnctl adds around it:

* a waiter polls instead of blocking, so that it can tell its caller once who it waits for
  (``on_wait``) and give up with ``LockTimeout`` after ``timeout`` seconds, or earlier when the
  holder shows no progress (``probe()`` unchanged) for ``stall_timeout`` seconds;
* the holder writes ``pid@host`` to a side file (``<lock>.pid``) that waiters read to name it.
  It is not the lock file because some filelock versions truncate that file on every attempt;
* a lock that cannot be taken at all (read-only or missing directory, no locking on that file
  system) is a ``GhnctlError`` naming the path, not a wait.

``filelock`` is imported when a lock is made, so importing ``ghnctl.hub`` stays cheap.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from ghnctl.errors import GhnctlError


class LockTimeout(GhnctlError):
    """Another process held a lock for too long."""


class DownloadLock:
    """``with DownloadLock(path): ...``: exclusive across processes and threads. Not re-entrant."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float | None = None,
        stall_timeout: float | None = None,
        probe: Callable[[], object] | None = None,
        on_wait: Callable[[str], None] | None = None,
        poll: float = 0.1,
    ) -> None:
        self.path = Path(path)
        self.holder_path = self.path.with_name(self.path.name + ".pid")
        self.timeout = timeout
        self.stall_timeout = stall_timeout
        self.probe = probe
        self.on_wait = on_wait
        self.poll = poll
        import filelock

        self._lock = filelock.FileLock(str(self.path))

    def acquire(self) -> None:
        """Wait for the lock (see the module docstring for when it gives up)."""
        start = last_change = time.monotonic()
        last_seen = self.probe() if self.probe else None
        told = False
        while not self._try_acquire():
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
        self._record_holder()

    def release(self) -> None:
        if not self._lock.is_locked:
            return
        # Remove the side file while still holding the lock, so it never names a later holder wrongly.
        self.holder_path.unlink(missing_ok=True)
        self._lock.release()

    def holder(self) -> str | None:
        """``pid N@host`` of the process that holds the lock, if it recorded itself."""
        try:
            text = self.holder_path.read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            return None
        return f"pid {text}" if text else None

    def __enter__(self) -> DownloadLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    # ------------------------------------------------------------------------------------------
    def _try_acquire(self) -> bool:
        """Try once; an error other than "held by someone else" (no permission, ...) is raised."""
        import filelock

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            return False
        except (OSError, NotImplementedError) as exc:  # NotImplementedError: no flock on that file system
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise GhnctlError(
                f"cannot lock {str(self.path)!r}: {reason}",
                hint="the GHN cache must be on a local, writable disk: check its permissions or set GHNCTL_CACHE_DIR",
            ) from exc
        return True

    def _record_holder(self) -> None:
        # Only for the waiters' message: a cache dir that takes locks but not this file still works.
        with contextlib.suppress(OSError):
            self.holder_path.write_text(f"{os.getpid()}@{socket.gethostname()}", encoding="ascii")

    def _busy(self, how: str) -> LockTimeout:
        who = self.holder() or "another process"
        return LockTimeout(
            f"{who} holds the lock {str(self.path)!r}{how}",
            hint="wait for it to finish, or stop it; the lock frees itself when that process exits",
        )
