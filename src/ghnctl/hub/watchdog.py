"""Time limits on a whole request, not on each socket read: a thread that cuts off slow servers.

The timeouts of requests apply to each read of the socket. A server that sends one byte every
few seconds never trips them, while headers or body drip in forever. ``Watchdog`` watches the
request in progress from a second thread and, when it breaks a limit, records a ``Verdict`` and
shuts the connection's socket down: the read blocked in the download thread then fails (or sees
the end of the stream) at once, and the download code raises the verdict instead.

Limits, per request (one request = one attempt, redirects included):

* ``answer``: the final answer's status line and headers must arrive within ``header_timeout``
  seconds of the request starting;
* ``slow``: once the body has run for ``window`` seconds, the bytes of the last ``window`` seconds
  must average at least ``min_rate`` bytes/s;
* ``max_time``: the download as a whole (every attempt and wait) ends by its deadline.

The socket is found through the connection pool: ``watch_connections`` mounts an adapter whose
pools report each connection they hand out to the watchdog of the calling thread. Where that
hook cannot be set (a SOCKS proxy), the limits still apply, only later: when the blocked read
returns, which the per-read timeout bounds.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import requests

from ghnctl.hub.limits import Limits, rate_text, seconds_text

VerdictKind = Literal["answer", "slow", "max_time"]

_current = threading.local()  # the watchdog of the thread that makes the request


@dataclass(frozen=True)
class Verdict:
    """Why the watchdog cut a request off; ``message`` is a short reason for an error line."""

    kind: VerdictKind
    message: str


class Watchdog:
    """``with Watchdog(limits, header_timeout) as watch:`` around a download; per request::

    watch.begin()            # the request starts (the answer's deadline starts now)
    watch.body()             # headers are in; the rate window starts now
    watch.received(n)        # n more body bytes
    watch.end()              # the request is over; its connection is no longer watched
    watch.verdict            # why it was cut off, or None
    """

    def __init__(self, limits: Limits, header_timeout: float, clock: Any = time.monotonic) -> None:
        self._limits = limits
        self._header_timeout = header_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.deadline = None if limits.max_time is None else clock() + limits.max_time
        self._reset()
        self.tick = max(0.02, min(1.0, limits.window / 10, header_timeout / 10))

    def _reset(self) -> None:
        self._phase: Literal["idle", "answer", "body"] = "idle"
        self._started = 0.0
        self._bytes = 0
        self._samples: deque[tuple[float, int]] = deque()
        self._connection: Any = None
        self.verdict: Verdict | None = None

    # -- the download thread ------------------------------------------------------------------
    def __enter__(self) -> Watchdog:
        _current.watchdog = self
        self._thread = threading.Thread(target=self._run, name="ghnctl-download-watchdog", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        _current.watchdog = None
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def begin(self) -> None:
        with self._lock:
            self._reset()
            self._phase, self._started = "answer", self._clock()

    def body(self) -> None:
        with self._lock:
            now = self._clock()
            self._phase, self._started, self._bytes = "body", now, 0
            self._samples = deque([(now, 0)])

    def received(self, count: int) -> None:
        self._bytes += count  # read by the watchdog thread without the lock: a stale count is fine

    def end(self) -> None:
        with self._lock:
            self._phase, self._connection = "idle", None

    def out_of_time(self) -> bool:
        """True once the download's deadline has passed (checked between requests by the caller)."""
        return self.deadline is not None and self._clock() >= self.deadline

    def attach(self, connection: Any) -> None:
        """Called by the watched pools: ``connection`` serves the request in progress."""
        with self._lock:
            if self._phase != "idle":
                self._connection = connection

    # -- the watchdog thread ------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            self.check()

    def check(self) -> None:
        """Judge the request in progress; cut it off if it broke a limit (also retries the cut)."""
        with self._lock:
            if self._phase == "idle":
                return
            if self.verdict is None:
                self.verdict = self._judge(self._clock())
            if self.verdict is not None:
                # Again on each tick: a connection still connecting has no socket to shut yet.
                _shut(self._connection)

    def _judge(self, now: float) -> Verdict | None:
        if self.deadline is not None and now >= self.deadline:
            assert self._limits.max_time is not None
            return Verdict("max_time", f"it took longer than {seconds_text(self._limits.max_time)} in all")
        if self._phase == "answer" and now - self._started >= self._header_timeout:
            return Verdict("answer", f"the server did not answer within {seconds_text(self._header_timeout)}")
        if self._phase == "body" and self._limits.min_rate > 0:
            return self._judge_rate(now)
        return None

    def _judge_rate(self, now: float) -> Verdict | None:
        """Too slow when the bytes of the last ``window`` seconds average under ``min_rate``."""
        got = self._bytes
        self._samples.append((now, got))
        cutoff = now - self._limits.window
        while len(self._samples) > 1 and self._samples[1][0] <= cutoff:
            self._samples.popleft()  # keep one sample at or before the window's start
        since, before = self._samples[0]
        if since > cutoff:
            return None  # the body has not run for a whole window yet
        span = now - since
        rate = (got - before) / span
        if rate >= self._limits.min_rate:
            return None
        return Verdict(
            "slow",
            f"too slow: {got - before:,} bytes in the last {seconds_text(span)} ({rate_text(rate)}), "
            f"under the minimum of {rate_text(self._limits.min_rate)} over {seconds_text(self._limits.window)}",
        )


def _shut(connection: Any) -> None:
    """Shut down the connection's socket so that a read blocked on it returns now.

    ``socket.socket.shutdown`` on purpose, also for a TLS socket: it acts on the file descriptor
    without touching the TLS state that the blocked thread is using.
    """
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        # Already shut, or closed: either way the read does not wait any longer.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


# ------------------------------------------------------------------------------------------------
def watch_connections(session: requests.Session) -> None:
    """Let the current thread's ``Watchdog`` cut off the connections ``session`` makes."""
    adapter = _adapter_class()()
    session.mount("http://", adapter)
    session.mount("https://", adapter)


_ADAPTER: type | None = None


def _adapter_class() -> type:
    """``HTTPAdapter`` with watched pools; built on first use, so importing this module stays cheap."""
    global _ADAPTER
    if _ADAPTER is None:
        from requests.adapters import HTTPAdapter
        from urllib3 import poolmanager
        from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

        class WatchedHTTPPool(HTTPConnectionPool):
            def _get_conn(self, timeout: float | None = None) -> Any:
                return _report(super()._get_conn(timeout))

        class WatchedHTTPSPool(HTTPSConnectionPool):
            def _get_conn(self, timeout: float | None = None) -> Any:
                return _report(super()._get_conn(timeout))

        watched = {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}

        def watch_pools(manager: Any) -> Any:
            # Only managers with urllib3's own pools: a SOCKS proxy manager has its own classes.
            if getattr(manager, "pool_classes_by_scheme", None) is poolmanager.pool_classes_by_scheme:
                manager.pool_classes_by_scheme = watched
            return manager

        class WatchedAdapter(HTTPAdapter):
            def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
                super().init_poolmanager(*args, **kwargs)
                watch_pools(self.poolmanager)

            def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
                return watch_pools(super().proxy_manager_for(proxy, **kwargs))

        _ADAPTER = WatchedAdapter
    return _ADAPTER


def _report(connection: Any) -> Any:
    watchdog = getattr(_current, "watchdog", None)
    if watchdog is not None:
        watchdog.attach(connection)
    return connection
