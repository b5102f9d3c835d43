"""Download one file over HTTP(S) into a ``.part`` file, resumably, and verify it.

``fetch`` streams the response into ``part`` and reports progress through a callback (it never
prints). A partial file left by an earlier attempt or run is resumed with an HTTP ``Range``
request (with ``If-Range`` when the server gave a validator): a ``206`` appends, a ``200`` means
the server sends the whole file again and the part is restarted.

Only what can recover is retried: timeouts, connections dropped or reset, truncated bodies and
5xx/429 answers, with exponential backoff; the retry budget resets whenever an attempt made
progress, and is bounded otherwise. A host that cannot be reached at all (its name does not
resolve, it refuses the connection, there is no route to its network) fails at once, as do 404,
401/403 and other client errors. Errors are classified by the exception types requests/urllib3
wrap (``_chain``), never by their message text.

The finished file is checked against the expected size and sha256: the registry's, else what
the server declares (``X-Linked-Size``/``X-Linked-ETag``, as HuggingFace sends for LFS files, or
its ``ETag`` for HuggingFace-style ``/resolve/`` URLs). A mismatch deletes the file and raises
``ChecksumMismatch`` (after one fresh retry when the file had been resumed). Nothing here decides
where the file goes once verified: see ``pull``.

``requests`` is imported when a download starts, so importing this module stays cheap.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from ghnctl import __version__
from ghnctl.errors import ChecksumMismatch, GhnctlError
from ghnctl.hub import hints
from ghnctl.io import sha256_file

if TYPE_CHECKING:
    import requests

EventKind = Literal["start", "progress", "retry", "wait", "verify", "convert", "done"]


class DownloadError(GhnctlError):
    """A download failed: not found, refused, timed out, truncated, or the disk is full."""


@dataclass(frozen=True)
class DownloadEvent:
    """A progress report. ``done``/``total`` are bytes (``total`` None when unknown).

    Kinds: ``start`` (a request got an answer; ``done`` is where it resumes), ``progress``,
    ``retry`` (``message`` says why), ``wait`` (another process is downloading), ``verify``
    (hashing), ``convert`` (to safetensors), ``done``.
    """

    kind: EventKind
    name: str
    url: str
    done: int = 0
    total: int | None = None
    message: str = ""


ProgressCallback = Callable[[DownloadEvent], None]


@dataclass(frozen=True)
class DownloadPolicy:
    """Timeouts (seconds), retry budget and backoff of a download.

    ``retries``: retries in a row without progress (delays ``backoff`` * 1, 2, 4, ... capped at
    ``backoff_max``); ``max_attempts``: requests in all, progress or not.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 4
    backoff: float = 1.0
    backoff_max: float = 30.0
    max_attempts: int = 100
    chunk_size: int = 1 << 16
    lock_stall_timeout: float = 900.0


DEFAULT_POLICY = DownloadPolicy()


@dataclass(frozen=True)
class Target:
    """What to download: the cache ``name``, the ``url``, and what the file must be.

    ``size``/``sha256`` are None when unknown; ``trust_etag`` lets a 64-hex ``ETag`` count as the
    file's sha256 (true of HuggingFace ``/resolve/`` URLs). ``approx_size`` is for display only.
    """

    name: str
    url: str
    size: int | None = None
    sha256: str | None = None
    trust_etag: bool = False
    approx_size: int | None = None

    @property
    def pull_spec(self) -> str:
        """What `ghnctl pull` takes to fetch this file: the registry name, or the URL."""
        return self.url if self.name.startswith("url-") else self.name


@dataclass(frozen=True)
class Fetched:
    """A verified download: ``path`` (still the ``.part`` file), its size and sha256."""

    path: Path
    size: int
    sha256: str
    sha256_source: Literal["registry", "server", "computed"]


class _Transient(Exception):
    """A failure worth retrying (the message says what happened)."""


