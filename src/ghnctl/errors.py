"""Typed errors. The CLI boundary turns each into one red line (exit 1; UsageError exits 2)."""

from __future__ import annotations

from typing import Any

MAX_MESSAGE = 600  # characters of one error line's message; values from files are cut far shorter


def excerpt(value: Any, limit: int = 60) -> str:
    """A short, escaped rendering of a value that came from a file, for an error line.

    ``repr`` escapes control characters and newlines; long values keep their start and end.
    Containers are not walked (a hostile one may nest very deeply): they are named by type and size.
    """
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        text = repr(value)
    else:
        try:
            size = f" of {len(value)}"
        except Exception:  # noqa: BLE001 - any object may come out of a file; only its type is shown
            size = ""
        text = f"<{type(value).__name__}{size}>"
    if len(text) <= limit:
        return text
    keep = (limit - 5) // 2
    return f"{text[:keep]} ... {text[-keep:]}"


class GhnctlError(Exception):
    """Base error: ``message`` says what went wrong, ``hint`` says how to fix it.

    A message longer than ``MAX_MESSAGE`` is cut in the middle: one error stays one readable line
    even when something long slipped into it.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        if len(message) > MAX_MESSAGE:
            keep = (MAX_MESSAGE - 5) // 2
            message = f"{message[:keep]} ... {message[-keep:]}"
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(GhnctlError):
    """Bad flags or arguments (exit code 2)."""

    exit_code = 2


class UnknownModel(UsageError):
    """A model spec that resolves to nothing."""


class ModelBuildError(GhnctlError):
    """The model could not be constructed or its forward pass failed."""


class GraphError(GhnctlError):
    """The model's computational graph could not be turned into a GHN graph."""


class PredictionError(GhnctlError):
    """A GHN produced unusable parameters (NaN or infinite values)."""


class OutputExists(GhnctlError):
    """Refusing to overwrite an existing output without --force."""


class OutputNotWritable(GhnctlError):
    """The output path cannot be written."""


class CheckpointError(GhnctlError):
    """A GHN checkpoint is missing, truncated, of an unknown format or inconsistent."""


class UnsafeCheckpoint(CheckpointError):
    """A pickle asked for a global outside the allow-list; it was not executed."""


class ChecksumMismatch(CheckpointError):
    """A downloaded file does not match its expected size or sha256."""


class Offline(GhnctlError):
    """A network operation was needed while offline mode is on."""


class MissingExtra(UsageError):
    """An optional dependency is needed; the hint names the extra to install."""
