"""Model -> GHN graph, reproducing the graph the official GHN-3 code builds, node for node.

Pipeline (each step is a function below, in the order the official ``Graph`` applies them):
trace -> filter unsupported ops -> fix weight edges -> fix softmax edges -> (Swin fix) ->
filter redundant Add/Cat -> add the input node -> topological sort -> (ViT / SqueezeNet fixes)
-> distance matrix -> node types and shapes.

The official code keeps a dense numpy matrix and rescans it for every change; we keep successor
and predecessor sets, which gives the same graph in a fraction of the time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..errors import GraphError, ModelBuildError
from .model import GhnGraph, Node
from .ops import OP_TYPES, is_supported_module, module_node_type, op_name
from .trace import RawNode, trace

VE_CUTOFF = 50


class _Adjacency:
    """A directed graph on nodes 0..n-1 as successor/predecessor sets."""

    def __init__(self, n: int) -> None:
        self.succ: list[set[int]] = [set() for _ in range(n)]
        self.pred: list[set[int]] = [set() for _ in range(n)]

    def __len__(self) -> int:
        return len(self.succ)

    def add(self, i: int, j: int) -> None:
        self.succ[i].add(j)
        self.pred[j].add(i)

    def remove(self, i: int, j: int) -> None:
        self.succ[i].discard(j)
        self.pred[j].discard(i)

    def has(self, i: int, j: int) -> bool:
        return j in self.succ[i]

    def out(self, i: int) -> list[int]:
        """Successors in increasing index order (like ``np.where(A[i, :])``)."""
        return sorted(self.succ[i])

    def into(self, i: int) -> list[int]:
        return sorted(self.pred[i])

    def keep(self, indices: list[int]) -> _Adjacency:
        new_index = {old: new for new, old in enumerate(indices)}
        adj = _Adjacency(len(indices))
        for old in indices:
            for j in self.succ[old]:
                if j in new_index:
                    adj.add(new_index[old], new_index[j])
        return adj

    def permute(self, order: list[int]) -> _Adjacency:
        return self.keep(order)

    def append_node(self) -> int:
        self.succ.append(set())
        self.pred.append(set())
        return len(self.succ) - 1

    def insert_empty(self, at: int) -> _Adjacency:
        """A copy with an empty node inserted at index ``at`` (later indices shift by one)."""
        shift = lambda k: k + 1 if k >= at else k  # noqa: E731
        adj = _Adjacency(len(self) + 1)
        for i, succ in enumerate(self.succ):
            for j in succ:
                adj.add(shift(i), shift(j))
        return adj

    def copy(self) -> _Adjacency:
        adj = _Adjacency(0)
        adj.succ = [set(s) for s in self.succ]
        adj.pred = [set(p) for p in self.pred]
        return adj


# ------------------------------------------------------------------------------------------------
# Filtering


def _filter(nodes: list[RawNode], adj: _Adjacency, patterns: list[str] | None = None
            ) -> tuple[list[RawNode], _Adjacency]:
    """Remove unsupported and redundant nodes, bypassing each removed node (official semantics).

    Patterns are matched as substrings of node names, in order: ``Mul`` (kept only when it looks
    like squeeze-excitation), every unsupported name, ``Mean`` (kept only in the classifier head
    of networks with sigmoid/swish), then ``Add``/``Cat`` (kept only with more than one input).

    The official code rebuilds its matrix after every pattern; we keep the original node indices
    throughout (the surviving nodes never change their relative order) and compact once at the end.
    """
    names = [node.name for node in nodes]
    if patterns is None:
        patterns = ["Mul", *sorted(_unsupported_names(nodes)), "Mean", "Add", "Cat"]
    has_cse = any("sigmoid" in name.lower() or "swish" in name.lower() for name in names)
    n_incoming = [len(p) for p in adj.pred]
    by_name: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        by_name.setdefault(name, []).append(i)

    alive = list(range(len(nodes)))
    for pattern in patterns:
        matched = sorted(i for name, idx in by_name.items() if pattern in name for i in idx)
        if not matched:
            continue
        alive_names: list[str] = []
        position: dict[int, int] = {}
        if any(names[i].startswith(("Mean", "Mul")) for i in matched):
            # positions in the current list, for the neighbour heuristics of Mul and Mean
            alive_names = [names[i] for i in alive]
            position = {i: k for k, i in enumerate(alive)}
        removed: list[int] = []
        for i in matched:
            if _keep_matched(alive_names, position.get(i, -1), names[i], has_cse, n_incoming[i]):
                continue
            for n1 in adj.out(i):
                for n2 in adj.into(i):
                    if n1 != n2:
                        adj.add(n2, n1)
            removed.append(i)
        for i in removed:
            _detach(adj, i)
            by_name[names[i]].remove(i)
        gone = set(removed)
        alive = [i for i in alive if i not in gone]
    if len(alive) < len(nodes):
        adj = adj.keep(alive)
        nodes = [nodes[i] for i in alive]
    return nodes, adj


def _unsupported_names(nodes: list[RawNode]) -> set[str]:
    """Names of nodes that are neither a supported module's parameter nor a supported op."""
    unsupported = set()
    for node in nodes:
        name = node.name
        opn = op_name(name)
        norm_bias = "norm" in type(node.module).__name__.lower() and opn.endswith(".bias")
        supported = not norm_bias and is_supported_module(node.module)
        if not supported and opn not in OP_TYPES:
            unsupported.add(name)
    return unsupported


