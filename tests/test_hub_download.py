"""Downloads through the hub against a local HTTP server: resume, retries, verification, offline.

Payloads are tiny official-format GHN files made by the tests (``make_ghn_bytes``), served the
way HuggingFace serves them (302 with ``X-Linked-ETag``/``X-Linked-Size``). After every failure
the tests check that nothing is left where a later run would trust it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import socket
import time
from pathlib import Path

import pytest
import torch

from ghnctl.builtin import builtin_path
from ghnctl.errors import ChecksumMismatch, Offline
from ghnctl.ghn import checkpoint as ckpt_module
from ghnctl.hub import DownloadError, DownloadPolicy, Target, cache, list_partial, lookup, pull, resolve_ghn
from ghnctl.hub import download as download_module
from ghnctl.hub import store as store_module
from ghnctl.hub.hints import option_file_hint
from ghnctl.hub.registry import HF_REPO
from ghnctl.hub.resolve import BuiltinGhnWarning
from test_hub_server import Fault, HubServer, make_ghn_bytes

FAST = DownloadPolicy(
    connect_timeout=2.0, read_timeout=2.0, retries=2, backoff=0.01, backoff_max=0.02, lock_stall_timeout=30.0
)
TM8 = "/SamsungSAILMontreal/ghn3/resolve/main/ghn3tm8.pt"


@pytest.fixture(scope="module")
def small() -> bytes:
    return make_ghn_bytes(seed=1)


@pytest.fixture(scope="module")
def big() -> bytes:
    """About 2 MB, so a dropped connection lands mid-file."""
    return make_ghn_bytes(filler=500_000, seed=2)


@pytest.fixture
def server():
    with HubServer() as s:
        yield s


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: HubServer) -> Path:
    """A fresh cache, the hub pointed at the local server, and fast retries."""
    root = tmp_path / "cache"
    monkeypatch.setenv("GHNCTL_CACHE_DIR", str(root))
    monkeypatch.setenv("GHNCTL_HUB_URL", server.url)
    monkeypatch.setattr(store_module, "DEFAULT_POLICY", FAST)
    return root


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retry loop's sleeps, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(download_module, "_sleep", recorded.append)
    return recorded


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Host names looked up; names under ``.invalid`` (RFC 6761) fail here, and never reach a resolver."""
    real = socket.getaddrinfo
    seen: list[str] = []

    def getaddrinfo(host, *args, **kwargs):
        seen.append(host)
        if str(host).endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return seen


