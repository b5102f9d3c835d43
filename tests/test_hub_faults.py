"""Servers and networks that misbehave on purpose: every download stays bounded in time, size and trust.

Each test plays one fault on the local server (127.0.0.1; see ``test_hub_server``) with small
limits, and checks three things: the download ends soon (measured), the error is one line that
says what happened and what to do, and nothing is left that a later run would trust (a ``.part``
is kept only where resuming it is safe and useful).
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from collections import namedtuple
from dataclasses import replace
from pathlib import Path

import pytest

from ghnctl.errors import ChecksumMismatch, UsageError
from ghnctl.hub import DownloadError, DownloadPolicy, Target, limits, list_partial, lookup, pull
from ghnctl.hub import download as download_module
from ghnctl.hub import store as store_module
from ghnctl.hub.registry import HF_REPO
from test_hub_server import TEST_CERT, Fault, HubServer, make_ghn_bytes

# Small limits so that each fault shows within a second or two: 1 kB/s over 1 s, answers within 1 s.
QUICK = DownloadPolicy(
    connect_timeout=2.0,
    read_timeout=5.0,
    header_timeout=1.0,
    min_rate=1000,
    min_rate_window=1.0,
    max_time=60.0,
    retries=2,
    backoff=0.01,
    backoff_max=0.02,
    lock_stall_timeout=30.0,
)
LIMIT_VARIABLES = ("GHNCTL_MIN_RATE", "GHNCTL_MIN_RATE_WINDOW", "GHNCTL_DOWNLOAD_MAX_TIME")
MB = 1_000_000


@pytest.fixture(scope="module")
def small() -> bytes:
    return make_ghn_bytes(seed=11)


@pytest.fixture(scope="module")
def big() -> bytes:
    """About 2 MB: 32 blocks of 64 KiB, so a delay per block spreads the body over time."""
    return make_ghn_bytes(filler=500_000, seed=12)


@pytest.fixture
def server():
    with HubServer() as s:
        yield s


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: HubServer) -> Path:
    """A fresh cache, the hub pointed at the local server, QUICK limits, no limit variables set."""
    root = tmp_path / "cache"
    monkeypatch.setenv("GHNCTL_CACHE_DIR", str(root))
    monkeypatch.setenv("GHNCTL_HUB_URL", server.url)
    for name in LIMIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(store_module, "DEFAULT_POLICY", QUICK)
    return root


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retry loop's sleeps, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(download_module, "_sleep", recorded.append)
    return recorded


def cdn(data: bytes) -> str:
    return f"/cdn/{hashlib.sha256(data).hexdigest()}"


def timed(call, *args, **kwargs) -> tuple[pytest.ExceptionInfo, float]:
    """Run ``call``, which must raise; return the exception and the seconds it took."""
    started = time.monotonic()
    with pytest.raises(Exception) as info:  # noqa: PT011 - each test checks the type itself
        call(*args, **kwargs)
    return info, time.monotonic() - started


def one_line(info: pytest.ExceptionInfo) -> str:
    text = str(info.value)
    assert "\n" not in text and "\r" not in text, text
    return text


def assert_nothing_trusted(name: str = "ghn3tm8") -> None:
    assert lookup(name) is None


def watchdogs() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ghnctl-download-watchdog"]


# ------------------------------------------------------------------------------------------------
# Too slow: a body that drips in (the example) is cut off after the rate window


def test_drip_fed_body_is_cut_off_after_the_window_and_the_part_kept(cache_dir, server, big) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", big, fault=Fault(drip=0.2))
    info, elapsed = timed(pull, "ghn3tm8", policy=replace(QUICK, slow_retries=0))
    assert info.type is DownloadError
    assert 0.9 < elapsed < 5.0  # about the 1 s window, not forever
    line = one_line(info)
    assert "too slow:" in line and "B/s)" in line and "under the minimum of 1.0 kB/s over 1 s" in line
    hint = info.value.hint
    assert "try again later" in hint and "`ghnctl pull ghn3tm8` resumes" in hint
    assert "GHNCTL_MIN_RATE" in hint and "GHNCTL_MIN_RATE_WINDOW" in hint
    [partial] = list_partial()
    assert 0 < partial.size <= server.sent[cdn(big)] <= 10  # every byte that arrived is kept
    assert len(server.requests_for(cdn(big))) == 1
    assert_nothing_trusted()
    assert watchdogs() == []


def test_slow_download_gets_one_new_connection_then_fails(cache_dir, server, big, sleeps) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", big, fault=Fault(drip=0.2))
    events = []
    info, elapsed = timed(pull, "ghn3tm8", on_progress=events.append)
    assert info.type is DownloadError and "too slow" in one_line(info)
    assert elapsed < 8.0  # two windows
    first, second = server.requests_for(cdn(big))
    assert first.range is None and second.range is not None  # the retry resumes the part
    [retry] = [e.message for e in events if e.kind == "retry"]
    assert retry.startswith("too slow: ") and retry.endswith(f"retrying in {QUICK.backoff:.1f} s")
    assert sleeps == [QUICK.backoff]


def test_next_pull_after_a_slow_abort_resumes_with_range(cache_dir, server, big) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", big, fault=Fault(drip=0.2))
    with pytest.raises(DownloadError, match="too slow"):
        pull("ghn3tm8")
    [partial] = list_partial()
    server.files[cdn(big)].fault = Fault()  # the network is fast again
    cached, downloaded = pull("ghn3tm8")
    assert downloaded and cached.sha256 == hashlib.sha256(big).hexdigest()
    assert server.requests_for(cdn(big))[-1].range == f"bytes={partial.size}-"
    assert list_partial() == []


def test_fast_download_passes_the_same_limits(cache_dir, server, big) -> None:
    """About 1.5 s at ~1.3 MB/s: longer than the window, far above the minimum rate."""
    server.add_hf(HF_REPO, "ghn3tm8.pt", big, fault=Fault(delay=0.05))
    started = time.monotonic()
    cached, downloaded = pull("ghn3tm8")
    assert downloaded and time.monotonic() - started > QUICK.min_rate_window
    assert cached.sha256 == hashlib.sha256(big).hexdigest()
    assert len(server.requests_for(cdn(big))) == 1
    assert watchdogs() == []


def test_rate_limits_come_from_the_environment(cache_dir, server, big, monkeypatch) -> None:
    monkeypatch.setenv("GHNCTL_MIN_RATE", "1000")
    monkeypatch.setenv("GHNCTL_MIN_RATE_WINDOW", "1")
    server.add_hf(HF_REPO, "ghn3tm8.pt", big, fault=Fault(drip=0.2))
    unset = replace(QUICK, min_rate=None, min_rate_window=None, slow_retries=0)
    info, elapsed = timed(pull, "ghn3tm8", policy=unset)
    assert info.type is DownloadError and "minimum of 1.0 kB/s over 1 s" in one_line(info)
    assert elapsed < 5.0
    # 0 turns the check off (a time cap still ends the download).
    monkeypatch.setenv("GHNCTL_MIN_RATE", "0")
    monkeypatch.setenv("GHNCTL_DOWNLOAD_MAX_TIME", "1.5")
    info, elapsed = timed(pull, "ghn3tm8", policy=replace(unset, max_time=None))
    assert "gave up after 1.5 s" in one_line(info) and elapsed < 5.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GHNCTL_MIN_RATE", "fast"),
        ("GHNCTL_MIN_RATE", "-5"),
        ("GHNCTL_MIN_RATE", "nan"),
        ("GHNCTL_MIN_RATE_WINDOW", "0"),
        ("GHNCTL_MIN_RATE_WINDOW", "30s"),
        ("GHNCTL_DOWNLOAD_MAX_TIME", "inf"),
    ],
)
def test_bad_limit_variables_are_one_line_errors(cache_dir, server, small, monkeypatch, name, value) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", small)
    monkeypatch.setenv(name, value)
    unset = replace(QUICK, min_rate=None, min_rate_window=None, max_time=None)
    with pytest.raises(UsageError) as info:
        pull("ghn3tm8", policy=unset)
    assert one_line(info).startswith(f"{name}={value!r} is not a valid number of")
    assert server.log == []  # refused before any request


def test_limits_prefer_the_policy_then_the_environment_then_the_defaults(monkeypatch) -> None:
    for name in LIMIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert limits.resolve(None, None, None) == limits.Limits(10_000.0, 30.0, 86_400.0)
    monkeypatch.setenv("GHNCTL_MIN_RATE", "2500")
    monkeypatch.setenv("GHNCTL_DOWNLOAD_MAX_TIME", "0")
    assert limits.resolve(None, None, None) == limits.Limits(2500.0, 30.0, None)
    assert limits.resolve(50, 5, 60) == limits.Limits(50.0, 5.0, 60.0)
    with pytest.raises(ValueError, match="DownloadPolicy.min_rate_window=0"):
        limits.resolve(None, 0, None)


def test_max_time_caps_a_download_that_crawls_on(cache_dir, server, big, sleeps) -> None:
    """Above the minimum rate but endless: the overall cap ends it, and keeps the part."""
    server.add_hf(HF_REPO, "ghn3tm8.pt", big, fault=Fault(drip=0.0002))  # a few kB/s: minutes for 2 MB
    # 100 B/s is far under the trickle: only bytes counted as they arrive (not per 64 KiB read) show it.
    info, elapsed = timed(pull, "ghn3tm8", policy=replace(QUICK, max_time=1.5, min_rate=100))
    assert info.type is DownloadError and elapsed < 5.0
    line = one_line(info)
    assert "gave up after 1.5 s, the most one download may take" in line
    assert "`ghnctl pull ghn3tm8` again" in info.value.hint and "GHNCTL_DOWNLOAD_MAX_TIME" in info.value.hint
    assert sleeps == [] and len(list_partial()) == 1


# ------------------------------------------------------------------------------------------------
# Answers that do not come, or come malformed


@pytest.mark.parametrize(
    "fault",
    [
        Fault(header_stall=30),  # accepts the connection, never answers
        Fault(header_drip=0.05, headers=(("X-Padding", "p" * 4000),)),  # answers one header byte at a time
    ],
    ids=["no-answer", "dripping-headers"],
)
def test_answer_that_does_not_come_is_bounded(cache_dir, server, small, sleeps, fault) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", small, fault=fault)
    info, elapsed = timed(pull, "ghn3tm8")
    assert info.type is DownloadError
    assert "the server did not answer within 1 s" in one_line(info)
    assert len(server.requests_for(cdn(small))) == 1 + QUICK.retries  # retried like a timeout, bounded
    assert elapsed < (1 + QUICK.retries) * QUICK.header_timeout + 4.0
    assert_nothing_trusted()


@pytest.mark.parametrize(
    "headers",
    [(("X-Huge", "h" * 70_000),), tuple((f"X-Many-{i}", "m") for i in range(150))],
    ids=["huge-header-line", "too-many-headers"],
)
def test_malformed_headers_fail_at_once(cache_dir, server, small, sleeps, headers) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", small, fault=Fault(headers=headers))
    with pytest.raises(DownloadError) as info:
        pull("ghn3tm8")
    line = one_line(info)
    assert "the server's answer is not valid HTTP" in line and len(line) < 400
    assert sleeps == [] and len(server.requests_for(cdn(small))) == 1  # the same answer would come again
    assert list_partial() == []


# ------------------------------------------------------------------------------------------------
# Sizes: never more than expected on disk, refused early when announced


def test_body_longer_than_expected_is_never_written(cache_dir, server, small) -> None:
    """A chunked body that goes on past the declared size: stopped at the size, refused, deleted."""
    url = server.add("/files/ghn.pt", small, linked=True, fault=Fault(chunked=True, extra=50 * MB))
    events = []
    with pytest.raises(ChecksumMismatch) as info:
        pull(Target(name="sized", url=url), on_progress=events.append)
    assert f"more than the {len(small):,} bytes expected" in one_line(info)
    assert max((e.done for e in events if e.kind == "progress"), default=0) <= len(small)  # none past it written
    assert server.sent["/files/ghn.pt"] < 20 * MB  # and the rest not even read
    assert list_partial() == []
    assert_nothing_trusted("sized")


def test_endless_body_of_unknown_size_is_cut_off(cache_dir, server, small) -> None:
    url = server.add("/files/endless.pt", small, etag=None, fault=Fault(chunked=True, extra=50 * MB))
    with pytest.raises(DownloadError) as info:
        pull(url, policy=replace(QUICK, max_size=MB))
    line = one_line(info)
    assert f"more than {MB:,} bytes without declaring a size, more than any GHN checkpoint" in line
    assert server.sent["/files/endless.pt"] < 20 * MB
    assert list_partial() == []


def test_endless_body_stops_before_the_disk_is_full(cache_dir, server, small, monkeypatch) -> None:
    url = server.add("/files/endless.pt", small, etag=None, fault=Fault(chunked=True, extra=50 * MB))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(download_module.shutil, "disk_usage", lambda path: usage(10 * MB, 8 * MB, 2 * MB))
    with pytest.raises(DownloadError) as info:
        pull(url)
    line = one_line(info)
    assert line.startswith("not enough disk space for url-") and f"more than {MB:,} bytes" in line
    assert "GHNCTL_CACHE_DIR" in info.value.hint
    assert list_partial() == []


@pytest.mark.parametrize(
    ("known_size", "max_size", "error", "text"),
    [
        (False, QUICK.max_size, DownloadError, "announces 1,000,000,000,000,000 bytes, more than any GHN checkpoint"),
        (True, QUICK.max_size, ChecksumMismatch, "offers 1,000,000,000,000,000 bytes, expected"),
        (False, 10**18, DownloadError, "not enough disk space"),
    ],
    ids=["over-max-size", "over-registry-size", "over-free-space"],
)
def test_huge_content_length_is_refused_before_writing(
    cache_dir, server, small, sleeps, known_size, max_size, error, text
) -> None:
    url = server.add("/files/huge.pt", small, fault=Fault(length=10**15))
    target = Target(name="huge", url=url, size=len(small) if known_size else None)
    with pytest.raises(error) as info:
        pull(target, policy=replace(QUICK, max_size=max_size))
    assert text in one_line(info)
    assert sleeps == [] and len(server.log) == 1
    assert list_partial() == []


def test_sizes_declared_twice_must_agree(cache_dir, server, small) -> None:
    """HuggingFace's X-Linked-Size and the CDN's Content-Length describe one file, or nothing is taken."""
    server.add_hf(HF_REPO, "ghn3tm8.pt", small, fault=Fault(length=len(small) - 10))
    with pytest.raises(ChecksumMismatch) as info:
        pull("ghn3tm8")
    line = one_line(info)
    assert f"declares {len(small):,} bytes (X-Linked-Size) but sends a file of {len(small) - 10:,}" in line
    assert list_partial() == []


# ------------------------------------------------------------------------------------------------
# Redirects


def test_redirect_loop_is_bounded(cache_dir, server, sleeps) -> None:
    server.redirects["/loop/a"] = ("/loop/b", {})
    server.redirects["/loop/b"] = ("/loop/a", {})
    info, elapsed = timed(pull, server.url + "/loop/a")
    assert info.type is DownloadError and elapsed < 4.0
    assert f"more than {QUICK.max_redirects} redirects" in one_line(info)
    assert "loop" in info.value.hint
    assert len(server.log) == QUICK.max_redirects + 1 and sleeps == []


def test_redirect_bodies_are_never_read(cache_dir, server, small) -> None:
    """requests reads a redirect's body to its end; a hostile one can be any size."""
    server.add_hf(HF_REPO, "ghn3tm8.pt", small)
    redirect = "/SamsungSAILMontreal/ghn3/resolve/main/ghn3tm8.pt"
    server.redirect_bodies[redirect] = 100 * MB
    cached, downloaded = pull("ghn3tm8")
    assert downloaded and cached.sha256 == hashlib.sha256(small).hexdigest()
    assert server.sent.get(redirect, 0) < 50 * MB


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/ghn.pt"])
def test_redirect_out_of_http_is_refused(cache_dir, server, sleeps, location) -> None:
    server.redirects["/go"] = (location, {})
    with pytest.raises(DownloadError) as info:
        pull(server.url + "/go")
    assert f"the server redirects to {location}, which is not an http(s) URL" in one_line(info)
    assert sleeps == []


