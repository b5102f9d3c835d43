"""The built-in SVG writer: a scene as a standalone SVG document, hover text in ``<title>``."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from ghnctl.graph.render.shapes import Curve, Group, Item, Rect, Scene, Text, bezier_segments
from ghnctl.graph.render.style import EDGE_COLOR, FONT_FAMILY


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
        return _svg_rect(item)
    if isinstance(item, Text):
        return _svg_text(item)
    if isinstance(item, Curve):
        return _svg_curve(item)
    raise TypeError(item)


def _svg_rect(item: Rect) -> str:
    attrs = [f'x="{_n(item.x)}" y="{_n(item.y)}" width="{_n(item.w)}" height="{_n(item.h)}"']
    if item.radius:
        attrs.append(f'rx="{_n(item.radius)}"')
    attrs.append(f'fill="{item.fill or "none"}"')
    if item.stroke:
        attrs.append(f'stroke="{item.stroke}" stroke-width="{_n(item.stroke_width)}"')
    if item.dashed:
        attrs.append('stroke-dasharray="5 4"')
    return f"<rect {' '.join(attrs)}/>"


def _svg_text(item: Text) -> str:
    attrs = [f'x="{_n(item.x)}" y="{_n(item.y)}" font-size="{_n(item.size)}" fill="{item.color}"']
    if item.anchor != "start":
        attrs.append(f'text-anchor="{item.anchor}"')
    if item.bold:
        attrs.append('font-weight="bold"')
    if item.italic:
        attrs.append('font-style="italic"')
    return f"<text {' '.join(attrs)}>{escape(item.text)}</text>"


def _svg_curve(item: Curve) -> str:
    segs = bezier_segments(item.points)
    d = f"M{_n(segs[0][0][0])},{_n(segs[0][0][1])}" + "".join(
        f"C{_n(c1[0])},{_n(c1[1])} {_n(c2[0])},{_n(c2[1])} {_n(p1[0])},{_n(p1[1])}" for _, c1, c2, p1 in segs
    )
    title = f"<title>{escape(item.title)}</title>" if item.title else ""
    return (
        f'<path class="edge" d="{d}" fill="none" stroke="{item.color}" '
        f'stroke-width="{_n(item.width)}" marker-end="url(#arrow)">{title}</path>'
    )


def _n(value: float) -> str:
    """Compact number: one decimal, no trailing zeros (keeps big SVGs small)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text
