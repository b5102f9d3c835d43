"""``ghnctl finetune``: fine-tune a model on an image data set from a GHN, random or file init.

torch and the engine are imported inside the command, so ``ghnctl --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ghnctl.cli.options import Debug, Force
from ghnctl.cli.output import Output
from ghnctl.errors import UsageError

if TYPE_CHECKING:
    from ghnctl.data import DataBundle, DataConfig
    from ghnctl.finetune import FinetuneConfig, History
    from ghnctl.inits import InitReport, InitSpec

DEFAULT_MODEL = "resnet18"
DEFAULT_GHN = "auto"  # the hub's choice: the best cached official GHN-3, else download ghn3xlm16

HELP = (
    "Fine-tune MODEL (default: resnet18) on an image-classification data set, starting from "
    "parameters predicted by a GHN (--init ghn), the model's own random init (--init random) or a "
    "safetensors file (--init file:PATH), and report validation accuracy before training "
    "(epoch 0, 'not fine-tuned') and after every epoch.\n\n"
    "MODEL is a torchvision name, pkg.module:factory, path/to/file.py:factory or timm:NAME; it is "
    "built with the data's number of classes and keeps its ImageNet architecture (stem included) at "
    "any --image-size.\n\n"
    "--data is cifar10, cifar100 (downloaded into --data-dir when online) or a PATH: an ImageFolder "
    "tree train/<class>/<image> with val/ or test/, or a .tar.gz of one (extracted once). Without "
    "val/ or test/, --val-fraction of train is held out (stratified, --split-seed) and reported. "
    "32x32 data follows the CIFAR transfer recipe (random crop with 4-pixel padding, horizontal "
    "flip, CIFAR mean/std); other data the ImageNet one (random resized crop, flip, ImageNet "
    "mean/std) at 224. --image-size resizes. Unreadable images are skipped and counted.\n\n"
    "With --init ghn the GHN's predictions get a little noise (--noise, official beta 1e-5) on every "
    "conv/linear weight but the classifier. When the GHN's number of classes differs from the "
    "data's (e.g. an ImageNet GHN on CIFAR-10), the classifier is not predicted and keeps its "
    "random init. The untrained GHN model is evaluated with BatchNorm batch statistics, as the "
    "official evaluation of predicted parameters does.\n\n"
    "Recipe: SGD, Nesterov momentum 0.9, weight decay 5e-4, cosine schedule after a linear warmup "
    "(5% of steps), gradient clipping 5, AMP on CUDA. Default lr: 0.1 x batch/128 from random init, "
    "0.025 x batch/128 from a GHN or file init (the official GHN-3 reduction); AdamW 1e-3 / 2.5e-4."
)
EPILOG = (
    "Examples:\n"
    "  ghnctl finetune --data cifar10 --init ghn\n"
    "  ghnctl finetune resnet50 --data cifar10 --init random --epochs 5 --save r50.safetensors\n"
    "  ghnctl finetune --data ./cifar10-train-jpg.tar.gz --init file:r18.safetensors --n-shots 10\n"
    "  ghnctl finetune --data cifar10 --epochs 10 --checkpoint run.state   # Ctrl-C stops and saves\n"
    "  ghnctl finetune --resume run.state\n"
    "  ghnctl finetune --data cifar10 --init random --max-steps 50 --json | jq .val_acc"
)

# CLI parameter -> (where its value lives in a checkpoint's metadata, key), for --resume.
_FROM_CONFIG = {
    "epochs": "epochs", "max_steps": "max_steps", "batch_size": "batch_size", "optimizer": "optimizer",
    "lr": "lr", "weight_decay": "weight_decay", "label_smoothing": "label_smoothing",
    "warmup_steps": "warmup_steps", "grad_clip": "grad_clip", "amp": "amp", "amp_dtype": "amp_dtype",
    "seed": "seed",
}
_FROM_DATA = {"val_fraction": "val_fraction", "split_seed": "split_seed", "n_shots": "n_shots",
              "image_size": "image_size"}
_NO_EFFECT_ON_RESUME = ("init", "ghn", "noise", "orth")


def register(app: typer.Typer) -> None:
    app.command("finetune", help=HELP, epilog=EPILOG)(finetune)


def finetune(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="Model spec (default: resnet18).", show_default=False)
    ] = DEFAULT_MODEL,
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="cifar10, cifar100, or PATH (folder or .tar.gz).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Where data sets are downloaded/extracted (default: GHNCTL_DATA_DIR or the user data dir).",
        ),
    ] = None,
    val_fraction: Annotated[
        float, typer.Option(help="Share of train held out for validation when the data has no val/test split.")
    ] = 0.1,
    split_seed: Annotated[
        int, typer.Option(help="Seed of the validation split and of the --n-shots subset (not of training).")
    ] = 0,
    n_shots: Annotated[
        int | None, typer.Option("--n-shots", help="Train on K images per class (seeded by --split-seed).")
    ] = None,
    image_size: Annotated[
        int | None,
        typer.Option(
            "--image-size", "-s", help="Resize images to SxS (default: 32 for 32x32 data, else 224)."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Data-loading processes (default: 0 on CPU, up to 4 with a GPU).")
    ] = None,
    init: Annotated[
        str, typer.Option("--init", "-i", help="ghn, random or file:PATH.safetensors.")
    ] = "ghn",
    ghn: Annotated[
        str,
        typer.Option(
            help="GHN for --init ghn: auto (best cached official GHN-3, else download ghn3xlm16), "
            "a name from `ghnctl ghn list` (e.g. ghn3tm8, 27 MB), a URL or a file."
        ),
    ] = DEFAULT_GHN,
    noise: Annotated[
        float | None,
        typer.Option(help="Noise scale beta added to predicted weights (--init ghn; default 1e-5, 0 = none)."),
    ] = None,
    orth: Annotated[
        bool,
        typer.Option(
            "--orth",
            help="Replace predicted conv/linear weights (not the classifier) by their orthogonal QR factor "
            "(ppuda init(orth=True); not part of the published fine-tuning recipe).",
        ),
    ] = False,
    optimizer: Annotated[str, typer.Option(help="sgd (Nesterov) or adamw.")] = "sgd",
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (default: the recipe's, see above).")] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="Weight decay (default: 5e-4 for SGD, 0.05 for AdamW).")
    ] = None,
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing of the training loss.")] = 0.0,
    epochs: Annotated[int, typer.Option("--epochs", "-e", help="Training epochs.")] = 1,
    max_steps: Annotated[
        int | None, typer.Option(help="Train exactly this many steps (overrides --epochs; the schedule spans them).")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Training batch size.")] = 128,
    warmup_steps: Annotated[
        int | None, typer.Option(help="Linear warmup steps (default: 5% of the steps, none below 20).")
    ] = None,
    grad_clip: Annotated[float, typer.Option(help="Clip the gradient's global L2 norm (0: off).")] = 5.0,
    amp: Annotated[
        bool | None, typer.Option("--amp/--no-amp", help="Mixed precision (default: on for CUDA only).")
    ] = None,
    amp_dtype: Annotated[str, typer.Option(help="auto (bf16 where supported), bf16 or fp16.")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    seed: Annotated[
        int, typer.Option(help="Seed of the model's init, the noise, data order and augmentations.")
    ] = 0,
    save: Annotated[
        Path | None,
        typer.Option(
            "--save", "-o", help="Write the fine-tuned weights here (.safetensors; config and history in metadata)."
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="Write the training state here after every epoch and on Ctrl-C (safetensors + JSON); "
            "continue with --resume."
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue the run saved in this training-state checkpoint (it keeps being updated)."),
    ] = None,
    force: Force = False,
    json_out: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON record per epoch (then a summary record) on stdout."),
    ] = False,
    _debug: Debug = False,
) -> None:
    output = Output(json_out)
    args = dict(
        model=model, data=data, data_dir=data_dir, val_fraction=val_fraction, split_seed=split_seed,
        n_shots=n_shots, image_size=image_size, workers=workers, init=init, ghn=ghn, noise=noise, orth=orth,
        optimizer=optimizer, lr=lr, weight_decay=weight_decay, label_smoothing=label_smoothing, epochs=epochs,
        max_steps=max_steps, batch_size=batch_size, warmup_steps=warmup_steps, grad_clip=grad_clip, amp=amp,
        amp_dtype=amp_dtype, device=device, seed=seed,
    )
    given = {name for name in args if _given(ctx, name)}
    if resume is not None:
        args = _args_from_checkpoint(resume, args, given)
    elif args["data"] is None:
        raise UsageError("missing --data", hint="for example --data cifar10, or --resume CKPT")

    data_config, init_spec, config = _configs(args, given, resume is not None)
    save_path, checkpoint_path = _check_outputs(save, checkpoint, resume, force)
    from ghnctl.finetune import resolve_device

    resolve_device(config.device)  # a missing CUDA/MPS is reported before the data is loaded
    # The GHN is resolved (downloaded if needed) before the data too: a missing GHN fails fast.
    ghn_path = _resolve_ghn(output, init_spec) if resume is None else None

    from ghnctl import data as data_mod

    with output.status(f"loading data {args['data']} ..."):
        bundle = data_mod.load_data(data_config, on_status=output.note)
    spec = _build_model(output, args["model"], bundle, config.seed)
    report = None
    if resume is None:
        report = _initialise(output, spec.model, init_spec, bundle, config.seed, ghn_path)

    meta = {
        "model": args["model"],
        "arch": spec.arch,
        "init": init_spec.to_dict() if resume is None else args["_init"],
        "init_report": report.to_dict() if report is not None else args["_init_report"],
        "data": _data_config_dict(data_config),
        "data_info": bundle.info.to_dict(),
    }
    _print_header(output, spec.arch, meta, bundle, config)
    history = _train(output, spec.model, bundle, config, checkpoint_path, resume, meta)

    saved = None
    if save_path is not None and not history.stopped:
        from ghnctl.finetune import save_weights

        with output.status(f"saving {save_path} ..."):
            saved = save_weights(save_path, spec.model, config, history, meta, force=force)
    _finish(output, history, meta, saved, checkpoint_path)
    if history.stopped:
        raise typer.Exit(130)


# --------------------------------------------------------------------------------------------
# arguments


def _given(ctx: typer.Context, name: str) -> bool:
    """True when the user typed the option (or set it in the environment), not a default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def _args_from_checkpoint(resume: Path, args: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """The run's arguments as saved in ``resume``; explicit flags must agree with them."""
    from ghnctl.finetune import read_state_metadata

    saved = read_state_metadata(resume)
    meta, config, data = saved["meta"], saved["config"], saved["meta"].get("data", {})
    useless = [n for n in _NO_EFFECT_ON_RESUME if n in given]
    if useless:
        raise UsageError(
            f"--{useless[0].replace('_', '-')} has no effect with --resume",
            hint="the weights come from the checkpoint; drop the flag",
        )
    out = dict(args)
    out["model"] = meta.get("model", args["model"])
    out["data"] = args["data"] if "data" in given else data.get("source")
    if "data_dir" not in given and data.get("data_dir"):
        out["data_dir"] = Path(data["data_dir"])
    for table, stored in ((_FROM_CONFIG, config), (_FROM_DATA, data)):
        for name, key in table.items():
            value = stored.get(key)
            if name in given and args[name] != value:
                flag = "--" + name.replace("_", "-")
                raise UsageError(
                    f"{flag} {args[name]} differs from the checkpoint's {value}",
                    hint="a resumed run keeps its settings; drop the flag or start a new run",
                )
            out[name] = value
    if "model" in given and args["model"] != out["model"]:
        raise UsageError(f"MODEL {args['model']!r} differs from the checkpoint's {out['model']!r}")
    out["_pretrained"] = bool(config.get("pretrained_init"))
    out["_bn0"] = bool(config.get("bn_batch_stats_epoch0"))
    out["_init"] = meta.get("init", {})
    out["_init_report"] = meta.get("init_report")
    return out


def _configs(args: dict[str, Any], given: set[str], resuming: bool) -> tuple[DataConfig, InitSpec, FinetuneConfig]:
    """Validated configs (UsageError on bad values) before anything expensive happens."""
    from ghnctl.data import DataConfig
    from ghnctl.finetune import FinetuneConfig
    from ghnctl.inits import DEFAULT_NOISE, InitSpec

    data_config = DataConfig(
        source=args["data"],
        data_dir=args["data_dir"],
        val_fraction=args["val_fraction"],
        split_seed=args["split_seed"],
        n_shots=args["n_shots"],
        image_size=args["image_size"],
    )
    noise = args["noise"]
    if resuming:
        init_spec = InitSpec("random")  # unused: the weights come from the checkpoint
    else:
        init_spec = InitSpec.parse(
            args["init"], ghn=args["ghn"], noise=DEFAULT_NOISE if noise is None else noise, orth=args["orth"]
        )
        if init_spec.kind != "ghn":
            extra = [n for n in ("ghn", "noise", "orth") if n in given]
            if extra:
                raise UsageError(f"--{extra[0]} only applies to --init ghn", hint=f"--init is {init_spec.label}")
    pretrained = args["_pretrained"] if resuming else init_spec.pretrained
    bn0 = args["_bn0"] if resuming else init_spec.kind == "ghn"
    config = FinetuneConfig(
        epochs=args["epochs"],
        max_steps=args["max_steps"],
        batch_size=args["batch_size"],
        optimizer=args["optimizer"],
        lr=args["lr"],
        pretrained_init=pretrained,
        weight_decay=args["weight_decay"],
        label_smoothing=args["label_smoothing"],
        warmup_steps=args["warmup_steps"],
        grad_clip=args["grad_clip"],
        amp=args["amp"],
        amp_dtype=args["amp_dtype"],
        device=args["device"],
        seed=args["seed"],
        workers=args["workers"],
        bn_batch_stats_epoch0=bn0,
    )
    return data_config, init_spec, config


def _data_config_dict(config: DataConfig) -> dict[str, Any]:
    return {
        "source": config.source,
        "data_dir": str(config.data_dir) if config.data_dir is not None else None,
        "val_fraction": config.val_fraction,
        "split_seed": config.split_seed,
        "n_shots": config.n_shots,
        "image_size": config.image_size,
    }


def _check_outputs(
    save: Path | None, checkpoint: Path | None, resume: Path | None, force: bool
) -> tuple[Path | None, Path | None]:
    """Output files are checked before the data is loaded or a model is built."""
    from ghnctl import io

    save_path = io.check_output_path(save, force) if save is not None else None
    if checkpoint is None:
        checkpoint_path = resume  # a resumed run keeps updating its checkpoint
    elif resume is not None and checkpoint.resolve() == resume.resolve():
        checkpoint_path = resume
    else:
        checkpoint_path = io.check_output_path(checkpoint, force)
    if save_path is not None and checkpoint_path is not None and save_path.resolve() == checkpoint_path.resolve():
        raise UsageError("--save and --checkpoint name the same file", hint="give them different names")
    return save_path, checkpoint_path


# --------------------------------------------------------------------------------------------
# steps


def _build_model(output: Output, spec: str, bundle: DataBundle, seed: int) -> Any:
    with output.status(f"building {spec} ..."):
        from ghnctl import zoo

        # Seeded construction: the random init (and everything the GHN does not predict) repeats.
        return zoo.resolve_model(spec, num_classes=bundle.num_classes, image_size=bundle.info.image_size, seed=seed)


def _resolve_ghn(output: Output, init_spec: InitSpec) -> Path | None:
    if init_spec.kind != "ghn":
        return None
    from ghnctl.cli.hub import resolve_ghn_cli

    return resolve_ghn_cli(output, init_spec.ghn)  # downloads with a progress bar when needed


def _initialise(output: Output, model: Any, init_spec: InitSpec, bundle: DataBundle, seed: int,
                ghn_path: Path | None) -> InitReport:
    from ghnctl.inits import apply_init

    message = {
        "ghn": f"predicting parameters with {ghn_path.name if ghn_path else init_spec.ghn} ...",
        "file": f"loading {init_spec.path} ...",
    }.get(init_spec.kind, "initialising ...")
    with output.status(message):
        report = apply_init(model, init_spec, bundle.num_classes, seed=seed, ghn_path=ghn_path)
    if ghn_path is not None:
        report.init["ghn_file"] = str(ghn_path)
    return report


class _StopFlag:
    """First Ctrl-C: stop after the current step and save the checkpoint; second: abort."""

    def __init__(self, output: Output) -> None:
        self.output = output
        self.requested = False
        self._previous: Any = None

    def __call__(self) -> bool:
        return self.requested

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.output.warn("stopping after this step to save the checkpoint (Ctrl-C again aborts)")

    def __enter__(self) -> _StopFlag:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: keep the default behaviour
            self._previous = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _train(
    output: Output,
    model: Any,
    bundle: DataBundle,
    config: FinetuneConfig,
    checkpoint: Path | None,
    resume: Path | None,
    meta: dict[str, Any],
) -> History:
    from ghnctl.finetune import finetune as run_finetune

    progress = _ProgressView(output)
    # Without a checkpoint there is nothing to save: Ctrl-C keeps its usual meaning (abort, exit 130).
    stop = _StopFlag(output) if checkpoint is not None else contextlib.nullcontext()
    with progress, stop:
        return run_finetune(
            model,
            bundle,
            config,
            on_event=progress.on_event,
            checkpoint=checkpoint,
            resume=resume,
            stop=stop if isinstance(stop, _StopFlag) else None,
            meta=meta,
        )


# --------------------------------------------------------------------------------------------
# display


class _ProgressView:
    """Turns engine events into a rich progress bar per epoch (stderr) and JSON lines (stdout)."""

    def __init__(self, output: Output) -> None:
        self.output = output
        self.progress: Any = None
        self.task: Any = None
        self.epochs = 0

    def __enter__(self) -> _ProgressView:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[extra]}"),
            TimeElapsedColumn(),
            console=self.output.console,
            transient=True,  # the per-epoch line below replaces it
        )
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_event(self, event: Any) -> None:
        from ghnctl import finetune as ft

        p = self.progress
        if isinstance(event, ft.RunStarted):
            self.epochs = event.epochs
            if event.resumed:
                self.output.note(f"resuming at epoch {event.start_epoch}, step {event.start_step}")
        elif isinstance(event, ft.EpochStarted):
            self._replace_task(f"epoch {event.epoch}/{self.epochs}", event.steps, event.first_step)
        elif isinstance(event, ft.StepDone):
            extra = f"loss {event.loss:.4f}" if event.loss is not None else None
            if extra is not None:
                p.update(self.task, completed=event.step, extra=extra)
            else:
                p.update(self.task, completed=event.step)
        elif isinstance(event, ft.Evaluating):
            label = "evaluating (not fine-tuned)" if event.epoch == 0 else f"evaluating epoch {event.epoch}"
            self._replace_task(label, event.batches, 0)
        elif isinstance(event, ft.EpochDone):
            self._remove_task()
            self._epoch_line(event.record)
        elif isinstance(event, ft.BadImages):
            names = ", ".join(Path(n).name for n in event.names[:3])
            self.output.warn(f"skipping {len(event.names)} unreadable image(s): {names}")
        elif isinstance(event, ft.CheckpointSaved):
            pass

    def _replace_task(self, description: str, total: int, completed: int) -> None:
        self._remove_task()
        self.task = self.progress.add_task(description, total=total, completed=completed, extra="")

    def _remove_task(self) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None

    def _epoch_line(self, record: Any) -> None:
        if self.output.json_mode:
            _json_line({"type": "epoch", **record.to_dict()})
            return
        self.output.console.print(
            f"epoch {_epoch_label(record)}  train loss {_fmt(record.train_loss, '.4f')}  "
            f"train acc {_fmt(record.train_acc, '.2f')}  val acc {_fmt(record.val_acc, '.2f')}  "
            f"({record.train_time_s + record.eval_time_s:.1f}s)",
            highlight=False,
        )


