"""``ghnctl bench init|ghn|speed``: compare initialisations and GHNs, every number labelled.

The engine is ``ghnctl.bench``; this module parses flags, checks every output before any work
starts, resolves GHNs (downloads with feedback), loads the data once, and reports. ``bench init``
takes ``ghnctl finetune``'s training options with finetune's own definitions (read from its
signature below, so the two commands cannot drift apart), under the same names as the fields of
``FinetuneConfig`` and ``DataConfig``.
"""

from __future__ import annotations

import inspect
import shlex
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ghnctl.cli import finetune as finetune_cli
from ghnctl.cli.common import option_values
from ghnctl.cli.options import (
    DEFAULT_DEVICE,
    DEFAULT_GHN,
    Data,
    Debug,
    Device,
    Force,
    Ghn,
    JsonOut,
    Offline,
    data_option,
    image_size_option,
)
from ghnctl.cli.output import Output
from ghnctl.errors import UsageError

if TYPE_CHECKING:
    from ghnctl.bench.store import ResultStore
    from ghnctl.training.data import DataBundle


# --------------------------------------------------------------------------------------------
# ``ghnctl finetune``'s option definitions, reused as they are (annotation and default).

_FT_HINTS = typing.get_type_hints(finetune_cli.finetune, include_extras=True)
_FT_DEFAULTS = {name: p.default for name, p in inspect.signature(finetune_cli.finetune).parameters.items()}

DataDir = _FT_HINTS["data_dir"]
ValFraction = _FT_HINTS["val_fraction"]
SplitSeed = _FT_HINTS["split_seed"]
NShots = _FT_HINTS["n_shots"]
DataImageSize = _FT_HINTS["image_size"]
Workers = _FT_HINTS["workers"]
Noise = _FT_HINTS["noise"]
Orth = _FT_HINTS["orth"]
Optimizer = _FT_HINTS["optimizer"]
Lr = _FT_HINTS["lr"]
WeightDecay = _FT_HINTS["weight_decay"]
LabelSmoothing = _FT_HINTS["label_smoothing"]
Epochs = _FT_HINTS["epochs"]
MaxSteps = _FT_HINTS["max_steps"]
BatchSize = _FT_HINTS["batch_size"]
WarmupSteps = _FT_HINTS["warmup_steps"]
GradClip = _FT_HINTS["grad_clip"]
Amp = _FT_HINTS["amp"]
AmpDtype = _FT_HINTS["amp_dtype"]

# Options of this command group.
Results = Annotated[
    Path | None,
    typer.Option(help="Append-only JSON Lines file of finished cells (default: beside the first of --csv, --md, "
                      "--plot, as NAME.results.jsonl; else ./bench-KIND.results.jsonl)."),
]
Resume = Annotated[
    bool, typer.Option("--resume", help="Skip the cells already in the results file (same model/init/seed/settings).")
]
Csv = Annotated[Path | None, typer.Option("--csv", help="Write the results as CSV here.")]
Md = Annotated[Path | None, typer.Option("--md", help="Write the table as Markdown here (with the command).")]
EvalImages = Annotated[
    int | None,
    typer.Option(min=1, help="Score on this many validation images (a seeded subset, split seed; default: all)."),
]
Archs = Annotated[
    str,
    typer.Option(help="deepnets:SPLIT (its first --n nets), a comma list of model specs, or @FILE (one spec "
                      "per line; file.py:factory paths relative to FILE)."),
]
NArchs = Annotated[int, typer.Option("--n", min=1, help="Nets taken from each deepnets:SPLIT in --archs.")]
GhnList = Annotated[
    str,
    typer.Option("--ghn", "-g", help="Comma-separated GHNs: registry names (`ghnctl ghn list`), checkpoint files "
                                     "or http(s) URLs."),
]

