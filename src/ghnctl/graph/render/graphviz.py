"""Graphviz: DOT text for a graph view, and running ``dot`` to turn it into SVG, PNG or PDF.

The DOT uses the same colours, labels and hover text as the built-in renderer; collapsed blocks
become dashed clusters and the legend sits in the graph label.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from xml.sax.saxutils import escape

from ghnctl.errors import GhnctlError, MissingExtra
from ghnctl.graph.render.collapse import Block, GraphView
from ghnctl.graph.render.raster import PNG_MAX_SIDE
from ghnctl.graph.render.style import (
    DARK_FILLS,
    EDGE_COLOR,
    MUTED_COLOR,
    header_lines,
    label_color,
    node_label,
    node_tooltip,
    op_colors,
    op_counts,
)

_DOT_TIMEOUT_S = 300
_DOT_PNG_DPI = 144
# Above this many drawn nodes Graphviz's layout takes minutes (densenet121: 66-145 s with dot 2.43,
# 1-5 s built in), so ``auto`` switches to the built-in renderer; ``--engine dot`` still forces it.
AUTO_DOT_MAX_NODES = 250


def find_dot(engine: str, n_nodes: int = 0) -> str | None:
    """Path of Graphviz's ``dot`` to use, or None for the pure-Python renderer."""
    if engine == "python" or (engine == "auto" and n_nodes > AUTO_DOT_MAX_NODES):
        return None
    found = shutil.which("dot")
    if found is None and engine == "dot":
        raise MissingExtra(
            "Graphviz 'dot' was not found on PATH",
            hint="install Graphviz (apt install graphviz, brew install graphviz, conda install graphviz) "
            "or use --engine python",
        )
    return found


def to_dot(view: GraphView, png_cap: bool = False) -> str:
    """Graphviz DOT source for ``view``: coloured nodes, tooltips, clusters for collapsed blocks, legend."""
    graph_attrs = _graph_attrs(view, png_cap)
    lines = ["digraph ghn {"]
    lines.append("  graph [" + ", ".join(f"{k}={_dot_value(v)}" for k, v in graph_attrs.items()) + "];")
    lines.append(
        '  node [shape=box, style="filled", fontname="Helvetica", fontsize=10, height=0.3, '
        'margin="0.1,0.04", penwidth=1];'
    )
    lines.append(f'  edge [color="{EDGE_COLOR}", arrowsize=0.5, penwidth=0.9];')
    block_of = view.block_of()
    in_block: dict[int, list[int]] = {}
    for v in view.nodes:
        if v in block_of:
            in_block.setdefault(block_of[v], []).append(v)
    for v in view.nodes:
        if v not in block_of:
            lines.append("  " + _dot_node(view, v, None))
    for b, block in enumerate(view.blocks):
        lines.append(f"  subgraph cluster_block{b} {{")
        label = _dot_value(f"×{block.count}  {block.caption}")
        lines.append(
            f'    label={label}; labeljust=l; style="dashed,rounded,filled"; '
            'fillcolor="#f3f6fa"; color="#7d8a9c"; fontname="Helvetica"; fontsize=11;'
        )
        lines.extend("    " + _dot_node(view, v, block) for v in in_block.get(b, []))
        lines.append("  }")
    for u, v in view.edges:
        lines.append(f"  n{u} -> n{v};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _graph_attrs(view: GraphView, png_cap: bool) -> dict[str, str]:
    title, sub = header_lines(view)
    attrs = {
        "rankdir": "TB",
        "label": _dot_header(view, title, sub),
        "labelloc": "t",
        "labeljust": "l",
        "fontname": "Helvetica",
        "fontsize": "16",
        "nodesep": "0.18",
        "ranksep": "0.28",
        "bgcolor": "white",
        "tooltip": f"{title}: {sub}",
    }
    if png_cap:
        # 1.5x dot's default 96 dpi for crisp text; "size" (inches) only ever scales down, so big
        # graphs stay within PNG_MAX_SIDE pixels.
        side = PNG_MAX_SIDE / _DOT_PNG_DPI
        attrs.update({"dpi": str(_DOT_PNG_DPI), "size": f"{side:.2f},{side:.2f}"})
    return attrs


def _dot_node(view: GraphView, v: int, block: Block | None) -> str:
    g = view.graph
    node = g.nodes[v]
    fill, stroke = op_colors(node.op)
    attrs = {
        "label": node_label(node, g.image_size),
        "tooltip": node_tooltip(node, block),
        "fillcolor": fill,
        "color": stroke,
    }
    if node.op in DARK_FILLS:
        attrs["fontcolor"] = "#ffffff"
    if node.param is None:
        attrs["style"] = "rounded,filled"  # parameter-free ops are rounded, as in the Python renderer
    body = ", ".join(f"{k}={_dot_value(val)}" for k, val in attrs.items())
    return f"n{v} [{body}];"


def _dot_header(view: GraphView, title: str, sub: str) -> str:
    """HTML-like graph label: title, subtitle and a one-row legend of the ops with their counts.

    In the label rather than as a node, so dot does not put it in a rank and push the graph down.
    """
    cells = []
    for op, count in op_counts(view.graph).items():
        fill, stroke = op_colors(op)
        cells.append(
            f'<TD BGCOLOR="{fill}" COLOR="{stroke}"><FONT POINT-SIZE="10" COLOR="{label_color(op)}">'
            f"{_html(op)} {count}</FONT></TD>"
        )
    legend = '<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="3" CELLPADDING="3"><TR>' + "".join(cells) + "</TR></TABLE>"
    return (
        '<<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="1">'
        f'<TR><TD ALIGN="LEFT"><B>{_html(title)}</B></TD></TR>'
        f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="10" COLOR="{MUTED_COLOR}">{_html(sub)}</FONT></TD></TR>'
        f'<TR><TD ALIGN="LEFT">{legend}</TD></TR></TABLE>>'
    )


def _dot_value(value: str) -> str:
    if value.startswith("<") and value.endswith(">"):
        return value  # HTML-like label
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _html(text: str) -> str:
    return escape(text, {'"': "&quot;"})


def run_dot(dot_bin: str, source: str, fmt: str, target: Path) -> None:
    """Run Graphviz on ``source``, writing ``fmt`` to ``target``."""
    try:
        proc = subprocess.run(
            [dot_bin, f"-T{fmt}", "-o", str(target)],
            input=source.encode("utf-8"),
            capture_output=True,
            timeout=_DOT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise GhnctlError(f"Graphviz dot took longer than {_DOT_TIMEOUT_S}s", hint="use --engine python") from exc
    except OSError as exc:
        raise GhnctlError(f"cannot run Graphviz dot ({dot_bin}): {exc}", hint="use --engine python") from exc
    if proc.returncode != 0 or not target.exists() or target.stat().st_size == 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = message[-1] if message else f"exit code {proc.returncode}"
        raise GhnctlError(f"Graphviz dot failed: {detail}", hint="use --engine python")
