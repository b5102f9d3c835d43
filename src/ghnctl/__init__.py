"""ghnctl: Graph HyperNetworks (GHN-3/GHN-2) as a library and a command-line tool.

``import ghnctl`` is cheap: the public functions are imported on first use (PEP 562), so neither
torch nor the CLI is loaded until something needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute); resolved on first attribute access.
_LAZY: dict[str, tuple[str, str]] = {
    "build_graph": ("ghnctl.graph", "build_graph"),
    "init_model": ("ghnctl.predict", "init_model"),
    "load_ghn": ("ghnctl.loader", "load_ghn"),
    "predict_parameters": ("ghnctl.predict", "predict_parameters"),
    "resolve_model": ("ghnctl.zoo", "resolve_model"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'ghnctl' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
