"""Load a GHN by registry name, URL, ``auto`` or path: the hub finds the file, ``ghnctl.ghn`` reads it.

This is the one place where the two meet, so ``ghnctl.ghn`` never reaches the network and the hub
never builds networks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .ghn.model import GHN


def load_ghn(spec: str | os.PathLike[str] = "auto", *, device: str | torch.device = "cpu",
             offline: bool | None = None, on_progress: Callable[..., Any] | None = None,
             on_download: Callable[..., Any] | None = None,
             on_notice: Callable[[str], None] | None = None) -> GHN:
    """A GHN from a registry name (``ghn3tm8``, the built-in ``ghnctl-c10``), ``auto``, an http(s)
    URL or a checkpoint file.

    Names and URLs are downloaded once into the cache (``ghnctl.hub.resolve_ghn``; ``offline``
    defaults to ``GHNCTL_OFFLINE``); ``auto`` without an official GHN and without network takes the
    built-in GHN and says so through ``on_notice`` (else a ``BuiltinGhnWarning``). ``ghn.source``
    records the name and the file.
    """
    from .hub import resolve_ghn

    path = resolve_ghn(spec, offline=offline, on_progress=on_progress, on_download=on_download,
                       on_notice=on_notice)
    return load_resolved(os.fspath(spec), path, device=device)


def load_resolved(spec: str, path: Path, *, device: str | torch.device = "cpu") -> GHN:
    """Load the file ``spec`` resolved to, named after ``spec``, with what the registry knows and an
    official file does not say (the image size it was trained on)."""
    from .ghn.model import load_ghn as load_ghn_file
    from .hub.registry import REGISTRY

    ghn = load_ghn_file(path, device=device, name=ghn_name(spec, path))
    entry = REGISTRY.get(ghn.source.name)
    if entry is not None and ghn.source.trained_image_size is None:
        ghn.source.trained_image_size = entry.arch.image_size
    return ghn


def ghn_name(spec: str, path: Path) -> str:
    """A short name for the GHN ``spec`` resolved to ``path``: the registry name when there is one."""
    from .builtin import builtin_path
    from .hub import lookup
    from .hub.registry import AUTO_FALLBACK, AUTO_PREFERENCE, registry_name

    if spec == "auto":
        if path == builtin_path(AUTO_FALLBACK):
            return AUTO_FALLBACK
        for name in AUTO_PREFERENCE:
            hit = lookup(name)
            if hit is not None and hit.path == path:
                return name
        return path.name
    name = registry_name(spec)
    if name is not None and not Path(spec).expanduser().is_file():
        return name
    return spec
