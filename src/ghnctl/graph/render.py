"""Pictures of a GHN graph: SVG, PNG, PDF (Graphviz ``dot`` or pure Python) and DOT text.

``render_graph`` is the one entry point. The pure-Python path lays the graph out top-down with
``ghnctl.graph.layout`` and draws it by hand: SVG as text, PNG/PDF with Pillow (already installed with
torchvision). Nodes are coloured by op type, a legend lists the ops with their counts, labels are short
(``conv 768×3×16×16``) and the full parameter name is the hover text. Runs of identical consecutive
blocks (ViT encoder layers, ResNet blocks) are drawn once with a ``×N`` badge unless ``collapse=False``.
"""

from __future__ import annotations

import functools
import math
import re
import shutil
import subprocess
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from ghnctl.errors import GhnctlError, GraphError, MissingExtra, UsageError
from ghnctl.graph.layout import (
    CycleError,
    Layout,
    layered_layout,
    suggest_columns,
    topological_order,
    wrap_columns,
)
from ghnctl.graph.model import GhnGraph, Node

FORMATS: tuple[str, ...] = ("svg", "png", "pdf", "dot")
ENGINES: tuple[str, ...] = ("auto", "dot", "python")

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
_UNKNOWN_COLOR = ("#ffffff", "#616161")
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
_DARK_FILLS = frozenset({"input"})  # ops whose fill needs white text

# Boxes are sized with DejaVu Sans metrics; the fallbacks are narrower, so labels still fit.
FONT_FAMILY = "DejaVu Sans, Arial, Helvetica, sans-serif"
EDGE_COLOR = "#8d96a3"
TEXT_COLOR = "#1f2328"
MUTED_COLOR = "#59636e"

# Geometry (SVG user units = px at scale 1).
_NODE_FONT = 11.0
_NODE_H = 22.0
_NODE_PAD = 9.0
_MARGIN = 20.0
_HEADER_H = 54.0
_LEGEND_GAP = 36.0
_LEGEND_ROW = 19.0
_FRAME_PAD = 10.0
_COLUMN_GAP = 70.0

