"""Renderer-neutral shapes (boxes, text, curved edges, groups) and the geometry both painters share.

A ``Scene`` is built once (``scene.build_scene``) and painted by ``svg`` or ``raster``; items are
listed in paint order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from ghnctl.graph.render.style import EDGE_COLOR, TEXT_COLOR, text_width


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
    """An edge: a polyline drawn as a smooth curve (see ``bezier_segments``) ending in an arrowhead."""

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


def flatten(items: Iterable[Item]) -> Iterable[Item]:
    """The drawable items (no groups), in paint order."""
    for item in items:
        if isinstance(item, Group):
            yield from flatten(item.items)
        else:
            yield item


def shift(item: Item, dx: float, dy: float) -> Item:
    """A copy of ``item`` moved by (dx, dy)."""
    if isinstance(item, Group):
        return Group(item.cls, [shift(i, dx, dy) for i in item.items], item.id, item.title)
    if isinstance(item, Curve):
        return Curve([(x + dx, y + dy) for x, y in item.points], item.color, item.width, item.title)
    return replace(item, x=item.x + dx, y=item.y + dy)


def items_bbox(items: Iterable[Item]) -> tuple[float, float, float, float]:
    """Bounding box of everything drawn (text by its measured width)."""
    x0 = y0 = math.inf
    x1 = y1 = -math.inf
    for item in flatten(items):
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


def bezier_segments(points: Sequence[tuple[float, float]]) -> list[tuple[tuple[float, float], ...]]:
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
