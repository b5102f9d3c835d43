"""GHNs shipped inside the package: parameters with no download and no network.

A built-in GHN is a safetensors file (ghnctl layout, config in the metadata) next to a *card*, a
JSON file that says how it was trained (command, data, image size, steps, hardware) and what it
reaches. ``ghnctl.hub`` resolves the registry name to the file; nothing here touches the network.
Importing this module reads nothing: the files are opened when asked for.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from ghnctl.errors import CheckpointError

BUILTIN_C10 = "ghnctl-c10"
_FILES = {BUILTIN_C10: "ghnctl-c10"}


def is_builtin(name: str) -> bool:
    return name in _FILES


def builtin_path(name: str) -> Path:
    """The shipped safetensors file of the built-in GHN ``name``."""
    path = _resource(name, ".safetensors")
    if not path.is_file():
        raise CheckpointError(f"the built-in GHN {name!r} is missing from the installed package ({path})",
                              hint="reinstall ghnctl (pip install --force-reinstall ghnctl)")
    return path


def card(name: str) -> dict[str, Any]:
    """The card of the built-in GHN ``name``: how it was trained and what it reaches."""
    path = _resource(name, ".json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read the card of the built-in GHN {name!r} ({path}): {exc}",
                              hint="reinstall ghnctl (pip install --force-reinstall ghnctl)") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"the card of the built-in GHN {name!r} is not a JSON object ({path})")
    return data


def _resource(name: str, suffix: str) -> Path:
    if name not in _FILES:
        raise KeyError(name)
    return Path(str(resources.files(__name__) / (_FILES[name] + suffix)))
