"""Download one file over HTTP(S) into a ``.part`` file, resumably, within limits, and verify it.

``fetch`` streams the response into ``part`` and reports progress through a callback (it never
prints). A partial file left by an earlier attempt or run is resumed with an HTTP ``Range``
request, only when the result can be trusted to be one file: the server gave a validator (sent
back as ``If-Range``) or a sha256 is known to check it against. A ``206`` appends, a ``200``
means the server sends the whole file again and the part is restarted.

Only what can recover is retried: timeouts, connections dropped or reset, truncated bodies and
5xx/429 answers, with exponential backoff; the retry budget resets whenever an attempt made
progress, and is bounded otherwise. A host that cannot be reached at all, a TLS certificate that
does not verify, an answer that is not valid HTTP, 404, 401/403 and other client errors fail at
once (see ``neterrors``).

Limits against servers and networks that misbehave (``DownloadPolicy``, ``limits``):

* time: the answer's headers must arrive within ``header_timeout`` (per request, redirects
  included); the body must average ``min_rate`` bytes/s over each ``min_rate_window``; the
  whole download ends by ``max_time``. A ``watchdog.Watchdog`` thread enforces them by cutting
  the connection, since requests' timeouts apply to each socket read only. A too-slow body is
  retried ``slow_retries`` times on a new connection, then fails; the ``.part`` is kept.
* size: a declared size above the expected one, above ``max_size``, or that would not fit on
  the disk is refused before anything is written; no more than the expected size is ever
  written, and a body of unknown size is cut off at ``max_size`` or half the free space.
* shape: redirects are followed by hand (at most ``max_redirects``, never from https to http,
  their bodies never read); an HTML page or a compressed body is refused.

The finished file is checked against the expected size and sha256: the registry's, else what
the server declares (``X-Linked-Size``/``X-Linked-ETag``, as HuggingFace sends for LFS files, or
its ``ETag`` for HuggingFace-style ``/resolve/`` URLs). A mismatch deletes the file and raises
``ChecksumMismatch`` (after one fresh retry when the file had been resumed). Nothing here decides
where the file goes once verified: see ``pull``.

``requests`` is imported when a download starts, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin, urlsplit

from ghnctl import __version__
from ghnctl.errors import ChecksumMismatch, GhnctlError
from ghnctl.hub import hints, limits, neterrors
from ghnctl.hub.watchdog import Watchdog, watch_connections
from ghnctl.io import sha256_file

if TYPE_CHECKING:
    import requests

EventKind = Literal["start", "progress", "retry", "wait", "verify", "convert", "done"]


class DownloadError(GhnctlError):
    """A download failed: not found, refused, timed out, too slow, truncated, too big, or the disk is full."""


class Unreachable(DownloadError):
    """The host could not be reached at all (no network, name not resolved, connection refused):
    ``reason`` says which. ``--ghn auto`` falls back to the built-in GHN on this one only."""

    def __init__(self, message: str, *, reason: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


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
    """Timeouts and limits (seconds, bytes), retry budget and backoff of a download.

    ``connect_timeout``: to open a connection; ``read_timeout``: for each read of the socket;
    ``header_timeout``: for the whole answer header of one request, redirects included.
    ``min_rate`` (bytes/s) averaged over ``min_rate_window`` (s), and ``max_time`` (s, the whole
    download with its retries): None takes ``GHNCTL_MIN_RATE``, ``GHNCTL_MIN_RATE_WINDOW``,
    ``GHNCTL_DOWNLOAD_MAX_TIME`` when the download starts, else the defaults of
    ``ghnctl.hub.limits`` (10 kB/s over 30 s, a day); 0 turns the rate check or the cap off.
    ``slow_retries``: new connections tried after a too-slow window, per download.
    ``max_size``: the largest file accepted (a GHN is at most a few GB); ``max_redirects``: per request.
    ``retries``: retries in a row without progress (delays ``backoff`` * 1, 2, 4, ... capped at
    ``backoff_max``); ``max_attempts``: requests in all, progress or not.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    header_timeout: float = 60.0
    min_rate: float | None = None
    min_rate_window: float | None = None
    max_time: float | None = None
    slow_retries: int = 1
    max_size: int = 16 * 10**9
    max_redirects: int = 10
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


