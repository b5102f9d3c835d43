"""Typed errors. The CLI boundary turns each into one red line (exit 1; UsageError exits 2)."""

from __future__ import annotations


class GhnctlError(Exception):
    """Base error: ``message`` says what went wrong, ``hint`` says how to fix it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
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