def _detach(adj: _Adjacency, i: int) -> None:
    """Remove every edge into and out of node ``i``."""
    for j in adj.succ[i]:
        adj.pred[j].discard(i)
    for j in adj.pred[i]:
        adj.succ[j].discard(i)
    adj.succ[i] = set()
    adj.pred[i] = set()


def _keep_matched(names: list[str], pos: int, name: str, has_cse: bool, n_incoming: int) -> bool:
    """Whether a node matched by a filter pattern stays (official heuristics, Python indexing).

    ``names`` is the current node list and ``pos`` the node's position in it.
    """
    if name.startswith(("Cat", "Add")):
        return n_incoming > 1
    if not name.startswith(("Mean", "Mul")):
        return False
    try:
        # negative offsets wrap around like Python list indexing in the official code
        neighbors = {j: names[pos + j].lower() for j in (-1, -2, -3, 1)}
        classifier_head = any(neighbors[j].startswith(("classifier", "fc", "head")) for j in (-1, -2))
    except IndexError:
        neighbors = {}
        classifier_head = True  # the official code treats a failed lookup as the head
    if name.startswith("Mean"):
        return classifier_head if has_cse else True
    return (has_cse and not classifier_head
            and (neighbors[-2].startswith(("hard", "sigmoid"))
                 or neighbors[-3].startswith(("relu", "mean"))
                 or neighbors[1].startswith(("hard", "sigmoid", "relu"))))


# ------------------------------------------------------------------------------------------------
# Edge fixes


def _fix_weight_edges(nodes: list[RawNode], adj: _Adjacency) -> None:
    """Turn ``weight -> bias <- prev`` into ``prev -> weight -> bias`` (in place).

    A weight leaf often ends up with no incoming edge; it swaps places with the bias (or the
    softmax it feeds) so that the forward direction reads prev -> weight -> bias -> next.
    """
    for i in range(len(nodes)):
        node = nodes[i]
        if adj.pred[i] or "weight" not in node.name:
            continue
        for out in adj.out(i):
            same_layer = node.module is nodes[out].module
            qkv = not adj.pred[i] and "softmax" in nodes[out].name.lower()
            if not (same_layer or qkv):
                continue
            n_out = len(adj.succ[i])
            if not (adj.pred[out] - {i}):
                continue
            nodes[i], nodes[out] = nodes[out], nodes[i]
            adj.remove(i, out)
            adj.add(out, i)
            if n_out == 1:
                for k in sorted(adj.succ[out] - {i}):
                    adj.remove(out, k)
                    adj.add(i, k)


def _count_paths(succ: list[set[int]], pred: list[set[int]], src: int, dst: int, cap: int = 2) -> int:
    """Number of simple paths src -> dst, counting stops at ``cap``."""
    # restrict the search to nodes that can reach dst, so every branch makes progress
    reach = _reachable(pred, dst)
    if src not in reach:
        return 0
    count = 0
    stack: list[tuple[int, list[int]]] = [(src, sorted(v for v in succ[src] if v in reach))]
    on_path = {src}
    while stack and count < cap:
        node, rest = stack[-1]
        if not rest:
            stack.pop()
            on_path.discard(node)
            continue
        nxt = rest.pop(0)
        if nxt == dst:
            count += 1
        elif nxt not in on_path:
            on_path.add(nxt)
            stack.append((nxt, sorted(v for v in succ[nxt] if v in reach)))
    return count