class _TooSlow(Exception):
    """The body came in under the minimum rate; retried only ``slow_retries`` times."""


class _Restart(Exception):
    """The partial file cannot be resumed: start again from byte 0."""


@dataclass(frozen=True)
class _Run:
    """One ``fetch``: what it downloads, where, how, and who hears about it."""

    session: requests.Session
    target: Target
    part: Path
    policy: DownloadPolicy
    limits: limits.Limits
    watch: Watchdog
    emit: Callable[[DownloadEvent], None]
    file_hint: str | None

    def event(self, kind: EventKind, done: int = 0, total: int | None = None, message: str = "") -> None:
        self.emit(DownloadEvent(kind, self.target.name, self.target.url, done, total, message))

    def fail(self, reason: str, hint: str | None = None) -> DownloadError:
        return DownloadError(f"cannot download {self.target.name} from {self.target.url}: {reason}", hint=hint)


# Where the retry loop sleeps; tests replace it to record the delays instead of waiting.
_sleep = time.sleep

_SHA256 = re.compile(r'^(?:W/)?"?([0-9a-fA-F]{64})"?$')
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml"})


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

    Raises DownloadError (network/HTTP/disk/limits), ChecksumMismatch (size or sha256; the file
    is deleted), UsageError (a limit variable such as ``GHNCTL_MIN_RATE`` that is not a valid
    number). The caller must hold the download lock of ``target.name``. ``file_hint`` says how
    the caller could use a local file instead (see ``ghnctl.hub.hints``); None when it cannot.
    """
    resolved = limits.resolve(policy.min_rate, policy.min_rate_window, policy.max_time)
    part.parent.mkdir(parents=True, exist_ok=True)
    with _session() as session, Watchdog(resolved, policy.header_timeout) as watch:
        run = _Run(session, target, part, policy, resolved, watch, on_progress or (lambda event: None), file_hint)
        fresh_retry_left = True
        while True:
            complete = _complete_part(part, target)
            if complete is not None:  # an earlier run downloaded it all but stopped before using it
                declared, resumed = complete, True
            else:
                declared, resumed = _download(run)
            try:
                return _verify(target, part, declared, run.emit)
            except ChecksumMismatch:
                # A resumed file may join two versions of the upstream file: try once from scratch.
                if not (resumed and fresh_retry_left):
                    raise
                fresh_retry_left = False
                run.event("retry", message="checksum mismatch after resuming; downloading again")


def _session() -> requests.Session:
    """A session over connections the watchdog can cut, that leaves redirects to ``_request``."""
    session = _session_class()()
    session.headers.update({"User-Agent": f"ghnctl/{__version__}", "Accept-Encoding": "identity"})
    watch_connections(session)
    return session


_SESSION: type[requests.Session] | None = None


def _session_class() -> type[requests.Session]:
    """``requests.Session`` that sees no redirects; defined on first use (requests loads late)."""
    global _SESSION
    if _SESSION is None:
        import requests

        class Session(requests.Session):
            def get_redirect_target(self, resp: requests.Response) -> str | None:
                # requests reads a redirect's body to its end, even with allow_redirects=False (to
                # fill Response.next): a hostile body need not end. _request follows redirects.
                return None

        _SESSION = Session
    return _SESSION


@dataclass
class _Declared:
    """What the server said about the file: total size, sha256 (if any), a validator for If-Range."""

    total: int | None = None
    sha256: str | None = None
    validator: str | None = None


def _download(run: _Run) -> tuple[_Declared, bool]:
    """Run attempts until the whole body is in ``part``; return what the server declared."""
    policy = run.policy
    failures = attempts = slow = 0
    while True:
        if run.watch.out_of_time():
            raise _out_of_time(run)
        attempts += 1
        before = _size(run.part)
        try:
            declared, offset = _attempt(run)
            return declared, offset > 0
        except _Restart as exc:
            _discard(run.part)
            if attempts >= policy.max_attempts:
                raise run.fail(str(exc)) from None
            continue
        except _TooSlow as exc:
            # A new connection may take a faster route (another CDN node, a fresh TCP window);
            # a second slow window says the route is slow, and waiting more windows only wastes time.
            slow += 1
            if slow > policy.slow_retries or attempts >= policy.max_attempts:
                raise run.fail(str(exc), hint=hints.too_slow(run.target.pull_spec)) from None
            reason, delay = str(exc), policy.backoff
        except _Transient as exc:
            failures = 0 if _size(run.part) > before else failures + 1
            if failures > policy.retries or attempts >= policy.max_attempts:
                raise run.fail(
                    str(exc),
                    hint="check the network, then run the command again: the download resumes where it stopped",
                ) from None
            reason, delay = str(exc), min(policy.backoff_max, policy.backoff * 2 ** max(failures - 1, 0))
        if run.watch.deadline is not None:
            delay = max(0.0, min(delay, run.watch.deadline - time.monotonic()))
        run.event("retry", _size(run.part), None, f"{reason}; retrying in {delay:.1f} s")
        _sleep(delay)


def _attempt(run: _Run) -> tuple[_Declared, int]:
    """One request: stream the (rest of the) body into ``part``."""
    part, target = run.part, run.target
    sidecar = _read_sidecar(part, target.url)
    offset = _size(part) if sidecar is not None and _resumable(sidecar, target) else 0
    if offset == 0:
        _discard(part)
    headers: dict[str, str] = {}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
        if sidecar and sidecar.get("validator"):
            headers["If-Range"] = sidecar["validator"]
    run.watch.begin()
    try:
        response, hops = _request(run, headers)
        with response:
            run.watch.body()
            declared, offset = _accept(run, response, hops, offset, sidecar)
            done = _stream(run, response, offset, declared)
    finally:
        run.watch.end()
    total = declared.total
    if total is not None and done < total:
        raise _Transient(f"the connection closed after {done:,} of {total:,} bytes")
    return declared, offset


def _resumable(sidecar: dict[str, Any], target: Target) -> bool:
    """Resume only what can be checked to be one file: by the server (If-Range) or by a sha256.

    Without either, the rest of a file that changed on the server would be glued to the start of
    the old one, and nothing would notice.
    """
    return bool(sidecar.get("validator") or sidecar.get("sha256") or target.sha256)


# ------------------------------------------------------------------------------------------------
# Requests and answers


def _request(run: _Run, headers: dict[str, str]) -> tuple[requests.Response, list[requests.Response]]:
    """GET the target, following redirects by hand; return the final answer and the redirects.

    requests would read each redirect's body to the end (a hostile one need not end) and follow
    30 of them; here a redirect's body is never read, at most ``max_redirects`` are followed, and
    a download that started on https never moves to plain http.
    """
    url = run.target.url
    hops: list[requests.Response] = []
    while True:
        response = _get(run, url, headers)
        location = response.headers.get("Location")
        if response.status_code not in _REDIRECTS or not location:
            return response, hops
        response.close()
        hops.append(response)
        if len(hops) > run.policy.max_redirects:
            raise run.fail(
                f"more than {run.policy.max_redirects} redirects, the last to {neterrors.short(url, 120)}",
                hint="the server redirects in a loop: check the URL and GHNCTL_HUB_URL",
            )
        url = _next_url(run, response.url, location)


def _get(run: _Run, url: str, headers: dict[str, str]) -> requests.Response:
    """One GET, headers only (``stream``); failures raised as retryable or not."""
    import requests

    policy = run.policy
    try:
        return run.session.get(
            url,
            headers=headers,
            stream=True,
            allow_redirects=False,
            timeout=(policy.connect_timeout, policy.read_timeout),
        )
    except requests.exceptions.InvalidURL as exc:
        raise DownloadError(f"invalid URL {neterrors.short(url, 200)!r}: {exc}") from None
    except requests.RequestException as exc:
        cut = _cut_off(run)
        if cut is not None:  # the watchdog closed the connection: its reason, not the symptom
            raise cut from None
        reason = neterrors.unreachable(exc)
        if reason is not None:  # retrying cannot help: say so now rather than after the backoff
            failed = run.fail(reason, hint=hints.unreachable(run.target.pull_spec, run.file_hint))
            raise Unreachable(failed.message, reason=reason, hint=failed.hint) from None
        reason = neterrors.untrusted(exc)
        if reason is not None:
            raise run.fail(reason, hint=hints.untrusted_certificate()) from None
        reason = neterrors.malformed(exc)
        if reason is not None:
            raise run.fail(
                reason, hint="the server is broken or is not the one meant: check the URL and GHNCTL_HUB_URL"
            ) from None
        if isinstance(exc, requests.ConnectionError | requests.Timeout):
            raise _Transient(neterrors.describe(exc)) from None
        raise run.fail(neterrors.describe(exc)) from None


def _next_url(run: _Run, current: str, location: str) -> str:
    """Where a redirect points, refused when it leaves http(s) or drops TLS."""
    with contextlib.suppress(UnicodeError):  # http.client decodes headers as latin-1; URLs are UTF-8
        location = location.encode("latin-1").decode("utf-8")
    url = urljoin(current, location)
    scheme = urlsplit(url).scheme.lower()
    shown = neterrors.short(url, 120)
    if scheme not in ("http", "https"):
        raise run.fail(f"the server redirects to {shown}, which is not an http(s) URL")
    if scheme == "http" and urlsplit(current).scheme.lower() == "https":
        raise run.fail(
            f"the server redirects from https to plain http ({shown})",
            hint="ghnctl does not leave TLS once on it: check GHNCTL_HUB_URL or the URL",
        )
    return url


def _accept(
    run: _Run, response: requests.Response, hops: list[requests.Response], offset: int, sidecar: dict[str, Any] | None
) -> tuple[_Declared, int]:
    """Check the final answer before any byte of its body is written; return what it declares.

    Returns the offset the body starts at (0 when the server sends the whole file again).
    """
    target = run.target
    declared = _declared([*hops, response], target)
    status = response.status_code
    if status == 416 and offset > 0:
        raise _Restart("the server refused to resume")
    _check_status(response, target, run.file_hint)
    _check_content(run, response)
    if status == 206:
        start, total = _content_range(response)
        if start != offset:
            if offset == 0:  # a restart would ask the same and get the same
                raise run.fail(
                    f"the server answered a request for the whole file with part of it (from byte {start:,})"
                )
            raise _Restart(f"the server resumed at byte {start:,}, not {offset:,}")
        declared.total = _agree(declared.total, total, target)
    else:  # 200: the whole file, whatever was asked
        offset = 0
        length = response.headers.get("Content-Length", "").strip()
        declared.total = _agree(declared.total, int(length) if length.isdigit() else None, target)
    if offset > 0 and sidecar is not None and _changed(sidecar, declared):
        raise _Restart("the file on the server changed since the partial download")
    _check_declared(run, declared, offset)
    _write_sidecar(run.part, target.url, declared)
    run.event("start", offset, declared.total or target.size)
    return declared, offset


def _stream(run: _Run, response: requests.Response, offset: int, declared: _Declared) -> int:
    """Append the body to ``part``, never past the expected size; return the part's size at the end."""
    import requests
    import urllib3

    part, target = run.part, run.target
    total = declared.total or target.size
    limit, why = (total, "expected") if total is not None else _unknown_size_limit(run, offset)
    read = _reader(response.raw)
    done = offset
    overrun = False
    try:
        f = open(part, "ab" if offset else "wb")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise _write_error(part, exc) from None
    try:
        while True:
            try:
                # One byte more than may come: it tells a body that goes on from one that ends.
                chunk = read(min(run.policy.chunk_size, limit - done + 1))
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise (_cut_off(run) or _Transient(neterrors.describe(exc))) from None
            if not chunk:
                break
            if done + len(chunk) > limit:
                overrun = True
                break
            try:
                f.write(chunk)
            except OSError as exc:
                raise _write_error(part, exc) from None
            done += len(chunk)
            run.watch.received(len(chunk))
            run.event("progress", done, total)
            if run.watch.verdict is not None and done != total:
                break  # cut off, though the socket could not be shut (a SOCKS proxy): stop here too
        try:
            f.flush()
            os.fsync(f.fileno())
        except OSError as exc:
            raise _write_error(part, exc) from None
    finally:
        f.close()
    if overrun:
        _discard(part)
        raise _too_much(run, limit, why)
    cut = _cut_off(run)
    if cut is not None and (total is None or done < total):
        raise cut  # the body ended because the watchdog cut it: not the end of the file
    return done