class _Restart(Exception):
    """The partial file cannot be resumed: start again from byte 0."""


# Where the retry loop sleeps; tests replace it to record the delays instead of waiting.
_sleep = time.sleep

_SHA256 = re.compile(r'^(?:W/)?"?([0-9a-fA-F]{64})"?$')
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


# ------------------------------------------------------------------------------------------------
def fetch(
    target: Target,
    part: Path,
    *,
    policy: DownloadPolicy = DEFAULT_POLICY,
    on_progress: ProgressCallback | None = None,
    file_hint: str | None = None,
) -> Fetched:
    """Download ``target.url`` into ``part`` (resuming it if present) and verify it.

    Raises DownloadError (network/HTTP/disk), ChecksumMismatch (size or sha256; the file is
    deleted). The caller must hold the download lock of ``target.name``. ``file_hint`` says how
    the caller could use a local file instead (see ``ghnctl.hub.hints``); None when it cannot.
    """
    import requests

    emit = on_progress or (lambda event: None)
    part.parent.mkdir(parents=True, exist_ok=True)
    with requests.Session() as session:
        session.headers.update({"User-Agent": f"ghnctl/{__version__}", "Accept-Encoding": "identity"})
        fresh_retry_left = True
        while True:
            complete = _complete_part(part, target)
            if complete is not None:  # an earlier run downloaded it all but stopped before using it
                declared, resumed = complete, True
            else:
                declared, resumed = _download(session, target, part, policy, emit, file_hint)
            try:
                return _verify(target, part, declared, emit)
            except ChecksumMismatch:
                # A resumed file may join two versions of the upstream file: try once from scratch.
                if not (resumed and fresh_retry_left):
                    raise
                fresh_retry_left = False
                emit(
                    DownloadEvent(
                        "retry", target.name, target.url, message="checksum mismatch after resuming; downloading again"
                    )
                )


@dataclass
class _Declared:
    """What the server said about the file: total size, sha256 (if any), a validator for If-Range."""

    total: int | None = None
    sha256: str | None = None
    validator: str | None = None


def _download(
    session: requests.Session,
    target: Target,
    part: Path,
    policy: DownloadPolicy,
    emit: Callable[[DownloadEvent], None],
    file_hint: str | None,
) -> tuple[_Declared, bool]:
    """Run attempts until the whole body is in ``part``; return what the server declared."""
    failures = attempts = 0
    while True:
        attempts += 1
        before = _size(part)
        try:
            declared, offset = _attempt(session, target, part, policy, emit, file_hint)
            return declared, offset > 0
        except _Restart as exc:
            _discard(part)
            if attempts >= policy.max_attempts:
                raise DownloadError(f"cannot download {target.url}: {exc}") from None
            continue
        except _Transient as exc:
            failures = 0 if _size(part) > before else failures + 1
            if failures > policy.retries or attempts >= policy.max_attempts:
                raise DownloadError(
                    f"cannot download {target.name} from {target.url}: {exc}",
                    hint="check the network, then run the command again: the download resumes where it stopped",
                ) from None
            delay = min(policy.backoff_max, policy.backoff * 2 ** max(failures - 1, 0))
            emit(
                DownloadEvent("retry", target.name, target.url, _size(part), None, f"{exc}; retrying in {delay:.1f} s")
            )
            _sleep(delay)


