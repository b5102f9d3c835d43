"""Predict the parameters of models with a GHN and write them into the models.

``predict_parameters(ghn, model)`` gives what the official ``ghn(model)`` gives with its defaults
(``keep_grads=False, bn_track_running_stats=True, predict_class_layers=True, reduce_graph=False``),
to float32 rounding, but decodes only what ends up in the model: nodes are batched by the crop
and channel counts they need instead of by the official shape key, the decoder runs on the kept
kernel positions only and computes only the kept channel pairs (see ``ghnctl.ghn.decoder``).
Several models in one call give exactly what each gives alone (the official batched path
misaligns node rows; that is not reproduced).

Nothing is printed; ``on_progress(stage, done, total)`` reports progress, and
``return_report=True`` also returns a ``PredictionReport`` per model.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

import torch
from torch import nn

from .errors import GraphError
from .ghn.assign import Assignment, Write, layered_targets, match_nodes, normalize, tile
from .ghn.decoder import Crop, resize_kernel

if TYPE_CHECKING:
    from .ghn.model import GHN
    from .graph.model import GhnGraph

ProgressFn = Callable[[str, int, int], None]


# --------------------------------------------------------------------------------------------------
# Reports

@dataclass
class ParamReport:
    """One model parameter: whether the GHN wrote it, and if so from which node and group."""

    name: str
    shape: tuple[int, ...]
    predicted: bool
    reason: str | None = None  # why it was not predicted
    node: int | None = None
    kind: str | None = None
    group: tuple[int, ...] | None = None
    norm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "predicted": self.predicted,
                "reason": self.reason, "node": self.node, "kind": self.kind,
                "group": list(self.group) if self.group is not None else None, "norm": self.norm}


@dataclass
class PredictionReport:
    """What a prediction did to one model.

    ``groups`` maps the official grouping key (as text, e.g. ``"(64, 64, 3, 3)"``) to the number of
    tensors written from it and their joint L2 norm. ``timings`` are seconds: ``graph`` (building
    the graph; 0 when it was given), ``forward`` (GHN embedding + decoding, shared by all models of
    a call), ``assign`` (matching nodes to parameters, tiling, normalising, writing), ``total``.
    """

    arch: str
    params: list[ParamReport]
    groups: dict[str, dict[str, float]]
    timings: dict[str, float]
    warnings: list[str] = field(default_factory=list)

    @property
    def predicted(self) -> list[ParamReport]:
        return [p for p in self.params if p.predicted]

    @property
    def unpredicted(self) -> list[ParamReport]:
        return [p for p in self.params if not p.predicted]

    @property
    def n_predicted_values(self) -> int:
        return sum(math.prod(p.shape) for p in self.predicted)

    @property
    def total_norm(self) -> float:
        """L2 norm over all parameters of the model after prediction (the official norm check)."""
        return math.sqrt(sum((p.norm or 0.0) ** 2 for p in self.params))

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "n_params": len(self.params),
            "n_predicted": len(self.predicted),
            "n_unpredicted": len(self.unpredicted),
            "n_predicted_values": self.n_predicted_values,
            "total_norm": self.total_norm,
            "timings": dict(self.timings),
            "groups": self.groups,
            "params": [p.to_dict() for p in self.params],
            "warnings": list(self.warnings),
        }


# --------------------------------------------------------------------------------------------------
# Public entry point

@overload
def predict_parameters(ghn: GHN, model: nn.Module, graph: GhnGraph | None = ..., *,
                       return_report: bool = ..., **kwargs: Any) -> Any: ...
@overload
def predict_parameters(ghn: GHN, model: Sequence[nn.Module], graph: Sequence[GhnGraph] | None = ..., *,
                       return_report: bool = ..., **kwargs: Any) -> Any: ...


def predict_parameters(
    ghn: GHN,
    model: nn.Module | Sequence[nn.Module],
    graph: GhnGraph | Sequence[GhnGraph | None] | None = None,
    *,
    predict_class_layers: bool = True,
    bn_track_running_stats: bool = True,
    return_report: bool = False,
    on_progress: ProgressFn | None = None,
) -> Any:
    """Write the GHN's predicted parameters into ``model`` (in place) and return it.

    ``model`` may be a list of models (``graph`` then a list of graphs or None); the return value
    has the same form. Graphs not given are built with ``ghnctl.graph.build_graph`` (which leaves
    the model, its BatchNorm statistics and the global RNG untouched). The only use of the global
    RNG is the class-token row of a ViT positional embedding, drawn as the official code draws it.

    ``predict_class_layers=False`` leaves the classifier (last weight/bias nodes) untouched;
    ``bn_track_running_stats=False`` switches every ``nn.BatchNorm2d`` to batch statistics, as the
    official option does. With ``return_report=True`` returns ``(model, report)`` (lists for lists).
    """
    single = isinstance(model, nn.Module)
    models = [model] if single else list(model)
    graphs = [graph] * len(models) if single or graph is None else list(graph)
    if len(graphs) != len(models):
        raise ValueError(f"got {len(models)} models but {len(graphs)} graphs")
    reports = _predict(ghn, models, graphs, predict_class_layers=predict_class_layers,
                       bn_track_running_stats=bn_track_running_stats, progress=on_progress)
    result: Any = models[0] if single else models
    if return_report:
        return result, (reports[0] if single else reports)
    return result


# --------------------------------------------------------------------------------------------------
# The engine

@dataclass
class _Plan:
    model: nn.Module
    graph: GhnGraph
    assignments: list[Assignment]
    unmatched: dict[int, str]
    graph_seconds: float
    match_seconds: float


def _predict(ghn: GHN, models: list[nn.Module], graphs: list[GhnGraph | None], *,
             predict_class_layers: bool, bn_track_running_stats: bool,
             progress: ProgressFn | None) -> list[PredictionReport]:
    notify = progress or (lambda stage, done, total: None)
    config = ghn.config
    plans: list[_Plan] = []
    for i, (model, graph) in enumerate(zip(models, graphs)):
        notify("graph", i, len(models))
        start = time.perf_counter()
        if graph is None:
            graph = _build_graph(model)
        graph_seconds = time.perf_counter() - start
        start = time.perf_counter()
        targets = layered_targets(model)
        nodes = [(node.index, node.param) for node in graph.nodes]
        assignments, unmatched = match_nodes(nodes, targets, config)
        if not predict_class_layers:
            assignments = [a for a in assignments if not a.is_classifier]
        plans.append(_Plan(model, graph, assignments, unmatched, graph_seconds, time.perf_counter() - start))
    notify("graph", len(models), len(models))

    start = time.perf_counter()
    with torch.no_grad():
        embeddings = []
        for i, plan in enumerate(plans):
            notify("forward", i, len(plans) + 1)
            embeddings.append(ghn.embed_nodes(plan.graph, _encoder_shapes(plan)))
        notify("forward", len(plans), len(plans) + 1)
        blocks = _decode(ghn, plans, embeddings)
        forward_seconds = time.perf_counter() - start
        notify("forward", len(plans) + 1, len(plans) + 1)

        reports = []
        for i, plan in enumerate(plans):
            notify("assign", i, len(plans))
            start = time.perf_counter()
            written = _assign(plan, blocks[i])
            if not bn_track_running_stats:
                _use_batch_statistics(plan.model)
            assign_seconds = time.perf_counter() - start + plan.match_seconds
            reports.append(_report(plan, written, predict_class_layers, {
                "graph": plan.graph_seconds, "forward": forward_seconds, "assign": assign_seconds,
                "total": plan.graph_seconds + forward_seconds + assign_seconds}))
        notify("assign", len(plans), len(plans))
    return reports


def _build_graph(model: nn.Module) -> GhnGraph:
    try:
        from .graph import build_graph
    except ImportError as exc:  # pragma: no cover - the graph package ships with ghnctl
        raise GraphError("graph construction is not available", "pass a GhnGraph explicitly") from exc
    return build_graph(model, arch=type(model).__name__)


def _encoder_shapes(plan: _Plan) -> list[tuple[int, ...] | None]:
    """Per node, the shape the shape encoder embeds: the target's real shape when matched."""
    shapes: list[tuple[int, ...] | None] = [node.shape for node in plan.graph.nodes]
    for a in plan.assignments:
        shapes[a.node] = a.writes[0].target.shape
    return shapes