bench_app = typer.Typer(
    name="bench",
    help=(
        "Compare initialisations and GHNs honestly: `bench init` fine-tunes models from several inits over "
        "several seeds and reports accuracy with no fine-tuning and after each epoch (mean ± std); `bench ghn` "
        "evaluates GHNs zero-shot on a set of architectures; `bench speed` times graph building and prediction. "
        "Finished cells are kept in a results file as they finish; --resume skips them."
    ),
    epilog=(
        "Examples:\n"
        "  ghnctl bench init resnet18 --data cifar10 --inits ghn,random --epochs 3 --seeds 3 --plot r18.png\n"
        "  ghnctl bench ghn --ghn ghn3tm8,ghn3xlm16 --archs resnet18,resnet50\n"
        "  ghnctl bench speed --ghn ghn3tm8 --archs resnet50,mobilenet_v3_small"
    ),
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")


# --------------------------------------------------------------------------------------------
# outputs


@dataclass(frozen=True)
class _Outputs:
    results: Path
    csv: Path | None
    md: Path | None
    plot: Path | None
    force: bool
    resume: bool


def _outputs(kind: str, results: Path | None, csv: Path | None, md: Path | None, plot: Path | None,
             force: bool, resume: bool) -> _Outputs:
    """Every output checked before any work: writable, not there (unless --force), distinct."""
    from ghnctl import io

    files = [p for p in (csv, md, plot) if p is not None]
    if results is None:
        results = files[0].with_name(files[0].stem + ".results.jsonl") if files else Path(f"bench-{kind}.results.jsonl")
    for path in files:
        io.check_output_path(path, force)
    if plot is not None:
        from ghnctl.bench.plot import check_plot_path, require_matplotlib

        check_plot_path(plot)
        require_matplotlib()
    resolved = [p.resolve() for p in (*files, results)]
    if len(set(resolved)) != len(resolved):
        raise UsageError("two outputs name the same file",
                         hint="give --csv, --md, --plot and --results different names")
    if results.exists() and not resume and not force:
        from ghnctl.bench.store import ResultStore

        finished = len(ResultStore(results, kind).load().cells)
        raise UsageError(f"results file {str(results)!r} already holds {finished} finished cell(s)",
                         hint="continue with --resume, or start over with --force")
    if not results.exists():
        io.check_output_path(results)
    elif resume:
        from ghnctl.bench.store import ResultStore

        ResultStore(results, kind).load()  # a file of another bench, or unreadable: said now, not after the data
    return _Outputs(results, csv, md, plot, force, resume)


def _store(outputs: _Outputs, kind: str) -> ResultStore:
    """The results file; ``--force`` without ``--resume`` empties it (the run starts over)."""
    from ghnctl.bench.store import ResultStore

    store = ResultStore(outputs.results, kind)
    if outputs.force and not outputs.resume and store.exists():
        store.start_over()
    return store


def _write(output: Output, outputs: _Outputs, tables: list[Any], csv_columns: Any, csv_records: Any) -> None:
    from ghnctl import io
    from ghnctl.bench.export import to_csv, to_markdown

    if outputs.csv is not None:
        io.atomic_write_text(outputs.csv, to_csv(csv_columns, csv_records), force=outputs.force)
        output.note(f"CSV written to {outputs.csv}")
    if outputs.md is not None:
        io.atomic_write_text(outputs.md, to_markdown(tables, _command_line()), force=outputs.force)
        output.note(f"Markdown written to {outputs.md}")


def _command_line() -> str | None:
    """The command as typed (``ghnctl bench ...``), for the Markdown file; None when unknown."""
    argv = sys.argv[1:]
    if "bench" not in argv:
        return None
    return "ghnctl " + shlex.join(argv[argv.index("bench"):])


def _resolve_ghns(output: Output, specs: list[str], offline: bool) -> dict[str, Path]:
    from ghnctl.cli.hub import resolve_ghn_cli

    return {spec: resolve_ghn_cli(output, spec, offline=offline) for spec in dict.fromkeys(specs)}


def _load_data(output: Output, values: dict[str, Any], offline: bool) -> DataBundle:
    from ghnctl.training.configs import config_from_fields
    from ghnctl.training.data import DataConfig, load_data

    config = config_from_fields(DataConfig, values)
    with output.status(f"loading data {config.source} ..."):
        return load_data(config, on_status=output.note, offline=offline)


def _finish_stopped(output: Output, stopped: bool, results: Path, finished: int, total: int) -> None:
    if stopped:
        output.warn(f"stopped: {finished} of {total} cells finished and kept in {results}; "
                    "the unfinished cell is dropped; continue with the same command and --resume")
        raise typer.Exit(130)
    output.note(f"all {total} cells finished; kept in {results} (a rerun with --resume reads them back)")


# --------------------------------------------------------------------------------------------
# bench init

INIT_HELP = (
    "Fine-tune each MODEL from each init (--inits: ghn, random, file:PATH, ghn:SPEC) with each seed, and "
    "report the validation accuracy with no fine-tuning (epoch 0: the initialisation alone, never called "
    "fine-tuned) and after every epoch: a table of mean ± std over seeds (sample std; \"±  -\" with one seed), "
    "--json, --csv, --md and --plot (accuracy against epoch per init, ±std band; needs matplotlib).\n\n"
    "Each cell is an ordinary `ghnctl finetune` run with the same recipe and options (see `ghnctl finetune "
    "--help`); the default lr is the recipe's per init (lower from a GHN or a file). --seeds N runs seeds "
    "--seed .. --seed+N-1; --seeds 0,4 runs those. Finished cells are appended to --results at once; "
    "Ctrl-C stops after the current step (the unfinished cell is dropped), and --resume skips the "
    "finished cells."
)


@bench_app.command(
    "init", help=INIT_HELP,
    epilog=(
        "Examples:\n"
        "  ghnctl bench init resnet18 mobilenet_v3_small --data cifar10 --inits ghn,random --epochs 3 --seeds 3\n"
        "  ghnctl bench init ./nets.py:tiny --data ./images.tar.gz --inits random,file:w.safetensors "
        "--n-shots 20 --max-steps 50 --csv out.csv --plot out.png\n"
        "  ghnctl bench init resnet18 --data cifar10 --seeds 5 --resume --results out.results.jsonl"
    ),
)
def init_command(
    ctx: typer.Context,
    models: Annotated[list[str], typer.Argument(metavar="MODEL...", help="Model specs (as `ghnctl finetune`).")],
    source: Data = None,
    data_dir: DataDir = _FT_DEFAULTS["data_dir"],
    val_fraction: ValFraction = _FT_DEFAULTS["val_fraction"],
    split_seed: SplitSeed = _FT_DEFAULTS["split_seed"],
    n_shots: NShots = _FT_DEFAULTS["n_shots"],
    image_size: DataImageSize = _FT_DEFAULTS["image_size"],
    workers: Workers = _FT_DEFAULTS["workers"],
    inits: Annotated[str, typer.Option(help="Comma list: ghn (with --ghn), ghn:SPEC, random, file:PATH.")
                     ] = "ghn,random",
    ghn: Ghn = DEFAULT_GHN,
    noise: Noise = _FT_DEFAULTS["noise"],
    orth: Orth = _FT_DEFAULTS["orth"],
    optimizer: Optimizer = _FT_DEFAULTS["optimizer"],
    lr: Lr = _FT_DEFAULTS["lr"],
    weight_decay: WeightDecay = _FT_DEFAULTS["weight_decay"],
    label_smoothing: LabelSmoothing = _FT_DEFAULTS["label_smoothing"],
    epochs: Epochs = _FT_DEFAULTS["epochs"],
    max_steps: MaxSteps = _FT_DEFAULTS["max_steps"],
    batch_size: BatchSize = _FT_DEFAULTS["batch_size"],
    warmup_steps: WarmupSteps = _FT_DEFAULTS["warmup_steps"],
    grad_clip: GradClip = _FT_DEFAULTS["grad_clip"],
    amp: Amp = _FT_DEFAULTS["amp"],
    amp_dtype: AmpDtype = _FT_DEFAULTS["amp_dtype"],
    device: Device = DEFAULT_DEVICE,
    seeds: Annotated[str, typer.Option(help="A count N (seeds --seed .. --seed+N-1) or a comma list.")] = "1",
    first_seed: Annotated[int, typer.Option("--seed", min=0, help="First seed of --seeds N.")] = 0,
    eval_images: EvalImages = None,
    results: Results = None,
    resume: Resume = False,
    csv: Csv = None,
    md: Md = None,
    plot: Annotated[Path | None, typer.Option(help="Draw accuracy against epoch here (.png, .svg, .pdf).")] = None,
    offline: Offline = False,
    force: Force = False,
    json_out: JsonOut = False,
    _debug: Debug = False,
) -> None:
    from ghnctl.bench.init_bench import InitBenchConfig, parse_inits, parse_seeds

    output = Output(json_out)
    values, given = option_values(ctx)
    if source is None:
        raise UsageError("missing --data", hint="for example --data cifar10 or --data ./images.tar.gz")
    config = InitBenchConfig(
        models=tuple(models), inits=parse_inits(inits, ghn, noise, orth), seeds=parse_seeds(seeds, first_seed),
        training=values, eval_images=eval_images,
    )
    _check_ghn_options(inits, config.inits, given)
    outputs = _outputs("init", results, csv, md, plot, force, resume)
    from ghnctl.devices import resolve_device

    resolve_device(device)  # a missing CUDA/MPS is reported before the data is loaded
    ghn_paths = _resolve_ghns(output, [i.ghn for i in config.inits if i.kind == "ghn"], offline)
    bundle = _load_data(output, values, offline)
    output.note(f"{len(config.models)} model(s) x {len(config.inits)} init(s) x {len(config.seeds)} seed(s) = "
                f"{len(config.models) * len(config.inits) * len(config.seeds)} cells; results in {outputs.results}")
    result = _run(output, outputs, "init", _describe_init_cell, lambda store, view, stop: _init_engine(
        config, bundle, store, resume, ghn_paths, view, stop))

    from ghnctl.bench.tables import INIT_CSV_COLUMNS, init_csv_records, init_table

    table = init_table(result)
    if not result.stopped:
        _write(output, outputs, [table], INIT_CSV_COLUMNS, init_csv_records(result))
        if outputs.plot is not None and result.cells:
            from ghnctl.bench.plot import plot_init_curves

            plot_init_curves(result.rows, outputs.plot, force=outputs.force)
            output.note(f"plot written to {outputs.plot}")
    _report(output, result.to_dict(), [table])
    _finish_stopped(output, result.stopped, outputs.results, len(result.cells), result.total)


def _check_ghn_options(text: str, inits: Any, given: frozenset[str]) -> None:
    """--ghn feeds the plain ``ghn`` entry of --inits; --noise and --orth any GHN init. Unused: refused."""
    if "ghn" in given and "ghn" not in (item.strip() for item in text.split(",")):
        raise UsageError("--ghn applies to the `ghn` entry of --inits, and there is none",
                         hint=f"--inits is {text}; add ghn, or name the GHN as ghn:SPEC")
    unused = [name for name in ("noise", "orth") if name in given]
    if unused and not any(i.kind == "ghn" for i in inits):
        raise UsageError(f"--{unused[0]} only applies to a GHN init", hint=f"--inits is {text}")


def _init_engine(config: Any, bundle: Any, store: Any, resume: bool, ghn_paths: Any, view: Any, stop: Any) -> Any:
    from ghnctl.bench.init_bench import run_init_bench

    return run_init_bench(config, bundle, store=store, resume=resume, ghn_paths=ghn_paths, on_event=view.on_event,
                          stop=stop)


def _describe_init_cell(record: dict[str, Any]) -> str:
    """``no fine-tuning 10.65% -> fine-tuned 4 epochs 19.70% (54s)``: a finished cell in one line."""
    from ghnctl.bench.labels import epoch_label

    points = record["points"]
    first, last = points[0], points[-1]

    def acc(p: dict[str, Any]) -> str:
        return "-" if p["val_acc"] is None else f"{p['val_acc']:.2f}%"

    before = f"{epoch_label(first['epoch'], first['steps'], first['partial'])} {acc(first)}"
    after = f"{epoch_label(last['epoch'], last['steps'], last['partial'])} {acc(last)}" if len(points) > 1 else ""
    return f"{before}{' -> ' + after if after else ''} ({record['wall_s']:.0f}s)"


# --------------------------------------------------------------------------------------------
# bench ghn

GHN_HELP = (
    "Evaluate one or more GHNs zero-shot (no fine-tuning) on a set of architectures: each architecture's "
    "model and graph are built once, each GHN predicts its parameters, and the model is scored with "
    "BatchNorm batch statistics (as the official evaluation does) on the data's test or validation split, "
    "which the report names. Reported: mean ± std, median and max top-1 per GHN, per-architecture rows, "
    "and the L2 norm of all parameters after prediction. For the official GHN-3 checkpoints (ghn3tm8, "
    "ghn3xlm16) the norms of 1000-class torchvision models are checked against the published values "
    "(ghn3_results.json of the official code; pass no --data to check norms on ImageNet-sized models).\n\n"
    "--archs: deepnets:SPLIT (its first --n nets, e.g. deepnets:test, deepnets:wide), a comma list of model "
    "specs, or @FILE with one spec per line. --batch-size defaults to 64, the official evaluation's: with "
    "batch statistics the accuracy depends on it."
)


@bench_app.command(
    "ghn", help=GHN_HELP,
    epilog=(
        "Examples:\n"
        "  ghnctl bench ghn --ghn ghn3tm8,ghn3xlm16 --archs resnet18,resnet50,mobilenet_v3_small\n"
        "  ghnctl bench ghn --ghn runs/c10/ghn.safetensors --archs deepnets:test --n 50 --data cifar10\n"
        "  ghnctl bench ghn --ghn a.pt,b.pt --archs @archs.txt --data ./images --csv ghn.csv"
    ),
)
def ghn_command(
    ctx: typer.Context,
    ghn: GhnList = DEFAULT_GHN,
    archs: Archs = "deepnets:test",
    n: NArchs = 10,
    source: Annotated[str | None, data_option("Without it only the predicted-parameter norms are reported.")] = None,
    data_dir: DataDir = _FT_DEFAULTS["data_dir"],
    val_fraction: ValFraction = _FT_DEFAULTS["val_fraction"],
    split_seed: SplitSeed = _FT_DEFAULTS["split_seed"],
    image_size: Annotated[int | None, image_size_option(
        "Input side: the data's (resized to it with --data), else the model's default (224; 32 for DeepNets).")] = None,
    eval_images: EvalImages = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Evaluation batch size (official: 64).")
                          ] = 64,
    workers: Workers = _FT_DEFAULTS["workers"],
    device: Device = DEFAULT_DEVICE,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the models' own init (parameters a GHN does not "
                                                  "predict) and of a ViT's class token.")] = 0,
    results: Results = None,
    resume: Resume = False,
    csv: Csv = None,
    md: Md = None,
    offline: Offline = False,
    force: Force = False,
    json_out: JsonOut = False,
    _debug: Debug = False,
) -> None:
    from ghnctl.bench.archs import parse_archs
    from ghnctl.bench.ghn_bench import GhnBenchConfig
    from ghnctl.bench.ghns import split_ghn_list

    output = Output(json_out)
    values, given = option_values(ctx)
    config = GhnBenchConfig(
        ghns=split_ghn_list(ghn), archs=parse_archs(archs, n), arch_set=archs, image_size=image_size,
        eval_images=eval_images, batch_size=batch_size, workers=workers, device=device, seed=seed,
    )
    if source is None and (eval_images is not None or {"val_fraction", "split_seed", "data_dir"} & given):
        raise UsageError("--eval-images, --val-fraction, --split-seed and --data-dir need --data",
                         hint="without --data only the predicted-parameter norms are reported")
    outputs = _outputs("ghn", results, csv, md, None, force, resume)
    from ghnctl.devices import resolve_device

    resolve_device(device)
    ghn_paths = _resolve_ghns(output, list(config.ghns), offline)
    bundle = _load_data(output, values, offline) if source is not None else None
    result = _run(output, outputs, "ghn", _describe_ghn_cell, lambda store, view, stop: _ghn_engine(
        config, bundle, store, resume, ghn_paths, view, stop))

    from ghnctl.bench.tables import GHN_CSV_COLUMNS, ghn_csv_records, ghn_rows_table, ghn_summary_table

    tables = [ghn_summary_table(result), ghn_rows_table(result)]
    if not result.stopped:
        _write(output, outputs, tables, GHN_CSV_COLUMNS, ghn_csv_records(result))
    _report(output, result.to_dict(), tables)
    _finish_stopped(output, result.stopped, outputs.results, len(result.rows), result.total)