def closed_port() -> int:
    """A local port that nothing listens on: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cdn(data: bytes) -> str:
    return f"/cdn/{hashlib.sha256(data).hexdigest()}"


def assert_nothing_trusted(root: Path, name: str = "ghn3tm8") -> None:
    """No cache entry, no converted file and no metadata for ``name``."""
    assert lookup(name) is None
    directory = root / "ghns" / name
    if directory.exists():
        leftovers = {p.name for p in directory.iterdir()}
        assert not {n for n in leftovers if n.endswith((".safetensors", ".pt")) or n == "meta.json"}, leftovers


# ------------------------------------------------------------------------------------------------
def test_fresh_download_is_verified_converted_and_recorded(cache_dir, server, small, monkeypatch) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", small)
    parses = []
    real_load_zip = ckpt_module._load_zip
    monkeypatch.setattr(ckpt_module, "_load_zip", lambda path: parses.append(path) or real_load_zip(path))
    events = []

    path = resolve_ghn("ghn3tm8", on_progress=events.append)

    sha = hashlib.sha256(small).hexdigest()
    assert path == cache_dir / "ghns" / "ghn3tm8" / f"{sha}.safetensors"
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, "meta.json"])
    meta = json.loads((path.parent / "meta.json").read_text())
    assert meta["sha256"] == sha and meta["sha256_source"] == "server" and meta["size"] == len(small)
    assert meta["original_format"] == "torch-zip" and meta["config"]["num_classes"] == 10
    kinds = [e.kind for e in events if e.kind != "progress"]
    assert kinds == ["start", "verify", "convert", "done"]

    loaded = ckpt_module.read_checkpoint(path)
    assert loaded.format == "safetensors" and loaded.config.num_classes == 10
    original = torch.load(__import__("io").BytesIO(small), weights_only=True)["state_dict"]
    for key, tensor in original.items():
        assert torch.equal(loaded.state_dict[key], tensor)
    # Later resolutions and loads never parse the pickle again.
    resolve_ghn("ghn3tm8")
    resolve_ghn("ghn3tm8.pt")
    ckpt_module.read_checkpoint(path)
    assert len(parses) == 1


def test_cache_hit_makes_no_network_request(cache_dir, server, small) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", small)
    first = resolve_ghn("ghn3tm8")
    before = len(server.log)
    assert resolve_ghn("ghn3tm8") == first
    assert pull("ghn3tm8") == (lookup("ghn3tm8"), False)
    assert resolve_ghn("auto") == first
    assert len(server.log) == before


def test_resume_after_connection_dropped_mid_file(cache_dir, server, big, sleeps) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", big, fault=Fault(drop_at=700_000))
    events = []
    path = resolve_ghn("ghn3tm8", on_progress=events.append)
    assert len(sleeps) == 1

    ranges = [r.range for r in server.requests_for(cdn(big))]
    assert len(ranges) == 2 and ranges[0] is None
    resumed_at = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 700_000
    assert [e.kind for e in events].count("retry") == 1
    assert lookup("ghn3tm8").sha256 == hashlib.sha256(big).hexdigest() == path.stem


def test_resume_partial_file_left_by_an_earlier_run(cache_dir, server, big) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", big, fault=Fault(drop_at=900_000, drop_times=None))
    with pytest.raises(DownloadError, match="broke off"):
        resolve_ghn("ghn3tm8", policy=DownloadPolicy(retries=0, backoff=0.01))
    assert_nothing_trusted(cache_dir)
    [partial] = list_partial()
    assert 0 < partial.size <= 900_000

    server.files[cdn(big)].fault = Fault()  # the network is back
    resolve_ghn("ghn3tm8")
    assert server.requests_for(cdn(big))[-1].range == f"bytes={partial.size}-"
    assert lookup("ghn3tm8").sha256 == hashlib.sha256(big).hexdigest()
    assert list_partial() == []


def test_server_ignoring_range_restarts_from_zero(cache_dir, server, big) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", big, fault=Fault(drop_at=800_000, drop_times=None))
    with pytest.raises(DownloadError):
        resolve_ghn("ghn3tm8", policy=DownloadPolicy(retries=0))
    server.files[cdn(big)].fault = Fault(ignore_range=True)
    resolve_ghn("ghn3tm8")
    last = server.requests_for(cdn(big))[-1]
    assert last.range is not None  # it asked to resume, got a 200 and started again
    assert lookup("ghn3tm8").sha256 == hashlib.sha256(big).hexdigest()


def test_file_changed_on_server_is_downloaded_whole(cache_dir, server, big) -> None:
    """If-Range: a partial copy of an older file is not glued to the new one."""
    server.add_hf(HF_REPO, "ghn3tm8.pt", big, fault=Fault(drop_at=800_000, drop_times=None))
    with pytest.raises(DownloadError):
        resolve_ghn("ghn3tm8", policy=DownloadPolicy(retries=0))
    newer = make_ghn_bytes(filler=500_000, seed=3)
    server.add_hf(HF_REPO, "ghn3tm8.pt", newer)
    resolve_ghn("ghn3tm8")
    assert server.requests_for(cdn(newer))[-1].if_range is not None
    assert lookup("ghn3tm8").sha256 == hashlib.sha256(newer).hexdigest()


def test_truncated_file_fails_and_leaves_nothing_trusted(cache_dir, server, big) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", big, fault=Fault(drop_at=1_000_000, drop_times=None))
    with pytest.raises(DownloadError) as info:
        resolve_ghn("ghn3tm8")
    assert "ghn3tm8" in info.value.message and info.value.hint
    # One first attempt, then no progress for `retries` more: bounded.
    assert len(server.requests_for(cdn(big))) == 1 + 1 + FAST.retries
    assert_nothing_trusted(cache_dir)


def test_short_file_against_registry_size_is_a_checksum_mismatch(cache_dir, server, small) -> None:
    url = server.add("/files/ghn.pt", small[:-100])
    target = Target(name="sized", url=url, size=len(small))
    with pytest.raises(ChecksumMismatch, match="expected"):
        pull(target)
    assert_nothing_trusted(cache_dir, "sized")
    assert list_partial() == []


def test_wrong_bytes_are_a_checksum_mismatch_and_deleted(cache_dir, server, small) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", small, fault=Fault(corrupt=True))
    with pytest.raises(ChecksumMismatch, match="sha256") as info:
        resolve_ghn("ghn3tm8")
    assert "deleted" in info.value.message
    assert_nothing_trusted(cache_dir)
    assert list_partial() == []
    # The next run downloads afresh and succeeds.
    server.files[cdn(small)].fault = Fault()
    resolve_ghn("ghn3tm8")
    assert server.requests_for(cdn(small))[-1].range is None


def test_pinned_sha256_refuses_another_file_before_downloading(cache_dir, server, small) -> None:
    url = server.add_hf(HF_REPO, "ghn3tm8.pt", small)
    target = Target(name="pinned", url=url, sha256="0" * 64, trust_etag=True)
    with pytest.raises(ChecksumMismatch, match="declares sha256"):
        pull(target)
    assert_nothing_trusted(cache_dir, "pinned")
    # The right pin passes, and is recorded as verified against the registry.
    cached, downloaded = pull(Target(name="pinned", url=url, sha256=hashlib.sha256(small).hexdigest()))
    assert downloaded and cached.sha256_source == "registry"


def test_pinned_sha256_catches_a_server_that_lies(cache_dir, server, small) -> None:
    """The server declares the pinned hash but sends other bytes."""
    sha = hashlib.sha256(small).hexdigest()
    url = server.add_hf(HF_REPO, "ghn3tm8.pt", small, fault=Fault(corrupt=True))
    with pytest.raises(ChecksumMismatch):
        pull(Target(name="pinned", url=url, sha256=sha))
    assert_nothing_trusted(cache_dir, "pinned")


def test_not_found(cache_dir, server) -> None:
    with pytest.raises(DownloadError, match=r"not found \(HTTP 404\)") as info:
        resolve_ghn("ghn3tm8")
    assert "GHNCTL_HUB_URL" in info.value.hint and "--" not in info.value.hint  # a library call has no options
    assert "path of a checkpoint file" in info.value.hint
    assert len(server.log) == 1  # no retries for a 404
    assert_nothing_trusted(cache_dir)
    assert list_partial() == []


def test_hints_offer_a_file_only_the_way_the_caller_takes_one(cache_dir, server) -> None:
    """A command with --ghn gets it in the hint; `pull` (no file option) gets no file alternative."""
    with pytest.raises(DownloadError) as info:
        resolve_ghn("ghn3tm8", file_hint=option_file_hint("--ghn"))
    assert info.value.hint == "check the name and GHNCTL_HUB_URL, or pass --ghn PATH to a checkpoint file"
    with pytest.raises(DownloadError) as info:
        pull("ghn3tm8")
    assert info.value.hint == "check the name and GHNCTL_HUB_URL"
    server.add("/private/ghn.pt", b"", fault=Fault(status=403))
    with pytest.raises(DownloadError, match=r"refused \(HTTP 403\)") as info:
        pull(server.url + "/private/ghn.pt")
    assert "--ghn" not in info.value.hint and "checkpoint file" not in info.value.hint
    with pytest.raises(Offline) as info:
        pull("ghn3tm8", offline=True)
    assert "ghnctl pull ghn3tm8" in info.value.hint and "checkpoint file" not in info.value.hint


def test_connection_refused_fails_at_once(cache_dir, monkeypatch, sleeps) -> None:
    port = closed_port()
    monkeypatch.setenv("GHNCTL_HUB_URL", f"http://127.0.0.1:{port}")
    events = []
    started = time.monotonic()
    with pytest.raises(DownloadError) as info:
        resolve_ghn("ghn3tm8", on_progress=events.append, file_hint=option_file_hint("--ghn"))
    elapsed = time.monotonic() - started
    assert f"connection to 127.0.0.1:{port} refused" in info.value.message
    hint = info.value.hint
    assert "check the network" in hint and "ghnctl pull ghn3tm8" in hint and "`ghnctl cache path`" in hint
    assert "--ghn PATH" in hint
    assert events == [] and sleeps == []  # one attempt: no retry, no backoff
    assert elapsed < 1.0
    assert_nothing_trusted(cache_dir)


def test_unresolvable_host_fails_at_once(cache_dir, monkeypatch, sleeps, lookups) -> None:
    monkeypatch.setenv("GHNCTL_HUB_URL", "http://ghnctl-test.invalid")
    events = []
    started = time.monotonic()
    with pytest.raises(DownloadError) as info:
        pull("ghn3tm8", on_progress=events.append)
    elapsed = time.monotonic() - started
    assert "cannot resolve host ghnctl-test.invalid" in info.value.message
    assert "check the network" in info.value.hint and "ghnctl pull ghn3tm8" in info.value.hint
    assert "--ghn" not in info.value.hint  # `pull` has no --ghn
    assert lookups == ["ghnctl-test.invalid"]  # looked up once, never retried
    assert events == [] and sleeps == []
    assert elapsed < 1.0
    assert_nothing_trusted(cache_dir)


def test_unresolvable_redirect_names_the_host_that_failed(cache_dir, server, small, sleeps, lookups) -> None:
    """HuggingFace redirects to a CDN: the error names the CDN's host, not the first one."""
    server.add_hf(HF_REPO, "ghn3tm8.pt", small)
    server.redirects[TM8] = ("http://cdn.ghnctl-test.invalid/file", {})
    with pytest.raises(DownloadError, match="cannot resolve host cdn.ghnctl-test.invalid"):
        pull("ghn3tm8")
    assert sleeps == [] and len(server.log) == 1


