"""Put a GHN into the cache: lock, download, verify, convert once to safetensors, record.

Steps of ``pull`` for a GHN that is not cached yet:

1. take the GHN's download lock (another process downloading it makes this one wait, then
   find the finished entry and download nothing);
2. ``download.fetch`` into ``ghns/<name>/download-<hash>.part`` (resuming an earlier partial
   file) and verify size and sha256;
3. parse the verified pickle **once**, with the restricted reader of ``ghnctl.ghn.checkpoint``,
   and write ``<sha256>.safetensors`` atomically; a file that is not a valid GHN, or a hostile
   one, is deleted and the error raised;
4. write ``meta.json`` atomically (the moment the entry becomes visible), delete the ``.part``.

Later loads read only the safetensors file. Only the pickle reader imports torch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from ghnctl import settings
from ghnctl.errors import CheckpointError, Offline
from ghnctl.hub import cache, hints, limits
from ghnctl.hub.cache import CachedGhn
from ghnctl.hub.download import (
    DEFAULT_POLICY,
    DownloadEvent,
    DownloadPolicy,
    Fetched,
    ProgressCallback,
    Target,
    discard_part,
    fetch,
)
from ghnctl.hub.lock import DownloadLock
from ghnctl.hub.registry import RegistryEntry, get_entry

AnnounceCallback = Callable[[Target], None]


def target_for(spec: str | RegistryEntry) -> Target:
    """The download target of a registry entry or name, or of an http(s) URL."""
    if isinstance(spec, RegistryEntry):
        entry = spec
    elif is_url(spec):
        return Target(name=cache.url_cache_name(spec), url=spec, trust_etag="/resolve/" in urlsplit(spec).path)
    else:
        entry = get_entry(spec)
    return Target(
        name=entry.name,
        url=entry.url(),
        size=entry.size,
        sha256=entry.sha256,
        trust_etag=entry.source == "huggingface" or "/resolve/" in urlsplit(entry.url()).path,
        approx_size=entry.approx_size,
    )


def is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def pull(
    spec: str | RegistryEntry | Target,
    *,
    force: bool = False,
    offline: bool | None = None,
    on_progress: ProgressCallback | None = None,
    on_download: AnnounceCallback | None = None,
    policy: DownloadPolicy | None = None,
    file_hint: str | None = None,
) -> tuple[CachedGhn, bool]:
    """Make sure the GHN ``spec`` (registry name/entry, URL or Target) is cached; return it.

    The second value is True when this call downloaded it. A cached GHN is returned without any
    network request unless ``force``. ``offline`` (default: ``GHNCTL_OFFLINE``/``HF_HUB_OFFLINE``)
    turns a needed download into an ``Offline`` error. ``on_download(target)`` is called once
    before a download starts (show its size, or raise to cancel); ``on_progress`` gets
    ``DownloadEvent``s. ``file_hint`` says how the caller could use a local file instead, for
    error hints (see ``ghnctl.hub.hints``); None, the default, offers none.
    """
    target = spec if isinstance(spec, Target) else target_for(spec)
    if not force and (hit := cache.lookup(target.name)) is not None:
        return hit, False
    if settings.offline() if offline is None else offline:
        if force and cache.lookup(target.name) is not None:
            raise Offline(
                f"cannot download {target.name} again: offline mode is on",
                hint="drop --force to use the cached copy, or go online",
            )
        raise Offline(
            f"{target.name} is not in the GHN cache ({cache.cache_path()}) and offline mode is on",
            hint=hints.offline(target.pull_spec, file_hint),
        )
    policy = policy or DEFAULT_POLICY
    # A bad GHNCTL_MIN_RATE (or other limit variable) fails now, before anything is locked or announced.
    limits.resolve(policy.min_rate, policy.min_rate_window, policy.max_time)
    emit = on_progress or (lambda event: None)
    directory = cache.entry_dir(target.name)
    part = directory / f"download-{cache.url_cache_name(target.url)[4:]}{cache.PART_SUFFIX}"

    def on_wait(holder: str) -> None:
        emit(
            DownloadEvent(
                "wait", target.name, target.url, message=f"waiting for {holder}, which is downloading {target.name}"
            )
        )

    lock = DownloadLock(
        cache.lock_path(target.name),
        stall_timeout=policy.lock_stall_timeout,
        probe=lambda: _progress_probe(directory),
        on_wait=on_wait,
    )
    with lock:
        if not force and (hit := cache.lookup(target.name)) is not None:
            return hit, False  # another process finished it while this one waited
        if on_download is not None:
            on_download(target)
        directory.mkdir(parents=True, exist_ok=True)
        fetched = fetch(target, part, policy=policy, on_progress=emit, file_hint=file_hint)
        cached = _convert_and_record(target, fetched, emit)
        emit(DownloadEvent("done", target.name, target.url, fetched.size, fetched.size))
        return cached, True


def _convert_and_record(target: Target, fetched: Fetched, emit: Callable[[DownloadEvent], None]) -> CachedGhn:
    """Parse the verified download once (restricted reader), save safetensors, write meta.json."""
    from ghnctl.ghn.checkpoint import convert

    directory = cache.entry_dir(target.name)
    out = directory / f"{fetched.sha256}.safetensors"
    emit(DownloadEvent("convert", target.name, target.url, fetched.size, fetched.size))
    try:
        checkpoint = convert(fetched.path, out, force=True)
    except CheckpointError:
        # Not a GHN, corrupt, or hostile: nothing of it may stay where a later run would look.
        discard_part(fetched.path)
        out.unlink(missing_ok=True)
        raise
    except BaseException:
        out.unlink(missing_ok=True)  # e.g. Ctrl-C: the verified .part stays and is re-verified next time
        raise
    params = sum(int(t.numel()) for t in checkpoint.state_dict.values())
    cache.write_meta(
        target.name,
        {
            "name": target.name,
            "file": out.name,
            "file_size": out.stat().st_size,
            "url": target.url,
            "sha256": fetched.sha256,
            "sha256_source": fetched.sha256_source,
            "size": fetched.size,
            "original_format": checkpoint.format,
            "params": params,
            "config": checkpoint.config.to_dict(),
            "downloaded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        },
    )
    cache.remove_stale_files(target.name, keep=out)
    hit = cache.lookup(target.name)
    if hit is None:  # pragma: no cover - only if the disk changed under us
        raise CheckpointError(
            f"{target.name} was converted but its cache entry cannot be read", hint=f"check {str(directory)!r}"
        )
    return hit


def _progress_probe(directory: Path) -> tuple[int, ...]:
    """What changes while another process downloads into ``directory`` (sizes of its files)."""
    try:
        return tuple(sorted(p.stat().st_size for p in directory.iterdir() if p.is_file()))
    except OSError:
        return ()
