"""Ctrl-C (and SIGTERM) for long runs: the first asks the engine to stop after the current step and
save, the second aborts. SIGTERM is what ``kill``, ``timeout`` and job schedulers send before
they give up: a background training run saves its state instead of losing the steps since the
last checkpoint."""

from __future__ import annotations

import contextlib
import signal
from typing import Any

from ghnctl.cli.output import Output


class StopFlag:
    """A callable the engine polls (``should_stop``); install it with ``with StopFlag(output) as stop:``."""

    def __init__(self, output: Output, what: str = "step") -> None:
        self.output = output
        self.what = what
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.requested

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.output.warn(f"stopping after this {self.what} to save the checkpoint (Ctrl-C again aborts)")

    def __enter__(self) -> StopFlag:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: keep the default behaviour
                self._previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