def _attempt(
    session: requests.Session,
    target: Target,
    part: Path,
    policy: DownloadPolicy,
    emit: Callable[[DownloadEvent], None],
    file_hint: str | None,
) -> tuple[_Declared, int]:
    """One request: stream the (rest of the) body into ``part``."""
    import requests

    sidecar = _read_sidecar(part, target.url)
    offset = _size(part) if sidecar is not None else 0
    if offset == 0:
        _discard(part)
    headers: dict[str, str] = {}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
        if sidecar and sidecar.get("validator"):
            headers["If-Range"] = sidecar["validator"]
    try:
        response = session.get(
            target.url, headers=headers, stream=True, timeout=(policy.connect_timeout, policy.read_timeout)
        )
    except requests.exceptions.InvalidURL as exc:
        raise DownloadError(f"invalid URL {target.url!r}: {exc}") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        reason = _unreachable(exc)
        if reason is not None:  # retrying cannot help: say so now rather than after the backoff
            raise DownloadError(
                f"cannot download {target.name} from {target.url}: {reason}",
                hint=hints.unreachable(target.pull_spec, file_hint),
            ) from None
        raise _Transient(_describe(exc)) from None
    except requests.RequestException as exc:
        raise DownloadError(f"cannot download {target.url}: {_describe(exc)}") from None

    with response:
        declared = _declared(response, target)
        status = response.status_code
        if status == 416 and offset > 0:
            raise _Restart("the server refused to resume")
        _check_status(response, target, file_hint)
        if status == 206:
            start, total = _content_range(response)
            if start != offset:
                raise _Restart(f"the server resumed at byte {start}, not {offset}")
            declared.total = declared.total or total
        else:  # 200: the whole file, whatever was asked
            offset = 0
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit():
                declared.total = int(length)
        _check_declared(target, part, declared, offset)
        _write_sidecar(part, target.url, declared)
        emit(DownloadEvent("start", target.name, target.url, offset, declared.total or target.size))
        done = _stream(response, part, offset, policy, target, declared, emit)
    total = declared.total
    if total is not None and done < total:
        raise _Transient(f"the connection closed after {done:,} of {total:,} bytes")
    return declared, offset


