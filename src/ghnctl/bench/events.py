"""What a bench reports while it runs, through ``on_event``; the engine never prints.

All benches speak the same small language, so one progress view serves them all: a bench has
``total`` cells, some already finished (``--resume``); each cell starts, makes progress (a fraction
of its own work, with a short detail such as the epoch being trained), and finishes or fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Emit = Callable[[Any], None]


@dataclass(frozen=True)
class BenchStarted:
    bench: str  # "init", "ghn" or "speed"
    total: int  # cells of this run
    reused: int  # of which already finished (read from the results file)


@dataclass(frozen=True)
class CellStarted:
    index: int  # 0-based position among the cells of this run
    label: str  # e.g. "resnet18 · ghn:ghn3tm8 · seed 1"


@dataclass(frozen=True)
class CellProgress:
    index: int
    fraction: float  # of this cell's work done, 0..1
    detail: str = ""


@dataclass(frozen=True)
class CellDone:
    index: int
    label: str
    record: dict[str, Any]
    reused: bool = False  # read from the results file, not computed now


@dataclass(frozen=True)
class CellFailed:
    index: int
    label: str
    error: str


@dataclass(frozen=True)
class Note:
    """Something the reader should know (a GHN whose classifier is not predicted, ...)."""

    message: str
    warning: bool = False


def ignore(event: Any) -> None:
    """The default ``on_event``."""
