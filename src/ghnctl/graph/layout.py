"""Layered (Sugiyama-style) top-down layout of a DAG, in pure Python.

The steps are the classic ones (Gansner et al., "A technique for drawing directed graphs"):

1. layering: longest path from the sources, then every source is pulled down to just above its
   first consumer (so e.g. ViT's position embedding sits next to the sum that uses it, not at the top);
2. edges spanning several layers get one dummy node per crossed layer, so they are routed around nodes;
3. crossing reduction: barycenter sweeps down and up, keeping the ordering with the fewest crossings;
4. coordinate assignment: each layer, in turn, solves "be as close as possible to the weighted mean of
   your neighbours, with no overlaps" exactly by weighted isotonic regression (pool adjacent violators).
   Long edges weigh more, and a last pass lines up their dummies, so they come out straight.

``wrap_columns`` then optionally cuts a tall layout into side-by-side columns (for deep networks).

Geometry only: no colours, no text. Units are SVG user units (pixels at scale 1); y grows downward.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

Point = tuple[float, float]

# Edge weights for coordinate assignment (real-real, real-dummy, dummy-dummy), as in dot: straight long
# edges matter more than perfectly centred nodes.
_W_REAL, _W_MIXED, _W_DUMMY = 1.0, 2.0, 8.0


class CycleError(ValueError):
    """The graph is not a DAG."""


@dataclass
class Layout:
    """Where everything goes.

    ``x``/``y`` are node centres; ``routes[(u, v)]`` is the polyline of edge u→v, from the bottom of u
    through one point per crossed layer to the top of v.
    """

    x: list[float]
    y: list[float]
    layer: list[int]
    routes: dict[tuple[int, int], list[Point]]
    width: float
    height: float
    num_layers: int
    crossings: int
    pitch: float = 0.0  # vertical distance between layers
    node_height: float = 0.0
    columns: list[Column] = field(default_factory=list)  # empty unless wrapped
    ghosts: list[Ghost] = field(default_factory=list)

    @property
    def wrapped(self) -> bool:
        return len(self.columns) > 1


@dataclass(frozen=True)
class Column:
    """One band of consecutive layers when a tall layout is wrapped into side-by-side columns."""

    first_layer: int  # the ghost row, when the column continues a cut node
    last_layer: int
    x0: float
    x1: float
    cut_node: int | None  # node at the bottom of the previous column whose edges continue here


@dataclass(frozen=True)
class Ghost:
    """A copy of a cut node at the top of the next column, where its outgoing edges start."""

    node: int
    x: float
    y: float
    column: int


def layered_layout(
    num_nodes: int,
    edges: Sequence[tuple[int, int]],
    widths: Sequence[float],
    *,
    node_height: float = 24.0,
    rank_gap: float = 20.0,
    node_gap: float = 14.0,
    dummy_gap: float = 7.0,
    sweeps: int = 6,
    coord_passes: int = 10,
) -> Layout:
    """Lay out a DAG top-down; ``widths[i]`` is node i's box width. Raises ValueError on a cycle."""
    if len(widths) != num_nodes:
        raise ValueError(f"{len(widths)} widths for {num_nodes} nodes")
    layer = assign_layers(num_nodes, edges)
    lg = _LayeredGraph.build(num_nodes, edges, layer, widths)
    crossings = lg.reduce_crossings(sweeps)
    lg.assign_x(node_gap, dummy_gap, coord_passes)
    pitch = node_height + rank_gap
    y_of_layer = [i * pitch + node_height / 2 for i in range(lg.num_layers)]
    x = lg.x[:num_nodes]
    y = [y_of_layer[layer[v]] for v in range(num_nodes)]
    routes = _routes(lg, x, y, y_of_layer, widths, node_height)
    height = lg.num_layers * pitch - rank_gap if lg.num_layers else 0.0
    return Layout(x, y, layer, routes, lg.width, height, lg.num_layers, crossings, pitch, node_height)


def suggest_columns(lay: Layout, min_height: float = 2400.0, max_columns: int = 8) -> int:
    """How many columns make a tall, narrow layout roughly square (1 = leave it alone)."""
    if lay.height <= min_height or lay.height < 3 * max(lay.width, 1.0):
        return 1
    return max(2, min(max_columns, round(math.sqrt(lay.height / max(lay.width, 1.0)))))