def _fix_softmax_edges(nodes: list[RawNode], adj: _Adjacency) -> None:
    """Route attention inputs through the softmax node, as in DeepNets-1M graphs (in place)."""
    snapshot = adj.copy()  # paths are counted on the graph as it was
    for i, node in enumerate(nodes):
        if "softmax" not in node.name.lower():
            continue
        for out in adj.out(i):
            for j in sorted(adj.pred[out] - {i}):
                n_paths = _count_paths(snapshot.succ, snapshot.pred, j, out)
                if n_paths > 1 or not adj.has(i, j):
                    adj.remove(j, out)
                if n_paths == 1 and not adj.has(i, j):
                    adj.add(j, i)


def _fix_swin_edges(nodes: list[RawNode], adj: _Adjacency) -> None:
    """torchvision Swin: patch-merging norm/reduction edges as the official code rewires them."""
    for i, node in enumerate(nodes):
        name = node.name
        if name.lower().endswith("norm.weight"):
            for out in adj.out(i):
                if nodes[out].name.endswith("norm1.weight") or "Add" in nodes[out].name:
                    adj.remove(i, out)
                    target = name.replace("norm", "reduction")
                    for j, other in enumerate(nodes):
                        if target in other.name:
                            adj.add(i, j)
                            break
        elif name.lower().endswith("attn.proj.bias"):
            for out in adj.out(i):
                if nodes[out].name.endswith("reduction.weight"):
                    adj.remove(i, out)
                    for out2 in adj.out(out):
                        if nodes[out2].name.startswith("AddBackward"):
                            adj.add(i, out2)


# ------------------------------------------------------------------------------------------------
# Ordering and distances


def _topological_order(adj: _Adjacency) -> list[int] | None:
    """Kahn's algorithm in generations, exactly as networkx's ``topological_sort``; None on a cycle."""
    indegree = [len(p) for p in adj.pred]
    generation = [v for v in range(len(adj)) if indegree[v] == 0]
    order: list[int] = []
    while generation:
        order.extend(generation)
        nxt = []
        for v in generation:
            for child in adj.out(v):
                indegree[child] -= 1
                if indegree[child] == 0:
                    nxt.append(child)
        generation = nxt
    return order if len(order) == len(adj) else None


def distance_matrix(adj: _Adjacency, cutoff: int = VE_CUTOFF) -> torch.Tensor:
    """All-pairs shortest forward path lengths in 1..cutoff; 0 for no path (and the diagonal)."""
    import numpy as np  # torch imports numpy already; small numpy ops avoid torch's thread pool

    n = len(adj)
    order = _topological_order(adj)
    if order is None:
        return torch.from_numpy(_bfs_distances(adj, cutoff))
    # Dynamic programming over a topological order, vectorised over all sources at once; row v of
    # ``to`` holds the distances from every node to v: to[v] = 1 + min over predecessors u of to[u].
    big = np.int32(1 << 30)
    to = np.full((n, n), big, dtype=np.int32)
    for v in order:
        preds = adj.pred[v]
        if len(preds) == 1:
            (u,) = preds
            np.add(to[u], 1, out=to[v])
        elif preds:
            np.add(to[list(preds)].min(axis=0), 1, out=to[v])
        to[v, v] = 0
    dist = to.T.astype(np.int64)
    dist[dist > cutoff] = 0
    return torch.from_numpy(dist)


def _bfs_distances(adj: _Adjacency, cutoff: int) -> Any:
    """Breadth-first distances from every node (graphs with a cycle have no topological order)."""
    import numpy as np

    n = len(adj)
    dist = np.zeros((n, n), dtype=np.int64)
    for s in range(n):
        frontier, seen, d = [s], {s}, 0
        while frontier and d < cutoff:
            d += 1
            nxt = []
            for u in frontier:
                for v in adj.succ[u]:
                    if v not in seen:
                        seen.add(v)
                        dist[s, v] = d
                        nxt.append(v)
            frontier = nxt
    return dist


# ------------------------------------------------------------------------------------------------
# Public entry point


def default_image_size(model: nn.Module) -> tuple[int, int, int]:
    """Input size the official code uses: ``model.expected_input_sz``, 299 for Inception3, else 224."""
    import torchvision.models as tvm

    sz = getattr(model, "expected_input_sz", None)
    if sz is None:
        sz = 299 if isinstance(model, tvm.Inception3) else 224
    return tuple(sz) if isinstance(sz, (tuple, list)) else (3, int(sz), int(sz))  # type: ignore[return-value]


