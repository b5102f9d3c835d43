"""Ctrl-C for long runs: the first one asks the engine to stop after the current step and save,
the second aborts."""

from __future__ import annotations

import signal
from typing import Any

from ghnctl.cli.output import Output


class StopFlag:
    """A callable the engine polls (``should_stop``); install it with ``with StopFlag(output) as stop:``."""

    def __init__(self, output: Output, what: str = "step") -> None:
        self.output = output
        self.what = what
        self.requested = False
        self._previous: Any = None

    def __call__(self) -> bool:
        return self.requested

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.output.warn(f"stopping after this {self.what} to save the checkpoint (Ctrl-C again aborts)")

    def __enter__(self) -> StopFlag:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: keep the default behaviour
            self._previous = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
