"""Predict the parameters of models with a GHN, write them into the models, report what was done.

* ``predict_parameters(ghn, model)`` gives what the official ``ghn(model)`` gives with its defaults
  (``keep_grads=False, bn_track_running_stats=True, predict_class_layers=True, reduce_graph=False``),
  to float32 rounding. It plans, decodes without gradients and writes with ``ghnctl.ghn.decoding``
  (whose ``decode_parameters`` is also the differentiable path used for training), and reports.
* ``init_model(ghn, model, seed=, noise=)`` is the one way every command initialises a model from
  a GHN: seeded prediction, the recipe's noise, and the metadata that goes into saved files.

Nothing is printed; ``on_progress(stage, done, total)`` reports progress, and
``return_report=True`` also returns a ``PredictionReport`` per model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

import torch
from torch import nn

from .ghn.decoding import PredictionPlan, decode_parameters, plan_prediction, write_parameters

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
# The engine: plan, decode (no gradients), write, report

def _predict(ghn: GHN, models: list[nn.Module], graphs: list[GhnGraph | None], *,
             predict_class_layers: bool, bn_track_running_stats: bool,
             progress: ProgressFn | None) -> list[PredictionReport]:
    notify = progress or (lambda stage, done, total: None)
    plans: list[PredictionPlan] = []
    graph_seconds: list[float] = []
    match_seconds: list[float] = []
    for i, (model, graph) in enumerate(zip(models, graphs)):
        notify("graph", i, len(models))
        start = time.perf_counter()
        if graph is None:
            graph = build_graph_for(model)
        graph_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        plans.append(plan_prediction(ghn.config, model, graph, predict_class_layers=predict_class_layers))
        match_seconds.append(time.perf_counter() - start)
    notify("graph", len(models), len(models))

    notify("forward", 0, 1)
    start = time.perf_counter()
    with torch.no_grad():
        predicted = decode_parameters(ghn, plans)
    forward_seconds = time.perf_counter() - start
    notify("forward", 1, 1)

    reports = []
    for i, (plan, tensors) in enumerate(zip(plans, predicted)):
        notify("assign", i, len(plans))
        start = time.perf_counter()
        write_parameters(plan.model, tensors)
        if not bn_track_running_stats:
            _use_batch_statistics(plan.model)
        assign_seconds = time.perf_counter() - start + match_seconds[i]
        reports.append(_report(plan, predict_class_layers, {
            "graph": graph_seconds[i], "forward": forward_seconds, "assign": assign_seconds,
            "total": graph_seconds[i] + forward_seconds + assign_seconds}))
    notify("assign", len(plans), len(plans))
    return reports


def build_graph_for(model: nn.Module) -> GhnGraph:
    """The model's graph with the default tracing options (named after the model's class)."""
    from .graph import build_graph

    return build_graph(model, arch=type(model).__name__)


@dataclass
class InitResult:
    """What ``init_model`` did: the prediction report, the perturbations, and file metadata."""

    report: PredictionReport
    noised: int
    orthogonalized: int
    metadata: dict[str, str]


def init_model(ghn: GHN, model: nn.Module, graph: GhnGraph | None = None, *, seed: int = 0,
               noise: float = 0.0, orth: bool = False, predict_class_layers: bool = True,
               on_progress: ProgressFn | None = None) -> InitResult:
    """Initialise ``model`` in place from ``ghn``; the same ``seed`` gives the same parameters.

    The global RNG (CPU and the model's accelerator) is forked and seeded with ``seed`` for the
    prediction (a ViT's class-token row is drawn from it), so the caller's RNG state is untouched.
    Then the fine-tuning recipe's noise (``noise`` = beta, 0 = none) and, with ``orth``, the
    orthogonalisation (``ghnctl.perturb``) are applied; the noise has its own seeded generator.
    BN running statistics are tracked (spec section 6). ``metadata`` holds string values for a
    safetensors header: GHN name and sha256, seed, noise, orth, counts, versions and time.
    """
    from . import __version__
    from .perturb import perturb_

    devices = [p.device for p in model.parameters() if p.device.type == "cuda"][:1]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        _, report = predict_parameters(ghn, model, graph, predict_class_layers=predict_class_layers,
                                       return_report=True, on_progress=on_progress)
    noised, orthed = perturb_(model, noise=noise, orth=orth, seed=seed)
    source = ghn.source
    metadata = {
        "format": "ghnctl.prediction/1",
        "ghnctl_version": __version__,
        "ghn": source.name,
        "ghn_sha256": source.sha256,
        "ghn_config": ghn.config.to_json(),
        "torch_version": torch.__version__,
        "seed": str(seed),
        "noise": str(noise),
        "orth": str(orth).lower(),
        "classifier_predicted": str(predict_class_layers).lower(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "predicted": str(len(report.predicted)),
        "unpredicted": ",".join(p.name for p in report.unpredicted),
    }
    return InitResult(report, noised, orthed, metadata)


def _use_batch_statistics(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.track_running_stats = False
            module.training = True


def _report(plan: PredictionPlan, predict_class_layers: bool, timings: dict[str, float]) -> PredictionReport:
    written = {id(write.target.parameter()): a for a in plan.assignments for write in a.writes
               if write.target.parameter() is not None}
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