def _ghn_engine(config: Any, bundle: Any, store: Any, resume: bool, ghn_paths: Any, view: Any, stop: Any) -> Any:
    from ghnctl.bench.ghn_bench import run_ghn_bench

    return run_ghn_bench(config, bundle, store=store, resume=resume, ghn_paths=ghn_paths, on_event=view.on_event,
                         stop=stop)


def _describe_ghn_cell(record: dict[str, Any]) -> str:
    parts = []
    if record.get("top1") is not None:
        parts.append(f"top-1 {record['top1']:.2f}% (zero-shot)")
    if record.get("norm") is not None:
        parts.append(f"param norm {record['norm']:.3f}")
    check = record.get("norm_check")
    if check:
        parts.append(f"published {check['published']:.4f}: {'ok' if check['ok'] else 'DIFFERS'}")
    return ", ".join(parts) or "done"


# --------------------------------------------------------------------------------------------
# bench speed

SPEED_HELP = (
    "Time graph building (ghnctl.build_graph) and parameter prediction (ghnctl.predict_parameters with the "
    "graph given, split into GHN forward and assignment) per architecture and GHN: the median of --repeats "
    "runs after --warmup untimed ones, with every run kept in --json/--csv. Memory: the peak resident set "
    "size while predicting (Linux: reset before each measurement; elsewhere the process's peak so far, "
    "getrusage), and the peak CUDA memory on a GPU; the report names the method used."
)


