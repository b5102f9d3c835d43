"""``ghnctl finetune``: fine-tune a model on an image data set from a GHN, random or file init.

Options are named like the fields of the engine's configs (``DataConfig``, ``FinetuneConfig``):
the command hands all their values to ``config_from_fields`` and, on ``--resume``, the ones the
user typed to ``resume_config``. torch and the engine are imported inside the command, so
``ghnctl --help`` stays fast.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ghnctl.cli.common import data_progress, load_model, option_values
from ghnctl.cli.options import (
    DEFAULT_DEVICE,
    DEFAULT_GHN,
    DEFAULT_SEED,
    Data,
    DataDir,
    DataImageSize,
    Debug,
    Device,
    Force,
    Ghn,
    JsonOut,
    Offline,
    Seed,
    SplitSeed,
    ValFraction,
    noise_option,
    out_option,
)
from ghnctl.cli.output import Output
from ghnctl.cli.stop import StopFlag
from ghnctl.errors import UsageError

if TYPE_CHECKING:
    from ghnctl.inits import InitReport, InitSpec
    from ghnctl.training.data import DataBundle, DataConfig
    from ghnctl.training.events import EpochRecord, History
    from ghnctl.training.finetune_config import FinetuneConfig

DEFAULT_MODEL = "resnet18"
DEFAULT_NOISE = 1e-5  # ghnctl.perturb.DEFAULT_NOISE (not imported: that would load torch for --help)
NOISE_WHY = (
    "Default 1e-5, the published fine-tuning recipe's (predict defaults to 0: it writes the GHN's raw "
    "prediction). Only with --init ghn."
)

HELP = (
    "Fine-tune MODEL (default: resnet18) on an image-classification data set, starting from "
    "parameters predicted by a GHN (--init ghn), the model's own random init (--init random) or a "
    "safetensors file (--init file:PATH), and report validation accuracy before training "
    "(epoch 0, 'not fine-tuned') and after every epoch.\n\n"
    "MODEL is a torchvision name, pkg.module:factory, path/to/file.py:factory or timm:NAME; it is "
    "built with the data's number of classes and keeps its ImageNet architecture (stem included) at "
    "any --image-size.\n\n"
    "--data (required unless --resume) is cifar10, cifar100 (downloaded into --data-dir unless "
    "--offline) or a PATH: an ImageFolder tree train/<class>/<image> with val/ or test/, or a .tar.gz "
    "of one (extracted once). Without val/ or test/, --val-fraction of train is held out (stratified, "
    "--split-seed) and reported. 32x32 data follows the CIFAR transfer recipe (random crop with "
    "4-pixel padding, horizontal flip, CIFAR mean/std); other data the ImageNet one (random resized "
    "crop, flip, ImageNet mean/std) at 224. --image-size resizes. Unreadable images are skipped and "
    "counted.\n\n"
    "With --init ghn the GHN's predictions get a little noise (--noise, official beta 1e-5) on every "
    "conv/linear weight but the classifier. When the GHN's number of classes differs from the "
    "data's (e.g. an ImageNet GHN on CIFAR-10), the classifier is not predicted and keeps its "
    "random init. The untrained GHN model is evaluated with BatchNorm batch statistics, as the "
    "official evaluation of predicted parameters does.\n\n"
    "Recipe: SGD, Nesterov momentum 0.9, weight decay 5e-4, cosine schedule after a linear warmup "
    "(5% of steps), gradient clipping 5, AMP on CUDA. Default lr: 0.1 x batch/128 from random init, "
    "0.025 x batch/128 from a GHN or file init (the official GHN-3 reduction); AdamW 1e-3 / 2.5e-4.\n\n"
    "--resume continues a --checkpoint exactly; its model, data and settings come from the "
    "checkpoint, and only --device, --workers, --data/--data-dir (moved files), --out, --offline "
    "and --json may be given with it."
)
EPILOG = (
    "Examples:\n"
    "  ghnctl finetune --data cifar10 --init ghn\n"
    "  ghnctl finetune resnet50 --data cifar10 --init random --epochs 5 --out r50.safetensors\n"
    "  ghnctl finetune --data ./cifar10-train-jpg.tar.gz --init file:r18.safetensors --n-shots 10\n"
    "  ghnctl finetune --data cifar10 --epochs 10 --checkpoint run.state   # Ctrl-C stops and saves\n"
    "  ghnctl finetune --resume run.state\n"
    "  ghnctl finetune --data cifar10 --init random --max-steps 50 --json | jq .val_acc"
)


def register(app: typer.Typer) -> None:
    app.command("finetune", help=HELP, epilog=EPILOG)(finetune)


def finetune(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="Model spec (default: resnet18).", show_default=False)
    ] = DEFAULT_MODEL,
    source: Data = None,
    data_dir: DataDir = None,
    val_fraction: ValFraction = 0.1,
    split_seed: SplitSeed = 0,
    n_shots: Annotated[
        int | None, typer.Option("--n-shots", help="Train on K images per class (seeded by --split-seed).")
    ] = None,
    image_size: DataImageSize = None,
    workers: Annotated[
        int | None, typer.Option(help="Data-loading processes (default: 0 on CPU, up to 4 with a GPU).")
    ] = None,
    init: Annotated[str, typer.Option("--init", "-i", help="ghn, random or file:PATH.safetensors.")] = "ghn",
    ghn: Ghn = DEFAULT_GHN,
    noise: Annotated[float, noise_option(NOISE_WHY)] = DEFAULT_NOISE,
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
    device: Device = DEFAULT_DEVICE,
    seed: Seed = DEFAULT_SEED,
    out: Annotated[
        Path | None,
        out_option("Write the fine-tuned weights here (.safetensors; config and history in metadata)."),
    ] = None,
    save: Annotated[Path | None, typer.Option("--save", hidden=True, help="Old name of --out.")] = None,
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
    offline: Offline = False,
    force: Force = False,
    json_out: JsonOut = False,
    _debug: Debug = False,
) -> None:
    output = Output(json_out)
    values, given = option_values(ctx)
    plan = _plan(values, given, resume)
    out_path, checkpoint_path = _check_outputs(_out_path(output, out, save), checkpoint, resume, force)
    from ghnctl.devices import resolve_device

    resolve_device(plan.config.device)  # a missing CUDA/MPS is reported before the data is loaded
    # The GHN is resolved (downloaded if needed) before the data too: a missing GHN fails fast.
    ghn_path = _resolve_ghn(output, plan.init, offline)

    from ghnctl.training import data as data_mod

    with data_progress(output, f"loading data {plan.data.source}:") as on_progress:
        bundle = data_mod.load_data(plan.data, on_status=output.note, offline=offline, on_progress=on_progress)
    spec = load_model(output, plan.model, bundle.num_classes, bundle.info.image_size, seed=plan.config.seed)
    meta = {
        "model": plan.model,
        "arch": spec.arch,
        "init": plan.saved_meta.get("init", {}),
        "init_report": plan.saved_meta.get("init_report"),
        "data": plan.data.to_dict(),
        "data_info": bundle.info.to_dict(),
    }
    if plan.init is not None:
        report = _initialise(output, spec.model, plan.init, bundle, plan.config.seed, ghn_path)
        meta.update(init=plan.init.to_dict(), init_report=report.to_dict())
    _print_header(output, spec.arch, meta, bundle, plan.config)
    history = _train(output, spec.model, bundle, plan.config, checkpoint_path, resume, meta)

    saved = None
    if out_path is not None and not history.stopped:
        from ghnctl.training.finetune import save_weights

        with output.status(f"saving {out_path} ..."):
            saved = save_weights(out_path, spec.model, plan.config, history, meta, force=force)
    _finish(output, history, meta, saved, checkpoint_path)
    if history.stopped:
        raise typer.Exit(130)


# --------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class _Plan:
    """What to run: from the options (a new run) or from the checkpoint (``--resume``)."""

    model: str
    data: DataConfig
    config: FinetuneConfig
    init: InitSpec | None  # None when resuming: the weights come from the checkpoint
    saved_meta: dict[str, Any]


def _plan(values: dict[str, Any], given: frozenset[str], resume: Path | None) -> _Plan:
    """Validated settings (UsageError on bad values) before anything expensive happens."""
    from ghnctl.training.configs import config_from_fields
    from ghnctl.training.data import DataConfig
    from ghnctl.training.finetune import FinetuneConfig, read_state_fields, resume_config

    if resume is not None:
        run = resume_config(read_state_fields(resume), {name: values[name] for name in given})
        return _Plan(run.model, run.data, run.config, None, run.meta)

    from ghnctl.inits import InitSpec

    init = InitSpec.parse(values["init"], ghn=values["ghn"], noise=values["noise"], orth=values["orth"])
    if init.kind != "ghn":
        extra = [name for name in ("ghn", "noise", "orth") if name in given]
        if extra:
            raise UsageError(f"--{extra[0]} only applies to --init ghn", hint=f"--init is {init.label}")
    config = config_from_fields(
        FinetuneConfig, values, pretrained_init=init.pretrained, bn_batch_stats_epoch0=init.kind == "ghn"
    )
    return _Plan(values["model"], config_from_fields(DataConfig, values), config, init, {})


def _out_path(output: Output, out: Path | None, save: Path | None) -> Path | None:
    """``--out``, or the hidden old spelling ``--save`` (with a warning)."""
    if save is None:
        return out
    if out is not None:
        raise UsageError("--save is the old name of --out; give only --out")
    output.warn("--save is now --out (-o)")
    return save


def _check_outputs(
    out: Path | None, checkpoint: Path | None, resume: Path | None, force: bool
) -> tuple[Path | None, Path | None]:
    """Output files are checked before the data is loaded or a model is built."""
    from ghnctl import io

    out_path = io.check_output_path(out, force) if out is not None else None
    if checkpoint is None:
        checkpoint_path = resume  # a resumed run keeps updating its checkpoint
    elif resume is not None and checkpoint.resolve() == resume.resolve():
        checkpoint_path = resume
    else:
        checkpoint_path = io.check_output_path(checkpoint, force)
    if out_path is not None and checkpoint_path is not None and out_path.resolve() == checkpoint_path.resolve():
        raise UsageError("--out and --checkpoint name the same file", hint="give them different names")
    return out_path, checkpoint_path


# --------------------------------------------------------------------------------------------
# steps


def _resolve_ghn(output: Output, init: InitSpec | None, offline: bool) -> Path | None:
    if init is None or init.kind != "ghn":
        return None
    from ghnctl.cli.hub import resolve_ghn_cli

    return resolve_ghn_cli(output, init.ghn, offline=offline)  # downloads with a progress bar when needed


def _initialise(
    output: Output, model: Any, init: InitSpec, bundle: DataBundle, seed: int, ghn_path: Path | None
) -> InitReport:
    from ghnctl.inits import apply_init

    message = {
        "ghn": f"predicting parameters with {ghn_path.name if ghn_path else init.ghn} ...",
        "file": f"loading {init.path} ...",
    }.get(init.kind, "initialising ...")
    with output.status(message):
        report = apply_init(model, init, bundle.num_classes, seed=seed, ghn_path=ghn_path,
                            image_size=bundle.info.image_size)
    if ghn_path is not None:
        report.init["ghn_file"] = str(ghn_path)
    return report


def _train(
    output: Output,
    model: Any,
    bundle: DataBundle,
    config: FinetuneConfig,
    checkpoint: Path | None,
    resume: Path | None,
    meta: dict[str, Any],
) -> History:
    from ghnctl.training.finetune import finetune as run_finetune

    progress = _ProgressView(output)
    # Without a checkpoint there is nothing to save: Ctrl-C keeps its usual meaning (abort, exit 130).
    stop = StopFlag(output) if checkpoint is not None else contextlib.nullcontext()
    with progress, stop:
        return run_finetune(
            model,
            bundle,
            config,
            on_event=progress.on_event,
            checkpoint=checkpoint,
            resume=resume,
            stop=stop if isinstance(stop, StopFlag) else None,
            meta=meta,
        )


# --------------------------------------------------------------------------------------------
# display


class _ProgressView:
    """Turns engine events into a rich progress bar per epoch (stderr) and JSON records (stdout)."""

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
        from ghnctl.training import events as ev

        p = self.progress
        if isinstance(event, ev.RunStarted):
            self.epochs = event.epochs
            if event.resumed:
                self.output.note(f"resuming at epoch {event.start_epoch}, step {event.start_step}")
        elif isinstance(event, ev.EpochStarted):
            self._replace_task(f"epoch {event.epoch}/{self.epochs}", event.steps, event.first_step)
        elif isinstance(event, ev.StepDone):
            if event.loss is not None:
                p.update(self.task, completed=event.step, extra=f"loss {event.loss:.4f}")
            else:
                p.update(self.task, completed=event.step)
        elif isinstance(event, ev.Evaluating):
            label = "evaluating (not fine-tuned)" if event.epoch == 0 else f"evaluating epoch {event.epoch}"
            self._replace_task(label, event.batches, 0)
        elif isinstance(event, ev.EvalStepDone):
            p.update(self.task, completed=event.batch)
        elif isinstance(event, ev.EpochDone):
            self._remove_task()
            self._epoch_line(event.record)
        elif isinstance(event, ev.BadImages):
            names = ", ".join(Path(n).name for n in event.names[:3])
            self.output.warn(f"skipping {len(event.names)} unreadable image(s): {names}")

    def _replace_task(self, description: str, total: int, completed: int) -> None:
        self._remove_task()
        self.task = self.progress.add_task(description, total=total, completed=completed, extra="")

    def _remove_task(self) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None

    def _epoch_line(self, record: EpochRecord) -> None:
        if self.output.json_mode:
            self.output.record({"type": "epoch", **record.to_dict()})
            return
        self.output.console.print(
            f"epoch {_epoch_label(record)}  train loss {_fmt(record.train_loss, '.4f')}  "
            f"train acc {_fmt(record.train_acc, '.2f')}  val acc {_fmt(record.val_acc, '.2f')}  "
            f"({record.train_time_s + record.eval_time_s:.1f}s)",
            highlight=False,
        )


def _epoch_label(record: EpochRecord) -> str:
    return f"0 ({record.label})" if record.epoch == 0 else record.label


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _print_header(
    output: Output, arch: str, meta: dict[str, Any], bundle: DataBundle, config: FinetuneConfig
) -> None:
    if output.json_mode:
        return
    info = bundle.info
    init = meta["init"].get("label", "?")
    output.console.print(
        f"[bold]{arch}[/] from [bold]{init}[/] on [bold]{info.source}[/]: {info.n_train:,} train images, "
        f"{info.num_classes} classes, {info.image_size}x{info.image_size} ({info.recipe} recipe)"
    )
    output.note(info.describe_val())
    if info.n_shots is not None:
        output.note(f"few-shot: {info.n_shots} images per class (split seed {info.split_seed})")
    for note in info.notes:
        output.warn(note)
    for note in (meta.get("init_report") or {}).get("notes", []):
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
        output.record(summary)
        return
    _print_table(output, history)
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


def _print_table(output: Output, history: History) -> None:
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
