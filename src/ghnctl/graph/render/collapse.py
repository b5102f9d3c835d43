"""Collapsing repeated blocks: what is drawn of a graph.

Runs of identical consecutive sibling modules (ViT encoder layers, ResNet blocks) are drawn once,
as their first member with a ``×N`` badge; ``collapse_view`` returns the nodes and edges left.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ghnctl.graph.layout import topological_order

if TYPE_CHECKING:
    from ghnctl.graph.model import GhnGraph, Node


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