def wrap_columns(
    lay: Layout,
    widths: Sequence[float],
    columns: int,
    *,
    column_gap: float = 60.0,
    keep_together: Sequence[tuple[int, int]] = (),
) -> Layout:
    """Cut a tall layout into at most ``columns`` side-by-side columns; returns a new Layout.

    A cut goes between two layers only where every edge crossing it starts at one node in the layer
    just above (a residual sum, a transition layer): that node is repeated as a ghost at the top of the
    next column and its edges start there, so no edge has to jump between columns. Cuts are chosen to
    make the tallest column as short as possible. ``keep_together`` lists (first, last) layer ranges
    that must not be cut (collapsed blocks, whose frame must stay in one piece).
    """
    if columns < 2 or lay.num_layers < 4:
        return lay
    source = _cut_sources(lay, keep_together)
    cuts = _best_cuts(source, lay.num_layers, columns)
    if not cuts:
        return lay
    return _apply_cuts(lay, widths, cuts, source, column_gap)


_BLOCKED = -1  # a boundary that cannot be cut


def _cut_sources(lay: Layout, keep_together: Sequence[tuple[int, int]]) -> list[int | None]:
    """Per boundary L (between layers L and L+1): None = no edge crosses, a node = the only source
    (sitting in layer L) of all crossing edges, ``_BLOCKED`` = cannot cut here."""
    source: list[int | None] = [None] * max(lay.num_layers - 1, 0)
    for u, v in lay.routes:
        for boundary in range(lay.layer[u], lay.layer[v]):
            current = source[boundary]
            if current is None and lay.layer[u] == boundary:
                source[boundary] = u
            elif current != u:
                source[boundary] = _BLOCKED
    for first, last in keep_together:
        for boundary in range(max(first, 0), min(last, len(source))):
            source[boundary] = _BLOCKED
    return source


def _best_cuts(source: list[int | None], num_layers: int, columns: int) -> list[int]:
    """Boundaries to cut at so that the tallest column (in rows, ghost rows included) is shortest.

    Binary search on the column height; for a given height, filling each column as far as it goes
    is optimal (a later start never reaches less far), and uses the fewest columns.
    """
    points = [-1] + [b for b, s in enumerate(source) if s != _BLOCKED] + [num_layers - 1]
    last = len(points) - 1

    def rows(a: int, b: int) -> int:
        ghost = 1 if a > 0 and source[points[a]] is not None else 0
        return points[b] - points[a] + ghost

    def fill(limit: int) -> list[int] | None:
        cuts: list[int] = []
        a = b = 0
        while True:
            while b < last and rows(a, b + 1) <= limit:
                b += 1
            if b == last:
                return cuts
            if b == a or len(cuts) == columns - 1:
                return None
            cuts.append(b)
            a = b

    lo, hi = 1, num_layers  # one column of num_layers rows always fits
    while lo < hi:
        mid = (lo + hi) // 2
        if fill(mid) is None:
            lo = mid + 1
        else:
            hi = mid
    if lo >= 0.8 * num_layers:
        return []  # wrapping would not help much
    return [points[i] for i in fill(lo) or []]


def _apply_cuts(lay: Layout, widths: Sequence[float], cuts: list[int], source: list[int | None], gap: float) -> Layout:
    bounds = [-1, *cuts, lay.num_layers - 1]
    column_of_layer = [0] * lay.num_layers
    for c in range(len(bounds) - 1):
        for layer in range(bounds[c] + 1, bounds[c + 1] + 1):
            column_of_layer[layer] = c
    n = len(lay.x)
    x_new, y_new = list(lay.x), list(lay.y)
    routes: dict[tuple[int, int], list[Point]] = {}
    columns: list[Column] = []
    ghosts: list[Ghost] = []
    cursor, height = 0.0, 0.0
    for c in range(len(bounds) - 1):
        cut_node = source[bounds[c]] if c > 0 else None
        first = bounds[c] if cut_node is not None else bounds[c] + 1
        last = bounds[c + 1]
        members = [v for v in range(n) if column_of_layer[lay.layer[v]] == c]
        edges = [e for e in lay.routes if column_of_layer[lay.layer[e[1]]] == c]
        xs0 = [lay.x[v] - widths[v] / 2 for v in members] + [p[0] for e in edges for p in lay.routes[e]]
        xs1 = [lay.x[v] + widths[v] / 2 for v in members] + [p[0] for e in edges for p in lay.routes[e]]
        if cut_node is not None:
            xs0.append(lay.x[cut_node] - widths[cut_node] / 2)
            xs1.append(lay.x[cut_node] + widths[cut_node] / 2)
        left, right = min(xs0, default=0.0), max(xs1, default=0.0)
        dx, dy = cursor - left, -first * lay.pitch
        for v in members:
            x_new[v], y_new[v] = lay.x[v] + dx, lay.y[v] + dy
        for e in edges:
            routes[e] = [(px + dx, py + dy) for px, py in lay.routes[e]]
        if cut_node is not None:
            ghosts.append(Ghost(cut_node, lay.x[cut_node] + dx, lay.y[cut_node] + dy, c))
        columns.append(Column(first, last, cursor, cursor + right - left, cut_node))
        height = max(height, (last - first + 1) * lay.pitch - (lay.pitch - lay.node_height))
        cursor += right - left + gap
    width = cursor - gap
    return replace(lay, x=x_new, y=y_new, routes=routes, width=width, height=height, columns=columns, ghosts=ghosts)