def _normalise_size(image_size: int | tuple[int, ...] | None, model: nn.Module) -> tuple[int, int, int]:
    if image_size is None:
        return default_image_size(model)
    if isinstance(image_size, int):
        return (3, image_size, image_size)
    if len(image_size) == 2:
        return (3, int(image_size[0]), int(image_size[1]))
    if len(image_size) == 3:
        return tuple(int(s) for s in image_size)  # type: ignore[return-value]
    raise ValueError(f"image_size must be an int, (H, W) or (C, H, W), got {image_size!r}")


def build_graph(
    model: nn.Module,
    arch: str = "model",
    image_size: int | tuple[int, ...] | None = None,
    ve_cutoff: int = VE_CUTOFF,
    trace_mode: str = "auto",
) -> GhnGraph:
    """Build the GHN graph of ``model`` as the official GHN-3 code would.

    The model is left exactly as it was (parameters, buffers such as BatchNorm statistics, and the
    global RNG state). ``trace_mode``: ``shape`` and ``fake`` trace without arithmetic (shape
    tracing is the cheaper), ``real`` runs the real forward pass on protected copies (parameters
    detached, buffers cloned, RNG forked); ``auto`` tries shape tracing, then the cheaper of the
    other two by a cost model, then the last one, and keeps the first that succeeds.
    """
    size = _normalise_size(image_size, model)
    raw = _trace_model(model, arch, size, trace_mode)
    warnings: list[str] = []
    notes: list[str] = []
    nodes, adj = _assemble(model, raw, warnings)
    dist = distance_matrix(adj, ve_cutoff)
    out_nodes = _typed_nodes(nodes, warnings, notes)
    _connectivity_warnings(out_nodes, adj, warnings)
    uncovered = _uncovered(model, out_nodes, warnings)
    return GhnGraph(arch=arch, nodes=out_nodes, dist=dist, image_size=size, ve_cutoff=ve_cutoff,
                    warnings=warnings, uncovered=uncovered, notes=notes)


# Cost model for the fallback of ``trace_mode="auto"`` when shape tracing is refused. All modes give
# the same graph; only the time differs. Fake tracing costs ~40 us per op whatever the tensor sizes;
# a real forward costs its arithmetic. Models with few parameters per layer (MobileNetV3-small,
# ShuffleNet, MnasNet-0.5) do little arithmetic per op, and a real forward is up to 2.4x faster for
# them; above ~30k parameters per layer real tracing was never reliably faster on the torchvision
# models (docs/benchmarks.md).
REAL_TRACE_MAX_PARAMS_PER_LAYER = 30_000
REAL_TRACE_MAX_PARAMS = 12_000_000


def _real_trace_is_cheaper(model: nn.Module) -> bool:
    params = list(model.parameters())
    if not params or any(p.device.type == "meta" for p in params):
        return False
    total = sum(p.numel() for p in params)
    layers = sum(1 for m in model.modules() if any(True for _ in m.parameters(recurse=False)))
    return total <= REAL_TRACE_MAX_PARAMS and total / max(layers, 1) < REAL_TRACE_MAX_PARAMS_PER_LAYER


def _trace_modes(model: nn.Module, mode: str) -> Iterator[str]:
    """The tracing modes to try in order; ``auto``: shape tracing (the cheapest), then the others,
    which cover what it refuses (values, some in-place ops), the cheaper one first."""
    if mode != "auto":
        yield mode
        return
    yield "shape"
    yield from (["real", "fake"] if _real_trace_is_cheaper(model) else ["fake", "real"])


def _trace_model(model: nn.Module, arch: str, size: tuple[int, int, int], mode: str):
    last: Exception | None = None
    for m in _trace_modes(model, mode):
        try:
            return trace(model, size, m)
        except ModelBuildError:
            raise
        except Exception as exc:  # noqa: BLE001 - the forward of an arbitrary model can raise anything
            last = exc
    hint = f"pass an --image-size the model accepts (tried {size[1]}x{size[2]})"
    raise ModelBuildError(f"the forward pass of '{arch}' failed on a {size} input: {_short(last)}", hint) from last