def test_unresolvable_proxy_says_it_is_the_proxy(cache_dir, server, monkeypatch, sleeps, lookups) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.ghnctl-test.invalid:3128")
    with pytest.raises(DownloadError, match=r"cannot resolve host proxy.ghnctl-test.invalid \(the proxy\)"):
        pull("ghn3tm8")
    assert sleeps == [] and server.log == []


def test_no_network_fails_at_once(cache_dir, monkeypatch, sleeps) -> None:
    """ENETUNREACH (no route to any network) cannot recover by waiting either."""
    import urllib3.util.connection

    def unreachable(*args, **kwargs):
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", unreachable)
    with pytest.raises(DownloadError, match="the network is unreachable"):
        pull("ghn3tm8")
    assert sleeps == []


@pytest.mark.parametrize("status", [503, 429])
def test_server_errors_are_retried(cache_dir, server, small, sleeps, status) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", small, fault=Fault(status=status, status_times=2))
    events = []
    resolve_ghn("ghn3tm8", on_progress=events.append)
    assert len(server.requests_for(cdn(small))) == 3
    assert sleeps == [FAST.backoff, 2 * FAST.backoff]  # exponential backoff
    assert [e.message for e in events if e.kind == "retry"][0].startswith(f"the server answered HTTP {status}")
    assert lookup("ghn3tm8") is not None


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), "the connection was reset"),
        (TimeoutError("timed out"), "the connection timed out"),
    ],
    ids=["reset", "connect-timeout"],
)
def test_transient_connection_errors_are_retried(cache_dir, server, small, monkeypatch, sleeps, error, reason) -> None:
    """Failing to connect is retried when waiting can help, unlike a refusal or a failed DNS lookup."""
    import urllib3.util.connection

    real = urllib3.util.connection.create_connection
    calls = []

    def fail_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise error
        return real(*args, **kwargs)

    server.add_hf(HF_REPO, "ghn3tm8.pt", small)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", fail_once)
    events = []
    resolve_ghn("ghn3tm8", on_progress=events.append)
    assert [e.message for e in events if e.kind == "retry"] == [f"{reason}; retrying in {FAST.backoff:.1f} s"]
    assert sleeps == [FAST.backoff] and lookup("ghn3tm8") is not None


# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["GHNCTL_OFFLINE", "HF_HUB_OFFLINE", "argument"])
def test_offline_without_cache_is_one_clear_error(cache_dir, server, monkeypatch, how) -> None:
    if how != "argument":
        monkeypatch.setenv(how, "1")
    offline = True if how == "argument" else None
    with pytest.raises(Offline) as info:
        resolve_ghn("ghn3tm8", offline=offline)
    text = str(info.value)
    assert "ghn3tm8" in text and "ghnctl pull ghn3tm8" in text and "path of a checkpoint file" in text
    assert "\n" not in text
    # auto is the one spec that falls back: to the shipped GHN, saying so (here as a warning)
    with pytest.warns(BuiltinGhnWarning, match="offline mode is on: using the built-in ghnctl-c10") as record:
        assert resolve_ghn("auto", offline=offline) == builtin_path("ghnctl-c10")
    assert "ghnctl pull ghn3xlm16" in str(record[0].message)
    assert server.log == []
    assert_nothing_trusted(cache_dir)


def test_offline_with_cache(cache_dir, server, small, monkeypatch) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", small)
    path = resolve_ghn("ghn3tm8")
    before = len(server.log)
    monkeypatch.setenv("GHNCTL_OFFLINE", "1")
    assert resolve_ghn("ghn3tm8") == path
    assert resolve_ghn("auto") == path
    with pytest.raises(Offline):
        pull("ghn3tm8", force=True)
    assert len(server.log) == before


