"""``bench speed``: how long building the graph and predicting the parameters take, and the memory.

Per architecture the model is built once; ``ghnctl.build_graph`` is timed ``warmup + repeats``
times (the graph does not depend on the GHN); then per GHN ``ghnctl.predict_parameters`` with that
graph given is timed the same way, with its own split into GHN forward and assignment
(``PredictionReport.timings``). Reported: the median of the timed repeats (the warm-up runs are
dropped: first calls pay for imports, caches and allocator growth), every timed run, and the peak
memory while predicting (``memory``: which measure is named in the result).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ghnctl.bench import memory
from ghnctl.bench.events import BenchStarted, CellDone, CellFailed, CellProgress, CellStarted, Emit, ignore
from ghnctl.bench.ghns import GhnCache, normalise_ghn_grid
from ghnctl.bench.grid import GridCell, plan_grid, walk_grid
from ghnctl.bench.store import ResultStore
from ghnctl.devices import resolve_device
from ghnctl.errors import GhnctlError, UsageError


@dataclass(frozen=True)
class SpeedConfig:
    """What to time. Validated on construction (UsageError, exit 2).

    ``num_classes`` None builds each model with its GHN's number of classes (the GHN then predicts
    the classifier too, as in real use); ``image_size`` None uses the model's default input.
    """

    ghns: tuple[str, ...]
    archs: tuple[str, ...]
    arch_set: str = ""
    image_size: int | None = None
    num_classes: int | None = None
    repeats: int = 5
    warmup: int = 1
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        normalise_ghn_grid(self, "resnet18,resnet50")
        if self.repeats < 1:
            raise UsageError(f"--repeats must be at least 1, got {self.repeats}")
        if self.warmup < 0:
            raise UsageError(f"--warmup must be >= 0, got {self.warmup}")
        if self.num_classes is not None and self.num_classes < 1:
            raise UsageError(f"--num-classes must be at least 1, got {self.num_classes}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SpeedRow:
    """One GHN on one architecture: medians in seconds, every timed run, peak memory in MB."""

    key: str
    ghn: str
    spec: str
    arch: str
    nodes: int = 0
    graph_s: float = 0.0
    predict_s: float = 0.0
    forward_s: float = 0.0
    assign_s: float = 0.0
    graph_runs_s: tuple[float, ...] = ()
    predict_runs_s: tuple[float, ...] = ()
    peak_rss_mb: float | None = None
    rss_increase_mb: float | None = None
    peak_cuda_mb: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["graph_runs_s"], out["predict_runs_s"] = list(self.graph_runs_s), list(self.predict_runs_s)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpeedRow:
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for name in ("graph_runs_s", "predict_runs_s"):
            values[name] = tuple(values.get(name, ()))
        return cls(**values)


@dataclass
class SpeedResult:
    config: SpeedConfig
    rows: list[SpeedRow]
    device: str
    threads: int
    memory_method: str
    total: int
    reused: int
    stopped: bool
    wall_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def to_dict(self) -> dict[str, Any]:
        return {
            "bench": "speed", "settings": self.config.to_dict(), "device": self.device, "threads": self.threads,
            "memory_method": self.memory_method, "cells_total": self.total, "cells_finished": len(self.rows),
            "cells_reused": self.reused, "stopped": self.stopped, "wall_s": round(self.wall_s, 3),
            "rows": [r.to_dict() for r in self.rows], "notes": self.notes,
        }


def run_speed(
    config: SpeedConfig,
    *,
    store: ResultStore | None = None,
    resume: bool = False,
    ghn_paths: Mapping[str, Path] | None = None,
    on_event: Emit | None = None,
    stop: Callable[[], bool] | None = None,
) -> SpeedResult:
    """Time every GHN on every architecture not already in ``store`` (with ``resume``)."""
    emit = on_event or ignore
    started = time.perf_counter()
    device = resolve_device(config.device)
    cache = GhnCache(ghn_paths, device)
    ghns = {spec: cache.get(spec) for spec in config.ghns}
    threads = torch.get_num_threads()

    def identity(arch: str, ghn: str, classes: int) -> dict[str, Any]:
        return {"bench": "speed", "ghn": ghn, "arch": arch, "num_classes": classes, "image_size": config.image_size,
                "repeats": config.repeats, "warmup": config.warmup, "device": str(device), "threads": threads}

    classes = {spec: config.num_classes or ghn.config.num_classes for spec, ghn in ghns.items()}
    cells = plan_grid(config.archs, classes, identity)
    previous = store.load().cells if store is not None and resume else {}
    emit(BenchStarted("speed", len(cells), sum(c.key in previous for c in cells)))

    def time_arch(arch: str, group: list[GridCell], rows: list[SpeedRow]) -> bool:
        _time_arch(arch, group, ghns, config, device, store, rows, emit)
        return False  # an architecture's timings are not cut short: stop() is polled between architectures

    rows, reused, stopped = walk_grid(cells, previous, SpeedRow.from_dict, time_arch, emit, stop)
    return SpeedResult(config, rows, str(device), threads, memory.method(), len(cells), reused, stopped,
                       time.perf_counter() - started)


def _time_arch(
    arch: str, group: list[GridCell], ghns: Mapping[str, Any], config: SpeedConfig, device: torch.device,
    store: ResultStore | None, rows: list[SpeedRow], emit: Emit,
) -> None:
    """Build ``arch`` once and time its graph, then time the prediction of each GHN of ``group``."""
    from ghnctl.graph import build_graph
    from ghnctl.zoo import resolve_model

    emit(CellStarted(group[0].index, group[0].label))
    emit(CellProgress(group[0].index, 0.0, "timing the graph"))
    try:
        built = resolve_model(arch, num_classes=group[0].num_classes, image_size=config.image_size, seed=config.seed)
        model = built.model.to(device)
        graph_runs, graph = _repeat(lambda: build_graph(model, arch=built.arch, image_size=built.image_size),
                                    config, device)
    except UsageError:
        raise
    except GhnctlError as exc:
        for cell in group:
            _record(SpeedRow(cell.key, cell.ghn, arch, arch, error=exc.message), cell, store, rows, emit)
        return
    base = dict(spec=arch, arch=built.arch, nodes=graph.num_nodes, graph_s=statistics.median(graph_runs),
                graph_runs_s=tuple(graph_runs))
    for n, cell in enumerate(group):
        if n > 0:
            emit(CellStarted(cell.index, cell.label))
        emit(CellProgress(cell.index, 0.5, "timing the prediction"))
        try:
            row = _time_predict(SpeedRow(cell.key, cell.ghn, **base), ghns[cell.ghn], model, graph, config, device)
        except GhnctlError as exc:
            row = SpeedRow(cell.key, cell.ghn, arch, built.arch, nodes=graph.num_nodes, error=exc.message)
        _record(row, cell, store, rows, emit)


def _time_predict(base: SpeedRow, ghn: Any, model: torch.nn.Module, graph: Any, config: SpeedConfig,
                  device: torch.device) -> SpeedRow:
    from ghnctl.predict import predict_parameters

    reports: list[Any] = []

    def predict() -> None:
        reports.append(predict_parameters(ghn, model, graph, return_report=True)[1])

    with memory.PeakMemory(device) as peak:
        runs, _ = _repeat(predict, config, device)
    timed = reports[config.warmup:]
    return replace(
        base, predict_s=statistics.median(runs), predict_runs_s=tuple(runs),
        forward_s=statistics.median(r.timings["forward"] for r in timed),
        assign_s=statistics.median(r.timings["assign"] for r in timed),
        peak_rss_mb=peak.peak_rss_mb, rss_increase_mb=peak.rss_increase_mb, peak_cuda_mb=peak.peak_cuda_mb,
    )


def _repeat(work: Callable[[], Any], config: SpeedConfig, device: torch.device) -> tuple[list[float], Any]:
    """Run ``work`` ``warmup + repeats`` times; the wall times of the timed runs and the last result."""
    times = []
    result = None
    for i in range(config.warmup + config.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        tick = time.perf_counter()
        with torch.no_grad():
            result = work()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= config.warmup:
            times.append(time.perf_counter() - tick)
    return times, result


def _record(row: SpeedRow, cell: GridCell, store: ResultStore | None, rows: list[SpeedRow], emit: Emit) -> None:
    if store is not None:
        store.append(row.to_dict())
    rows.append(row)
    if row.error is not None:
        emit(CellFailed(cell.index, cell.label, row.error))
    else:
        emit(CellDone(cell.index, cell.label, row.to_dict()))
