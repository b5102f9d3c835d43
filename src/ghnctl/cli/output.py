"""The one output object: results as rich tables on stderr, or as JSON on stdout with ``--json``.

stdout carries only machine-readable results, so ``ghnctl ... --json | jq`` always works;
everything meant for a person (tables, spinners, warnings, errors) goes to stderr.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


class Output:
    """Renders one command's result and its messages. ``json_mode`` comes from ``--json``."""

    def __init__(self, json_mode: bool = False) -> None:
        self.json_mode = json_mode
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        """A rich console on stderr, created on first use (rich is not needed for --json)."""
        if self._console is None:
            from rich.console import Console

            # Not bound to a file: rich looks up sys.stderr at each write, which test runners replace.
            self._console = Console(stderr=True, highlight=False)
        return self._console

    def result(self, data: dict[str, Any], render: Callable[[Output], None]) -> None:
        """Emit the command's result: ``data`` as JSON on stdout, or ``render(self)`` for a person.

        ``render`` draws with ``self.console`` and ``self.warn``, which write to stderr.
        """
        if self.json_mode:
            sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")
            sys.stdout.flush()
        else:
            render(self)

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[None]:
        """A spinner on stderr while the block runs (rich draws nothing when stderr is not a terminal)."""
        with self.console.status(message, spinner="dots"):
            yield

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {_escape(message)}", soft_wrap=True)

    def note(self, message: str) -> None:
        self.console.print(f"[dim]{_escape(message)}[/]", soft_wrap=True)

    def error(self, message: str, hint: str | None = None) -> None:
        """The one-line error: ``error: <message> (<hint>)`` in red."""
        text = f"error: {message}" + (f" ({hint})" if hint else "")
        # soft_wrap: one line however long, so scripts and tests can match it.
        self.console.print(_escape(text), style="red", soft_wrap=True)

    def record(self, data: dict[str, Any]) -> None:
        """One compact JSON line on stdout, flushed: a record of a stream (e.g. one per epoch)."""
        sys.stdout.write(json.dumps(data, default=_json_default) + "\n")
        sys.stdout.flush()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