# PNG limits: the longest side and the pixel count (memory) a picture may have.
PNG_MAX_SIDE = 8000
PNG_MAX_PIXELS = 40_000_000
_PNG_MAX_SCALE = 2.0  # 2x: crisp on high-density screens, still small files
_DOT_TIMEOUT_S = 300
_DOT_PNG_DPI = 144


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


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
    engine = _check_engine(engine)
    try:  # a GhnGraph is a DAG by construction; say so clearly if one is not
        topological_order(graph.num_nodes, graph.edges)
    except CycleError as exc:
        raise GraphError(f"cannot draw {graph.arch!r}: {exc}") from exc
    view = collapse_view(graph, collapse)
    if fmt == "dot":
        _write_atomic(out, lambda tmp: tmp.write_text(to_dot(view), encoding="utf-8"))
        return out
    dot_bin = _find_dot(engine, len(view.nodes))
    if dot_bin is not None:
        source = to_dot(view, png_cap=(fmt == "png"))
        _write_atomic(out, lambda tmp: _run_dot(dot_bin, source, fmt, tmp))
        return out
    scene = build_scene(view)
    if fmt == "svg":
        text = scene_to_svg(scene)
        _write_atomic(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    else:
        image, dpi = scene_to_image(scene)
        if fmt == "png":
            image = _palette_png(image)
            _write_atomic(out, lambda tmp: image.save(tmp, format="PNG", optimize=True, dpi=(round(dpi),) * 2))
        else:
            data = pdf_bytes(image, dpi, title=scene.title)
            _write_atomic(out, lambda tmp: tmp.write_bytes(data))
    return out


def resolve_format(out: Path, fmt: str | None) -> str:
    """The output format from ``fmt`` or the file suffix; UsageError when it is not supported."""
    raw = fmt if fmt is not None else out.suffix
    name = raw.lower().lstrip(".")
    if name not in FORMATS:
        shown = f"'{raw}'" if raw else "no suffix"
        raise UsageError(
            f"cannot render a graph to {shown} ({out.name})",
            hint="use one of " + ", ".join(f".{f}" for f in FORMATS),
        )
    return name


def _check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise UsageError(f"unknown render engine {engine!r}", hint="use one of " + ", ".join(ENGINES))
    return engine


# Above this many drawn nodes Graphviz's layout takes minutes (densenet121: 66-145 s with dot 2.43,
# 1-5 s built in), so ``auto`` switches to the built-in renderer; ``--engine dot`` still forces it.
AUTO_DOT_MAX_NODES = 250


def _find_dot(engine: str, n_nodes: int = 0) -> str | None:
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


# --------------------------------------------------------------------------------------------
# Collapsing repeated blocks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A run of ``count`` identical consecutive sibling modules, drawn as its first member."""

    parent: str
    children: tuple[str, ...]
    nodes: tuple[int, ...]  # node indices of the first member (the representative)
    hidden: tuple[int, ...]  # node indices of the other members

    @property
    def count(self) -> int:
        return len(self.children)

    @property
    def caption(self) -> str:
        return _join_path(self.parent, _compress_names(self.children))


@dataclass
class GraphView:
    """What is drawn: the visible nodes and edges (original indices) and the collapsed blocks."""

    graph: GhnGraph
    nodes: list[int]
    edges: list[tuple[int, int]]
    blocks: list[Block] = field(default_factory=list)

    @property
    def collapsed(self) -> bool:
        return bool(self.blocks)

    def block_of(self) -> dict[int, int]:
        """Visible node index -> index into ``blocks`` for the representatives' nodes."""
        return {v: b for b, block in enumerate(self.blocks) for v in block.nodes}


def collapse_view(graph: GhnGraph, collapse: bool = True) -> GraphView:
    """The graph as drawn; with ``collapse`` each run of identical blocks keeps only its first member."""
    edges = sorted(graph.edges)
    everything = list(range(graph.num_nodes))
    if not collapse or graph.num_nodes < 4:
        return GraphView(graph, everything, edges)
    blocks = find_repeated_blocks(graph, edges)
    if not blocks:
        return GraphView(graph, everything, edges)
    rep: dict[int, int] = {}  # hidden node -> its counterpart in the representative
    run_of: dict[int, int] = {}  # node of any member -> block index
    for b, block in enumerate(blocks):
        size = len(block.nodes)
        for i, v in enumerate(block.hidden):
            rep[v] = block.nodes[i % size]
        for v in (*block.nodes, *block.hidden):
            run_of[v] = b
    kept: set[tuple[int, int]] = set()
    for u, v in edges:
        same_run = u in run_of and run_of.get(v) == run_of[u]
        if same_run and (u in rep or v in rep):
            continue  # inside a hidden member, or from one member to the next
        a, b = rep.get(u, u), rep.get(v, v)
        if a != b:
            kept.add((a, b))
    visible = [v for v in everything if v not in rep]
    return GraphView(graph, visible, sorted(kept), blocks)


def find_repeated_blocks(graph: GhnGraph, edges: Sequence[tuple[int, int]]) -> list[Block]:
    """Runs of >= 2 structurally identical, adjacent sibling modules, largest savings first.

    A module's nodes are those whose owner (the module of a parameter, see ``node_owners``) lies in
    it. Two siblings are identical when their nodes have the same ops, shapes and internal edges and
    the same nodes talk to the outside. Requiring every member to be a contiguous index range, with
    members back to back, guarantees the collapsed drawing is still a DAG.
    """
    n = graph.num_nodes
    preds: list[list[int]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    for u, v in edges:
        preds[v].append(u)
        succs[u].append(v)
    members = _module_members(node_owners(graph, preds, succs))
    children: dict[str, list[str]] = {}
    for module in members:
        children.setdefault(_parent(module), []).append(module)
    runs: list[Block] = []
    for parent, mods in children.items():
        mods = [m for m in mods if _is_contiguous(members[m])]
        mods.sort(key=lambda m: members[m][0])
        runs.extend(_runs_of_identical(graph, parent, mods, members, preds, succs))
    runs.sort(key=lambda b: (-(len(b.hidden)), b.nodes[0]))
    chosen: list[Block] = []
    taken: set[int] = set()
    for block in runs:
        span = set(block.nodes) | set(block.hidden)
        if span & taken:
            continue
        chosen.append(block)
        taken |= span
    return sorted(chosen, key=lambda b: b.nodes[0])


def node_owners(graph: GhnGraph, preds: list[list[int]], succs: list[list[int]]) -> list[str]:
    """Dotted module path that owns each node ("" = the root).

    Parameter nodes belong to their module. Op nodes have no module, so: a merge (sum, concat, the
    product of squeeze-excitation) belongs with its latest input, which closes a residual block inside
    that block; a one-input op (pooling, softmax) goes to the common ancestor of its input and the
    parameters it feeds, so a pooling between two stages belongs to neither.
    """
    owners = [_param_owner(node) for node in graph.nodes]
    for v in topological_order(graph.num_nodes, [(u, w) for w, ps in enumerate(preds) for u in ps]):
        if owners[v] is not None:
            continue
        base = (owners[max(preds[v])] or "") if preds[v] else ""
        if len(preds[v]) >= 2:
            owners[v] = base
            continue
        fed = [owners[s] for s in succs[v] if graph.nodes[s].param is not None]
        owners[v] = _common_path([base, *fed]) if fed else base
    return [o or "" for o in owners]


def _param_owner(node: Node) -> str | None:
    if node.param is None:
        return None
    if node.module is not None:
        return node.module
    return node.param.rsplit(".", 1)[0] if "." in node.param else ""


def _module_members(owners: list[str]) -> dict[str, list[int]]:
    """Every (non-root) module path -> sorted indices of the nodes inside it."""
    members: dict[str, list[int]] = {}
    for v, owner in enumerate(owners):
        parts = owner.split(".") if owner else []
        for depth in range(1, len(parts) + 1):
            members.setdefault(".".join(parts[:depth]), []).append(v)
    return members


def _runs_of_identical(
    graph: GhnGraph,
    parent: str,
    mods: list[str],
    members: dict[str, list[int]],
    preds: list[list[int]],
    succs: list[list[int]],
) -> Iterable[Block]:
    run: list[str] = []
    sig_prev: Any = None
    for module in [*mods, None]:
        sig = _signature(graph, members[module], preds, succs) if module is not None else None
        adjacent = bool(run) and module is not None and members[run[-1]][-1] + 1 == members[module][0]
        if run and adjacent and sig == sig_prev:
            run.append(module)  # type: ignore[arg-type]
            continue
        if len(run) >= 2:
            hidden = tuple(v for m in run[1:] for v in members[m])
            yield Block(parent, tuple(_last(m) for m in run), tuple(members[run[0]]), hidden)
        run = [module] if module is not None else []
        sig_prev = sig


def _signature(graph: GhnGraph, nodes: list[int], preds: list[list[int]], succs: list[list[int]]) -> Any:
    rel = {v: i for i, v in enumerate(nodes)}
    sig = []
    for v in nodes:
        node = graph.nodes[v]
        inner = tuple(sorted(rel[u] for u in preds[v] if u in rel))
        ext_in = any(u not in rel for u in preds[v])
        ext_out = any(w not in rel for w in succs[v])
        sig.append((node.op, node.shape, inner, ext_in, ext_out))
    return tuple(sig)


def _is_contiguous(indices: list[int]) -> bool:
    return indices[-1] - indices[0] + 1 == len(indices)


def _parent(path: str) -> str:
    return path.rsplit(".", 1)[0] if "." in path else ""


def _last(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _join_path(parent: str, child: str) -> str:
    return f"{parent}.{child}" if parent else child


def _common_path(paths: Sequence[str]) -> str:
    split = [p.split(".") if p else [] for p in paths]
    common: list[str] = []
    for parts in zip(*split):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(common)


def _compress_names(names: Sequence[str]) -> str:
    """``encoder_layer_0 … encoder_layer_11`` -> ``encoder_layer_0–11``; else ``first…last``."""
    matches = [re.fullmatch(r"(.*?)(\d+)", name) for name in names]
    if all(matches) and len({m.group(1) for m in matches if m}) == 1:
        first, last = matches[0], matches[-1]
        assert first is not None and last is not None
        return f"{first.group(1)}{first.group(2)}–{last.group(2)}"
    return f"{names[0]}…{names[-1]}"


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


def header_lines(view: GraphView) -> tuple[str, str]:
    """Title and subtitle for the picture."""
    g = view.graph
    sub = f"{g.num_nodes} nodes · {g.num_edges} edges"
    if view.collapsed:
        hidden = g.num_nodes - len(view.nodes)
        sub += f" · repeated blocks drawn once ({len(view.nodes)} nodes shown, {hidden} folded)"
    return g.arch or "graph", sub


@functools.lru_cache(maxsize=64)
def _dejavu(size: int, bold: bool = False, italic: bool = False) -> Any:
    """DejaVu Sans at ``size`` px (what the SVG asks for first), or None when it is not installed."""
    from PIL import ImageFont

    name = "DejaVuSans" + ("-Bold" if bold else "-Oblique" if italic else "") + ".ttf"
    for candidate in (name, "DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(candidate, size)
        except OSError:
            pass
    return None


def _font(size: int, bold: bool = False, italic: bool = False) -> Any:
    """A Pillow font for drawing: DejaVu Sans, else Pillow's bundled font."""
    from PIL import ImageFont

    return _dejavu(size, bold, italic) or ImageFont.load_default(size=size)


@functools.lru_cache(maxsize=4096)
def text_width(text: str, size: float, bold: bool = False) -> float:
    """Width of ``text`` in px with DejaVu Sans metrics (measured at 4x so rounding adds no error).

    Without DejaVu (or Pillow) a generous estimate keeps labels inside their boxes.
    """
    try:
        font = _dejavu(round(size * 4), bold)
    except ImportError:
        font = None
    if font is None:
        return 0.64 * size * len(text) * (1.08 if bold else 1.0)
    return float(font.getlength(text)) / 4


# --------------------------------------------------------------------------------------------
# Scene: renderer-neutral shapes in paint order
# --------------------------------------------------------------------------------------------


@dataclass
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str | None
    stroke: str | None
    radius: float = 0.0
    stroke_width: float = 1.0
    dashed: bool = False


@dataclass
class Text:
    x: float
    y: float  # baseline
    text: str
    size: float
    color: str = TEXT_COLOR
    bold: bool = False
    anchor: str = "start"  # start | middle | end
    italic: bool = False


@dataclass
class Curve:
    """An edge: a polyline drawn as a smooth curve (see ``_bezier_segments``) ending in an arrowhead."""

    points: list[tuple[float, float]]
    color: str = EDGE_COLOR
    width: float = 1.0
    title: str | None = None


@dataclass
class Group:
    cls: str
    items: list[Item]
    id: str | None = None
    title: str | None = None


Item = Rect | Text | Curve | Group


@dataclass
class Scene:
    width: float
    height: float
    items: list[Item]
    title: str = ""


def build_scene(view: GraphView, wrap: bool = True) -> Scene:
    """Lay out ``view`` and place header, frames, edges, nodes and legend.

    With ``wrap``, a tall narrow layout is cut into side-by-side columns (see ``wrap_columns``) so
    that big graphs stay readable at a sane picture size.
    """
    g = view.graph
    index = {v: i for i, v in enumerate(view.nodes)}
    labels = [node_label(g.nodes[v], g.image_size) for v in view.nodes]
    widths = [max(text_width(t, _NODE_FONT) + 2 * _NODE_PAD, 36.0) for t in labels]
    local_edges = [(index[u], index[v]) for u, v in view.edges]
    lay = layered_layout(len(view.nodes), local_edges, widths, node_height=_NODE_H)
    if wrap:
        keep = [_layer_span(lay, [index[v] for v in block.nodes]) for block in view.blocks]
        lay = wrap_columns(lay, widths, suggest_columns(lay), column_gap=_COLUMN_GAP, keep_together=keep)

    graph_items: list[Item] = _frame_items(view, lay, index, widths)
    graph_items.append(Group("edges", _edge_items(view, lay, local_edges)))
    graph_items.extend(_ghost_items(view, lay, labels, widths))
    graph_items.append(Group("nodes", _node_items(view, lay, labels, widths)))
    x0, y0, x1, y1 = _items_bbox(graph_items)
    dx, dy = _MARGIN - x0, _MARGIN + _HEADER_H - y0
    graph_right, graph_bottom = x1 + dx, y1 + dy

    items: list[Item] = [_header_group(view)]
    items.extend(_shift(it, dx, dy) for it in graph_items)
    legend, legend_w, legend_h = _legend_group(g, graph_right + _LEGEND_GAP, _MARGIN + _HEADER_H)
    items.append(legend)
    title, sub = header_lines(view)
    width = max(graph_right + _LEGEND_GAP + legend_w, _MARGIN + text_width(sub, 12.0)) + _MARGIN
    height = max(graph_bottom, _MARGIN + _HEADER_H + legend_h) + _MARGIN
    return Scene(math.ceil(width), math.ceil(height), items, title=f"{title}: {sub}")


def _layer_span(lay: Layout, nodes: list[int]) -> tuple[int, int]:
    layers = [lay.layer[i] for i in nodes]
    return min(layers), max(layers)


def _header_group(view: GraphView) -> Group:
    title, sub = header_lines(view)
    return Group(
        "header",
        [
            Text(_MARGIN, _MARGIN + 18, title, 18.0, bold=True),
            Text(_MARGIN, _MARGIN + 38, sub, 12.0, color=MUTED_COLOR),
        ],
    )


def _node_box(op: str, is_param: bool, x: float, y: float, w: float, label: str, dashed: bool = False) -> list[Item]:
    """Box and centred label of one node; parameter nodes are boxes, parameter-free ops are pills."""
    fill, stroke = OP_COLORS.get(op, _UNKNOWN_COLOR)
    radius = 4.0 if is_param else _NODE_H / 2
    text_color = "#ffffff" if op in _DARK_FILLS else TEXT_COLOR
    return [
        Rect(x - w / 2, y - _NODE_H / 2, w, _NODE_H, fill, stroke, radius, dashed=dashed),
        Text(x, y + _NODE_FONT * 0.36, label, _NODE_FONT, color=text_color, anchor="middle"),
    ]


def _node_items(view: GraphView, lay: Layout, labels: list[str], widths: list[float]) -> list[Item]:
    g = view.graph
    block_of = view.block_of()
    items: list[Item] = []
    for i, v in enumerate(view.nodes):
        node = g.nodes[v]
        block = view.blocks[block_of[v]] if v in block_of else None
        shapes = _node_box(node.op, node.param is not None, lay.x[i], lay.y[i], widths[i], labels[i])
        items.append(Group("node", shapes, id=f"n{v}", title=node_tooltip(node, block)))
    return items


def _ghost_items(view: GraphView, lay: Layout, labels: list[str], widths: list[float]) -> list[Item]:
    """Dashed copies of cut nodes at the top of the next column, with "continues" notes at both ends."""
    items: list[Item] = []
    for ghost in lay.ghosts:
        i, column = ghost.node, ghost.column + 1
        node = view.graph.nodes[view.nodes[i]]
        shapes = _node_box(node.op, node.param is not None, ghost.x, ghost.y, widths[i], labels[i], dashed=True)
        shapes.append(
            Text(
                ghost.x,
                ghost.y - _NODE_H / 2 - 6,
                f"from column {column - 1}",
                10.0,
                color=MUTED_COLOR,
                anchor="middle",
                italic=True,
            )
        )
        items.append(Group("ghost", shapes, title=f"continued from column {column - 1}: {node.param or node.name}"))
        # Below a possible block frame around the cut node.
        below = lay.y[i] + _NODE_H / 2 + _FRAME_PAD + 12
        items.append(
            Text(
                lay.x[i],
                below,
                f"continues in column {column}",
                10.0,
                color=MUTED_COLOR,
                anchor="middle",
                italic=True,
            )
        )
    return items


def _edge_items(view: GraphView, lay: Layout, local_edges: list[tuple[int, int]]) -> list[Item]:
    g = view.graph
    # Dense graphs (DenseNet) get thinner, lighter edges so nodes stay readable.
    dense = len(local_edges) > 2.5 * max(len(view.nodes), 1)
    color, width = ("#aab2bd", 0.8) if dense else (EDGE_COLOR, 1.0)
    items: list[Item] = []
    for (a, b), (u, v) in zip(local_edges, view.edges):
        title = f"{_short_name(g.nodes[u])} → {_short_name(g.nodes[v])}"
        items.append(Curve(list(lay.routes[(a, b)]), color=color, width=width, title=title))
    return items


def _short_name(node: Node) -> str:
    return node.param or f"{node.name} (#{node.index})"


def _frame_items(view: GraphView, lay: Layout, index: dict[int, int], widths: list[float]) -> list[Item]:
    """A dashed frame around each representative block, with a ×N badge and the members' names.

    The frame also encloses the edges that run beside the block (residual connections), so the
    badge on its right edge does not sit on top of them.
    """
    items: list[Item] = []
    for block in view.blocks:
        local = {index[v] for v in block.nodes}
        y_top = min(lay.y[i] for i in local) - _NODE_H / 2
        y_bottom = max(lay.y[i] for i in local) + _NODE_H / 2
        xs = [lay.x[i] - widths[i] / 2 for i in local] + [lay.x[i] + widths[i] / 2 for i in local]
        for (_, b), pts in lay.routes.items():
            if b in local:
                xs.extend(px for px, py in pts if y_top <= py <= y_bottom)
        x0, x1 = min(xs) - _FRAME_PAD, max(xs) + _FRAME_PAD
        y0, y1 = y_top - _FRAME_PAD, y_bottom + _FRAME_PAD
        badge = f"×{block.count}"
        bw = text_width(badge, 12.0, bold=True) + 14
        bx, by = x1 - 12, y0 - 9  # mostly outside the frame, clear of edges entering it
        items.append(
            Group(
                "block",
                [
                    Rect(x0, y0, x1 - x0, y1 - y0, "#f3f6fa", "#7d8a9c", 8.0, 1.2, dashed=True),
                    Rect(bx, by, bw, 18, "#37474f", None, 9.0),
                    Text(bx + bw / 2, by + 13, badge, 12.0, color="#ffffff", bold=True, anchor="middle"),
                    Text(bx + bw + 6, by + 13, block.caption, 11.0, color=MUTED_COLOR, italic=True),
                ],
                title=f"{block.caption}: {block.count} identical blocks, the first is drawn",
            )
        )
    return items


def _items_bbox(items: Iterable[Item]) -> tuple[float, float, float, float]:
    """Bounding box of everything drawn (text by its measured width)."""
    x0 = y0 = math.inf
    x1 = y1 = -math.inf
    for item in _flatten(items):
        if isinstance(item, Rect):
            boxes = [(item.x, item.y, item.x + item.w, item.y + item.h)]
        elif isinstance(item, Text):
            w = text_width(item.text, item.size, item.bold)
            left = item.x - {"start": 0.0, "middle": w / 2, "end": w}[item.anchor]
            boxes = [(left, item.y - item.size, left + w, item.y + item.size * 0.3)]
        elif isinstance(item, Curve):
            boxes = [(px, py, px, py) for px, py in item.points]
        else:
            boxes = []
        for a, b, c, d in boxes:
            x0, y0, x1, y1 = min(x0, a), min(y0, b), max(x1, c), max(y1, d)
    if x0 == math.inf:
        return 0.0, 0.0, 0.0, 0.0
    return x0, y0, x1, y1


def _legend_group(graph: GhnGraph, x: float, y: float) -> tuple[Group, float, float]:
    """Swatch, op name and count for every op present, in ``LEGEND_ORDER``."""
    counts = _op_counts(graph)
    ops = list(counts)
    name_w = max([text_width(op, 12.0) for op in ops] + [text_width("op", 12.0, True)])
    count_w = max([text_width(str(c), 12.0) for c in counts.values()] + [text_width("count", 12.0, True)])
    col_count = x + 26 + name_w + 14 + count_w
    items: list[Item] = [
        Text(x, y + 12, "op", 12.0, bold=True),
        Text(col_count, y + 12, "count", 12.0, bold=True, anchor="end"),
    ]
    for row, op in enumerate(ops):
        top = y + 22 + row * _LEGEND_ROW
        fill, stroke = OP_COLORS.get(op, _UNKNOWN_COLOR)
        entry: list[Item] = [
            Rect(x, top + 2, 18, 13, fill, stroke, 3.0),
            Text(x + 26, top + 13, op, 12.0),
            Text(col_count, top + 13, str(counts[op]), 12.0, anchor="end"),
        ]
        items.append(Group("legend-entry", entry, id=f"legend-{op}", title=f"{op}: {counts[op]} nodes"))
    width = col_count - x
    height = 22 + len(ops) * _LEGEND_ROW
    return Group("legend", items), width, height


def _op_counts(graph: GhnGraph) -> dict[str, int]:
    """Node count per op in ``LEGEND_ORDER`` (ops outside the 15 known ones last, by name)."""
    counts: dict[str, int] = {}
    for node in graph.nodes:
        counts[node.op] = counts.get(node.op, 0) + 1
    rank = {op: i for i, op in enumerate(LEGEND_ORDER)}
    return dict(sorted(counts.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def _flatten(items: Iterable[Item]) -> Iterable[Item]:
    for item in items:
        if isinstance(item, Group):
            yield from _flatten(item.items)
        else:
            yield item


def _shift(item: Item, dx: float, dy: float) -> Item:
    if isinstance(item, Group):
        return Group(item.cls, [_shift(i, dx, dy) for i in item.items], item.id, item.title)
    if isinstance(item, Curve):
        return Curve([(x + dx, y + dy) for x, y in item.points], item.color, item.width, item.title)
    return replace(item, x=item.x + dx, y=item.y + dy)


def _bezier_segments(points: Sequence[tuple[float, float]]) -> list[tuple[tuple[float, float], ...]]:
    """Cubic segments (p0, c1, c2, p1) through ``points``, whose y strictly increases.

    x is interpolated as a function of y with monotone cubic Hermite slopes (Fritsch-Carlson): the
    curve follows the route's trend without overshooting into loops, and is vertical at both ends so
    edges leave and enter nodes straight.
    """
    n = len(points)
    secants = [(points[i + 1][0] - points[i][0]) / max(points[i + 1][1] - points[i][1], 1e-9) for i in range(n - 1)]
    slopes = [0.0] * n
    for i in range(1, n - 1):
        a, b = secants[i - 1], secants[i]
        if a * b > 0:
            sign = 1.0 if a > 0 else -1.0
            slopes[i] = sign * min((abs(a) + abs(b)) / 2, 3 * abs(a), 3 * abs(b))
    segs = []
    for i in range(n - 1):
        (x0, y0), (x1, y1) = points[i], points[i + 1]
        h = (y1 - y0) / 3
        segs.append(((x0, y0), (x0 + slopes[i] * h, y0 + h), (x1 - slopes[i + 1] * h, y1 - h), (x1, y1)))
    return segs


# --------------------------------------------------------------------------------------------
# SVG
# --------------------------------------------------------------------------------------------


def scene_to_svg(scene: Scene) -> str:
    """The scene as a standalone SVG document (hover text in ``<title>``)."""
    w, h = scene.width, scene.height
    head = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f"font-family={quoteattr(FONT_FAMILY)}>",
        f"<title>{escape(scene.title)}</title>",
        "<defs>"
        '<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
        f'orient="auto"><path d="M0,1 L10,5 L0,9 z" fill="{EDGE_COLOR}"/></marker>'
        "</defs>",
        "<style>.node:hover rect{stroke-width:2.5}.edge:hover{stroke:#d62728;stroke-width:2}</style>",
        f'<rect width="{w}" height="{h}" fill="#ffffff"/>',
    ]
    body = [_svg_item(item) for item in scene.items]
    return "\n".join([*head, *body, "</svg>", ""])


def _svg_item(item: Item) -> str:
    if isinstance(item, Group):
        attrs = f' class="{item.cls}"' + (f' id="{item.id}"' if item.id else "")
        title = f"<title>{escape(item.title)}</title>" if item.title else ""
        inner = "".join(_svg_item(i) for i in item.items)
        return f"<g{attrs}>{title}{inner}</g>"
    if isinstance(item, Rect):
        attrs = [f'x="{_n(item.x)}" y="{_n(item.y)}" width="{_n(item.w)}" height="{_n(item.h)}"']
        if item.radius:
            attrs.append(f'rx="{_n(item.radius)}"')
        attrs.append(f'fill="{item.fill or "none"}"')
        if item.stroke:
            attrs.append(f'stroke="{item.stroke}" stroke-width="{_n(item.stroke_width)}"')
        if item.dashed:
            attrs.append('stroke-dasharray="5 4"')
        return f"<rect {' '.join(attrs)}/>"
    if isinstance(item, Text):
        attrs = [f'x="{_n(item.x)}" y="{_n(item.y)}" font-size="{_n(item.size)}" fill="{item.color}"']
        if item.anchor != "start":
            attrs.append(f'text-anchor="{item.anchor}"')
        if item.bold:
            attrs.append('font-weight="bold"')
        if item.italic:
            attrs.append('font-style="italic"')
        return f"<text {' '.join(attrs)}>{escape(item.text)}</text>"
    if isinstance(item, Curve):
        segs = _bezier_segments(item.points)
        d = f"M{_n(segs[0][0][0])},{_n(segs[0][0][1])}" + "".join(
            f"C{_n(c1[0])},{_n(c1[1])} {_n(c2[0])},{_n(c2[1])} {_n(p1[0])},{_n(p1[1])}" for _, c1, c2, p1 in segs
        )
        title = f"<title>{escape(item.title)}</title>" if item.title else ""
        return (
            f'<path class="edge" d="{d}" fill="none" stroke="{item.color}" '
            f'stroke-width="{_n(item.width)}" marker-end="url(#arrow)">{title}</path>'
        )
    raise TypeError(item)


def _n(value: float) -> str:
    """Compact number: one decimal, no trailing zeros (keeps big SVGs small)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


# --------------------------------------------------------------------------------------------
# PNG / PDF with Pillow
# --------------------------------------------------------------------------------------------


def png_scale(width: float, height: float) -> float:
    """Pixels per SVG unit: up to 2x, within the side and pixel-count caps."""
    return min(
        _PNG_MAX_SCALE,
        PNG_MAX_SIDE / max(width, 1.0),
        PNG_MAX_SIDE / max(height, 1.0),
        math.sqrt(PNG_MAX_PIXELS / max(width * height, 1.0)),
    )


def scene_to_image(scene: Scene) -> tuple[Any, float]:
    """Rasterise the scene with Pillow; returns (RGB image, dpi that keeps the SVG's physical size)."""
    try:
        from PIL import Image, ImageDraw
    except ImportError as exc:  # pragma: no cover - Pillow comes with torchvision
        raise MissingExtra("PNG/PDF output needs Pillow", hint="pip install pillow, or write .svg") from exc
    scale = png_scale(scene.width, scene.height)
    size = (max(1, round(scene.width * scale)), max(1, round(scene.height * scale)))
    # Pillow draws aliased lines; draw small pictures at 2x and shrink for smooth edges.
    ss = 2 if size[0] * size[1] <= 8_000_000 else 1
    image = Image.new("RGB", (size[0] * ss, size[1] * ss), "#ffffff")
    painter = _Painter(ImageDraw.Draw(image), scale * ss)
    for item in _flatten(scene.items):
        painter.paint(item)
    if ss > 1:
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image, 96.0 * scale


def _palette_png(image: Any) -> Any:
    """256-colour version of a drawing: a third of the RGB file size, no visible difference."""
    from PIL import Image

    quantized = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    # Median cut averages the background with near-white anti-aliasing: make it pure white again.
    _, background = max(quantized.getcolors(256))
    palette = quantized.getpalette()
    palette[3 * background : 3 * background + 3] = [255, 255, 255]
    quantized.putpalette(palette)
    return quantized


def pdf_bytes(image: Any, dpi: float, title: str = "") -> bytes:
    """A one-page PDF showing ``image`` (palette, zlib-compressed) at ``dpi``.

    Written by hand because Pillow's PDF writer stores RGB as JPEG (smudged text) and palette
    images as uncompressed hex (huge); this is lossless and about the size of the PNG.
    """
    indexed = _palette_png(image) if image.mode != "P" else image
    width, height = indexed.size
    palette = bytes(indexed.getpalette()[: 3 * 256])
    data = zlib.compress(indexed.tobytes(), 9)
    w_pt, h_pt = width * 72 / dpi, height * 72 / dpi
    content = f"q {w_pt:.2f} 0 0 {h_pt:.2f} 0 0 cm /Im0 Do Q".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w_pt:.2f} {h_pt:.2f}] "
        "/Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>".encode(),
        f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} /ColorSpace "
        f"[/Indexed /DeviceRGB {len(palette) // 3 - 1} <{palette.hex()}>] /BitsPerComponent 8 "
        f"/Filter /FlateDecode /Length {len(data)} >>\nstream\n".encode()
        + data
        + b"\nendstream",
        f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream",
        b"<< /Title " + _pdf_string(title) + b" /Producer (ghnctl) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {len(objects)} 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _pdf_string(text: str) -> bytes:
    """A PDF text string: UTF-16BE with BOM, as hex (no escaping rules to get wrong)."""
    return b"<" + (b"\xfe\xff" + text.encode("utf-16-be")).hex().encode() + b">"


class _Painter:
    """Draws scene items on a Pillow canvas ``k`` pixels per unit."""

    def __init__(self, draw: Any, k: float) -> None:
        self.draw = draw
        self.k = k

    def paint(self, item: Item) -> None:
        if isinstance(item, Rect):
            self._rect(item)
        elif isinstance(item, Text):
            self._text(item)
        elif isinstance(item, Curve):
            self._curve(item)

    def _rect(self, r: Rect) -> None:
        k = self.k
        box = (r.x * k, r.y * k, (r.x + r.w) * k, (r.y + r.h) * k)
        width = max(1, round(r.stroke_width * k))
        radius = min(r.radius * k, (box[3] - box[1]) / 2)
        outline = None if r.dashed else r.stroke
        self.draw.rounded_rectangle(box, radius=radius, fill=r.fill, outline=outline, width=width)
        if r.dashed and r.stroke:
            self._dashed_box(box, radius, r.stroke, width)

    def _dashed_box(self, box: tuple[float, ...], radius: float, color: str, width: int) -> None:
        x0, y0, x1, y1 = box
        dash, gap = 5 * self.k, 4 * self.k
        sides = [
            ((x0 + radius, y0), (x1 - radius, y0)),
            ((x0 + radius, y1), (x1 - radius, y1)),
            ((x0, y0 + radius), (x0, y1 - radius)),
            ((x1, y0 + radius), (x1, y1 - radius)),
        ]
        for (ax, ay), (bx, by) in sides:
            length = math.hypot(bx - ax, by - ay)
            t = 0.0
            while t < length:
                t1 = min(t + dash, length)
                self.draw.line(
                    [
                        (ax + (bx - ax) * t / length, ay + (by - ay) * t / length),
                        (ax + (bx - ax) * t1 / length, ay + (by - ay) * t1 / length),
                    ],
                    fill=color,
                    width=width,
                )
                t = t1 + gap
        if radius <= 0:
            return
        for cx, cy, start in (
            (x0, y0, 180),
            (x1 - 2 * radius, y0, 270),
            (x1 - 2 * radius, y1 - 2 * radius, 0),
            (x0, y1 - 2 * radius, 90),
        ):
            self.draw.arc((cx, cy, cx + 2 * radius, cy + 2 * radius), start, start + 90, fill=color, width=width)

    def _text(self, t: Text) -> None:
        k = self.k
        font = _font(max(1, round(t.size * k)), t.bold, t.italic)
        anchor = {"start": "ls", "middle": "ms", "end": "rs"}[t.anchor]
        self.draw.text((t.x * k, t.y * k), t.text, font=font, fill=t.color, anchor=anchor)

    def _curve(self, c: Curve) -> None:
        k = self.k
        pts: list[tuple[float, float]] = []
        for p0, c1, c2, p1 in _bezier_segments(c.points):
            steps = max(4, min(24, int(abs(p1[1] - p0[1]) * k / 6)))
            for s in range(0 if not pts else 1, steps + 1):
                pts.append(_cubic(p0, c1, c2, p1, s / steps, k))
        width = max(1, round(c.width * k))
        # Stop the line at the arrow's base so the tip stays sharp.
        tip, base_y = pts[-1], pts[-1][1] - 5 * k
        line = [p for p in pts if p[1] <= base_y] + [(tip[0], base_y)]
        self.draw.line(line, fill=c.color, width=width, joint="curve")
        half = 2.6 * k
        self.draw.polygon([tip, (tip[0] - half, base_y - 0.5 * k), (tip[0] + half, base_y - 0.5 * k)], fill=c.color)


def _cubic(p0: Any, c1: Any, c2: Any, p1: Any, t: float, k: float) -> tuple[float, float]:
    u = 1 - t
    x = u**3 * p0[0] + 3 * u * u * t * c1[0] + 3 * u * t * t * c2[0] + t**3 * p1[0]
    y = u**3 * p0[1] + 3 * u * u * t * c1[1] + 3 * u * t * t * c2[1] + t**3 * p1[1]
    return x * k, y * k


# --------------------------------------------------------------------------------------------
# DOT text and the Graphviz engine
# --------------------------------------------------------------------------------------------


def to_dot(view: GraphView, png_cap: bool = False) -> str:
    """Graphviz DOT source for ``view``: coloured nodes, tooltips, clusters for collapsed blocks, legend."""
    g = view.graph
    title, sub = header_lines(view)
    graph_attrs = {
        "rankdir": "TB",
        "label": _dot_header(g, title, sub),
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
        graph_attrs.update({"dpi": str(_DOT_PNG_DPI), "size": f"{side:.2f},{side:.2f}"})
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
            lines.append("  " + _dot_node(g, v, None))
    for b, block in enumerate(view.blocks):
        lines.append(f"  subgraph cluster_block{b} {{")
        label = _dot_value(f"×{block.count}  {block.caption}")
        lines.append(
            f'    label={label}; labeljust=l; style="dashed,rounded,filled"; '
            'fillcolor="#f3f6fa"; color="#7d8a9c"; fontname="Helvetica"; fontsize=11;'
        )
        lines.extend("    " + _dot_node(g, v, block) for v in in_block.get(b, []))
        lines.append("  }")
    for u, v in view.edges:
        lines.append(f"  n{u} -> n{v};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_node(g: GhnGraph, v: int, block: Block | None) -> str:
    node = g.nodes[v]
    fill, stroke = OP_COLORS.get(node.op, _UNKNOWN_COLOR)
    attrs = {
        "label": node_label(node, g.image_size),
        "tooltip": node_tooltip(node, block),
        "fillcolor": fill,
        "color": stroke,
    }
    if node.op in _DARK_FILLS:
        attrs["fontcolor"] = "#ffffff"
    if node.param is None:
        attrs["style"] = "rounded,filled"  # parameter-free ops are rounded, as in the Python renderer
    body = ", ".join(f"{k}={_dot_value(val)}" for k, val in attrs.items())
    return f"n{v} [{body}];"


def _dot_header(g: GhnGraph, title: str, sub: str) -> str:
    """HTML-like graph label: title, subtitle and a one-row legend of the ops with their counts.

    In the label rather than as a node, so dot does not put it in a rank and push the graph down.
    """
    cells = []
    for op, count in _op_counts(g).items():
        fill, stroke = OP_COLORS.get(op, _UNKNOWN_COLOR)
        color = "#ffffff" if op in _DARK_FILLS else TEXT_COLOR
        cells.append(
            f'<TD BGCOLOR="{fill}" COLOR="{stroke}"><FONT POINT-SIZE="10" COLOR="{color}">'
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


def _run_dot(dot_bin: str, source: str, fmt: str, target: Path) -> None:
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


# --------------------------------------------------------------------------------------------
# Atomic output
# --------------------------------------------------------------------------------------------


def _write_atomic(out: Path, write: Any) -> None:
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
        from ghnctl.errors import OutputNotWritable

        raise OutputNotWritable(f"cannot write {str(out)!r}: {exc.strerror or exc}") from exc