def _decode(ghn: GHN, plans: list[_Plan], embeddings: list[torch.Tensor]
            ) -> list[dict[int, torch.Tensor]]:
    """Run the decoders once over all assignments of all models; per model, node -> block.

    Blocks: ``vector`` (2, Cm); ``class_bias`` (K,); ``vector3d`` (2*Cm, 1, 1); ``conv`` and
    ``pos_embedding`` (out, in, kh, kw); ``class_weight`` (K, in).
    """
    vectors: list[tuple[int, Assignment]] = []
    kernels: list[tuple[int, Assignment]] = []
    for b, plan in enumerate(plans):
        for a in plan.assignments:
            (vectors if a.spec is None else kernels).append((b, a))
    blocks: list[dict[int, torch.Tensor]] = [{} for _ in plans]
    for items, decode in ((vectors, _decode_vectors), (kernels, _decode_kernels)):
        if items:
            rows = torch.stack([embeddings[b][a.node] for b, a in items])
            for (b, a), block in zip(items, decode(ghn, [a for _, a in items], rows)):
                blocks[b][a.node] = block
    return blocks


def _decode_vectors(ghn: GHN, assignments: list[Assignment], rows: torch.Tensor) -> list[torch.Tensor]:
    """decoder_1d (and bias_class for classifier biases) for 1-D and layer-scale-like targets."""
    out = ghn.decoder_1d(rows)  # (n, 2*Cm)
    class_rows = [i for i, a in enumerate(assignments) if a.kind == "class_bias"]
    class_bias = dict(zip(class_rows, ghn.bias_class(out.view(len(out), 2, -1)[class_rows, 1]))) \
        if class_rows else {}
    blocks = []
    for i, a in enumerate(assignments):
        if a.kind == "class_bias":
            blocks.append(class_bias[i])
        elif a.kind == "vector3d":
            blocks.append(out[i].view(-1, 1, 1))
        else:
            blocks.append(out[i].view(2, -1))
    return blocks


