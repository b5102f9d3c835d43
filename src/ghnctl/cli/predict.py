"""``ghnctl predict`` and ``ghnctl convert``: predict a model's parameters with a GHN and save them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ghnctl.cli.common import load_model
from ghnctl.cli.options import (
    DEFAULT_DEVICE,
    DEFAULT_GHN,
    DEFAULT_SEED,
    Debug,
    Device,
    Force,
    Ghn,
    ImageSize,
    JsonOut,
    NumClasses,
    Offline,
    Seed,
    noise_option,
    out_option,
)
from ghnctl.cli.output import Output
from ghnctl.errors import UsageError

if TYPE_CHECKING:
    from ghnctl.predict import PredictionReport
    from ghnctl.zoo import ModelSpec

HELP = (
    "Predict all parameters of MODEL(s) with a GHN and save them as safetensors that load with "
    "model.load_state_dict(..., strict=True).\n\n"
    "MODEL is a torchvision name (resnet50), pkg.module:factory, path/to/file.py:factory, timm:NAME or "
    "deepnets:SPLIT/INDEX (a built-in generated net). "
    "--ghn takes a registry name (ghn3xlm16, ghn3tm8, ...; downloaded once into the cache), a local "
    "file (official .pt or ghnctl .safetensors) or an http(s) URL; 'auto' uses the best cached "
    "official GHN-3, else downloads ghn3xlm16. Several models in one call get exactly the "
    "parameters each gets alone."
)
EPILOG = (
    "Examples:\n"
    "  ghnctl predict resnet50 --ghn ghn3tm8 --out r50.safetensors\n"
    "  ghnctl predict resnet18 mobilenet_v3_small --ghn ./ghn3tm8.pt --out-dir preds/\n"
    "  ghnctl predict vit_b_16 --ghn ghn3xlm16 --stats --json > vit.json"
)
CONVERT_HELP = (
    "Convert an official GHN checkpoint (HuggingFace joblib file or trainer/ppuda torch.save file) "
    "to ghnctl's safetensors format, reading the pickle with the restricted unpickler."
)
CONVERT_EPILOG = "Example:\n  ghnctl convert ghn3tm8.pt ghn3tm8.safetensors"


def register(app: typer.Typer) -> None:
    app.command("predict", help=HELP, epilog=EPILOG, no_args_is_help=True)(predict_command)
    app.command("convert", help=CONVERT_HELP, epilog=CONVERT_EPILOG, no_args_is_help=True)(convert_command)


@dataclass
class _Result:
    spec: ModelSpec
    out: Path
    report: PredictionReport
    timings: dict[str, float]
    stats: list[Any] = field(default_factory=list)
    fit: list[str] = field(default_factory=list)  # what the GHN's training means for this model


def predict_command(
    models: Annotated[list[str], typer.Argument(metavar="MODEL...", help="One or more model specs.")],
    ghn: Ghn = DEFAULT_GHN,
    out: Annotated[
        Path | None, out_option("Output .safetensors for one MODEL (default: ./MODEL.safetensors).")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", help="Directory for several models (MODEL.safetensors each).")
    ] = None,
    num_classes: NumClasses = None,
    image_size: ImageSize = None,
    device: Device = DEFAULT_DEVICE,
    seed: Seed = DEFAULT_SEED,
    noise: Annotated[
        float,
        noise_option("Default 0: the file holds the GHN's own prediction; `finetune --init ghn` adds the "
                     "fine-tuning recipe's 1e-5 before training."),
    ] = 0.0,
    stats: Annotated[
        bool, typer.Option("--stats", help="Report per-layer activation std on N(0,1) inputs; flag explode/vanish.")
    ] = False,
    offline: Offline = False,
    force: Force = False,
    json_out: JsonOut = False,
    _debug: Debug = False,
) -> None:
    output = Output(json_out)
    paths = _output_paths(models, out, out_dir, force)
    dev = _device(device)

    from ghnctl.cli.hub import resolve_ghn_cli

    ghn_path = resolve_ghn_cli(output, ghn, offline=offline)
    with output.status(f"loading GHN {ghn_path.name} ..."):
        from ghnctl.loader import load_resolved

        t0 = time.perf_counter()
        net = load_resolved(ghn, ghn_path, device=dev)
        load_s = time.perf_counter() - t0
        ghn_sha = net.source.sha256

    results = []
    for spec_text, path in zip(models, paths):
        results.append(_predict_one(output, net, spec_text, path, num_classes, image_size, seed, noise,
                                    stats, force, dev))

    data = {
        "ghn": {"name": net.source.name, "path": str(ghn_path), "sha256": ghn_sha, "load_s": load_s,
                "config": net.config.to_dict()},
        "models": [_result_json(r) for r in results],
    }
    output.result(data, lambda o: _print(o, data, results))


def _output_paths(models: list[str], out: Path | None, out_dir: Path | None, force: bool) -> list[Path]:
    """Every output path, checked before any work (existing -> refuse without --force)."""
    from ghnctl import io, zoo

    if out is not None and out_dir is not None:
        raise UsageError("--out and --out-dir are exclusive", hint="use --out for one model, --out-dir for several")
    if out is not None and len(models) > 1:
        raise UsageError(f"--out names one file but {len(models)} models were given", hint="use --out-dir DIR")
    if out is not None:
        paths = [out]
    else:
        directory = out_dir if out_dir is not None else Path(".")
        if out_dir is not None:
            directory.mkdir(parents=True, exist_ok=True)
        paths = [directory / f"{zoo.spec_name(m)}.safetensors" for m in models]
    if len(set(paths)) != len(paths):
        raise UsageError("two models would be saved to the same file", hint="give each model a distinct name")
    for p in paths:
        if p.suffix != ".safetensors":
            raise UsageError(f"output {p} must end in .safetensors", hint="for example --out model.safetensors")
    return [io.check_output_path(p, force) for p in paths]


def _device(name: str) -> str:
    from ghnctl.devices import resolve_device

    return str(resolve_device(name))


def _predict_one(output: Output, net: Any, spec_text: str, path: Path, num_classes: int | None,
                 image_size: int | None, seed: int, noise: float, stats: bool, force: bool, device: str) -> _Result:
    from ghnctl import io
    from ghnctl.fit import fit_notes
    from ghnctl.graph import build_graph
    from ghnctl.predict import init_model

    spec = load_model(output, spec_text, num_classes, image_size, seed=seed)
    model = spec.model.to(device)
    with output.status(f"tracing {spec.arch} ..."):
        t0 = time.perf_counter()
        graph = build_graph(model, arch=spec.arch, image_size=spec.image_size)
        graph_s = time.perf_counter() - t0
    with output.status(f"predicting {spec.arch} with {net.source.name} ..."):
        result = init_model(net, model, graph, seed=seed, noise=noise)
    report = result.report
    fit = fit_notes(net.source.name, net.config.num_classes, net.source.trained_image_size, spec.arch,
                    spec.num_classes, spec.image_size)
    layer_stats = []
    if stats:
        from ghnctl.stats import activation_stats

        with output.status(f"measuring activations of {spec.arch} ..."):
            layer_stats = activation_stats(model, spec.image_size, seed=seed)
    metadata = {
        **result.metadata,
        "model": spec.spec,
        "arch": spec.arch,
        "num_classes": str(spec.num_classes) if spec.num_classes is not None else "",
        "image_size": str(spec.image_size),
    }
    with output.status(f"saving {path} ..."):
        t0 = time.perf_counter()
        io.save_safetensors_atomic(model.state_dict(), path, metadata=metadata, force=force)
        save_s = time.perf_counter() - t0
    timings = {"graph": graph_s, "ghn_forward": report.timings.get("forward", 0.0),
               "assign": report.timings.get("assign", 0.0), "save": save_s}
    return _Result(spec, path, report, timings, layer_stats, fit)


def _result_json(r: _Result) -> dict[str, Any]:
    rep = r.report
    return {
        "model": r.spec.spec,
        "arch": r.spec.arch,
        "out": str(r.out),
        "num_classes": r.spec.num_classes,
        "image_size": r.spec.image_size,
        "n_params": len(rep.params),
        "n_predicted": len(rep.predicted),
        "n_unpredicted": len(rep.unpredicted),
        "predicted_values": rep.n_predicted_values,
        "unpredicted": [{"name": p.name, "shape": list(p.shape), "reason": p.reason} for p in rep.unpredicted],
        "total_norm": rep.total_norm,
        "groups": rep.groups,
        "timings": r.timings,
        "warnings": list(rep.warnings) + r.fit,
        "activation_stats": [s.to_dict() for s in r.stats] if r.stats else None,
    }


def _print(o: Output, data: dict[str, Any], results: list[_Result]) -> None:
    from rich.table import Table

    g = data["ghn"]
    cfg = g["config"]
    o.console.print(
        f"[bold]GHN[/] {g['name']}  [dim]hid {cfg['hid']} · layers {cfg['layers']} · "
        f"{'GHN-2' if cfg['is_ghn2'] else 'GHN-3'} · {cfg['num_classes']} classes · sha256 {g['sha256'][:12]}[/]"
    )
    for r, d in zip(results, data["models"]):
        t = Table(title=f"{d['arch']} -> {d['out']}", title_justify="left", show_header=True)
        t.add_column("parameters")
        t.add_column("tensors", justify="right")
        t.add_column("values", justify="right")
        total_values = sum(p.numel() for p in r.spec.model.parameters())
        t.add_row("predicted", str(d["n_predicted"]), f"{d['predicted_values']:,}")
        t.add_row("not predicted", str(d["n_unpredicted"]), f"{total_values - d['predicted_values']:,}")
        o.console.print(t)
        groups = Table(title="per group (official grouping key)", title_justify="left")
        groups.add_column("group")
        groups.add_column("tensors", justify="right")
        groups.add_column("L2 norm", justify="right")
        for key, v in sorted(d["groups"].items(), key=lambda kv: -kv[1].get("norm", 0.0))[:12]:
            groups.add_row(key, str(int(v.get("count", 0))), f"{v.get('norm', 0.0):.3f}")
        if len(d["groups"]) > 12:
            groups.add_row(f"... {len(d['groups']) - 12} more", "", "")
        o.console.print(groups)
        tm = d["timings"]
        o.console.print(
            f"total parameter norm {d['total_norm']:.4f}   time: graph {tm['graph']:.2f}s · "
            f"GHN forward {tm['ghn_forward']:.2f}s · assign {tm['assign']:.2f}s · save {tm['save']:.2f}s"
        )
        for p in d["unpredicted"][:8]:
            o.warn(f"not predicted: {p['name']} {tuple(p['shape'])} ({p['reason']})")
        if len(d["unpredicted"]) > 8:
            o.warn(f"... and {len(d['unpredicted']) - 8} more not predicted (see --json)")
        for w in d["warnings"]:
            o.warn(w)
        if r.stats:
            _print_stats(o, r.stats)


def _print_stats(o: Output, stats: list[Any]) -> None:
    from rich.table import Table

    flagged = [s for s in stats if s.flag]
    t = Table(title="activation std per layer (N(0,1) input, batch statistics)", title_justify="left")
    t.add_column("layer")
    t.add_column("type")
    t.add_column("std", justify="right")
    t.add_column("")
    shown = stats if len(stats) <= 24 else stats[:8] + flagged[:8] + stats[-8:]
    seen: set[int] = set()
    for s in shown:
        if id(s) in seen:
            continue
        seen.add(id(s))
        style = "red" if s.flag else ""
        t.add_row(s.name, s.module_type, f"{s.std:.3g}", s.flag or "", style=style)
    o.console.print(t)
    if flagged:
        o.warn(f"{len(flagged)} of {len(stats)} layers explode or vanish (std > 1e2 or < 1e-2)")
    else:
        o.note(f"all {len(stats)} layers within 1e-2 .. 1e2 (output std {stats[-1].std:.3g})")


def convert_command(
    src: Annotated[Path, typer.Argument(metavar="IN", help="Official GHN checkpoint (.pt).")],
    dst: Annotated[Path, typer.Argument(metavar="OUT", help="Output .safetensors file.")],
    force: Force = False,
    json_out: JsonOut = False,
    _debug: Debug = False,
) -> None:
    from ghnctl import io
    from ghnctl.errors import CheckpointError

    output = Output(json_out)
    if not src.is_file():
        raise CheckpointError(f"no such GHN checkpoint: {src}", hint="check the path")
    if dst.suffix != ".safetensors":
        raise UsageError(f"output {dst} must end in .safetensors", hint="for example ghn.safetensors")
    io.check_output_path(dst, force)
    with output.status(f"converting {src} ..."):
        from ghnctl.ghn import convert, read_checkpoint

        convert(src, dst, force=force)
        ck = read_checkpoint(dst)
    data = {"in": str(src), "out": str(dst), "config": ck.config.to_dict(),
            "n_params": sum(t.numel() for t in ck.state_dict.values())}
    output.result(data, lambda o: o.console.print(
        f"wrote {dst} ({data['n_params']:,} GHN parameters, hid {data['config']['hid']}, "
        f"{data['config']['num_classes']} classes)"))