def _reader(raw: Any) -> Callable[[int], bytes]:
    """Read what has arrived, up to n bytes, as sent (no decompression).

    ``read1`` (urllib3 2) returns as soon as any data is there, so every byte received is written
    and counted; urllib3 1's ``read`` waits for n bytes (the watchdog still bounds the wait).
    """
    read1 = getattr(raw, "read1", None)
    if read1 is not None:
        return lambda n: read1(n, decode_content=False)
    return lambda n: raw.read(n, decode_content=False)


def _unknown_size_limit(run: _Run, offset: int) -> tuple[int, str]:
    """How much a body of undeclared size may be: ``max_size``, and room for it and its converted copy."""
    room = (shutil.disk_usage(run.part.parent).free + offset) // 2
    if room < run.policy.max_size:
        return room, "room"
    return run.policy.max_size, "max_size"


def _too_much(run: _Run, limit: int, why: str) -> GhnctlError:
    """The error for a body that went past ``limit`` bytes (the part is already deleted)."""
    name = run.target.name
    if why == "expected":
        return ChecksumMismatch(
            f"{name}: the server sent more than the {limit:,} bytes expected; stopped there and deleted the file",
            hint="the file on the server is not the expected one",
        )
    if why == "room":
        return DownloadError(
            f"not enough disk space for {name}: the server sent more than {limit:,} bytes without declaring a "
            f"size, and the file and its converted copy would not fit in {str(run.part.parent)!r}; stopped there "
            "and deleted the file",
            hint="free some space or point GHNCTL_CACHE_DIR to a larger disk",
        )
    return DownloadError(
        f"{name}: the server sent more than {limit:,} bytes without declaring a size, more than any GHN "
        "checkpoint; stopped there and deleted the file",
        hint="check the URL: it does not serve a GHN checkpoint",
    )


