"""What a failed request means: retry it, or stop and say why. Decided by exception types, never text.

requests wraps urllib3's errors, which wrap the socket's, ssl's and http.client's: a refused
connection arrives as ``requests.ConnectionError`` <- ``MaxRetryError`` (``reason``) <-
``NewConnectionError`` <- ``ConnectionRefusedError``. ``chain`` walks all of them; the functions
below look for the one underneath that decides:

* ``unreachable``: the name does not resolve, the connection is refused, there is no network;
* ``untrusted``: the server's TLS certificate does not verify;
* ``malformed``: the answer is not valid HTTP (a header line over 64 KiB, over 100 headers, a
  status line that is not HTTP), which a server sends again on every try;

each returns a short reason (the download then fails at once) or None (a retry may help), and
``describe`` says in a few words what happened to a request that is retried.
"""

from __future__ import annotations

import errno
import http.client
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps, each once (``__cause__``/``__context__``, ``args``, ``reason``)."""
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


def unreachable(exc: BaseException) -> str | None:
    """Why the host of a failed request cannot be reached at all, or None when a retry may help.

    Decided by the socket error at the root of the chain: an unresolvable name (``gaierror``), a
    refused connection or no network at all (``ENETUNREACH``) is not transient; a timeout, a reset,
    an unreachable host (a router may find it again) or anything else is. (urllib3's
    ``NewConnectionError`` subclasses its ``TimeoutError``: the wrapper types say nothing.)
    """
    proxy = _is_proxy_error(exc)
    for cause in chain(exc):
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve host {failed_host(exc, with_port=False, proxy=proxy)}"
        code = cause.errno if isinstance(cause, OSError) else None
        if isinstance(cause, ConnectionRefusedError) or code == errno.ECONNREFUSED:
            return f"connection to {failed_host(exc, with_port=True, proxy=proxy)} refused"
        if code == errno.ENETUNREACH:
            return f"the network is unreachable (connecting to {failed_host(exc, with_port=True, proxy=proxy)})"
    return None


def untrusted(exc: BaseException) -> str | None:
    """Why the server's TLS certificate was refused, or None. Waiting does not make it valid."""
    for cause in chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            host = failed_host(exc, with_port=True, proxy=_is_proxy_error(exc))
            return f"the TLS certificate of {host} is not trusted ({cause.verify_message or 'verification failed'})"
    return None


def malformed(exc: BaseException) -> str | None:
    """What is wrong with an answer that is not valid HTTP, or None.

    http.client refuses header lines over 64 KiB and more than 100 headers (so a huge header
    costs bounded memory) and status lines that are not HTTP. A closed connection also reaches us
    as http.client errors (``RemoteDisconnected``, ``IncompleteRead``): those stay retryable.
    """
    causes = list(chain(exc))
    if any(isinstance(c, http.client.RemoteDisconnected | http.client.IncompleteRead) for c in causes):
        return None
    for cause in causes:
        if isinstance(cause, http.client.HTTPException):
            return f"the server's answer is not valid HTTP ({short(str(cause) or type(cause).__name__, 100)})"
    return None


def describe(exc: BaseException) -> str:
    """A short reason for a retried requests/urllib3 error: timed out, reset, broke off, ..."""
    import requests

    causes = list(chain(exc))

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
    return short(text.splitlines()[0] if text else type(exc).__name__, 160)


def failed_host(exc: BaseException, *, with_port: bool, proxy: bool) -> str:
    """The host the failed connection was for: urllib3's connection, else the request's URL.

    The connection knows best (a redirect's new host, a proxy); the URL is the fallback.
    """
    host = port = None
    for cause in chain(exc):
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


def short(text: str, limit: int) -> str:
    """``text`` cut in the middle to ``limit`` characters, newlines escaped: for values a server chose."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    if len(text) <= limit:
        return text
    keep = (limit - 5) // 2
    return f"{text[:keep]} ... {text[-keep:]}"


def _is_proxy_error(exc: BaseException) -> bool:
    import requests

    return isinstance(exc, requests.exceptions.ProxyError)
