"""``ghnctl train``: train a GHN on an image data set over many architectures, on one CPU or many GPUs.

Options are named like the fields of ``TrainConfig`` and ``DataConfig``: the command hands their
values to ``config_from_fields``. ``--nproc N`` starts N processes through torchrun's own launcher
(``torch.distributed.run``), which then run this same command; ``torchrun ... -m ghnctl train``
takes the same path. Only rank 0 prints and writes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ghnctl.cli.common import data_progress, option_values
from ghnctl.cli.options import (
    DEFAULT_DEVICE,
    DEFAULT_SEED,
    DataDir,
    DataImageSize,
    Debug,
    Device,
    Force,
    JsonOut,
    Offline,
    Seed,
    SplitSeed,
    ValFraction,
    data_option,
)
from ghnctl.cli.output import Output
from ghnctl.errors import UsageError

if TYPE_CHECKING:
    from ghnctl.training.data import DataBundle, DataConfig
    from ghnctl.training.train_config import TrainConfig

HELP = (
    "Train a GHN on an image data set: every step samples a meta-batch of architectures (generated "
    "DeepNets-style nets by default, or any model specs), predicts all their parameters with the GHN, "
    "runs a batch of images through each and trains the GHN on the loss. Every K steps the GHN predicts "
    "held-out architectures it never trained on and reports their accuracy (zero-shot).\n\n"
    "The run directory (--out) gets ghn.safetensors (use it with `ghnctl predict --ghn DIR/ghn.safetensors`), "
    "state.safetensors (continue with --resume), metrics.csv and config.json. The number of classes and "
    "the image size come from the data.\n\n"
    "Several processes: --nproc N on one machine, or `torchrun --nproc_per_node N [--nnodes ...] -m ghnctl "
    "train ...` (gloo on CPU, NCCL on GPUs); the meta-batch is split across processes."
)
EPILOG = (
    "Examples:\n"
    "  ghnctl train --data ../shared/data/cifar10-train-jpg.tar.gz --out runs/c10 --steps 2000\n"
    "  ghnctl train --data cifar10 --out runs/c10 --resume\n"
    "  ghnctl train --data ./images --archs deepnets:train,resnet18 --nproc 2 --out runs/mix\n"
    "  ghnctl train --data cifar10 --archs deepnets:train,resnet18=1000 --out runs/half-r18\n"
    "  torchrun --nproc_per_node 4 -m ghnctl train --data cifar10 --out runs/c10 --device cuda"
)


def register(app: typer.Typer) -> None:
    app.command("train", help=HELP, epilog=EPILOG)(train_command)


def train_command(
    ctx: typer.Context,
    source: Annotated[str | None, data_option("Required unless --resume.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (created; refused if it holds a run, "
                                      "unless --resume or --force).", show_default=False)] = Path("runs/ghn"),
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run saved in --out exactly.")] = False,
    data_dir: DataDir = None,
    val_fraction: ValFraction = 0.1,
    split_seed: SplitSeed = 0,
    image_size: DataImageSize = None,
    archs: Annotated[str, typer.Option(help="Comma-separated: deepnets:SPLIT (its first --pool nets) and/or "
                                       "model specs (resnet18, file.py:factory, ...); SPEC=W draws each net of "
                                       "SPEC W times as often (default 1).")] = "deepnets:train",
    pool: Annotated[int, typer.Option(help="Nets taken from each deepnets:SPLIT in --archs.")] = 1000,
    eval_archs: Annotated[str, typer.Option(help="Held-out architectures for zero-shot evaluation.")] = "deepnets:test",
    eval_n: Annotated[int, typer.Option(help="How many of them (0: no evaluation).")] = 10,
    eval_every: Annotated[int, typer.Option(help="Evaluate every K steps (and at the end).")] = 100,
    eval_images: Annotated[int, typer.Option(help="Validation images per evaluation.")] = 500,
    meta_batch: Annotated[int, typer.Option("--meta-batch", "-m", help="Architectures per step (all processes).")] = 4,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per shard of a step.")] = 64,
    steps: Annotated[int | None, typer.Option(help="Training steps (default: --epochs over the images).")] = None,
    epochs: Annotated[int, typer.Option("--epochs", "-e", help="Epochs over the training images.")] = 1,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 4e-4,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 1e-2,
    warmup_steps: Annotated[int | None, typer.Option(help="Linear warmup steps (default: 5% of the steps).")] = None,
    grad_clip: Annotated[float, typer.Option(help="Clip the gradient's global L2 norm (0: off).")] = 5.0,
    predparam_wd: Annotated[float | None, typer.Option(help="Regulariser lambda on the predicted parameters' "
                                                       "norms (default: 3e-5 for GHN-3, 0 for GHN-2).")] = None,
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing of the loss.")] = 0.0,
    amp: Annotated[bool | None, typer.Option("--amp/--no-amp", help="Mixed precision (default: on for CUDA).")] = None,
    amp_dtype: Annotated[str, typer.Option(help="auto (bf16 where supported), bf16 or fp16.")] = "auto",
    hid: Annotated[int, typer.Option(help="GHN hidden size.")] = 64,
    layers: Annotated[int, typer.Option(help="Graphormer layers (GHN-3).")] = 3,
    heads: Annotated[int, typer.Option(help="Attention heads.")] = 8,
    max_channels: Annotated[int | None, typer.Option(help="Decoder's max channels (default: --hid).")] = None,
    max_kernel: Annotated[int | None, typer.Option(help="Decoder's max kernel (default: 11, 16 above 64 px).")] = None,
    ghn2: Annotated[bool, typer.Option("--ghn2", help="Train a GHN-2 (gated GNN) instead of a GHN-3.")] = False,
    save_every: Annotated[int, typer.Option(help="Save the state every K steps (also at the end, on Ctrl-C).")] = 100,
    save_minutes: Annotated[float, typer.Option(help="Also save when this many minutes passed since the last "
                                                "save.")] = 10.0,
    seed: Seed = DEFAULT_SEED,
    device: Device = DEFAULT_DEVICE,
    workers: Annotated[int | None, typer.Option(help="Data-loading processes per training process.")] = None,
    nproc: Annotated[int | None, typer.Option(help="Start N processes on this machine (torchrun's launcher).")] = None,
    shards: Annotated[int | None, typer.Option(help="Split each meta-batch into S shards with their own images "
                                               "(default: the number of processes).")] = None,
    offline: Offline = False,
    force: Force = False,
    json_out: JsonOut = False,
    _debug: Debug = False,
) -> None:
    if nproc is not None:
        _relaunch(nproc)
        return
    output = Output(json_out)
    values, given = option_values(ctx)
    from ghnctl.training import dist

    rank = dist.env_from_environ().rank
    quiet = rank != 0
    train_config, data_config = _configs(values, given, out, resume, force)

    from ghnctl.devices import resolve_device

    device = resolve_device(train_config.device)
    env = dist.init_distributed(device)
    if device.type == "cuda" and env.launched:
        device = dist.device_for(env, "cuda")
    from ghnctl.training.data import load_data

    with data_progress(output, f"loading data {data_config.source}:") as on_progress:
        bundle = load_data(data_config, on_status=None if quiet else output.note, offline=offline,
                           on_progress=None if quiet else on_progress)
    try:
        _run(output, train_config, bundle, out, device, resume, quiet)
    finally:
        dist.shutdown()


def _configs(values: dict[str, Any], given: frozenset[str], out: Path, resume: bool,
             force: bool) -> tuple[TrainConfig, DataConfig]:
    from ghnctl.training.configs import config_from_fields, resume_fields
    from ghnctl.training.data import DataConfig
    from ghnctl.training.train_config import TrainConfig
    from ghnctl.training.train_ghn import RESUME_FREE, STATE_FILE, saved_config

    values = {**values, "archs": tuple(a.strip() for a in values["archs"].split(",") if a.strip())}
    if resume:
        saved, saved_data = saved_config(out)
        overrides = {k: values[k] for k in given if k != "source"}
        config = resume_fields(TrainConfig, saved.to_dict() | {"archs": saved.archs}, overrides, RESUME_FREE)
        data = resume_fields(DataConfig, saved_data, {k: values[k] for k in given}, DataConfig.RESUME_FREE)
        return config, data
    if values["source"] is None:
        raise UsageError("missing --data", hint="for example --data cifar10, or --resume to continue a run in --out")
    if (out / STATE_FILE).exists() and not force:
        raise UsageError(f"{out} already holds a training run", hint="continue it with --resume, or use --force "
                         "to start over, or another --out")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a directory")
    return config_from_fields(TrainConfig, values), config_from_fields(DataConfig, values)


def _run(output: Output, config: TrainConfig, bundle: DataBundle, out: Path, device: Any, resume: bool,
         quiet: bool) -> None:
    from ghnctl.cli.stop import StopFlag
    from ghnctl.cli.train_view import TrainView
    from ghnctl.training.train_ghn import train_ghn

    view = TrainView(output, quiet=quiet)
    with StopFlag(output) as stop, view:
        result = train_ghn(config, bundle, out, device=device, resume=resume, on_event=view.on_event,
                           should_stop=stop)
    if not quiet:
        view.finish(result)
    if result.stopped:
        raise typer.Exit(130)


def _relaunch(nproc: int) -> None:
    """Run this command in ``nproc`` processes with torchrun's launcher (same code path as torchrun)."""
    if nproc < 1:
        raise UsageError(f"--nproc must be at least 1, got {nproc}")
    args = _without_nproc(sys.argv[1:])
    from torch.distributed.run import main as torchrun

    try:
        torchrun(["--standalone", "--nproc_per_node", str(nproc), "-m", "ghnctl", *args])
    except Exception as exc:  # torchrun's ChildFailedError: the children printed their own error
        from ghnctl.training.train_ghn import TrainingError

        raise TrainingError(f"{nproc} training processes ended with an error ({type(exc).__name__})",
                            hint="see the first error line above") from exc


def _without_nproc(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        out.append(arg)
    return out
