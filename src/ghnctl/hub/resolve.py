"""``--ghn SPEC`` -> a local file the GHN reader can open.

SPEC is one of, checked in this order:

* ``auto``: the best official GHN-3 already cached (XL > L > S > T); if none, download
  ``ghn3xlm16`` (``on_download`` sees its size first). With offline mode on, or when the hub
  cannot be reached at all (no network, name not resolved, connection refused), the built-in
  ``ghnctl-c10`` instead, and ``on_notice`` gets one line saying so and how to get an official
  GHN (library calls without ``on_notice`` get a ``BuiltinGhnWarning``). Any other download
  failure (a timeout, a 5xx, a bad checksum) stays an error: it is not the user's choice to skip.
* an ``http(s)://`` URL: downloaded once into the cache (``ghns/url-<hash>/``);
* a registry name, with or without ``.pt`` (``ghn3tm8``, ``ghn3tm8.pt``): from the cache, or
  downloaded; a built-in name (``ghnctl-c10``) is the file shipped in the package. A bare name
  always means the registry: write ``./ghn3tm8.pt`` for a local file of that name;
* a path to an existing file (official ``.pt``/joblib or ghnctl ``.safetensors``), returned as is.

An explicit SPEC never falls back to anything else: a failure is an error naming SPEC. Its hint
offers a local file the way the caller takes one (``file_hint``, see ``ghnctl.hub.hints``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

from ghnctl import settings
from ghnctl.errors import CheckpointError
from ghnctl.hub import cache, hints
from ghnctl.hub.download import DownloadPolicy, ProgressCallback, Unreachable
from ghnctl.hub.registry import (
    AUTO_DOWNLOAD,
    AUTO_FALLBACK,
    AUTO_PREFERENCE,
    REGISTRY,
    get_entry,
    registry_name,
    unknown_ghn,
)
from ghnctl.hub.store import AnnounceCallback, is_url, pull

AUTO = "auto"
NoticeCallback = Callable[[str], None]


class BuiltinGhnWarning(UserWarning):
    """``--ghn auto`` used the built-in GHN because no official one could be had."""
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".pkl", ".joblib", ".ckpt", ".bin", ".safetensors")


def resolve_ghn(
    spec: str | os.PathLike[str] = AUTO,
    *,
    offline: bool | None = None,
    on_progress: ProgressCallback | None = None,
    on_download: AnnounceCallback | None = None,
    policy: DownloadPolicy | None = None,
    file_hint: str | None = hints.LIBRARY_FILE_HINT,
    on_notice: NoticeCallback | None = None,
) -> Path:
    """The file to load for ``--ghn SPEC`` (see the module docstring), downloading if needed.

    ``offline`` defaults to ``GHNCTL_OFFLINE``/``HF_HUB_OFFLINE``. Cached GHNs are returned
    without any network request. Registry names and URLs resolve to the cached safetensors file.
    ``file_hint``: how the caller takes a local file instead, for error hints (a command passes
    ``hints.option_file_hint("--ghn")``; the default suits library calls). ``on_notice`` gets the
    one line ``auto`` says when it falls back to the built-in GHN.
    """
    offline = settings.offline() if offline is None else offline
    text = os.fspath(spec)
    kwargs = {
        "offline": offline,
        "on_progress": on_progress,
        "on_download": on_download,
        "policy": policy,
        "file_hint": file_hint,
    }
    if text == AUTO:
        return _auto(notice=on_notice, **kwargs)
    if is_url(text):
        return pull(text, **kwargs)[0].path
    name = registry_name(text)
    if name is not None and not _looks_like_path(text):
        if REGISTRY[name].builtin:
            from ghnctl.builtin import builtin_path

            return builtin_path(name)
        return pull(name, **kwargs)[0].path
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise CheckpointError(f"GHN checkpoint {text!r} is not a file")
    if _looks_like_path(text) or path.suffix in _CHECKPOINT_SUFFIXES:
        raise CheckpointError(
            f"GHN checkpoint {text!r} does not exist",
            hint="give a file path, an http(s) URL, or a name from `ghnctl ghn list`",
        )
    raise unknown_ghn(text)


def best_cached() -> Path | None:
    """The cached safetensors of the best official GHN-3 (XL > L > S > T), or None."""
    for name in AUTO_PREFERENCE:
        hit = cache.lookup(name)
        if hit is not None:
            return hit.path
    return None


def _auto(*, offline: bool, file_hint: str | None, notice: NoticeCallback | None, **kwargs: object) -> Path:
    found = best_cached()
    if found is not None:
        return found
    if offline:
        return _fallback("offline mode is on", notice)
    try:
        return pull(get_entry(AUTO_DOWNLOAD), offline=offline, file_hint=file_hint, **kwargs)[0].path  # type: ignore[arg-type]
    except Unreachable as exc:
        return _fallback(f"the GHN hub cannot be reached ({exc.reason})", notice)


def _fallback(why: str, notice: NoticeCallback | None) -> Path:
    """The built-in GHN for ``auto``, announced in one line: what, why, and how to get a better one."""
    from ghnctl.builtin import builtin_path

    path = builtin_path(AUTO_FALLBACK)
    entry = REGISTRY[AUTO_FALLBACK]
    message = (f"no official GHN-3 is cached and {why}: using the built-in {AUTO_FALLBACK} ({entry.title}); "
               f"for an official GHN-3 run `ghnctl pull {AUTO_DOWNLOAD}` (or `ghnctl pull ghn3tm8`, "
               f"{_approx_mb('ghn3tm8')}) with network")
    if notice is not None:
        notice(message)
    else:
        warnings.warn(message, BuiltinGhnWarning, stacklevel=3)
    return path


def _approx_mb(name: str) -> str:
    size = REGISTRY[name].approx_size
    return f"~{size / 1e6:.0f} MB" if size else "size unknown"


def _looks_like_path(text: str) -> bool:
    return "/" in text or os.sep in text or text.startswith((".", "~"))
