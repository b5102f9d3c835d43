"""Help-screen tidying on top of Typer's rich help.

Typer (0.2x) prints a type column for every parameter, including ``<bool>`` after plain flags,
and writes usage lines such as ``{MODEL...}...`` and ``[[NAME]]``. A flag takes no value, so it
shows no type; an argument's metavar already names it, so it shows no type either, and the usage
line follows the usual ``MODEL...`` / ``[NAME]`` convention. The parameters keep their behaviour:
only their class is swapped for a subclass that overrides the two display methods.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperOption

# Not ``import click``: typer vendors click in some versions (no click package is installed then).


class _Flag(TyperOption):
    def display_type_rich(self, ctx: typer.Context) -> str | None:  # noqa: ARG002 - Typer's signature
        return None


class _Argument(TyperArgument):
    def display_type_rich(self, ctx: typer.Context) -> str | None:  # noqa: ARG002 - Typer's signature
        return None

    def _usage_display_name(self) -> str:
        name = self.metavar or self.name or "ARG"
        if self.nargs != 1 and not name.endswith("..."):
            name += "..."
        if self.required or name.startswith("["):  # a metavar may already carry its brackets
            return name
        return f"[{name}]"

    def make_metavar(self, ctx: typer.Context | None = None) -> str:  # click's usage line and errors
        return self._usage_display_name()


def tidy(command: Any) -> Any:
    """Swap the display classes of ``command``'s parameters, and its subcommands' (idempotent)."""
    with typer.Context(command) as ctx:
        params = list(command.get_params(ctx))  # includes the lazily built --help option
    for param in params:
        if type(param) is TyperOption and (param.is_flag or param.count):
            param.__class__ = _Flag
        elif type(param) is TyperArgument:
            param.__class__ = _Argument
    for sub in getattr(command, "commands", {}).values():
        tidy(sub)
    return command
