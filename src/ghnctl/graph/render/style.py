"""How a graph looks: op colours, legend order, fonts, text metrics, node labels and hover text.

Shared by every drawing path (built-in SVG, PNG/PDF and Graphviz) so the pictures agree.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ghnctl.graph.model import GhnGraph, Node
    from ghnctl.graph.render.collapse import Block, GraphView

# Categorical palette (fill, border) per op; fills are light so the dark label text stays readable.
# Hues follow ColorBrewer "Paired"/Tableau, chosen so that ops that occur together differ clearly.
OP_COLORS: dict[str, tuple[str, str]] = {
    "input": ("#37474f", "#263238"),
    "conv": ("#a6cee3", "#1f78b4"),
    "sep_conv": ("#7fd6e0", "#00838f"),
    "dil_conv": ("#bcb3dc", "#5e3c99"),
    "msa": ("#f4a6c8", "#c51b7d"),
    "cse": ("#dcb0ea", "#8e24aa"),
    "sum": ("#b2df8a", "#33a02c"),
    "concat": ("#fb9a99", "#e31a1c"),
    "bias": ("#e4ec9c", "#8c9a00"),
    "bn": ("#fdbf6f", "#e66101"),
    "ln": ("#ffe680", "#b8860b"),
    "pos_enc": ("#d9bfa3", "#8b5a2b"),
    "max_pool": ("#bcc6cf", "#455a64"),
    "avg_pool": ("#a3dcc4", "#1b7a56"),
    "glob_avg": ("#e0e0e0", "#616161"),
}
UNKNOWN_COLOR = ("#ffffff", "#616161")
# Legend order: data flow first, then layers with weights, then parameter-free ops.
LEGEND_ORDER: tuple[str, ...] = (
    "input",
    "conv",
    "sep_conv",
    "dil_conv",
    "bias",
    "bn",
    "ln",
    "pos_enc",
    "msa",
    "cse",
    "sum",
    "concat",
    "max_pool",
    "avg_pool",
    "glob_avg",
)
DARK_FILLS = frozenset({"input"})  # ops whose fill needs white text

# Boxes are sized with DejaVu Sans metrics; the fallbacks are narrower, so labels still fit.
FONT_FAMILY = "DejaVu Sans, Arial, Helvetica, sans-serif"
EDGE_COLOR = "#8d96a3"
TEXT_COLOR = "#1f2328"
MUTED_COLOR = "#59636e"


def op_colors(op: str) -> tuple[str, str]:
    """(fill, border) of an op; unknown ops are white with a grey border."""
    return OP_COLORS.get(op, UNKNOWN_COLOR)


def label_color(op: str) -> str:
    """Text colour that stays readable on the op's fill."""
    return "#ffffff" if op in DARK_FILLS else TEXT_COLOR


def op_counts(graph: GhnGraph) -> dict[str, int]:
    """Node count per op in ``LEGEND_ORDER`` (ops outside the 15 known ones last, by name)."""
    counts: dict[str, int] = {}
    for node in graph.nodes:
        counts[node.op] = counts.get(node.op, 0) + 1
    rank = {op: i for i, op in enumerate(LEGEND_ORDER)}
    return dict(sorted(counts.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


# --------------------------------------------------------------------------------------------
# Labels and text
# --------------------------------------------------------------------------------------------


def node_label(node: Node, image_size: Sequence[int] | None = None) -> str:
    """Short label: op and shape, e.g. ``conv 768×3×16×16``, ``max_pool 3×3``, ``sum``."""
    shape: Sequence[int] | None = node.shape
    if node.op == "input" and shape is None and image_size is not None:
        shape = image_size
    if node.op in ("max_pool", "avg_pool") and shape is not None and len(shape) == 4:
        shape = shape[2:]  # pooling nodes carry (1, 1, k, k): the kernel is what matters
    if not shape:
        return node.op
    return f"{node.op} {'×'.join(str(int(s)) for s in shape)}"


def node_tooltip(node: Node, block: Block | None = None) -> str:
    """Hover text: full parameter (or internal op) name, op, shape, module type, block repetition."""
    lines = [node.param or node.name, f"op: {node.op}"]
    if node.shape is not None:
        lines.append("shape: (" + ", ".join(str(int(s)) for s in node.shape) + ")")
    if node.module_type:
        lines.append(f"module: {node.module_type}")
    lines.append(f"node #{node.index}")
    if block is not None:
        lines.append(f"repeated ×{block.count}: {block.caption}")
    return "\n".join(lines)


def short_name(node: Node) -> str:
    """A node in an edge's hover text: its parameter, else its internal name and index."""
    return node.param or f"{node.name} (#{node.index})"


def header_lines(view: GraphView) -> tuple[str, str]:
    """Title and subtitle for the picture."""
    g = view.graph
    sub = f"{g.num_nodes} nodes · {g.num_edges} edges"
    if view.collapsed:
        hidden = g.num_nodes - len(view.nodes)
        sub += f" · repeated blocks drawn once ({len(view.nodes)} nodes shown, {hidden} folded)"
    return g.arch or "graph", sub


# --------------------------------------------------------------------------------------------
# Fonts and text metrics
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def dejavu_font(size: int, bold: bool = False, italic: bool = False) -> Any:
    """DejaVu Sans at ``size`` px (what the SVG asks for first), or None when it is not installed."""
    from PIL import ImageFont

    name = "DejaVuSans" + ("-Bold" if bold else "-Oblique" if italic else "") + ".ttf"
    for candidate in (name, "DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(candidate, size)
        except OSError:
            pass
    return None


@functools.lru_cache(maxsize=4096)
def text_width(text: str, size: float, bold: bool = False) -> float:
    """Width of ``text`` in px with DejaVu Sans metrics (measured at 4x so rounding adds no error).

    Without DejaVu (or Pillow) a generous estimate keeps labels inside their boxes.
    """
    try:
        font = dejavu_font(round(size * 4), bold)
    except ImportError:
        font = None
    if font is None:
        return 0.64 * size * len(text) * (1.08 if bold else 1.0)
    return float(font.getlength(text)) / 4
