"""A local HTTP server for the hub tests (127.0.0.1, a thread), and tests of the server itself.

``HubServer`` serves byte strings at paths, honours ``Range: bytes=N-`` (206, or 416 past the
end), can answer like HuggingFace (a 302 from ``/<repo>/resolve/<rev>/<file>`` carrying
``X-Linked-ETag``/``X-Linked-Size`` to a content URL), and injects faults per path: an HTTP
status, a connection dropped at a byte offset (once, or always = a truncated file), wrong bytes,
a slow, stalled or drip-fed body, an answer that never comes or whose headers drip in, a lying
``Content-Length``, a body longer than declared or without end, extra (huge, many) headers, a
server that ignores Range. Redirects can carry a body. It can serve over TLS (``tls=True``, with
the self-signed ``TEST_CERT`` for 127.0.0.1). Every request is logged, and the bytes written per
path are counted, so tests can see what a client made the server do.

Other hub test modules import it: ``from test_hub_server import HubServer, make_ghn_file``.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

CHUNK = 64 * 1024


@dataclass
class Fault:
    """What goes wrong when a path is requested.

    ``drop_at``: close the connection once the body reaches this absolute byte offset, for the
    first ``drop_times`` requests (None: every request, i.e. the file is truncated on the server).
    ``status``: answer this HTTP status (no body) to the first ``status_times`` requests (None: all).
    ``stall``: sleep this long before the body, for the first ``stall_times`` requests.
    ``header_stall``: sleep this long before the status line (an answer that does not come).
    ``header_drip`` / ``drip``: send the headers / the body one byte at a time, this many seconds
    apart (the body for the first ``drip_times`` requests; None: all).
    ``length``: the Content-Length to declare instead of the true one; ``chunked``: send the body
    chunked, with no Content-Length; ``extra``: this many bytes of junk after the body (more than
    declared; with ``chunked``, a body that goes on and on). ``headers``: extra header lines.
    ``partial_from``: answer 206 from this byte, whatever the request asked.
    """

    status: int | None = None
    status_times: int | None = None
    drop_at: int | None = None
    drop_times: int | None = 1
    corrupt: bool = False
    delay: float = 0.0
    stall: float = 0.0
    stall_times: int = 1
    ignore_range: bool = False
    header_stall: float = 0.0
    header_drip: float = 0.0
    drip: float = 0.0
    drip_times: int | None = None
    length: int | None = None
    chunked: bool = False
    extra: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    partial_from: int | None = None
    served: int = 0  # requests answered so far (the fault uses it to count)


@dataclass
class Served:
    data: bytes
    etag: str | None
    linked: bool
    fault: Fault = field(default_factory=Fault)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range: str | None
    if_range: str | None


class HubServer:
    """``with HubServer() as server: server.add("/a/b.pt", data); requests.get(server.url + "/a/b.pt")``.

    ``redirects[path] = (location, headers)`` answers ``path`` with a 302; ``redirect_bodies[path]``
    gives that 302 a body of so many bytes. ``sent[path]``: body bytes written for ``path`` so far.
    """

    def __init__(self, *, tls: bool = False) -> None:
        self.files: dict[str, Served] = {}
        self.redirects: dict[str, tuple[str, dict[str, str]]] = {}
        self.redirect_bodies: dict[str, int] = {}
        self.sent: dict[str, int] = {}
        self.tls = tls
        self.log: list[Request] = []
        self._lock = threading.Lock()
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- content -----------------------------------------------------------------------------
    def add(
        self, path: str, data: bytes, *, etag: str | None = "sha256", linked: bool = False, fault: Fault | None = None
    ) -> str:
        """Serve ``data`` at ``path``. ``etag``: ``"sha256"`` (the data's hash), None, or a literal.

        ``linked``: send ``X-Linked-ETag``/``X-Linked-Size`` with the answer. Returns the URL.
        """
        sha = hashlib.sha256(data).hexdigest()
        tag = f'"{sha}"' if etag == "sha256" else etag
        self.files[path] = Served(data, tag, linked, fault or Fault())
        return self.url + path

    def add_hf(
        self,
        repo: str,
        filename: str,
        data: bytes,
        *,
        revision: str = "main",
        fault: Fault | None = None,
        declared_sha256: str | None = None,
    ) -> str:
        """Serve like HuggingFace: ``/<repo>/resolve/<rev>/<file>`` -> 302 -> ``/cdn/<sha>``.

        The 302 carries ``X-Linked-ETag`` (``declared_sha256`` or the real hash) and
        ``X-Linked-Size``; the content URL's ETag is not a sha256 (like a CDN's).
        """
        sha = hashlib.sha256(data).hexdigest()
        cdn = f"/cdn/{sha}"
        self.add(cdn, data, etag=f'"cdn-{sha[:12]}"', fault=fault)
        path = f"/{repo}/resolve/{revision}/{filename}"
        self.redirects[path] = (cdn, {"X-Linked-ETag": f'"{declared_sha256 or sha}"', "X-Linked-Size": str(len(data))})
        return self.url + path

    def requests_for(self, path: str) -> list[Request]:
        return [r for r in self.log if r.path == path]

    def data_requests(self) -> list[Request]:
        """GET requests for file content (redirects excluded)."""
        return [r for r in self.log if r.method == "GET" and r.path not in self.redirects]

    # -- life cycle ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    def __enter__(self) -> HubServer:
        self._httpd = _Httpd(("127.0.0.1", 0), _handler_for(self))
        if self.tls:
            self._httpd.socket = _tls_context().wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _Httpd(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up (timeouts, dropped connections) are part of the tests


def _handler_for(server: HubServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        header_drip = 0.0  # set per answer: flush_headers then sends the header bytes one by one

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            server.log.append(Request("GET", path, self.headers.get("Range"), self.headers.get("If-Range")))
            if path in server.redirects:
                self._redirect(path)
                return
            served = server.files.get(path)
            if served is None:
                self._empty(404)
                return
            fault = served.fault
            with server._lock:
                nth = fault.served
                fault.served += 1
            if fault.header_stall:
                time.sleep(fault.header_stall)
            self.header_drip = fault.header_drip
            if fault.status is not None and (fault.status_times is None or nth < fault.status_times):
                self._empty(fault.status)
                return
            data = served.data
            if fault.corrupt:
                middle = len(data) // 2
                data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
            start = 0
            wanted = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if wanted and if_range is not None and if_range != served.etag:
                wanted = None  # the file changed since the client's partial copy: send all of it
            if fault.partial_from is not None:
                wanted = f"bytes={fault.partial_from}-"
            if wanted and not fault.ignore_range:
                start = int(wanted.removeprefix("bytes=").split("-", 1)[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            if fault.chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(fault.length if fault.length is not None else len(data) - start))
            self.send_header("Accept-Ranges", "bytes")
            if served.etag:
                self.send_header("ETag", served.etag)
            if served.linked:
                self.send_header("X-Linked-ETag", f'"{hashlib.sha256(served.data).hexdigest()}"')
                self.send_header("X-Linked-Size", str(len(served.data)))
            for key, value in fault.headers:
                self.send_header(key, value)
            self.end_headers()
            if fault.stall and nth < fault.stall_times:
                time.sleep(fault.stall)
            dropping = fault.drop_at is not None and (fault.drop_times is None or nth < fault.drop_times)
            end = max(start, min(len(data), fault.drop_at)) if dropping else len(data)
            dripping = fault.drip and (fault.drip_times is None or nth < fault.drip_times)
            body = data[start:end] + b"x" * fault.extra
            self._body(
                path,
                body,
                block=1 if dripping else CHUNK,
                pause=fault.drip if dripping else fault.delay,
                chunked=fault.chunked,
            )
            if dropping:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True

        def _body(self, path: str, body: bytes, *, block: int, pause: float, chunked: bool) -> None:
            """Write ``body`` in blocks (chunked: as HTTP chunks), counting what got out."""
            for position in range(0, len(body), block):
                piece = body[position : position + block]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                with server._lock:
                    server.sent[path] = server.sent.get(path, 0) + len(piece)
                if pause:
                    self.wfile.flush()
                    time.sleep(pause)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")

        def _redirect(self, path: str) -> None:
            location, headers = server.redirects[path]
            size = server.redirect_bodies.get(path, 0)
            self.send_response(302)
            self.send_header("Location", location)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self._body(path, b"r" * size, block=CHUNK, pause=0.0, chunked=False)

        def flush_headers(self) -> None:
            if not self.header_drip or not getattr(self, "_headers_buffer", None):
                super().flush_headers()
                return
            for byte in b"".join(self._headers_buffer):
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(self.header_drip)
            self._headers_buffer = []

        def _empty(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


# A self-signed certificate for 127.0.0.1 (valid 2000-2100), made for these tests with openssl.
# It is trusted nowhere: a client must be told to trust it (REQUESTS_CA_BUNDLE=TEST_CERT file).
TEST_CERT = """-----BEGIN CERTIFICATE-----
MIIBbTCCARSgAwIBAgIBATAKBggqhkjOPQQDAjAdMRswGQYDVQQDDBJnaG5jdGwg
dGVzdCBzZXJ2ZXIwIBcNMDAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAwMDBaMB0x
GzAZBgNVBAMMEmdobmN0bCB0ZXN0IHNlcnZlcjBZMBMGByqGSM49AgEGCCqGSM49
AwEHA0IABGdbEOckEwAhSuo3sBEb6y0Gaya/KV/aq0WchH3J+OseGXSSuOZ0goU2
JSsBG/VXNKEJ7t17ibGyDJ6xBJWTl+2jQzBBMA8GA1UdEQQIMAaHBH8AAAEwDwYD
VR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQU3tMqi+PBcPJipwC6eovu4atphUUwCgYI
KoZIzj0EAwIDRwAwRAIgN7/mTojSk0e/yJFK3olYz2qwO+qdiz/qIjmoYT4nBAAC
ICkkfsZC305k+TlYMyKUOleFXOYI8P+6LwVdFS+dB6d5
-----END CERTIFICATE-----
"""
_TEST_KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgpnNtik59/P/+SQIj
j1+aEskZYUVzhX/d4eNGvVjyxnWhRANCAARnWxDnJBMAIUrqN7ARG+stBmsmvylf
2qtFnIR9yfjrHhl0krjmdIKFNiUrARv1VzShCe7de4mxsgyesQSVk5ft
-----END PRIVATE KEY-----
"""


