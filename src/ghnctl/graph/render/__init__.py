"""Pictures of a GHN graph: SVG, PNG, PDF (Graphviz ``dot`` or built in) and DOT text.

``render_graph`` is the one entry point: it checks the format and engine, collapses repeated
blocks, then hands the drawing to Graphviz or to the built-in renderer, and writes the file
atomically. The jobs live in their own modules:

* ``ghnctl.pictures``: the formats and engines (torch-free, so the CLI checks ``--out`` first),
* ``collapse``: which nodes are drawn (runs of identical blocks drawn once, ``×N``),
* ``style``: colours, fonts, labels and hover text,
* ``shapes`` and ``scene``: the renderer-neutral picture (layout, frames, legend),
* ``svg`` and ``raster``: the built-in SVG writer and the PNG/PDF drawing with Pillow,
* ``graphviz``: DOT text and running ``dot``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ghnctl.errors import GhnctlError, GraphError, OutputNotWritable
from ghnctl.graph.layout import CycleError, topological_order
from ghnctl.graph.render.collapse import Block, GraphView, collapse_view, find_repeated_blocks
from ghnctl.graph.render.graphviz import AUTO_DOT_MAX_NODES, find_dot, run_dot, to_dot
from ghnctl.graph.render.raster import PNG_MAX_PIXELS, PNG_MAX_SIDE, palette_png, pdf_bytes, png_scale, scene_to_image
from ghnctl.graph.render.scene import build_scene
from ghnctl.graph.render.shapes import Scene
from ghnctl.graph.render.style import LEGEND_ORDER, OP_COLORS, header_lines, node_label, node_tooltip
from ghnctl.graph.render.svg import scene_to_svg
from ghnctl.pictures import ENGINES, FORMATS, check_engine, resolve_format

if TYPE_CHECKING:
    from ghnctl.graph.model import GhnGraph

__all__ = [
    "AUTO_DOT_MAX_NODES",
    "ENGINES",
    "FORMATS",
    "LEGEND_ORDER",
    "OP_COLORS",
    "PNG_MAX_PIXELS",
    "PNG_MAX_SIDE",
    "Block",
    "GraphView",
    "build_scene",
    "collapse_view",
    "find_repeated_blocks",
    "header_lines",
    "node_label",
    "node_tooltip",
    "pdf_bytes",
    "png_scale",
    "render_graph",
    "resolve_format",
    "scene_to_image",
    "scene_to_svg",
    "to_dot",
]


def render_graph(
    graph: GhnGraph,
    out: Path | str,
    fmt: str | None = None,
    engine: str = "auto",
    collapse: bool = True,
) -> Path:
    """Draw ``graph`` to ``out`` and return the path.

    ``fmt`` (svg, png, pdf, dot) defaults to ``out``'s suffix. ``engine``: ``auto`` uses Graphviz's
    ``dot`` when it is on PATH and the pure-Python renderer otherwise; ``dot`` requires Graphviz;
    ``python`` never calls it. DOT text needs no engine. Overwrites ``out`` (the caller checks
    ``--force``); the file appears atomically or not at all.
    """
    out = Path(out)
    fmt = resolve_format(out, fmt)
    engine = check_engine(engine)
    try:  # a GhnGraph is a DAG by construction; say so clearly if one is not
        topological_order(graph.num_nodes, graph.edges)
    except CycleError as exc:
        raise GraphError(f"cannot draw {graph.arch!r}: {exc}") from exc
    view = collapse_view(graph, collapse)
    if fmt == "dot":
        _write_atomic(out, lambda tmp: tmp.write_text(to_dot(view), encoding="utf-8"))
        return out
    dot_bin = find_dot(engine, len(view.nodes))
    if dot_bin is not None:
        source = to_dot(view, png_cap=(fmt == "png"))
        _write_atomic(out, lambda tmp: run_dot(dot_bin, source, fmt, tmp))
    else:
        _draw_builtin(build_scene(view), fmt, out)
    return out


def _draw_builtin(scene: Scene, fmt: str, out: Path) -> None:
    """Write ``scene`` as SVG text, a 256-colour PNG or a one-page PDF."""
    if fmt == "svg":
        text = scene_to_svg(scene)
        _write_atomic(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        return
    image, dpi = scene_to_image(scene)
    if fmt == "png":
        image = palette_png(image)
        _write_atomic(out, lambda tmp: image.save(tmp, format="PNG", optimize=True, dpi=(round(dpi),) * 2))
    else:
        data = pdf_bytes(image, dpi, title=scene.title)
        _write_atomic(out, lambda tmp: tmp.write_bytes(data))


def _write_atomic(out: Path, write: Callable[[Path], object]) -> None:
    """Let ``write(tmp)`` fill a temporary file beside ``out``, then move it into place.

    The overwrite check is the caller's (the CLI checks --force first); ``atomic_path`` still
    refuses a missing or read-only directory and removes the temporary file when ``write`` fails.
    """
    from ghnctl.io import atomic_path

    try:
        with atomic_path(out, force=True) as tmp:
            write(tmp)
    except GhnctlError:
        raise
    except OSError as exc:
        raise OutputNotWritable(f"cannot write {str(out)!r}: {exc.strerror or exc}") from exc