def _cut_off(run: _Run) -> Exception | None:
    """The error for the watchdog's verdict on the current request, or None if it has none."""
    verdict = run.watch.verdict
    if verdict is None:
        return None
    if verdict.kind == "slow":
        return _TooSlow(verdict.message)
    if verdict.kind == "max_time":
        return _out_of_time(run)
    return _Transient(verdict.message)


def _out_of_time(run: _Run) -> DownloadError:
    cap = run.limits.max_time or 0.0
    return run.fail(
        f"gave up after {limits.seconds_text(cap)}, the most one download may take",
        hint=hints.out_of_time(run.target.pull_spec),
    )


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
def _declared(answers: list[requests.Response], target: Target) -> _Declared:
    """Size and sha256 the server declares, from the final answer and every redirect before it."""
    declared = _Declared()
    for answer in answers:
        linked = answer.headers.get("X-Linked-ETag")
        if linked and (match := _SHA256.match(linked.strip())):
            declared.sha256 = match.group(1).lower()
        linked_size = answer.headers.get("X-Linked-Size", "").strip()
        if linked_size.isdigit():
            declared.total = int(linked_size)
    response = answers[-1]
    etag = response.headers.get("ETag")
    if declared.sha256 is None and etag and target.trust_etag and (match := _SHA256.match(etag.strip())):
        declared.sha256 = match.group(1).lower()
    if etag and not etag.startswith("W/"):
        declared.validator = etag
    elif response.headers.get("Last-Modified"):
        declared.validator = response.headers["Last-Modified"]
    return declared