def _json_line(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, default=str) + "\n")
    sys.stdout.flush()


def _epoch_label(record: Any) -> str:
    return f"0 ({record.label})" if record.epoch == 0 else record.label


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _print_header(output: Output, arch: str, meta: dict[str, Any], bundle: DataBundle, config: FinetuneConfig) -> None:
    if output.json_mode:
        return
    info = bundle.info
    console = output.console
    init = meta["init"].get("label", "?")
    console.print(
        f"[bold]{arch}[/] from [bold]{init}[/] on [bold]{info.source}[/]: {info.n_train:,} train images, "
        f"{info.num_classes} classes, {info.image_size}x{info.image_size} ({info.recipe} recipe)"
    )
    output.note(info.describe_val())
    if info.n_shots is not None:
        output.note(f"few-shot: {info.n_shots} images per class (split seed {info.split_seed})")
    for note in info.notes:
        output.warn(note)
    report = meta.get("init_report") or {}
    for note in report.get("notes", []):
        output.note(note)
    output.note(
        f"{config.optimizer} lr {config.lr:g} wd {config.weight_decay:g} batch {config.batch_size} seed {config.seed}"
    )


def _finish(
    output: Output, history: History, meta: dict[str, Any], saved: Path | None, checkpoint: Path | None
) -> None:
    summary = {
        "type": "summary",
        "model": meta["model"],
        "init": meta["init"],
        "init_report": meta["init_report"],
        "data": meta["data_info"],
        "device": history.device,
        "amp": history.amp,
        "lr": history.lr,
        "total_steps": history.total_steps,
        "global_step": history.global_step,
        "steps_per_epoch": history.steps_per_epoch,
        "warmup_steps": history.warmup_steps,
        "final_val_acc": history.final.val_acc,
        "bad_images": history.bad_images,
        "stopped": history.stopped,
        "wall_s": round(history.wall_s, 3),
        "saved": str(saved) if saved is not None else None,
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
    }
    if output.json_mode:
        _json_line(summary)
        return
    from rich.table import Table

    table = Table(title="fine-tuning (accuracy in %, time in s)", title_justify="left", show_edge=False)
    for column in ("epoch", "train loss", "train acc", "val loss", "val acc", "time"):
        table.add_column(column, justify="left" if column == "epoch" else "right", no_wrap=True)
    for r in history.records:
        table.add_row(
            _epoch_label(r),
            _fmt(r.train_loss, ".4f"),
            _fmt(r.train_acc, ".2f"),
            _fmt(r.val_loss, ".4f"),
            _fmt(r.val_acc, ".2f"),
            f"{r.train_time_s + r.eval_time_s:.1f}",
            style="dim" if r.epoch == 0 else None,
        )
    output.console.print(table)
    amp = f", AMP {history.amp}" if history.amp else ""
    output.note(f"{history.global_step} steps on {history.device}{amp} in {history.wall_s:.1f}s")
    if history.bad_images:
        output.warn(f"skipped {len(history.bad_images)} unreadable image(s) in total")
    if saved is not None:
        output.console.print(f"weights saved to [bold]{saved}[/]")
    if history.stopped and checkpoint is not None:
        output.console.print(
            f"stopped at step {history.global_step}; state saved to [bold]{checkpoint}[/]; "
            f"continue with: ghnctl finetune --resume {checkpoint}"
        )
    elif checkpoint is not None:
        output.note(f"training state in {checkpoint}")
