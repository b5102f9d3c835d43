"""Option aliases shared by the commands, so every command spells and documents them alike.

Use them as parameter annotations: ``def cmd(json_out: JsonOut = False, force: Force = False)``.
One definition per option: the same flag, short alias, help and default in every command. Where a
default must differ between commands (``--noise``), the option is built by a function that takes
the default and says why in its help.
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


# --------------------------------------------------------------------------------------------------
# Options of every command that uses a GHN, a device or the network.

DEFAULT_DEVICE = "auto"
DEFAULT_GHN = "auto"
DEFAULT_SEED = 0

Device = Annotated[
    str,
    typer.Option("--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps."),
]
Ghn = Annotated[
    str,
    typer.Option(
        "--ghn",
        "-g",
        help="GHN: a name from `ghnctl ghn list`, a checkpoint file (official .pt or ghnctl .safetensors), "
        "an http(s) URL, or auto (the best cached official GHN-3, else download ghn3xlm16).",
    ),
]
Offline = Annotated[
    bool, typer.Option("--offline", help="Never use the network (also GHNCTL_OFFLINE=1 or HF_HUB_OFFLINE=1).")
]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the model's own init and of every random choice.")]


def noise_option(why: str) -> typer.models.OptionInfo:
    """``--noise BETA``: the fine-tuning recipe's symmetry-breaking noise; ``why`` explains the default."""
    return typer.Option(
        "--noise", min=0.0, help=f"Noise scale beta added to predicted weights (0 = none). {why}"
    )


DATA_HELP = "cifar10, cifar100, an ImageFolder tree (train/ [+ val/ or test/]) or a .tar.gz of one."


def data_option(note: str = "") -> typer.models.OptionInfo:
    """``--data/-d``; ``note`` adds what the command does without it (e.g. "Required unless --resume.")."""
    return typer.Option("--data", "-d", help=f"{DATA_HELP} {note}".strip(), show_default=False)


def image_size_option(help: str) -> typer.models.OptionInfo:
    """``--image-size/-s`` with a command's own default rule (models vs data sets differ)."""
    return typer.Option("--image-size", "-s", min=1, help=help)


Data = Annotated[str, data_option()]

# Options of the commands that load an image data set (finetune, train, bench).
DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where data sets are downloaded/extracted (default: GHNCTL_DATA_DIR or the "
                 "user data dir)."),
]
ValFraction = Annotated[
    float, typer.Option(help="Share of train held out for validation when the data has no val/test split "
                        "(seeded, stratified).")
]
SplitSeed = Annotated[
    int, typer.Option(help="Seed of the validation split and of the --n-shots subset (not of training).")
]
DataImageSize = Annotated[
    int | None, image_size_option("Resize images to SxS (default: 32 for 32x32 data such as CIFAR, else 224).")
]