def _agree(linked: int | None, sent: int | None, target: Target) -> int | None:
    """The file's size from ``X-Linked-Size`` and from the answer itself, refused when they differ."""
    if linked is not None and sent is not None and linked != sent:
        raise ChecksumMismatch(
            f"{target.name}: the server declares {linked:,} bytes (X-Linked-Size) but sends a file of {sent:,}",
            hint="the server or a proxy on the way is not serving the expected file; nothing was downloaded",
        )
    return linked if linked is not None else sent


def _changed(sidecar: dict[str, Any], declared: _Declared) -> bool:
    """Whether the answer describes another file than the one the partial download began."""
    for key in ("total", "sha256"):
        before, now = sidecar.get(key), getattr(declared, key)
        if before is not None and now is not None and before != now:
            return True
    return False


def _check_status(response: requests.Response, target: Target, file_hint: str | None) -> None:
    status = response.status_code
    if status in (200, 206):
        return
    where = f"{target.name} at {neterrors.short(response.url or target.url, 200)}"  # a redirect may be long
    if status in (404, 410):
        raise DownloadError(f"{where} was not found (HTTP {status})", hint=hints.not_found(file_hint))
    if status in (401, 403):
        raise DownloadError(f"access to {where} was refused (HTTP {status})", hint=hints.access_refused(file_hint))
    if status == 429 or status >= 500:
        raise _Transient(f"the server answered HTTP {status}")
    if status in _REDIRECTS:
        raise DownloadError(f"cannot download {where}: HTTP {status} without a Location to follow")
    reason = neterrors.short(response.reason or "", 80)
    raise DownloadError(f"cannot download {where}: HTTP {status} {reason}".rstrip())


