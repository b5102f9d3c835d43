"""The ``ghnctl`` Typer app: global options and the list of commands.

Command modules are imported here to register their commands, so they must stay light at import
time: torch, torchvision and the engine are imported inside the command functions.
"""

from __future__ import annotations

import typer

from ghnctl import __version__
from ghnctl.cli import bench, finetune, graph, hub, predict, train
from ghnctl.cli.boundary import GhnctlGroup
from ghnctl.cli.options import Debug

app = typer.Typer(
    name="ghnctl",
    cls=GhnctlGroup,
    help=(
        "Graph HyperNetworks (GHN-3/GHN-2) from the command line: turn a PyTorch model into the "
        "graph a GHN reads, predict all of its parameters, fine-tune from them, and manage GHN checkpoints."
    ),
    epilog="Example: ghnctl graph resnet50",
    no_args_is_help=True,
    # The boundary in GhnctlGroup reports errors; Typer's pretty tracebacks would bypass --debug.
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ghnctl {__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: bool = typer.Option(
        False, "--version", "-V", help="Print the version and exit.", callback=_print_version, is_eager=True
    ),
    debug: Debug = False,
) -> None:
    """Global options (apply to every command)."""


for _module in (graph, predict, finetune, train, bench, hub):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point; exits the process with the command's exit code."""
    app(args=argv, prog_name="ghnctl")
