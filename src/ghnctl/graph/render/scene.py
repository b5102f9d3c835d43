"""Placing a graph view on the page: layout, header, block frames, edges, nodes and legend.

``build_scene`` lays the view out top-down with ``ghnctl.graph.layout`` and returns a ``Scene`` of
shapes in paint order, which ``svg`` and ``raster`` draw. Parameter nodes are boxes, parameter-free
ops pills; a legend lists the ops with their counts.
"""

from __future__ import annotations

import math

from ghnctl.graph.layout import Layout, layered_layout, suggest_columns, wrap_columns
from ghnctl.graph.render.collapse import GraphView
from ghnctl.graph.render.shapes import Curve, Group, Item, Rect, Scene, Text, items_bbox, shift
from ghnctl.graph.render.style import (
    EDGE_COLOR,
    MUTED_COLOR,
    header_lines,
    label_color,
    node_label,
    node_tooltip,
    op_colors,
    op_counts,
    short_name,
    text_width,
)

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
    x0, y0, x1, y1 = items_bbox(graph_items)
    dx, dy = _MARGIN - x0, _MARGIN + _HEADER_H - y0
    graph_right, graph_bottom = x1 + dx, y1 + dy

    items: list[Item] = [_header_group(view)]
    items.extend(shift(it, dx, dy) for it in graph_items)
    legend, legend_w, legend_h = _legend_group(view, graph_right + _LEGEND_GAP, _MARGIN + _HEADER_H)
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
    fill, stroke = op_colors(op)
    radius = 4.0 if is_param else _NODE_H / 2
    return [
        Rect(x - w / 2, y - _NODE_H / 2, w, _NODE_H, fill, stroke, radius, dashed=dashed),
        Text(x, y + _NODE_FONT * 0.36, label, _NODE_FONT, color=label_color(op), anchor="middle"),
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
        shapes.append(_note(ghost.x, ghost.y - _NODE_H / 2 - 6, f"from column {column - 1}"))
        items.append(Group("ghost", shapes, title=f"continued from column {column - 1}: {node.param or node.name}"))
        # Below a possible block frame around the cut node.
        below = lay.y[i] + _NODE_H / 2 + _FRAME_PAD + 12
        items.append(_note(lay.x[i], below, f"continues in column {column}"))
    return items


def _note(x: float, y: float, text: str) -> Text:
    """A small italic note centred at (x, y), for where a wrapped column continues."""
    return Text(x, y, text, 10.0, color=MUTED_COLOR, anchor="middle", italic=True)


def _edge_items(view: GraphView, lay: Layout, local_edges: list[tuple[int, int]]) -> list[Item]:
    g = view.graph
    # Dense graphs (DenseNet) get thinner, lighter edges so nodes stay readable.
    dense = len(local_edges) > 2.5 * max(len(view.nodes), 1)
    color, width = ("#aab2bd", 0.8) if dense else (EDGE_COLOR, 1.0)
    items: list[Item] = []
    for (a, b), (u, v) in zip(local_edges, view.edges):
        title = f"{short_name(g.nodes[u])} → {short_name(g.nodes[v])}"
        items.append(Curve(list(lay.routes[(a, b)]), color=color, width=width, title=title))
    return items


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


def _legend_group(view: GraphView, x: float, y: float) -> tuple[Group, float, float]:
    """Swatch, op name and count for every op present, in ``LEGEND_ORDER``; with its width and height."""
    counts = op_counts(view.graph)
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
        fill, stroke = op_colors(op)
        entry: list[Item] = [
            Rect(x, top + 2, 18, 13, fill, stroke, 3.0),
            Text(x + 26, top + 13, op, 12.0),
            Text(col_count, top + 13, str(counts[op]), 12.0, anchor="end"),
        ]
        items.append(Group("legend-entry", entry, id=f"legend-{op}", title=f"{op}: {counts[op]} nodes"))
    width = col_count - x
    height = 22 + len(ops) * _LEGEND_ROW
    return Group("legend", items), width, height