def test_auto_prefers_the_best_cached_ghn3(cache_dir, server, small, big) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", small)
    server.add_hf(HF_REPO, "ghn3sm8.pt", big)
    tm8 = resolve_ghn("ghn3tm8")
    assert resolve_ghn("auto") == tm8
    sm8 = resolve_ghn("ghn3sm8")
    before = len(server.log)
    assert resolve_ghn("auto") == sm8
    assert len(server.log) == before


def test_auto_downloads_xl_after_announcing_its_size(cache_dir, server, small) -> None:
    server.add_hf(HF_REPO, "ghn3xlm16.pt", small)
    announced = []
    path = resolve_ghn("auto", on_download=lambda target: announced.append((target, len(server.log))))
    [(target, requests_before)] = announced
    assert target.name == "ghn3xlm16" and requests_before == 0
    assert target.approx_size == 654_365_184 * 4
    assert path == lookup("ghn3xlm16").path


def test_explicit_name_never_falls_back(cache_dir, server, small) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", small)
    resolve_ghn("ghn3tm8")
    with pytest.raises(DownloadError, match="ghn3sm8"):
        resolve_ghn("ghn3sm8")
    with pytest.raises(Offline, match="ghn3sm8"):
        resolve_ghn("ghn3sm8", offline=True)


def test_announce_callback_can_cancel(cache_dir, server, small) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", small)

    def refuse(target: Target) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        resolve_ghn("ghn3tm8", on_download=refuse)
    assert server.log == []


def test_force_downloads_again_and_keeps_the_old_entry_on_failure(cache_dir, server, small) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", small)
    old = resolve_ghn("ghn3tm8")
    del server.redirects[TM8]
    with pytest.raises(DownloadError, match="404"):
        pull("ghn3tm8", force=True)
    assert lookup("ghn3tm8").path == old and old.exists()

    newer = make_ghn_bytes(seed=5)
    server.add_hf(HF_REPO, "ghn3tm8.pt", newer)
    cached, downloaded = pull("ghn3tm8", force=True)
    assert downloaded and cached.sha256 == hashlib.sha256(newer).hexdigest()
    assert not old.exists()
    assert sorted(p.name for p in cached.path.parent.iterdir()) == sorted([cached.path.name, "meta.json"])


def test_url_spec_is_cached_under_its_hash(cache_dir, server, small) -> None:
    url = server.add("/elsewhere/my-ghn.pt", small)
    path = resolve_ghn(url)
    entry = lookup(cache.url_cache_name(url))
    assert entry.path == path and entry.url == url
    assert entry.sha256_source == "computed"  # a plain server: nothing declared the hash
    before = len(server.log)
    assert resolve_ghn(url, offline=True) == path
    assert len(server.log) == before


def test_interrupted_conversion_reuses_the_verified_download(cache_dir, server, small, monkeypatch) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", small)
    real_convert = ckpt_module.convert

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_module, "convert", interrupted)
    with pytest.raises(KeyboardInterrupt):
        resolve_ghn("ghn3tm8")
    assert_nothing_trusted(cache_dir)
    assert len(list_partial()) == 1
    monkeypatch.setattr(ckpt_module, "convert", real_convert)
    requests_before = len(server.data_requests())
    resolve_ghn("ghn3tm8")
    assert len(server.data_requests()) == requests_before  # re-verified locally, not downloaded again
    assert lookup("ghn3tm8").sha256 == hashlib.sha256(small).hexdigest()


def test_not_a_ghn_is_deleted(cache_dir, server) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", b"<html>a login page</html>" * 10)
    from ghnctl.errors import CheckpointError

    with pytest.raises(CheckpointError):
        resolve_ghn("ghn3tm8")
    assert_nothing_trusted(cache_dir)
    assert list_partial() == []


def test_cache_dir_that_cannot_be_written(cache_dir, server, small, tmp_path, monkeypatch) -> None:
    from ghnctl.errors import GhnctlError

    server.add_hf(HF_REPO, "ghn3tm8.pt", small)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("GHNCTL_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(GhnctlError, match="cannot lock") as info:
        resolve_ghn("ghn3tm8")
    assert "GHNCTL_CACHE_DIR" in info.value.hint
    assert server.log == []