def _tls_context() -> ssl.SSLContext:
    """A server context with the test certificate (written to a temporary file: ssl reads files only)."""
    import tempfile

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        pem = Path(directory) / "server.pem"
        pem.write_text(TEST_CERT + _TEST_KEY)
        context.load_cert_chain(pem)
    return context


# ------------------------------------------------------------------------------------------------
# Payloads: small GHN files in the official trainer format, made here (no ../shared needed)


def make_ghn_bytes(num_classes: int = 10, filler: int = 0, seed: int = 0) -> bytes:
    """A tiny but valid official-format GHN-3 checkpoint (torch.save zip of state_dict + config).

    ``filler`` adds that many float32 zeros, to make the file as large as a test needs.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    state_dict = {
        "decoder.conv.2.weight": torch.randn(16, 8, generator=generator),
        "decoder.class_layer_predictor.0.weight": torch.randn(num_classes, 8, generator=generator),
        "filler": torch.zeros(filler),
    }
    config = {
        "max_shape": (64, 64, 11, 11),
        "num_classes": num_classes,
        "hypernet": "gatedgnn",
        "decoder": "conv",
        "weight_norm": True,
        "ve": True,
        "layernorm": True,
        "hid": 32,
        "layers": 2,
        "heads": 8,
        "is_ghn2": False,
    }
    buffer = io.BytesIO()
    torch.save({"state_dict": state_dict, "config": config, "epoch": 0, "step": 0}, buffer)
    return buffer.getvalue()


def make_ghn_file(path: Path, **kwargs: int) -> Path:
    path.write_bytes(make_ghn_bytes(**kwargs))
    return path


# ------------------------------------------------------------------------------------------------
# The server's own behaviour (what the download tests rely on)


@pytest.fixture
def server():
    with HubServer() as s:
        yield s


def test_serves_whole_file_and_ranges(server: HubServer) -> None:
    data = bytes(range(256)) * 1000
    url = server.add("/f.bin", data)
    whole = requests.get(url, timeout=5)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    part = requests.get(url, headers={"Range": "bytes=1000-"}, timeout=5)
    assert part.status_code == 206 and part.content == data[1000:]
    assert part.headers["Content-Range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
    assert requests.get(url, headers={"Range": f"bytes={len(data)}-"}, timeout=5).status_code == 416
    assert requests.get(server.url + "/missing", timeout=5).status_code == 404
    assert [r.range for r in server.requests_for("/f.bin")] == [None, "bytes=1000-", f"bytes={len(data)}-"]


def test_drop_fault_cuts_the_first_answer_only(server: HubServer) -> None:
    data = b"x" * 300_000
    url = server.add("/f.bin", data, fault=Fault(drop_at=100_000))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, timeout=5).content  # noqa: B018
    assert requests.get(url, timeout=5).content == data


def test_huggingface_style_redirect(server: HubServer) -> None:
    data = b"ghn" * 1000
    url = server.add_hf("org/repo", "w.pt", data)
    response = requests.get(url, timeout=5)
    assert response.content == data
    assert response.history[0].status_code == 302
    assert response.history[0].headers["X-Linked-ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert response.history[0].headers["X-Linked-Size"] == str(len(data))
