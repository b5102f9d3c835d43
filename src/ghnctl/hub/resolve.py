"""``--ghn SPEC`` -> a local file the GHN reader can open.

SPEC is one of, checked in this order:

* ``auto``: the best official GHN-3 already cached (XL > L > S > T); if none, download
  ``ghn3xlm16`` (``on_download`` sees its size first). Offline with nothing cached is an
  ``Offline`` error: ghnctl never falls back to a GHN with untrained weights.
* an ``http(s)://`` URL: downloaded once into the cache (``ghns/url-<hash>/``);
* a registry name, with or without ``.pt`` (``ghn3tm8``, ``ghn3tm8.pt``): from the cache, or
  downloaded. A bare name always means the registry: write ``./ghn3tm8.pt`` for a local file of
  that name;
* a path to an existing file (official ``.pt``/joblib or ghnctl ``.safetensors``), returned as is.

An explicit SPEC never falls back to anything else: a failure is an error naming SPEC. Its hint
offers a local file the way the caller takes one (``file_hint``, see ``ghnctl.hub.hints``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ghnctl import settings
from ghnctl.errors import CheckpointError, Offline
from ghnctl.hub import cache, hints
from ghnctl.hub.download import DownloadPolicy, ProgressCallback
from ghnctl.hub.registry import AUTO_DOWNLOAD, AUTO_PREFERENCE, get_entry, registry_name, unknown_ghn
from ghnctl.hub.store import AnnounceCallback, is_url, pull

AUTO = "auto"
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".pkl", ".joblib", ".ckpt", ".bin", ".safetensors")


def resolve_ghn(
    spec: str | os.PathLike[str] = AUTO,
    *,
    offline: bool | None = None,
    on_progress: ProgressCallback | None = None,
    on_download: AnnounceCallback | None = None,
    policy: DownloadPolicy | None = None,
    file_hint: str | None = hints.LIBRARY_FILE_HINT,
) -> Path:
    """The file to load for ``--ghn SPEC`` (see the module docstring), downloading if needed.

    ``offline`` defaults to ``GHNCTL_OFFLINE``/``HF_HUB_OFFLINE``. Cached GHNs are returned
    without any network request. Registry names and URLs resolve to the cached safetensors file.
    ``file_hint``: how the caller takes a local file instead, for error hints (a command passes
    ``hints.option_file_hint("--ghn")``; the default suits library calls).
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
        return _auto(**kwargs)
    if is_url(text):
        return pull(text, **kwargs)[0].path
    name = registry_name(text)
    if name is not None and not _looks_like_path(text):
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


def _auto(*, offline: bool, file_hint: str | None, **kwargs: object) -> Path:
    found = best_cached()
    if found is not None:
        return found
    if offline:
        raise Offline(
            "no official GHN-3 is in the cache and offline mode is on", hint=hints.offline(AUTO_DOWNLOAD, file_hint)
        )
    return pull(get_entry(AUTO_DOWNLOAD), offline=offline, file_hint=file_hint, **kwargs)[0].path  # type: ignore[arg-type]


def _looks_like_path(text: str) -> bool:
    return "/" in text or os.sep in text or text.startswith((".", "~"))