def _check_content(run: _Run, response: requests.Response) -> None:
    """Refuse what cannot be the file: a web page, or a body compressed against our request."""
    kind = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if kind in _PAGE_TYPES:
        raise run.fail(
            f"the server sent a web page ({kind}), not the file",
            hint="a login page, a captive portal or an error page is in the way: open the URL in a browser, "
            "check GHNCTL_HUB_URL, then run the command again",
        )
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise run.fail(
            f"the server sent the file compressed (Content-Encoding: {neterrors.short(encoding, 40)}), "
            "though ghnctl asked for it as it is",
            hint="a proxy on the way may rewrite downloads: check the proxy settings and GHNCTL_HUB_URL",
        )


def _content_range(response: requests.Response) -> tuple[int, int | None]:
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", "").strip())
    if not match:
        raise _Restart("the server sent a partial answer without a valid Content-Range")
    total = match.group(3)
    return int(match.group(1)), int(total) if total.isdigit() else None


def _check_declared(run: _Run, declared: _Declared, offset: int) -> None:
    """Fail before downloading when the server announces another file, too big a one, or the disk is too small."""
    target, part = run.target, run.part
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
    if total is None:
        return
    if total > run.policy.max_size:
        raise run.fail(
            f"the server announces {total:,} bytes, more than any GHN checkpoint "
            f"(the limit is {run.policy.max_size:,}); nothing was downloaded",
            hint="check the URL: it does not serve a GHN checkpoint",
        )
    # Room for the rest of the download and for the converted copy of about the same size.
    needed = (total - offset) + total
    free = shutil.disk_usage(part.parent).free
    if free < needed:
        raise DownloadError(
            f"not enough disk space for {target.name}: {needed:,} bytes needed, {free:,} free in {str(part.parent)!r}",
            hint="free some space or point GHNCTL_CACHE_DIR to a larger disk",
        )


# ------------------------------------------------------------------------------------------------
# The sidecar ``<part>.json`` records which URL a partial file belongs to, and what its server
# declared: validator, total size, sha256. A resumed answer must declare the same.


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