def _short(exc: BaseException | None) -> str:
    text = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else type(exc).__name__
    return text[:200]


def _assemble(model: nn.Module, raw, warnings: list[str]) -> tuple[list[RawNode], _Adjacency]:
    import torchvision.models as tvm

    nodes = list(raw.nodes)
    adj = _Adjacency(len(nodes))
    for a, b in raw.edges:
        adj.add(a, b)
    nodes, adj = _filter(nodes, adj)
    _fix_weight_edges(nodes, adj)
    _fix_softmax_edges(nodes, adj)
    loops = sum(1 for i in range(len(adj)) if adj.has(i, i))
    if loops:
        warnings.append(f"diagonal elements of the adjacency matrix should be zero: {loops}")
    if isinstance(model, tvm.SwinTransformer):
        _fix_swin_edges(nodes, adj)
    nodes, adj = _filter(nodes, adj, ["Add", "Cat"])

    # the input node feeds every weight that has no incoming edge
    idx = adj.append_node()
    nodes.append(RawNode("input"))
    for v in range(len(nodes)):
        if not adj.pred[v] and "weight" in nodes[v].name:
            adj.add(idx, v)

    for i in range(len(adj)):
        adj.remove(i, i)
    order = _topological_order(adj)
    if order is None:
        warnings.append("topological sort failed: the graph has a cycle; node order left as traced")
    else:
        nodes = [nodes[i] for i in order]
        adj = adj.permute(order)

    if _has_pos_enc_sum(model):
        i = 0
        while i < len(nodes):
            if _is_pos_enc(nodes[i].module):
                # The official code inserts the matrix row/column at the pos-enc index but the node
                # after it, so the new sum inherits the pos-enc's edges: pos_enc -> sum -> ...
                nodes.insert(i + 1, RawNode("AddBackward0"))
                adj = adj.insert_empty(i)
                adj.add(i, i + 1)
            i += 1
    elif isinstance(model, tvm.SqueezeNet):
        if not (nodes[-1].name.startswith("MeanBackward") and nodes[-3].name.startswith("classifier")):
            raise GraphError("unexpected SqueezeNet classifier layout",
                             "the graph builder expects features -> classifier conv -> mean")
        # global average pooling goes before the classifier conv; the matrix is a chain there
        nodes.insert(len(nodes) - 3, nodes[-1])
        del nodes[-1]
    return nodes, adj


def _has_pos_enc_sum(model: nn.Module) -> bool:
    import torchvision.models as tvm

    from .ops import POS_ENC_MODELS

    return isinstance(model, (tvm.VisionTransformer, *POS_ENC_MODELS))


def _is_pos_enc(module: nn.Module | None) -> bool:
    import torchvision.models as tvm

    from .ops import POS_ENC_MODULES

    return module is not None and isinstance(module, (tvm.vision_transformer.Encoder, *POS_ENC_MODULES))


# ------------------------------------------------------------------------------------------------
# Node types, shapes, warnings


def _pool_kernel(kernel_size: str | None) -> tuple[int, ...]:
    if kernel_size is None:
        return (1, 1, 3, 3)
    parts = [p.strip("()[] ") for p in kernel_size.split(",")]
    return (1, 1, *[int(p) for p in parts if p])


def _typed_nodes(nodes: list[RawNode], warnings: list[str], notes: list[str]) -> list[Node]:
    """Graph nodes with their GHN node types and the shapes the GHN reads.

    The official code prints two messages here that change nothing for the user; they go to
    ``notes`` in plain words (with the official wording, to recognise them).
    """
    n = len(nodes)
    out: list[Node] = []
    n_glob_avg = 0
    subclass_warned: set[str] = set()
    for idx, raw in enumerate(nodes):
        shape: tuple[int, ...] | None = None
        if raw.module is not None:
            try:
                op, via_subclass = module_node_type(raw.module, raw.name)
            except KeyError:
                raise GraphError(f"no GHN node type for module {type(raw.module).__name__} ({raw.name})",
                                 "register it with ghnctl.graph.ops.register_module_type") from None
            if via_subclass and type(raw.module).__name__ not in subclass_warned:
                subclass_warned.add(type(raw.module).__name__)
                warnings.append(f"{type(raw.module).__name__} is a subclass of a supported module: typed as "
                                f"'{op}' (the official code would raise a KeyError)")
            shape = raw.size
        else:
            op = OP_TYPES.get(op_name(raw.name), "sum")
            n_glob_avg += op == "glob_avg"
            if "pool" in op and raw.name != "input":
                shape = _pool_kernel(raw.kernel_size)
        if shape is not None:
            if len(shape) == 3 and shape[0] == 1 and min(shape[1:]) > 1:
                s = int(math.floor(shape[1] ** 0.5))
                new = (1, shape[2], s, s)
                notes.append(_grid_note(raw.name.lstrip("."), tuple(shape), new))
                shape = new
            elif len(shape) == 4 and idx == n - 2 and max(shape[2:]) == 1:
                shape = shape[:2]
        param = raw.name.lstrip(".") if raw.is_param else None
        module_path = raw.module_path if raw.is_param else None
        out.append(Node(index=idx, op=op, name=raw.name, param=param, shape=shape,
                        module=module_path, module_type=type(raw.module).__name__ if raw.module is not None else None))
    if n_glob_avg != 1:
        notes.append(_glob_avg_note(n_glob_avg))
    return out


