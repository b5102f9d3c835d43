"""The one error boundary: every failure of a command becomes one red line and an exit code.

* ``GhnctlError``: ``error: <message> (<hint>)``, exit ``err.exit_code`` (UsageError and its
  subclasses: 2).
* Any other exception: ``error: unexpected <Type>: <message> (run again with --debug ...)``, exit 1.
* Ctrl-C: ``error: interrupted``, exit 130.
* A closed output pipe (``ghnctl ... | head``): no message, exit 141 (128 + SIGPIPE).

With ``--debug`` (or ``GHNCTL_DEBUG=1``) the full traceback is printed first. Typer's own
exceptions (bad flags, ``--help``, ``typer.Exit``) pass through untouched.
"""

from __future__ import annotations

import traceback
from typing import Any

import typer
from typer.core import TyperGroup

from ghnctl.cli.help import tidy
from ghnctl.cli.options import DEBUG_KEY
from ghnctl.cli.output import Output
from ghnctl.errors import GhnctlError


def _typer_exception_types() -> tuple[type[BaseException], ...]:
    # Typer vendors click in some versions and not in others; reach click's ClickException
    # through a public typer name instead of importing it from either place.
    click_exception = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    return (typer.Exit, typer.Abort, click_exception)


_PASS_THROUGH = _typer_exception_types()


class GhnctlGroup(TyperGroup):
    """Typer's group with the error boundary around every command it runs, and tidy help screens."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tidy(self)

    def add_command(self, cmd: Any, name: str | None = None) -> None:
        super().add_command(tidy(cmd), name)

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except GhnctlError as exc:
            _report(ctx, exc, exc.message, exc.hint)
            raise typer.Exit(exc.exit_code) from exc
        except BrokenPipeError as exc:
            # The reader went away (``ghnctl ... | head``): nothing is left to say, and nowhere to say it.
            _silence_stdout()
            raise typer.Exit(141) from exc
        except KeyboardInterrupt as exc:
            _report(ctx, exc, "interrupted", None)
            raise typer.Exit(130) from exc
        except Exception as exc:
            hint = None if ctx.meta.get(DEBUG_KEY) else "run again with --debug to see the traceback"
            _report(ctx, exc, f"unexpected {type(exc).__name__}: {exc}", hint)
            raise typer.Exit(1) from exc


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe."""
    import os
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (a test runner's buffer)
        pass
    finally:
        os.close(devnull)


def _report(ctx: typer.Context, exc: BaseException, message: str, hint: str | None) -> None:
    output = Output()
    if ctx.meta.get(DEBUG_KEY):
        # Plain traceback text (not rich's): complete, greppable, and identical in logs and terminals.
        output.console.print(
            "".join(traceback.format_exception(exc)).rstrip(), markup=False, highlight=False, soft_wrap=True
        )
    output.error(message, hint)
