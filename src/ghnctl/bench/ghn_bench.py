"""``bench ghn``: zero-shot evaluation of one or more GHNs on a set of architectures.

For each architecture the model is built once (seeded) and its graph built once; each GHN then
predicts all its parameters (``ghnctl.predict_parameters``, BatchNorm switched to batch statistics
as the official evaluation does: predicted parameters come without running statistics), and the
model is scored on the data's test or validation split (``ghnctl.training.evaluate``, batch
statistics). What does not change from one architecture to the next is done once: the data, the
GHNs, the evaluation loader and its normaliser.

No fine-tuning happens here: every accuracy is zero-shot. Without data only the norms of the
predicted parameters are reported. For the official GHN-3 checkpoints those norms are compared with
the published values (``reference``) on ImageNet-sized (1000-class) torchvision models.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ghnctl.bench import reference
from ghnctl.bench.data import data_identity, limit_eval_images
from ghnctl.bench.events import BenchStarted, CellDone, CellFailed, CellProgress, CellStarted, Emit, Note, ignore
from ghnctl.bench.ghns import GhnCache, normalise_ghn_grid
from ghnctl.bench.grid import GridCell, plan_grid, walk_grid
from ghnctl.bench.stats import Summary, summarize
from ghnctl.bench.store import ResultStore
from ghnctl.devices import resolve_device
from ghnctl.errors import GhnctlError, UsageError
from ghnctl.training.data import DataBundle, DataInfo

OFFICIAL_EVAL_BATCH = 64  # ppuda's --test_batch_size default, used by the official eval_ghn.py


@dataclass(frozen=True)
class GhnBenchConfig:
    """What to evaluate. Validated on construction (UsageError, exit 2).

    ``batch_size`` matters: with BatchNorm batch statistics the accuracy depends on the batches,
    so it is part of every cell's key (default: the official evaluation's 64). ``image_size`` None
    takes the data's size, or without data the model's own default (224; 299 for inception_v3;
    32 for DeepNets nets).
    """

    ghns: tuple[str, ...]
    archs: tuple[str, ...]
    arch_set: str = ""  # how the set was named (--archs), for titles
    image_size: int | None = None
    eval_images: int | None = None
    batch_size: int = OFFICIAL_EVAL_BATCH
    workers: int | None = None
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        normalise_ghn_grid(self, "deepnets:test")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.eval_images is not None and self.eval_images < 1:
            raise UsageError(f"--eval-images must be at least 1, got {self.eval_images}")
        if self.workers is not None and self.workers < 0:
            raise UsageError(f"--workers must be >= 0, got {self.workers}")
        if self.seed < 0:
            raise UsageError(f"--seed must be >= 0, got {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GhnRow:
    """One GHN on one architecture (``error`` set when it could not be built or predicted)."""

    key: str
    ghn: str
    spec: str
    arch: str
    num_classes: int
    image_size: int | None
    n_params: int = 0
    n_unpredicted: int = 0
    top1: float | None = None
    loss: float | None = None
    images: int = 0
    norm: float | None = None
    norm_check: reference.NormCheck | None = None
    graph_s: float | None = None
    predict_s: float | None = None
    eval_s: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["norm_check"] = self.norm_check.to_dict() if self.norm_check else None
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GhnRow:
        names = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in names}
        check = values.get("norm_check")
        if check is not None:
            values["norm_check"] = reference.NormCheck(check["published"], check["measured"], check["key"])
        return cls(**values)


@dataclass(frozen=True)
class GhnSummary:
    """One GHN over the architectures that worked."""

    ghn: str
    n_ok: int
    n_failed: int
    top1: Summary
    norm: Summary
    checks: tuple[bool, ...]

    @property
    def norm_check_text(self) -> str:
        if not self.checks:
            return "-"
        return f"{sum(self.checks)}/{len(self.checks)} match"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ghn": self.ghn, "architectures": self.n_ok, "failed": self.n_failed,
            "top1": {**self.top1.to_dict(), "median": self.top1.median, "max": self.top1.max},
            "norm": self.norm.to_dict(),
            "norm_checks": {"matched": sum(self.checks), "checked": len(self.checks)},
        }


@dataclass
class GhnBenchResult:
    config: GhnBenchConfig
    data: DataInfo | None
    evaluated_on: str
    split: str | None  # "test", "val" or "split" (held out from train); None without data
    rows: list[GhnRow]
    total: int
    reused: int
    stopped: bool
    wall_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def has_accuracy(self) -> bool:
        return self.data is not None

    @property
    def arch_set(self) -> str:
        return self.config.arch_set or f"{len(self.config.archs)} architecture(s)"

    @property
    def summaries(self) -> list[GhnSummary]:
        out = []
        for ghn in self.config.ghns:
            mine = [r for r in self.rows if r.ghn == ghn]
            ok = [r for r in mine if r.error is None]
            out.append(GhnSummary(
                ghn=ghn, n_ok=len(ok), n_failed=len(mine) - len(ok),
                top1=summarize(r.top1 for r in ok), norm=summarize(r.norm for r in ok),
                checks=tuple(r.norm_check.ok for r in ok if r.norm_check is not None),
            ))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "bench": "ghn",
            "settings": self.config.to_dict(),
            "data": self.data.to_dict() if self.data else None,
            "evaluated_on": self.evaluated_on,
            "split": self.split,
            "zero_shot": True,
            "cells_total": self.total,
            "cells_finished": len(self.rows),
            "cells_reused": self.reused,
            "stopped": self.stopped,
            "wall_s": round(self.wall_s, 3),
            "summary": [s.to_dict() for s in self.summaries],
            "rows": [r.to_dict() for r in self.rows],
            "notes": self.notes,
            "norm_reference": reference.SOURCE,
        }


# --------------------------------------------------------------------------------------------
# the run


def run_ghn_bench(
    config: GhnBenchConfig,
    data: DataBundle | None,
    *,
    store: ResultStore | None = None,
    resume: bool = False,
    ghn_paths: Mapping[str, Path] | None = None,
    on_event: Emit | None = None,
    stop: Callable[[], bool] | None = None,
) -> GhnBenchResult:
    """Evaluate every GHN on every architecture not already in ``store`` (with ``resume``)."""
    emit = on_event or ignore
    started = time.perf_counter()
    device = resolve_device(config.device)
    cache = GhnCache(ghn_paths, device)
    ghns = {spec: cache.get(spec) for spec in config.ghns}  # all loaded (and checked) before any work
    evaluated_on, scorer = "no data: norms only", None
    if data is not None:
        _check_classes(ghns, data.num_classes)
        data, evaluated_on = limit_eval_images(data, config.eval_images)
        scorer = _Scorer(data, config, device, emit)
    run = _Run(config, ghns, data, scorer, device, store, emit, stop)
    data_id = data_identity(data, config.eval_images) if data is not None else None

    def identity(arch: str, ghn: str, classes: int) -> dict[str, Any]:
        return {"bench": "ghn", "ghn": ghn, "arch": arch, "num_classes": classes, "image_size": run.size,
                "batch_size": config.batch_size, "seed": config.seed, "data": data_id}

    classes = {spec: data.num_classes if data is not None else ghn.config.num_classes for spec, ghn in ghns.items()}
    cells = plan_grid(config.archs, classes, identity)
    previous = store.load().cells if store is not None and resume else {}
    emit(BenchStarted("ghn", len(cells), sum(c.key in previous for c in cells)))
    rows, reused, stopped = walk_grid(cells, previous, GhnRow.from_dict, run.arch, emit, stop)
    notes = [f"{spec} is the official {name}: norms checked against {reference.SOURCE}"
             for spec, name in run.official.items() if name is not None]
    return GhnBenchResult(config, data.info if data is not None else None, evaluated_on,
                          data.info.val_source if data is not None else None, rows, len(cells), reused, stopped,
                          time.perf_counter() - started, notes)


def _check_classes(ghns: Mapping[str, Any], num_classes: int) -> None:
    """Zero-shot accuracy needs a GHN that predicts the data's classifier."""
    for spec, ghn in ghns.items():
        if ghn.config.num_classes != num_classes:
            raise UsageError(
                f"GHN {spec!r} predicts {ghn.config.num_classes} classes and the data has {num_classes}: "
                "its zero-shot accuracy would be that of a random classifier",
                hint="use a GHN trained on these classes, drop --data to compare norms only, "
                     "or fine-tune with `ghnctl bench init`",
            )


