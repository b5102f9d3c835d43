"""How slow, how long and how large a download may be: defaults, environment variables, checks.

A ``DownloadPolicy`` leaves the limits a user may want to change per machine as None; ``resolve``
fills them in when a download starts (never at import), from the environment, else the defaults:

==============================  =======================================================  ==========
``GHNCTL_MIN_RATE``             bytes per second a download must average over the window  10000
``GHNCTL_MIN_RATE_WINDOW``      seconds that average is taken over                       30
``GHNCTL_DOWNLOAD_MAX_TIME``    seconds one download (all its retries) may take           86400
==============================  =======================================================  ==========

``0`` turns the rate check or the time cap off. A value that is not a number, negative, or a
window of 0, is a one-line ``UsageError`` naming the variable: a typo must not silently mean
"no limit".
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ghnctl.errors import UsageError

DEFAULT_MIN_RATE = 10_000.0  # bytes/s: a 2.6 GB GHN at this rate still finishes (in three days)
DEFAULT_MIN_RATE_WINDOW = 30.0  # s: long enough to ride out a stall that TCP recovers from
DEFAULT_MAX_TIME = 86_400.0  # s: a day; no single limit above stops a download that crawls on

MIN_RATE_ENV = "GHNCTL_MIN_RATE"
MIN_RATE_WINDOW_ENV = "GHNCTL_MIN_RATE_WINDOW"
MAX_TIME_ENV = "GHNCTL_DOWNLOAD_MAX_TIME"


@dataclass(frozen=True)
class Limits:
    """Resolved limits: ``min_rate`` bytes/s over ``window`` s (0: no check), ``max_time`` s (None: none)."""

    min_rate: float
    window: float
    max_time: float | None


def resolve(min_rate: float | None, window: float | None, max_time: float | None) -> Limits:
    """The limits to apply: each given value, else its environment variable, else its default.

    Raises UsageError for a bad variable, ValueError for a bad given value (a programming error).
    """
    rate = _pick(min_rate, "min_rate", MIN_RATE_ENV, DEFAULT_MIN_RATE, unit="bytes per second", zero_ok=True)
    span = _pick(window, "min_rate_window", MIN_RATE_WINDOW_ENV, DEFAULT_MIN_RATE_WINDOW, unit="seconds", zero_ok=False)
    cap = _pick(max_time, "max_time", MAX_TIME_ENV, DEFAULT_MAX_TIME, unit="seconds", zero_ok=True)
    return Limits(min_rate=rate, window=span, max_time=cap or None)


def _pick(given: float | None, field: str, env: str, default: float, *, unit: str, zero_ok: bool) -> float:
    allowed = "a number >= 0; 0 turns the limit off" if zero_ok else "a number > 0"
    if given is not None:
        if not _valid(given, zero_ok):
            raise ValueError(f"DownloadPolicy.{field}={given!r} is not a valid number of {unit}: use {allowed}")
        return float(given)
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not _valid(value, zero_ok):
        # A typo must not silently mean "no limit", nor fall back to the default unseen.
        raise UsageError(f"{env}={raw!r} is not a valid number of {unit}", hint=f"use {allowed}")
    return value


def _valid(value: float, zero_ok: bool) -> bool:
    """Finite and positive (or 0 where 0 means "off"): refuses NaN, infinities, negatives."""
    return math.isfinite(value) and (value > 0 or (zero_ok and value == 0))


def rate_text(bytes_per_second: float) -> str:
    """``850 B/s``, ``12.5 kB/s``, ``3.1 MB/s``: decimal units, like the progress bar."""
    for unit, scale in (("MB/s", 1e6), ("kB/s", 1e3)):
        if bytes_per_second >= scale:
            return f"{bytes_per_second / scale:.1f} {unit}"
    return f"{bytes_per_second:.0f} B/s"


def seconds_text(seconds: float) -> str:
    """``1.5 s``, ``30 s``, ``2 h``: short, for error lines."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:.0f} h"
    if seconds >= 10 or seconds == int(seconds):
        return f"{seconds:.0f} s"
    return f"{seconds:.1f} s"