def topological_order(num_nodes: int, edges: Sequence[tuple[int, int]]) -> list[int]:
    """Kahn's algorithm, smallest index first (keeps the given order when it is already topological)."""
    import heapq

    succ: list[list[int]] = [[] for _ in range(num_nodes)]
    indeg = [0] * num_nodes
    for u, v in edges:
        succ[u].append(v)
        indeg[v] += 1
    heap = [v for v in range(num_nodes) if indeg[v] == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        u = heapq.heappop(heap)
        order.append(u)
        for v in succ[u]:
            indeg[v] -= 1
            if indeg[v] == 0:
                heapq.heappush(heap, v)
    if len(order) != num_nodes:
        raise CycleError("the graph has a cycle; a layered layout needs a DAG")
    return order


def assign_layers(num_nodes: int, edges: Sequence[tuple[int, int]]) -> list[int]:
    """Longest-path layering; sources are then moved down next to their first consumer."""
    order = topological_order(num_nodes, edges)
    preds: list[list[int]] = [[] for _ in range(num_nodes)]
    succs: list[list[int]] = [[] for _ in range(num_nodes)]
    for u, v in edges:
        preds[v].append(u)
        succs[u].append(v)
    layer = [0] * num_nodes
    for v in order:
        if preds[v]:
            layer[v] = max(layer[u] for u in preds[v]) + 1
    for v in range(num_nodes):
        if not preds[v] and succs[v]:
            layer[v] = min(layer[s] for s in succs[v]) - 1
    return layer


class _LayeredGraph:
    """Real nodes 0..n-1 followed by dummy nodes; every edge joins adjacent layers."""

    def __init__(self, num_real: int, layer: list[int], widths: list[float]) -> None:
        self.num_real = num_real
        self.layer = layer
        self.widths = widths
        self.preds: list[list[int]] = [[] for _ in layer]
        self.succs: list[list[int]] = [[] for _ in layer]
        self.chains: dict[tuple[int, int], list[int]] = {}
        self.layers: list[list[int]] = []
        self.pos: list[int] = []
        self.x: list[float] = []
        self.width = 0.0

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @classmethod
    def build(
        cls, n: int, edges: Sequence[tuple[int, int]], layer: list[int], widths: Sequence[float]
    ) -> _LayeredGraph:
        lg = cls(n, list(layer), [float(w) for w in widths])
        for u, v in edges:
            chain = [u]
            for lay in range(layer[u] + 1, layer[v]):
                chain.append(lg._add_dummy(lay))
            chain.append(v)
            for a, b in zip(chain, chain[1:]):
                lg.succs[a].append(b)
                lg.preds[b].append(a)
            lg.chains[(u, v)] = chain
        lg._initial_order()
        return lg

    def _add_dummy(self, lay: int) -> int:
        self.layer.append(lay)
        self.widths.append(0.0)
        self.preds.append([])
        self.succs.append([])
        return len(self.layer) - 1

    def is_dummy(self, v: int) -> bool:
        return v >= self.num_real

    def _initial_order(self) -> None:
        """Order each layer by depth-first discovery, so chains start out side by side."""
        seen = [False] * len(self.layer)
        rank: list[int] = [0] * len(self.layer)
        counter = 0
        for root in range(len(self.layer)):
            if seen[root] or self.preds[root]:
                continue
            stack = [root]
            while stack:
                v = stack.pop()
                if seen[v]:
                    continue
                seen[v] = True
                rank[v] = counter
                counter += 1
                # Reverse so the lowest-index successor is visited first.
                stack.extend(reversed([s for s in self.succs[v] if not seen[s]]))
        num_layers = max(self.layer) + 1 if self.layer else 0
        self.layers = [[] for _ in range(num_layers)]
        for v in sorted(range(len(self.layer)), key=rank.__getitem__):
            self.layers[self.layer[v]].append(v)
        self._update_pos()

    def _update_pos(self) -> None:
        self.pos = [0] * len(self.layer)
        for row in self.layers:
            for i, v in enumerate(row):
                self.pos[v] = i

    # -- crossing reduction -------------------------------------------------------------------

    def reduce_crossings(self, sweeps: int) -> int:
        """Barycenter sweeps down then up; keep the best ordering seen. Returns its crossing count."""
        best = self.count_crossings()
        best_layers = [row[:] for row in self.layers]
        for _ in range(sweeps):
            if best == 0:
                break
            for lay in range(1, self.num_layers):
                self._sort_by_barycenter(lay, self.preds)
            for lay in range(self.num_layers - 2, -1, -1):
                self._sort_by_barycenter(lay, self.succs)
            crossings = self.count_crossings()
            if crossings < best:
                best, best_layers = crossings, [row[:] for row in self.layers]
        self.layers = best_layers
        self._update_pos()
        return best

    def _sort_by_barycenter(self, lay: int, neighbours: list[list[int]]) -> None:
        row = self.layers[lay]
        keys = {}
        for v in row:
            nbrs = neighbours[v]
            # A node without neighbours on that side keeps its place.
            keys[v] = sum(self.pos[u] for u in nbrs) / len(nbrs) if nbrs else float(self.pos[v])
        row.sort(key=lambda v: (keys[v], self.pos[v]))
        for i, v in enumerate(row):
            self.pos[v] = i

    def count_crossings(self) -> int:
        """Edge crossings between all adjacent layer pairs (inversion count with a Fenwick tree)."""
        total = 0
        for row in self.layers[:-1]:
            pairs = sorted((self.pos[u], self.pos[v]) for u in row for v in self.succs[u])
            total += _count_inversions([b for _, b in pairs])
        return total

    # -- coordinates ----------------------------------------------------------------------------

    def assign_x(self, node_gap: float, dummy_gap: float, passes: int) -> None:
        """Alternate down/up passes pulling nodes toward their neighbours, then shift to x >= 0."""
        self.x = [0.0] * len(self.layer)
        seps = [self._separations(row, node_gap, dummy_gap) for row in self.layers]
        for row, sep in zip(self.layers, seps):
            offset = -sum(sep) / 2
            for i, v in enumerate(row):
                self.x[v] = offset + (sum(sep[:i]) if i else 0.0)
        for p in range(passes):
            if p % 2 == 0:
                lays, use_preds, use_succs = range(1, self.num_layers), True, p >= passes - 2
            else:
                lays, use_preds, use_succs = range(self.num_layers - 2, -1, -1), p >= passes - 2, True
            for lay in lays:
                self._place_layer(self.layers[lay], seps[lay], use_preds, use_succs)
        self._straighten_chains(seps)
        self._normalise()

    def _straighten_chains(self, seps: list[list[float]]) -> None:
        """Line up the dummies of each long edge on one x where the neighbours leave room.

        The per-layer placement packs dummies tightly, so bundles of long edges come out wavy; moving
        each dummy to its chain's median x, when that fits between its neighbours, removes most waves.
        """
        for chain in sorted(self.chains.values(), key=len, reverse=True):
            dummies = chain[1:-1]
            if len(dummies) < 2:
                continue
            xs = sorted(self.x[d] for d in dummies)
            target = xs[len(xs) // 2]
            for d in dummies:
                row, i = self.layers[self.layer[d]], self.pos[d]
                lo = self.x[row[i - 1]] + seps[self.layer[d]][i - 1] if i > 0 else -math.inf
                hi = self.x[row[i + 1]] - seps[self.layer[d]][i] if i + 1 < len(row) else math.inf
                self.x[d] = min(max(target, lo), hi)

    def _separations(self, row: list[int], node_gap: float, dummy_gap: float) -> list[float]:
        """Minimum centre distance between each node of ``row`` and the next one."""
        out = []
        for a, b in zip(row, row[1:]):
            gap = node_gap if not (self.is_dummy(a) or self.is_dummy(b)) else dummy_gap
            out.append((self.widths[a] + self.widths[b]) / 2 + gap)
        return out

    def _edge_weight(self, a: int, b: int) -> float:
        dummies = self.is_dummy(a) + self.is_dummy(b)
        return (_W_REAL, _W_MIXED, _W_DUMMY)[dummies]

    def _place_layer(self, row: list[int], sep: list[float], use_preds: bool, use_succs: bool) -> None:
        targets: list[float] = []
        weights: list[float] = []
        for v in row:
            nbrs = (self.preds[v] if use_preds else []) + (self.succs[v] if use_succs else [])
            if nbrs:
                ws = [self._edge_weight(v, u) for u in nbrs]
                targets.append(sum(w * self.x[u] for w, u in zip(ws, nbrs)) / sum(ws))
                weights.append(sum(ws))
            else:
                # No pull: stay roughly where it is, but give way to everything else.
                targets.append(self.x[v])
                weights.append(0.05)
        for v, xv in zip(row, _place_ordered(targets, weights, sep)):
            self.x[v] = xv

    def _normalise(self) -> None:
        if not self.x:
            return
        left = min(x - w / 2 for x, w in zip(self.x, self.widths))
        self.x = [x - left for x in self.x]
        self.width = max(x + w / 2 for x, w in zip(self.x, self.widths))


def _place_ordered(targets: list[float], weights: list[float], sep: list[float]) -> list[float]:
    """Positions closest (weighted least squares) to ``targets`` with ``x[i+1] - x[i] >= sep[i]``.

    Substituting ``x[i] = y[i] + c[i]`` (c = running sum of separations) turns it into isotonic
    regression of ``targets - c``, solved exactly by pool-adjacent-violators in linear time.
    """
    offsets = [0.0]
    for s in sep:
        offsets.append(offsets[-1] + s)
    # Each block: [weight sum, weighted target sum, count]
    blocks: list[list[float]] = []
    for t, w, c in zip(targets, weights, offsets):
        blocks.append([w, w * (t - c), 1])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][0] >= blocks[-1][1] / blocks[-1][0]:
            w2, s2, n2 = blocks.pop()
            blocks[-1][0] += w2
            blocks[-1][1] += s2
            blocks[-1][2] += n2
    ys: list[float] = []
    for w, s, n in blocks:
        ys.extend([s / w] * int(n))
    return [y + c for y, c in zip(ys, offsets)]


def _count_inversions(seq: list[int]) -> int:
    if not seq:
        return 0
    size = max(seq) + 1
    tree = [0] * (size + 1)
    inversions = 0
    for seen, value in enumerate(seq):
        # Count earlier values greater than ``value``: seen - (earlier values <= value).
        i, not_greater = value + 1, 0
        while i > 0:
            not_greater += tree[i]
            i -= i & -i
        inversions += seen - not_greater
        i = value + 1
        while i <= size:
            tree[i] += 1
            i += i & -i
    return inversions


def _routes(
    lg: _LayeredGraph,
    x: list[float],
    y: list[float],
    y_of_layer: list[float],
    widths: Sequence[float],
    node_height: float,
) -> dict[tuple[int, int], list[Point]]:
    """Polylines for the real edges; ports spread along a node's top/bottom when it has many edges."""
    out_port = _ports(lg, widths, x, outgoing=True)
    in_port = _ports(lg, widths, x, outgoing=False)
    routes: dict[tuple[int, int], list[Point]] = {}
    half = node_height / 2
    for (u, v), chain in lg.chains.items():
        pts: list[Point] = [(out_port[(u, chain[1])], y[u] + half)]
        pts.extend((lg.x[d], y_of_layer[lg.layer[d]]) for d in chain[1:-1])
        pts.append((in_port[(chain[-2], v)], y[v] - half))
        routes[(u, v)] = pts
    return routes


def _ports(lg: _LayeredGraph, widths: Sequence[float], x: list[float], outgoing: bool) -> dict[tuple[int, int], float]:
    """x of each edge end on a real node, ordered by where the other end lies (fewer local crossings)."""
    ports: dict[tuple[int, int], float] = {}
    for v in range(lg.num_real):
        nbrs = lg.succs[v] if outgoing else lg.preds[v]
        if not nbrs:
            continue
        nbrs = sorted(nbrs, key=lambda u: lg.x[u])
        k = len(nbrs)
        # Keep ports away from the rounded corners and at most 10 units apart.
        step = min(10.0, max(widths[v] - 12.0, 0.0) / max(k - 1, 1))
        for i, u in enumerate(nbrs):
            px = x[v] + (i - (k - 1) / 2) * step
            ports[(v, u) if outgoing else (u, v)] = px
    return ports