def _grid_note(name: str, shape: tuple[int, ...], grid: tuple[int, ...]) -> str:
    # A (1, T, D) positional embedding: the GHN predicts a D-channel s x s grid (s*s = T - 1 patch
    # positions); the predictor prepends a random class-token row, as the official code does.
    return (f"{name} {shape} is read by a GHN as a {grid[1]}-channel {grid[2]}x{grid[3]} grid: the "
            f"{grid[2] * grid[3]} patch positions are predicted, the extra row (class token) gets random "
            f"N(0, 0.02^2) values, as in the official code (its message: setting a 4d size {grid} "
            f"instead of 3d {shape})")


def _glob_avg_note(count: int) -> str:
    why = ("normal for a model that classifies from a class token, such as ViT" if count == 0
           else "the graph is the official one all the same")
    return (f"{count} global-average-pooling nodes where most image classifiers have 1: {why}; the "
            f"prediction is not affected (official message: n_glob_avg should be 1 in most architectures, "
            f"but is {count} in this architecture)")


def _connectivity_warnings(nodes: list[Node], adj: _Adjacency, warnings: list[str]) -> None:
    """Every node should reach the output (last node) and be reachable from the input (node 0)."""
    n = len(nodes)
    if n == 0:
        return
    reaches_out = _reachable(adj.pred, n - 1)
    dead_ends = [nodes[v].name for v in range(n)
                 if v not in reaches_out and not nodes[v].name.lower().startswith("aux")]
    if dead_ends:
        warnings.append(f"{len(dead_ends)} node(s) have no path to the output node {nodes[-1].name}: "
                        f"{_examples(dead_ends)}")
    from_in = _reachable(adj.succ, 0)
    orphans = [nodes[v].name for v in range(n)
               if v not in from_in and not (nodes[v].name.startswith("pos_enc") or "pos_emb" in nodes[v].name
                                            or "position_bias" in nodes[v].name)]
    if orphans:
        warnings.append(f"{len(orphans)} node(s) are not reachable from the input node {nodes[0].name}: "
                        f"{_examples(orphans)}")


def _examples(names: list[str], k: int = 3) -> str:
    return ", ".join(names[:k]) + (f", ... ({len(names) - k} more)" if len(names) > k else "")


def _reachable(neighbours: list[set[int]], start: int) -> set[int]:
    seen = {start}
    todo = [start]
    while todo:
        for w in neighbours[todo.pop()]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def _uncovered(model: nn.Module, nodes: list[Node], warnings: list[str]) -> list[str]:
    """Trainable parameters that no node predicts; summarised by module type in ``warnings``."""
    covered: set[str] = set()
    for node in nodes:
        if node.param is None:
            continue
        covered.add(node.param)
        if node.op in ("bn", "ln") and node.param.endswith(".weight"):
            covered.add(node.param[: -len("weight")] + "bias")  # predicted with the norm weight
    modules = dict(model.named_modules())
    missing: list[str] = []
    groups: dict[str, list[int]] = {}
    for name, p in model.named_parameters():
        if name in covered:
            continue
        missing.append(name)
        path, _, attr = name.rpartition(".")
        key = f"{type(modules.get(path, model)).__name__}.{attr}"
        groups.setdefault(key, []).append(p.numel())
    for key, sizes in groups.items():
        warnings.append(f"not predicted (no graph node): {len(sizes)} x {key} ({sum(sizes):,} values)")
    return missing
