"""Errors of the training layer (``GhnctlError`` subclasses: one line with a hint in the CLI, exit 1)."""

from __future__ import annotations

from ghnctl.errors import GhnctlError


class DataError(GhnctlError):
    """The data set is missing, unreadable or inconsistent."""


class StateError(GhnctlError):
    """A training-state checkpoint is unreadable or does not fit this run."""


class DistError(GhnctlError):
    """The distributed environment is incomplete or the process group cannot start."""
