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
             on_download: Callable[..., Any] | None = None) -> GHN:
    """A GHN from a registry name (``ghn3tm8``), ``auto``, an http(s) URL or a checkpoint file.

    Names and URLs are downloaded once into the cache (``ghnctl.hub.resolve_ghn``; ``offline``
    defaults to ``GHNCTL_OFFLINE``). ``ghn.source`` records the name and the file.
    """
    from .ghn.model import load_ghn as load_ghn_file
    from .hub import resolve_ghn

    path = resolve_ghn(spec, offline=offline, on_progress=on_progress, on_download=on_download)
    return load_ghn_file(path, device=device, name=ghn_name(os.fspath(spec), path))


def ghn_name(spec: str, path: Path) -> str:
    """A short name for the GHN ``spec`` resolved to ``path``: the registry name when there is one."""
    from .hub import lookup
    from .hub.registry import AUTO_PREFERENCE, registry_name

    if spec == "auto":
        for name in AUTO_PREFERENCE:
            hit = lookup(name)
            if hit is not None and hit.path == path:
                return name
        return path.name
    name = registry_name(spec)
    if name is not None and not Path(spec).expanduser().is_file():
        return name
    return spec