@bench_app.command(
    "speed", help=SPEED_HELP,
    epilog=(
        "Examples:\n"
        "  ghnctl bench speed --ghn ghn3tm8 --archs resnet50,mobilenet_v3_small,convnext_tiny\n"
        "  ghnctl bench speed --ghn ghn3tm8,ghn3xlm16 --archs deepnets:test --n 5 --repeats 3 --json"
    ),
)
def speed_command(
    ghn: GhnList = DEFAULT_GHN,
    archs: Archs = "resnet50",
    n: NArchs = 10,
    image_size: Annotated[int | None, image_size_option(
        "Input side the graph is traced at (default: the model's, 224; 32 for DeepNets).")] = None,
    num_classes: Annotated[int | None, typer.Option("--num-classes", "-c", min=1, help=(
        "Classes of the models (default: the GHN's, so the classifier is predicted too)."))] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Timed runs; the median is reported.")] = 5,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs first.")] = 1,
    device: Device = DEFAULT_DEVICE,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the models' own init.")] = 0,
    results: Results = None,
    resume: Resume = False,
    csv: Csv = None,
    md: Md = None,
    offline: Offline = False,
    force: Force = False,
    json_out: JsonOut = False,
    _debug: Debug = False,
) -> None:
    from ghnctl.bench.archs import parse_archs
    from ghnctl.bench.ghns import split_ghn_list
    from ghnctl.bench.speed import SpeedConfig

    output = Output(json_out)
    config = SpeedConfig(ghns=split_ghn_list(ghn), archs=parse_archs(archs, n), arch_set=archs,
                         image_size=image_size, num_classes=num_classes, repeats=repeats, warmup=warmup,
                         device=device, seed=seed)
    outputs = _outputs("speed", results, csv, md, None, force, resume)
    from ghnctl.devices import resolve_device

    resolve_device(device)
    ghn_paths = _resolve_ghns(output, list(config.ghns), offline)
    result = _run(output, outputs, "speed", _describe_speed_cell, lambda store, view, stop: _speed_engine(
        config, store, resume, ghn_paths, view, stop))

    from ghnctl.bench.tables import SPEED_CSV_COLUMNS, speed_csv_records, speed_table

    table = speed_table(result)
    if not result.stopped:
        _write(output, outputs, [table], SPEED_CSV_COLUMNS, speed_csv_records(result))
    _report(output, result.to_dict(), [table])
    _finish_stopped(output, result.stopped, outputs.results, len(result.rows), result.total)


def _speed_engine(config: Any, store: Any, resume: bool, ghn_paths: Any, view: Any, stop: Any) -> Any:
    from ghnctl.bench.speed import run_speed

    return run_speed(config, store=store, resume=resume, ghn_paths=ghn_paths, on_event=view.on_event, stop=stop)


def _describe_speed_cell(record: dict[str, Any]) -> str:
    return f"graph {record['graph_s']:.4f}s, predict {record['predict_s']:.4f}s (median)"


# --------------------------------------------------------------------------------------------
# shared steps


def _run(output: Output, outputs: _Outputs, kind: str, describe: Any, engine: Any) -> Any:
    """Run ``engine(store, view, stop)`` under the progress view and the Ctrl-C handler."""
    from ghnctl.cli.bench_view import BenchProgress
    from ghnctl.cli.stop import StopFlag

    store = _store(outputs, kind)
    view = BenchProgress(output, describe)
    with StopFlag(output, what="step" if kind == "init" else "architecture") as stop, view:
        return engine(store, view, stop)


def _report(output: Output, data: dict[str, Any], tables: list[Any]) -> None:
    from ghnctl.cli.bench_view import print_table

    def render(out: Output) -> None:
        for table in tables:
            print_table(out, table)

    output.result(data, render)