# ------------------------------------------------------------------------------------------------
# TLS


@pytest.fixture
def tls_server():
    with HubServer(tls=True) as s:
        yield s


@pytest.fixture
def trust_test_cert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Trust the test server's self-signed certificate, the documented way (REQUESTS_CA_BUNDLE)."""
    bundle = tmp_path / "test-ca.pem"
    bundle.write_text(TEST_CERT)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    return bundle


def test_untrusted_certificate_fails_at_once(cache_dir, tls_server, small, sleeps, monkeypatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    url = tls_server.add("/ghn.pt", small)
    with pytest.raises(DownloadError) as info:
        pull(url)
    host = url.split("/")[2]
    assert f"the TLS certificate of {host} is not trusted (self-signed certificate)" in one_line(info)
    assert "REQUESTS_CA_BUNDLE" in info.value.hint
    assert sleeps == [] and tls_server.log == []  # not retried; no request got through
    assert list_partial() == []


def test_trusted_certificate_works_and_https_never_redirects_to_http(
    cache_dir, tls_server, server, small, sleeps, trust_test_cert
) -> None:
    url = tls_server.add("/ghn.pt", small)
    cached, downloaded = pull(url)
    assert downloaded and cached.sha256 == hashlib.sha256(small).hexdigest()

    plain = server.add("/ghn.pt", small)
    tls_server.redirects["/down"] = (plain, {})
    with pytest.raises(DownloadError) as info:
        pull(tls_server.url + "/down")
    assert f"the server redirects from https to plain http ({plain})" in one_line(info)
    assert server.log == [] and sleeps == []


# ------------------------------------------------------------------------------------------------
# Answers that are not the file


def test_web_page_instead_of_the_file_is_refused_and_the_part_kept(cache_dir, server, big, sleeps) -> None:
    """A captive portal answers 200 with its login page: refused, and an earlier part is not touched."""
    server.add_hf(HF_REPO, "ghn3tm8.pt", big, fault=Fault(drop_at=800_000, drop_times=None))
    with pytest.raises(DownloadError, match="broke off"):
        pull("ghn3tm8", policy=replace(QUICK, retries=0))
    [before] = list_partial()
    sleeps.clear()

    page = b"<html><body>Please log in to use this network</body></html>"
    portal = Fault(ignore_range=True, headers=(("Content-Type", "text/html; charset=utf-8"),))
    server.add(cdn(big), page, fault=portal)
    with pytest.raises(DownloadError) as info:
        pull("ghn3tm8")
    assert "the server sent a web page (text/html), not the file" in one_line(info)
    assert "captive portal" in info.value.hint
    assert list_partial() == [before] and sleeps == []

    server.add(cdn(big), big, etag=f'"cdn-{hashlib.sha256(big).hexdigest()[:12]}"')  # the network is back
    cached, _ = pull("ghn3tm8")
    assert server.requests_for(cdn(big))[-1].range == f"bytes={before.size}-"
    assert cached.sha256 == hashlib.sha256(big).hexdigest()


def test_part_that_cannot_be_checked_is_not_resumed(cache_dir, server, big) -> None:
    """No validator, no sha256: a retrained GHN of the same size must not be glued to the old part.

    Both halves would make a well-formed archive of the right size, with a mix of old and new
    weights: nothing later could notice. So such a part is downloaded again from byte 0.
    """
    url = server.add("/files/ghn.pt", big, etag=None, fault=Fault(drop_at=800_000, drop_times=None))
    with pytest.raises(DownloadError):
        pull(url, policy=replace(QUICK, retries=0))
    [partial] = list_partial()
    assert partial.size == 800_000
    retrained = make_ghn_bytes(filler=500_000, seed=14)
    assert len(retrained) == len(big) and retrained != big
    server.add("/files/ghn.pt", retrained, etag=None)
    cached, downloaded = pull(url)
    assert downloaded and cached.sha256 == hashlib.sha256(retrained).hexdigest()
    assert server.requests_for("/files/ghn.pt")[-1].range is None


def test_part_of_a_file_that_changed_is_restarted_before_downloading_more(cache_dir, server, big) -> None:
    """The server now declares another size and sha256 than the part's: start again, at once."""
    url = server.add("/files/ghn.pt", big, etag=None, linked=True, fault=Fault(drop_at=800_000, drop_times=None))
    with pytest.raises(DownloadError):
        pull(url, policy=replace(QUICK, retries=0))
    newer = make_ghn_bytes(filler=400_000, seed=13)
    server.add("/files/ghn.pt", newer, etag=None, linked=True)
    events = []
    cached, _ = pull(url, on_progress=events.append)
    assert cached.sha256 == hashlib.sha256(newer).hexdigest()
    ranges = [r.range for r in server.requests_for("/files/ghn.pt")][-2:]
    assert ranges[0] is not None and ranges[1] is None  # asked to resume, saw another file, restarted
    assert not [e for e in events if e.kind == "retry" and "checksum" in e.message]  # nothing glued first


def test_compressed_answer_is_refused(cache_dir, server, small, sleeps) -> None:
    """ghnctl asks for the file as is; a gzip body (a possible decompression bomb) is refused unread."""
    packed = gzip.compress(small)
    url = server.add("/files/ghn.pt", packed, fault=Fault(headers=(("Content-Encoding", "gzip"),)))
    with pytest.raises(DownloadError) as info:
        pull(url)
    assert "sent the file compressed (Content-Encoding: gzip)" in one_line(info)
    assert sleeps == [] and list_partial() == []


def test_partial_answer_to_a_request_for_the_whole_file_fails_at_once(cache_dir, server, small, sleeps) -> None:
    url = server.add("/files/ghn.pt", small, fault=Fault(partial_from=100))
    with pytest.raises(DownloadError) as info:
        pull(url)
    assert "answered a request for the whole file with part of it (from byte 100)" in one_line(info)
    assert len(server.log) == 1 and sleeps == []
