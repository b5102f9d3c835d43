"""Where ghnctl keeps files and how it reaches the network, from the environment.

Every function reads the environment when called (never at import), so tests and long-running
processes see changes to ``os.environ`` at once.

=====================  ==========================================================
``GHNCTL_CACHE_DIR``   downloaded GHN checkpoints (default: the platform cache dir)
``GHNCTL_DATA_DIR``    data sets and other user data (default: the platform data dir)
``GHNCTL_OFFLINE``     ``1``/``true``: never touch the network
``HF_HUB_OFFLINE``     the same switch, as HuggingFace tools spell it
``GHNCTL_HUB_URL``     base URL of the hub that hosts GHN checkpoints
=====================  ==========================================================

Download limits (``GHNCTL_MIN_RATE``, ``GHNCTL_MIN_RATE_WINDOW``, ``GHNCTL_DOWNLOAD_MAX_TIME``) are
read, also at call time, by ``ghnctl.hub.limits``, next to the policy they set.
"""

from __future__ import annotations

import os
from pathlib import Path

from ghnctl.errors import UsageError

APP_NAME = "ghnctl"
DEFAULT_HUB_URL = "https://huggingface.co"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _env(name: str) -> str | None:
    """The variable's value, with an empty string treated as unset."""
    value = os.environ.get(name, "").strip()
    return value or None


def _env_flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    # A typo such as GHNCTL_OFFLINE=ture must not silently mean "online".
    raise UsageError(f"{name}={os.environ[name]!r} is not a yes/no value", hint="use 1 or 0")


def cache_dir() -> Path:
    """Directory for downloaded checkpoints (not created here)."""
    override = _env("GHNCTL_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir  # imported here: only callers that need a path pay for it

    return Path(user_cache_dir(APP_NAME))


def data_dir() -> Path:
    """Directory for data sets and other user data (not created here)."""
    override = _env("GHNCTL_DATA_DIR")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME))


def offline() -> bool:
    """True when either ``GHNCTL_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to a true value."""
    return _env_flag("GHNCTL_OFFLINE") or _env_flag("HF_HUB_OFFLINE")


def hub_url() -> str:
    """Base URL of the checkpoint hub, without a trailing slash."""
    return (_env("GHNCTL_HUB_URL") or DEFAULT_HUB_URL).rstrip("/")