def norm_check(row: GhnRow, official: str | None, source: str, norm: float) -> reference.NormCheck | None:
    """The published-norm comparison, only where it applies: an official GHN-3, a torchvision model
    (``row.arch`` is its name) built with the published 1000 classes."""
    if official is None or source != "torchvision" or row.num_classes != reference.PUBLISHED_CLASSES:
        return None
    return reference.check_norm(official, row.arch, norm)


class _Run:
    """What every architecture of one run shares: the GHNs, the scorer, the device, the results file."""

    def __init__(self, config: GhnBenchConfig, ghns: Mapping[str, Any], data: DataBundle | None,
                 scorer: _Scorer | None, device: torch.device, store: ResultStore | None, emit: Emit,
                 stop: Callable[[], bool] | None) -> None:
        self.config, self.ghns, self.scorer, self.device = config, ghns, scorer, device
        self.store, self.emit, self.stop = store, emit, stop
        self.size = data.info.image_size if data is not None else config.image_size
        self.official = {spec: reference.official_name(g.source.name, g.config.hid, g.config.layers)
                         for spec, g in ghns.items()}

    def arch(self, arch: str, group: list[GridCell], rows: list[GhnRow]) -> bool:
        """Build ``arch`` once, then predict and score it with each GHN of ``group``; True if stopped."""
        from ghnctl.graph import build_graph
        from ghnctl.zoo import resolve_model

        classes = group[0].num_classes
        self.emit(CellStarted(group[0].index, group[0].label))
        self.emit(CellProgress(group[0].index, 0.0, "building the model and its graph"))
        try:
            tick = time.perf_counter()
            built = resolve_model(arch, num_classes=classes, image_size=self.size, seed=self.config.seed)
            model = built.model.to(self.device)
            graph = build_graph(model, arch=built.arch, image_size=built.image_size)
            graph_s = time.perf_counter() - tick
        except UsageError:
            raise  # a misspelt model name is the user's to fix, not a result
        except GhnctlError as exc:
            for cell in group:
                self._record(GhnRow(cell.key, cell.ghn, arch, arch, classes, self.size, error=exc.message), cell, rows)
            return False
        n_params = sum(p.numel() for p in model.parameters())
        for n, cell in enumerate(group):
            if self.stop is not None and self.stop():
                return True
            if n > 0:
                self.emit(CellStarted(cell.index, cell.label))
            base = GhnRow(cell.key, cell.ghn, arch, built.arch, classes, built.image_size, n_params=n_params,
                          graph_s=graph_s)
            try:
                row = self._predict_and_score(base, cell, model, graph, built.source)
            except UsageError:
                raise
            except GhnctlError as exc:
                row = replace(base, error=exc.message)
            self._record(row, cell, rows)
        return False

    def _predict_and_score(self, base: GhnRow, cell: GridCell, model: torch.nn.Module, graph: Any,
                           source: str) -> GhnRow:
        from ghnctl.predict import predict_parameters

        self.emit(CellProgress(cell.index, 0.05, "predicting parameters"))
        tick = time.perf_counter()
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.config.seed)  # a ViT's class-token row is drawn at prediction time
            _, report = predict_parameters(self.ghns[cell.ghn], model, graph, bn_track_running_stats=False,
                                           return_report=True)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        norm = report.total_norm
        row = replace(base, n_unpredicted=len(report.unpredicted), norm=norm, predict_s=time.perf_counter() - tick,
                      norm_check=norm_check(base, self.official[cell.ghn], source, norm))
        if self.scorer is None:
            return row
        self.emit(CellProgress(cell.index, 0.5, "evaluating (zero-shot)"))
        tick = time.perf_counter()
        result = self.scorer(model)
        return replace(row, top1=result.accuracy, loss=result.loss, images=result.images,
                       eval_s=time.perf_counter() - tick)

    def _record(self, row: GhnRow, cell: GridCell, rows: list[GhnRow]) -> None:
        if self.store is not None:
            self.store.append(row.to_dict())
        rows.append(row)
        if row.error is not None:
            self.emit(CellFailed(cell.index, cell.label, row.error))
        else:
            self.emit(CellDone(cell.index, cell.label, row.to_dict()))


class _Scorer:
    """The evaluation loader and normaliser, made once, used for every architecture."""

    def __init__(self, data: DataBundle, config: GhnBenchConfig, device: torch.device, emit: Emit) -> None:
        from ghnctl.training.loaders import default_workers, eval_loader
        from ghnctl.training.transforms import Normalizer

        workers = config.workers if config.workers is not None else default_workers(device)
        self.loader = eval_loader(data, config.batch_size, workers, pin_memory=device.type == "cuda")
        self.normalizer = Normalizer(data.info.mean, data.info.std, device)
        self.device = device
        self.num_classes = data.num_classes
        self.emit = emit
        self.bad: set[str] = set()  # unreadable images already reported (the same ones every time)

    def __call__(self, model: torch.nn.Module) -> Any:
        from ghnctl.training.evaluate import evaluate

        result = evaluate(model, self.loader, device=self.device, normalizer=self.normalizer, batch_stats=True,
                          num_classes=self.num_classes)
        fresh = [name for name, _ in result.bad if name not in self.bad]
        if fresh:
            self.bad.update(fresh)
            self.emit(Note(f"skipping {len(fresh)} unreadable image(s): {', '.join(fresh[:3])}", warning=True))
        return result