def _decode_kernels(ghn: GHN, assignments: list[Assignment], rows: torch.Tensor) -> list[torch.Tensor]:
    """The conv decoder, computing only the kept positions and channel pairs of each node."""
    decoder = ghn.decoder
    # Stage 1: per crop, the per-position hidden features of the nodes that need that crop.
    by_crop: dict[Crop, list[int]] = defaultdict(list)
    for i, a in enumerate(assignments):
        by_crop[a.spec.crop].append(i)
    hidden: list[torch.Tensor] = [rows[:0]] * len(assignments)
    for crop, members in by_crop.items():
        for i, features in zip(members, decoder.hidden(rows[members], crop)):  # (P, 8h) each
            hidden[i] = features

    # Stage 2: one matmul per channel family over all positions of all nodes in it; small
    # requests ride along in a larger family when reading their own weights would cost more.
    rows_needed: dict[tuple[int, int], int] = defaultdict(int)
    for a in assignments:
        rows_needed[(a.spec.out_ch, a.spec.in_ch)] += a.spec.crop.positions
    family_of = merge_channel_families(rows_needed)
    by_family: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, a in enumerate(assignments):
        by_family[family_of[(a.spec.out_ch, a.spec.in_ch)]].append(i)
    blocks: list[torch.Tensor] = [rows[:0]] * len(assignments)
    centres: dict[int, list[tuple[int, torch.Tensor]]] = defaultdict(list)  # classifier in_ch -> rows
    for (out_ch, in_ch), members in sorted(by_family.items()):
        values = decoder.channels(torch.cat([hidden[i] for i in members]), out_ch, in_ch)  # (sum P, out, in)
        offset = 0
        for i in members:
            spec = assignments[i].spec
            hh, ww = spec.crop.size
            block = values[offset: offset + hh * ww, : spec.out_ch, : spec.in_ch]
            block = block.reshape(hh, ww, spec.out_ch, spec.in_ch).permute(2, 3, 0, 1)
            offset += hh * ww
            if spec.resize is not None:
                block = resize_kernel(block, spec.resize)
            if spec.classifier:
                centres[spec.in_ch].append((i, block[:, :, block.shape[2] // 2, block.shape[3] // 2]))
            else:
                blocks[i] = block
    for members in centres.values():  # the class-layer head, batched per in-channel count
        weights = decoder.classify(torch.stack([centre for _, centre in members]))  # (n, K, in)
        for (i, _), weight in zip(members, weights):
            blocks[i] = weight
    return blocks


# Rows (positions x nodes) below which a matmul over the decoder's last layer is limited by reading
# its weights rather than by arithmetic: ~ 2 * FLOP/s / (bytes/s) for float32 on a CPU.
MEMORY_BOUND_ROWS = 16


def merge_channel_families(rows: dict[tuple[int, int], int], memory_bound_rows: int = MEMORY_BOUND_ROWS
                           ) -> dict[tuple[int, int], tuple[int, int]]:
    """Map each (out, in) channel request to the family computed for it.

    Computing a request inside a larger family (more channel pairs, then sliced) reads no extra
    weights but does more arithmetic; with cost(pairs, rows) = pairs * max(rows, memory_bound_rows)
    requests are merged greedily while that lowers the total. Results do not depend on the merge
    (channel pairs are independent), only the time does.
    """
    families = {key: [key] for key in rows}
    total = dict(rows)

    def cost(key: tuple[int, int], n_rows: int) -> int:
        return key[0] * key[1] * max(n_rows, memory_bound_rows)

    while True:
        best, best_gain = None, 0
        for small in families:
            for big in families:
                if big == small or big[0] < small[0] or big[1] < small[1]:
                    continue
                gain = cost(small, total[small]) + cost(big, total[big]) - cost(big, total[big] + total[small])
                if gain > best_gain:
                    best, best_gain = (small, big), gain
        if best is None:
            break
        small, big = best
        families[big] += families.pop(small)
        total[big] += total.pop(small)
    return {request: key for key, members in families.items() for request in members}


def _assign(plan: _Plan, blocks: dict[int, torch.Tensor]) -> dict[int, Assignment]:
    """Write every assignment's tensors; returns id(parameter) -> assignment."""
    written: dict[int, Assignment] = {}
    for a in plan.assignments:
        block = blocks[a.node]
        for write in a.writes:
            param = write.target.parameter()
            if param is None:
                continue
            value = _finish(a, write, block)
            if tuple(value.shape) != tuple(param.shape):  # pragma: no cover - guarded by tile()
                raise GraphError(f"predicted {tuple(value.shape)} for {write.target.key} "
                                 f"of shape {tuple(param.shape)}")
            param.copy_(value)
            written[id(param)] = a
    return written


def _finish(a: Assignment, write: Write, block: torch.Tensor) -> torch.Tensor:
    """Predicted block -> normalised tensor of the target's shape (spec 3.7, 3.8)."""
    shape = write.target.shape
    if a.kind == "vector":
        block = block[write.row]
    elif a.kind == "conv" and len(shape) == 2:
        block = block[:, :, block.shape[2] // 2, block.shape[3] // 2]
    elif a.kind == "pos_embedding":
        tokens = block.reshape(1, block.shape[1], -1).transpose(1, 2)[:, : shape[1]]  # (1, s*s, in)
        class_token = torch.normal(mean=0.0, std=0.02, size=(1, 1, tokens.shape[2]), device=tokens.device)
        block = torch.cat((class_token, tokens), dim=1)
    if block.dim() < len(shape):  # e.g. a 1x1-conv classifier predicted as a 2-D weight
        block = block.reshape(*block.shape, *([1] * (len(shape) - block.dim())))
    return tile(normalize(block, shape, write.as_weight), shape)


def _use_batch_statistics(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.track_running_stats = False
            module.training = True


def _report(plan: _Plan, written: dict[int, Assignment], predict_class_layers: bool,
            timings: dict[str, float]) -> PredictionReport:
    node_of_param: dict[str, int] = {node.param: node.index for node in plan.graph.nodes
                                     if node.param is not None}
    named = list(plan.model.named_parameters())
    norms = torch.stack(torch._foreach_norm([p.detach().float() for _, p in named])).tolist() if named else []
    params: list[ParamReport] = []
    groups: dict[str, dict[str, float]] = {}
    for (name, param), norm in zip(named, norms):
        shape = tuple(param.shape)
        a = written.get(id(param))
        if a is not None:
            params.append(ParamReport(name, shape, True, node=a.node, kind=a.kind, group=a.key, norm=norm))
            stats = groups.setdefault(str(a.key), {"count": 0, "norm": 0.0})
            stats["count"] += 1
            stats["norm"] = math.hypot(stats["norm"], norm)
            continue
        node = node_of_param.get(name)
        if node is None:
            reason = "not in the graph (module type not supported by the GHN)"
        elif node in plan.unmatched:
            reason = plan.unmatched[node]
        elif not predict_class_layers and node >= len(plan.graph.nodes) - 2:
            reason = "classifier layer skipped (predict_class_layers=False)"
        else:
            reason = "not written by the GHN"
        params.append(ParamReport(name, shape, False, reason=reason, node=node, norm=norm))
    return PredictionReport(plan.graph.arch, params, groups, timings, list(plan.graph.warnings))