def _stream(
    response: requests.Response,
    part: Path,
    offset: int,
    policy: DownloadPolicy,
    target: Target,
    declared: _Declared,
    emit: Callable[[DownloadEvent], None],
) -> int:
    """Append the body to ``part``; return the part's size when the body ends."""
    import requests
    import urllib3

    done = offset
    total = declared.total or target.size
    chunks = response.iter_content(chunk_size=policy.chunk_size)
    try:
        f = open(part, "ab" if offset else "wb")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise _write_error(part, exc) from None
    try:
        while total is None or done <= total:
            try:
                chunk = next(chunks, None)
            except (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
                raise _Transient(_describe(exc)) from None
            if chunk is None:
                break
            try:
                f.write(chunk)
            except OSError as exc:
                raise _write_error(part, exc) from None
            done += len(chunk)
            emit(DownloadEvent("progress", target.name, target.url, done, total))
        try:
            f.flush()
            os.fsync(f.fileno())
        except OSError as exc:
            raise _write_error(part, exc) from None
    finally:
        f.close()
    if total is not None and done > total:
        _discard(part)
        raise ChecksumMismatch(
            f"{target.name}: the server sent more than the {total:,} bytes expected; the file was deleted",
            hint="the file on the server is not the expected one",
        )
    return done


def _write_error(part: Path, exc: OSError) -> DownloadError:
    return DownloadError(
        f"cannot write {str(part)!r}: {exc.strerror or exc}",
        hint="check free space and permissions, or set GHNCTL_CACHE_DIR",
    )


# ------------------------------------------------------------------------------------------------
def _verify(target: Target, part: Path, declared: _Declared, emit: Callable[[DownloadEvent], None]) -> Fetched:
    size = _size(part)
    expected_size = target.size if target.size is not None else declared.total
    if expected_size is not None and size != expected_size:
        _discard(part)
        raise ChecksumMismatch(
            f"{target.name}: downloaded {size:,} bytes, expected {expected_size:,}; the file was deleted",
            hint="run the command again; if it persists the file on the server has changed",
        )
    emit(DownloadEvent("verify", target.name, target.url, size, size))
    digest = sha256_file(part)
    expected = (target.sha256 or declared.sha256 or "").lower() or None
    if expected is not None and digest != expected:
        _discard(part)
        raise ChecksumMismatch(
            f"{target.name}: sha256 of the download is {digest}, expected {expected}; the file was deleted",
            hint="run the command again; if it persists the file on the server is not the expected one",
        )
    source: Literal["registry", "server", "computed"] = (
        "registry" if target.sha256 else "server" if declared.sha256 else "computed"
    )
    return Fetched(part, size, digest, source)


# ------------------------------------------------------------------------------------------------
def _declared(response: requests.Response, target: Target) -> _Declared:
    """Size and sha256 the server declares, from the final answer and every redirect before it."""
    declared = _Declared()
    answers = [*response.history, response]
    for answer in answers:
        linked = answer.headers.get("X-Linked-ETag")
        if linked and (match := _SHA256.match(linked.strip())):
            declared.sha256 = match.group(1).lower()
        linked_size = answer.headers.get("X-Linked-Size", "")
        if linked_size.isdigit():
            declared.total = int(linked_size)
    etag = response.headers.get("ETag")
    if declared.sha256 is None and etag and target.trust_etag and (match := _SHA256.match(etag.strip())):
        declared.sha256 = match.group(1).lower()
    if etag and not etag.startswith("W/"):
        declared.validator = etag
    elif response.headers.get("Last-Modified"):
        declared.validator = response.headers["Last-Modified"]
    return declared


def _check_status(response: requests.Response, target: Target, file_hint: str | None) -> None:
    status = response.status_code
    if status in (200, 206):
        return
    where = f"{target.name} at {response.url or target.url}"
    if status in (404, 410):
        raise DownloadError(f"{where} was not found (HTTP {status})", hint=hints.not_found(file_hint))
    if status in (401, 403):
        raise DownloadError(f"access to {where} was refused (HTTP {status})", hint=hints.access_refused(file_hint))
    if status == 429 or status >= 500:
        raise _Transient(f"the server answered HTTP {status}")
    raise DownloadError(f"cannot download {where}: HTTP {status} {response.reason or ''}".rstrip())


def _content_range(response: requests.Response) -> tuple[int, int | None]:
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", "").strip())
    if not match:
        raise _Restart("the server sent a partial answer without a valid Content-Range")
    total = match.group(3)
    return int(match.group(1)), int(total) if total.isdigit() else None


def _check_declared(target: Target, part: Path, declared: _Declared, offset: int) -> None:
    """Fail before downloading when the server announces another file, or the disk is too small."""
    if target.size is not None and declared.total is not None and declared.total != target.size:
        _discard(part)
        raise ChecksumMismatch(
            f"{target.name}: the server offers {declared.total:,} bytes, expected {target.size:,}",
            hint="the file on the server has changed; nothing was downloaded",
        )
    if target.sha256 and declared.sha256 and declared.sha256 != target.sha256.lower():
        _discard(part)
        raise ChecksumMismatch(
            f"{target.name}: the server declares sha256 {declared.sha256}, expected {target.sha256}",
            hint="the file on the server has changed; nothing was downloaded",
        )
    total = declared.total or target.size
    if total is not None:
        # Room for the rest of the download and for the converted copy of about the same size.
        needed = (total - offset) + total
        free = shutil.disk_usage(part.parent).free
        if free < needed:
            raise DownloadError(
                f"not enough disk space for {target.name}: {needed:,} bytes needed, {free:,} free "
                f"in {str(part.parent)!r}",
                hint="free some space or point GHNCTL_CACHE_DIR to a larger disk",
            )


# ------------------------------------------------------------------------------------------------
# The sidecar ``<part>.json`` records which URL a partial file belongs to and its validator.


def _sidecar_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _read_sidecar(part: Path, url: str) -> dict[str, Any] | None:
    try:
        data = json.loads(_sidecar_path(part).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("url") == url and part.exists() else None


def _write_sidecar(part: Path, url: str, declared: _Declared) -> None:
    data = {"url": url, "validator": declared.validator, "total": declared.total, "sha256": declared.sha256}
    _sidecar_path(part).write_text(json.dumps(data), encoding="utf-8")


def _complete_part(part: Path, target: Target) -> _Declared | None:
    """What the server declared for ``part`` if it already holds the whole file, else None."""
    sidecar = _read_sidecar(part, target.url)
    if sidecar is None or not isinstance(sidecar.get("total"), int) or _size(part) != sidecar["total"]:
        return None
    sha = sidecar.get("sha256")
    return _Declared(
        total=sidecar["total"], sha256=sha if isinstance(sha, str) else None, validator=sidecar.get("validator")
    )


def _discard(part: Path) -> None:
    """Delete a partial file and its sidecar."""
    part.unlink(missing_ok=True)
    _sidecar_path(part).unlink(missing_ok=True)


def discard_part(part: Path) -> None:
    """Public: delete a ``.part`` file and its sidecar (after a successful conversion, or bad data)."""
    _discard(part)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps, each once.

    requests wraps urllib3's errors, which wrap the socket's: a refused connection arrives as
    ``requests.ConnectionError`` <- ``MaxRetryError`` (``reason``) <- ``NewConnectionError`` <-
    ``ConnectionRefusedError``, linked through ``__cause__``/``__context__``, ``args`` and ``reason``.
    """
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None), *current.args)
        pending.extend(e for e in linked if isinstance(e, BaseException))


def _unreachable(exc: BaseException) -> str | None:
    """Why the host of a failed request cannot be reached at all, or None when a retry may help.

    Decided by the socket error at the root of the chain: an unresolvable name (``gaierror``), a
    refused connection or no network at all (``ENETUNREACH``) is not transient; a timeout, a reset,
    an unreachable host (a router may find it again) or anything else is. (urllib3's
    ``NewConnectionError`` subclasses its ``TimeoutError``: the wrapper types say nothing.)
    """
    import requests

    proxy = isinstance(exc, requests.exceptions.ProxyError)
    for cause in _chain(exc):
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve host {_failed_host(exc, with_port=False, proxy=proxy)}"
        code = cause.errno if isinstance(cause, OSError) else None
        if isinstance(cause, ConnectionRefusedError) or code == errno.ECONNREFUSED:
            return f"connection to {_failed_host(exc, with_port=True, proxy=proxy)} refused"
        if code == errno.ENETUNREACH:
            return f"the network is unreachable (connecting to {_failed_host(exc, with_port=True, proxy=proxy)})"
    return None


def _failed_host(exc: BaseException, *, with_port: bool, proxy: bool) -> str:
    """The host the failed connection was for: urllib3's connection, else the request's URL.

    The connection knows best (a redirect's new host, a proxy); the URL is the fallback.
    """
    host = port = None
    for cause in _chain(exc):
        conn = getattr(cause, "conn", None)
        if isinstance(getattr(conn, "host", None), str):
            host, port = conn.host, getattr(conn, "port", None)
            break
    if host is None:
        request = getattr(exc, "request", None)
        parts = urlsplit(getattr(request, "url", None) or "")
        host, port = parts.hostname, parts.port
    text = f"{host}:{port}" if with_port and port else (host or "the server")
    return f"{text} (the proxy)" if proxy else text


def _describe(exc: BaseException) -> str:
    """A short reason for a retried requests/urllib3 error: timed out, reset, broke off, ..."""
    import requests

    causes = list(_chain(exc))

    def caused_by(*types: type[BaseException]) -> bool:
        return any(isinstance(c, types) for c in causes)

    if caused_by(TimeoutError, requests.Timeout):
        return "the connection timed out"
    if caused_by(http.client.IncompleteRead):
        return "the connection broke off mid-file"
    if caused_by(ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
        return "the connection was reset"
    if caused_by(http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    text = str(exc)
    first = text.splitlines()[0] if text else type(exc).__name__
    return first if len(first) <= 160 else first[:157] + "..."
