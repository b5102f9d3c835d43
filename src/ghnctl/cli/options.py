"""Option aliases shared by the commands, so every command spells and documents them alike.

Use them as parameter annotations: ``def cmd(json_out: JsonOut = False, force: Force = False)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEBUG_KEY = "ghnctl.debug"


def _enable_debug(ctx: typer.Context, value: bool) -> bool:
    # ctx.meta is shared by the whole context tree: the error boundary sees the flag wherever it was given.
    if value:
        ctx.meta[DEBUG_KEY] = True
    return value


Debug = Annotated[
    bool,
    typer.Option(
        "--debug",
        help="Show the full traceback when something fails.",
        callback=_enable_debug,
        is_eager=True,
        expose_value=False,
        envvar="GHNCTL_DEBUG",
    ),
]
JsonOut = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON on stdout instead of tables on stderr.")
]
Force = Annotated[bool, typer.Option("--force", "-f", help="Overwrite the output file if it exists.")]


def out_option(help: str) -> typer.models.OptionInfo:
    """``--out/-o`` with a command's own help text (what the file holds, its default)."""
    return typer.Option("--out", "-o", help=help)


Out = Annotated[Path | None, out_option("Output file.")]
NumClasses = Annotated[
    int | None,
    typer.Option(
        "--num-classes",
        "-c",
        min=1,
        help="Number of classes of the classifier (default: the model's own; 1000 for torchvision).",
    ),
]
ImageSize = Annotated[
    int | None,
    typer.Option(
        "--image-size",
        "-s",
        min=1,
        help="Side of the square input image (default: 224; 299 for inception_v3).",
    ),
]
