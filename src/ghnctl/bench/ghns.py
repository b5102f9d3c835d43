"""GHNs for a bench: each one loaded once, from the local file the CLI already fetched when it did.

A command resolves ``--ghn`` specs first (downloads with a progress bar, ``ghnctl.cli.hub``) and
passes the files here as ``paths``; a spec without a file is loaded through ``ghnctl.load_ghn``
(registry name, URL or path; downloads go through the hub).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ghnctl.errors import UsageError

if TYPE_CHECKING:
    from ghnctl.ghn.model import GHN


def split_ghn_list(text: str) -> tuple[str, ...]:
    """``"ghn3tm8, ./mine.pt"`` -> ``("ghn3tm8", "./mine.pt")``; duplicates are an error."""
    specs = tuple(s.strip() for s in text.split(",") if s.strip())
    if not specs:
        raise UsageError("--ghn is empty", hint="for example --ghn ghn3tm8 or --ghn A.pt,B.pt")
    seen = [s for i, s in enumerate(specs) if s in specs[:i]]
    if seen:
        raise UsageError(f"--ghn names {seen[0]!r} twice")
    return specs


class GhnCache:
    """``get(spec)`` loads a GHN the first time and returns the same object afterwards."""

    def __init__(self, paths: Mapping[str, Path] | None = None, device: torch.device | str = "cpu") -> None:
        self.paths = dict(paths or {})
        self.device = torch.device(device)
        self._loaded: dict[str, GHN] = {}

    def get(self, spec: str) -> GHN:
        ghn = self._loaded.get(spec)
        if ghn is None:
            ghn = self._load(spec)
            self._loaded[spec] = ghn
        return ghn

    def _load(self, spec: str) -> GHN:
        path = self.paths.get(spec)
        if path is None:
            from ghnctl.loader import load_ghn

            return load_ghn(spec, device=self.device)
        from ghnctl.loader import load_resolved

        return load_resolved(spec, path, device=self.device)


def normalise_ghn_grid(config: object, archs_hint: str) -> None:
    """The checks and normalisation every GHN x architecture config shares (``bench ghn``, ``bench
    speed``): GHNs and architectures given, no GHN twice, each architecture once, the image size
    and the device name valid. Sets the frozen dataclass's fields in place (UsageError, exit 2)."""
    from ghnctl.devices import check_device_name

    ghns, archs = tuple(config.ghns), tuple(config.archs)  # type: ignore[attr-defined]
    if not ghns:
        raise UsageError("no GHN given", hint="for example --ghn ghn3tm8")
    if not archs:
        raise UsageError("no architecture given", hint=f"for example --archs {archs_hint}")
    if len(set(ghns)) != len(ghns):
        raise UsageError("a GHN is given twice")
    image_size = config.image_size  # type: ignore[attr-defined]
    if image_size is not None and image_size < 8:
        raise UsageError(f"--image-size must be at least 8, got {image_size}")
    object.__setattr__(config, "ghns", ghns)
    object.__setattr__(config, "archs", tuple(dict.fromkeys(archs)))  # each architecture once
    object.__setattr__(config, "device", check_device_name(config.device))  # type: ignore[attr-defined]

