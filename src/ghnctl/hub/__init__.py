"""The GHN checkpoint hub: registry of known GHNs, verified resumable downloads, the local cache.

Modules, one job each:

* ``registry``: the known GHNs (``REGISTRY``, ``get_entry``) and their URLs;
* ``download``: one HTTP download into a ``.part`` file: resume, retries, size/sha256 checks;
* ``limits``: the rate, time and size limits of a download, from the policy or the environment;
* ``watchdog``: the thread that cuts off a request that breaks a time limit;
* ``neterrors``: which network errors are worth a retry, and how to say what happened;
* ``lock``: the inter-process lock (over ``filelock``) that makes concurrent processes download once;
* ``cache``: the cache layout, ``lookup``/``list_cached``/``clear``/``cache_path``;
* ``store``: lock + download + convert once to safetensors + record (``pull``);
* ``resolve``: ``--ghn SPEC`` -> a file (``resolve_ghn``);
* ``hints``: the how-to-fix part of errors, worded for the command (or library call) that asked.

Nothing here prints; progress goes to callbacks. Importing this package does not import torch,
requests or filelock.
"""

from __future__ import annotations

from ghnctl.hub.cache import CachedGhn, Cleared, cache_path, clear, list_cached, list_partial, lookup
from ghnctl.hub.download import DownloadError, DownloadEvent, DownloadPolicy, ProgressCallback, Target
from ghnctl.hub.lock import LockTimeout
from ghnctl.hub.registry import REGISTRY, GhnArch, RegistryEntry, get_entry
from ghnctl.hub.resolve import best_cached, resolve_ghn
from ghnctl.hub.store import pull

__all__ = [
    "REGISTRY",
    "CachedGhn",
    "Cleared",
    "DownloadError",
    "DownloadEvent",
    "DownloadPolicy",
    "GhnArch",
    "LockTimeout",
    "ProgressCallback",
    "RegistryEntry",
    "Target",
    "best_cached",
    "cache_path",
    "clear",
    "get_entry",
    "list_cached",
    "list_partial",
    "lookup",
    "pull",
    "resolve_ghn",
]
