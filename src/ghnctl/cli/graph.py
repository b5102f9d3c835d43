"""``ghnctl graph``: show, save or draw the graph a GHN builds for a model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ghnctl.cli.common import load_model
from ghnctl.cli.options import DEBUG_KEY, Debug, Force, ImageSize, JsonOut, NumClasses, out_option
from ghnctl.cli.output import Output
from ghnctl.errors import UsageError

if TYPE_CHECKING:
    from ghnctl.graph.model import GhnGraph
    from ghnctl.zoo import ModelSpec


HELP = (
    "Build the graph a GHN reads for MODEL and summarise it: nodes, edges, op types, depth, "
    "which parameters a GHN can predict, and warnings.\n\n"
    "MODEL is a torchvision name (resnet50), pkg.module:factory, path/to/file.py:factory, timm:NAME or "
    "deepnets:SPLIT/INDEX (a built-in generated net, e.g. deepnets:test/17). "
    "With --list, MODEL is an optional filter (substring or glob) on the torchvision names."
)
EPILOG = (
    "Examples:\n"
    "  ghnctl graph resnet50\n"
    "  ghnctl graph vit_b_16 --json > vit.json\n"
    "  ghnctl graph mynets.py:tiny_net --num-classes 10 --image-size 32 --render --out tiny.svg\n"
    "  ghnctl graph --list 'efficientnet*'"
)


def register(app: typer.Typer) -> None:
    app.command("graph", help=HELP, epilog=EPILOG, no_args_is_help=True)(graph_command)


def graph_command(
    ctx: typer.Context,
    model: Annotated[
        str | None,
        typer.Argument(metavar="MODEL", help="Model spec, or a filter with --list.", show_default=False),
    ] = None,
    list_models: Annotated[
        bool, typer.Option("--list", "-l", help="List the torchvision models (filtered by MODEL) and exit.")
    ] = False,
    num_classes: NumClasses = None,
    image_size: ImageSize = None,
    render: Annotated[bool, typer.Option("--render", "-r", help="Draw the graph to a picture file.")] = False,
    out: Annotated[
        Path | None,
        out_option("Picture file: .svg, .png, .pdf or .dot (implies --render; default: ./MODEL.svg)."),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="How to draw: dot (Graphviz), python (built in) or auto "
            "(dot when installed, built in above 250 drawn nodes where dot takes minutes)."
        ),
    ] = "auto",
    collapse: Annotated[
        bool,
        typer.Option(help="Draw runs of identical blocks once, with a xN badge."),
    ] = True,
    force: Force = False,
    json_out: JsonOut = False,
    _debug: Debug = False,
) -> None:
    output = Output(json_out)
    if list_models:
        _list(output, model)
        return
    if model is None:
        raise UsageError("missing MODEL", hint="for example: ghnctl graph resnet50; see --list")

    picture = _picture_path(model, out, force, engine) if render or out is not None else None
    spec = load_model(output, model, num_classes, image_size)

    from ghnctl.graph import build_graph

    with output.status(f"tracing {spec.arch} at {spec.image_size}x{spec.image_size} ..."):
        graph = build_graph(spec.model, arch=spec.arch, image_size=spec.image_size)
    if picture is not None:
        from ghnctl.graph.render import render_graph

        with output.status(f"drawing {picture} ..."):
            picture = render_graph(graph, picture, engine=engine, collapse=collapse)

    data = _graph_json(graph, spec, picture)
    debug = bool(ctx.meta.get(DEBUG_KEY))
    output.result(data, lambda out: _print_summary(out, graph, spec, data, picture, debug))


def _picture_path(model: str, out: Path | None, force: bool, engine: str) -> Path:
    """Where --render writes, checked (with the engine) before any model is built.

    Only torch-free modules are imported here (not ghnctl.graph), so a bad --out is refused at once.
    """
    from ghnctl import io, pictures, zoo

    path = out if out is not None else Path(f"{zoo.spec_name(model)}.svg")
    pictures.resolve_format(path, None)
    pictures.check_engine(engine)
    return io.check_output_path(path, force)


def _list(output: Output, pattern: str | None) -> None:
    from ghnctl import zoo

    with output.status("listing torchvision models ..."):
        names = zoo.list_models(pattern)

    def render(out: Output) -> None:
        from rich.columns import Columns

        if not names:
            out.warn(f"no torchvision model matches {pattern!r}")
            return
        out.console.print(Columns(names, padding=(0, 3)))
        out.note(f"{len(names)} model(s)")

    output.result({"pattern": pattern, "models": names}, render)


def _param_coverage(graph: GhnGraph, spec: ModelSpec) -> dict[str, dict[str, int]]:
    """Trainable parameters the GHN predicts (covered) vs leaves alone (not covered): count and numel."""
    params = {name: p for name, p in spec.model.named_parameters() if p.requires_grad}
    uncovered = set(graph.uncovered)
    covered_numel = sum(p.numel() for name, p in params.items() if name not in uncovered)
    uncovered_numel = sum(p.numel() for name, p in params.items() if name in uncovered)
    return {
        "covered": {"count": len(params) - len(uncovered & params.keys()), "numel": covered_numel},
        "not_covered": {"count": len(uncovered & params.keys()), "numel": uncovered_numel},
    }


def _graph_json(graph: GhnGraph, spec: ModelSpec, picture: Path | None) -> dict[str, Any]:
    data = graph.to_json()
    data.update(
        spec=spec.spec,
        source=spec.source,
        num_classes=spec.num_classes,
        diameter=graph.diameter,
        params=_param_coverage(graph, spec),
        picture=str(picture) if picture is not None else None,
    )
    return data


def _print_summary(
    output: Output, graph: GhnGraph, spec: ModelSpec, data: dict[str, Any], picture: Path | None, debug: bool = False
) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    console = output.console
    classes = f"{spec.num_classes} classes" if spec.num_classes is not None else "the model's own classes"
    console.print(f"[bold]{escape(spec.arch)}[/] ({spec.source}, {spec.image_size}x{spec.image_size} input, {classes})")
    console.print(
        f"nodes [bold]{graph.num_nodes}[/]   edges [bold]{graph.num_edges}[/]   "
        f"depth [bold]{graph.depth}[/]   diameter [bold]{graph.diameter}[/]\n"
    )

    ops = Table(title="node types", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    ops.add_column("op")
    ops.add_column("nodes", justify="right")
    for op, count in graph.op_histogram().items():
        ops.add_row(op, str(count))

    coverage = data["params"]
    params = Table(title="trainable parameters", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    params.add_column("where")
    params.add_column("tensors", justify="right")
    params.add_column("values", justify="right")
    for label, key in (("in the graph (predicted)", "covered"), ("not in the graph", "not_covered")):
        count, numel = coverage[key]["count"], coverage[key]["numel"]
        style = "yellow" if key == "not_covered" and count else None
        params.add_row(label, str(count), f"{numel:,}", style=style)

    # side by side, top-aligned, with a clear gutter (rich Columns squeezes headerless tables)
    layout = Table.grid(padding=(0, 6))
    layout.add_row(ops, params)
    console.print(layout)
    # The graph's warnings name what is not covered and why (e.g. ConvNeXt's layer_scale).
    for warning in graph.warnings:
        output.warn(warning)
    if debug:  # notes change nothing for the user (e.g. how the official code reads a ViT)
        for note in getattr(graph, "notes", ()):
            output.note(f"note: {note}")
    if picture is not None:
        console.print(f"graph drawn to [bold]{escape(str(picture))}[/]")
