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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ghnctl.bench import reference
from ghnctl.bench.data import data_identity, limit_eval_images
from ghnctl.bench.events import BenchStarted, CellDone, CellFailed, CellProgress, CellStarted, Emit, Note, ignore
from ghnctl.bench.ghns import GhnCache
from ghnctl.bench.stats import Summary, summarize
from ghnctl.bench.store import ResultStore, cell_key
from ghnctl.devices import check_device_name, resolve_device
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
        if not self.ghns:
            raise UsageError("no GHN given", hint="for example --ghn ghn3tm8")
        if not self.archs:
            raise UsageError("no architecture given", hint="for example --archs deepnets:test")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.eval_images is not None and self.eval_images < 1:
            raise UsageError(f"--eval-images must be at least 1, got {self.eval_images}")
        if self.image_size is not None and self.image_size < 8:
            raise UsageError(f"--image-size must be at least 8, got {self.image_size}")
        if self.workers is not None and self.workers < 0:
            raise UsageError(f"--workers must be >= 0, got {self.workers}")
        if self.seed < 0:
            raise UsageError(f"--seed must be >= 0, got {self.seed}")
        if len(set(self.ghns)) != len(self.ghns):
            raise UsageError("a GHN is given twice")
        object.__setattr__(self, "ghns", tuple(self.ghns))
        object.__setattr__(self, "archs", tuple(dict.fromkeys(self.archs)))  # each architecture once
        object.__setattr__(self, "device", check_device_name(self.device))

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
    evaluated_on, split, scorer = "no data: norms only", None, None
    notes: list[str] = []
    if data is not None:
        _check_classes(ghns, data.num_classes)
        data, evaluated_on = limit_eval_images(data, config.eval_images)
        split = data.info.val_source
        scorer = _Scorer(data, config, device, emit)
    data_id = data_identity(data, config.eval_images) if data is not None else None
    size = data.info.image_size if data is not None else config.image_size
    official = {spec: _official(ghn) for spec, ghn in ghns.items()}
    for spec, name in official.items():
        if name is not None:
            notes.append(f"{spec} is the official {name}: norms checked against {reference.SOURCE}")

    plan = []
    for arch in config.archs:
        for spec, ghn in ghns.items():
            classes = data.num_classes if data is not None else ghn.config.num_classes
            identity = {"bench": "ghn", "ghn": spec, "arch": arch, "num_classes": classes, "image_size": size,
                        "batch_size": config.batch_size, "seed": config.seed, "data": data_id}
            plan.append((len(plan), arch, spec, classes, cell_key(identity)))
    previous = store.load().cells if store is not None and resume else {}
    emit(BenchStarted("ghn", len(plan), sum(p[4] in previous for p in plan)))

    rows: list[GhnRow] = []
    reused = 0
    stopped = False
    for arch in config.archs:
        todo = []
        for index, a, spec, classes, key in plan:
            if a != arch:
                continue
            if key in previous:
                row = GhnRow.from_dict(previous[key])
                rows.append(row)
                reused += 1
                emit(CellDone(index, f"{spec} · {arch}", row.to_dict(), reused=True))
            else:
                todo.append((index, spec, classes, key))
        if stop is not None and stop():
            stopped = True
            break
        for classes in dict.fromkeys(t[2] for t in todo):  # one model per class count (usually one)
            group = [t for t in todo if t[2] == classes]
            stopped = _run_arch(arch, classes, size, group, ghns, official, config, scorer, device, store,
                                rows, emit, stop)
            if stopped:
                break
        if stopped:
            break
    return GhnBenchResult(config, data.info if data is not None else None, evaluated_on, split, rows,
                          len(plan), reused, stopped, time.perf_counter() - started, notes)


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


def _official(ghn: Any) -> str | None:
    return reference.official_name(ghn.source.name, ghn.config.hid, ghn.config.layers)


def _run_arch(
    arch: str, classes: int, size: int | None, group: Sequence[tuple[int, str, int, str]], ghns: Mapping[str, Any],
    official: Mapping[str, str | None], config: GhnBenchConfig, scorer: _Scorer | None, device: torch.device,
    store: ResultStore | None, rows: list[GhnRow], emit: Emit, stop: Callable[[], bool] | None,
) -> bool:
    """Build ``arch`` once, then predict and score it with each GHN of ``group``; True if stopped."""
    from ghnctl.graph import build_graph
    from ghnctl.zoo import resolve_model

    first = group[0]
    emit(CellStarted(first[0], f"{first[1]} · {arch}"))
    emit(CellProgress(first[0], 0.0, "building the model and its graph"))
    try:
        tick = time.perf_counter()
        built = resolve_model(arch, num_classes=classes, image_size=size, seed=config.seed)
        model = built.model.to(device)
        graph = build_graph(model, arch=built.arch, image_size=built.image_size)
        graph_s = time.perf_counter() - tick
    except UsageError:
        raise  # a misspelt model name is the user's to fix, not a result
    except GhnctlError as exc:
        for index, spec, _, key in group:
            _record(GhnRow(key, spec, arch, arch, classes, size, error=exc.message), index, store, rows, emit)
        return False
    n_params = sum(p.numel() for p in model.parameters())
    for n, (index, spec, _, key) in enumerate(group):
        if stop is not None and stop():
            return True
        if n > 0:
            emit(CellStarted(index, f"{spec} · {arch}"))
        base = GhnRow(key, spec, arch, built.arch, classes, built.image_size, n_params=n_params, graph_s=graph_s)
        try:
            row = _predict_and_score(base, ghns[spec], official[spec], model, graph, built, config, scorer, device,
                                     lambda f, d, i=index: emit(CellProgress(i, f, d)))
        except UsageError:
            raise
        except GhnctlError as exc:
            row = GhnRow(key, spec, arch, built.arch, classes, built.image_size, n_params=n_params, error=exc.message)
        _record(row, index, store, rows, emit)
    return False


def _record(row: GhnRow, index: int, store: ResultStore | None, rows: list[GhnRow], emit: Emit) -> None:
    if store is not None:
        store.append(row.to_dict())
    rows.append(row)
    label = f"{row.ghn} · {row.spec}"
    if row.error is not None:
        emit(CellFailed(index, label, row.error))
    else:
        emit(CellDone(index, label, row.to_dict()))


def norm_check(row: GhnRow, official: str | None, source: str, norm: float) -> reference.NormCheck | None:
    """The published-norm comparison, only where it applies: an official GHN-3, a torchvision model
    (``row.arch`` is its name) built with the published 1000 classes."""
    if official is None or source != "torchvision" or row.num_classes != reference.PUBLISHED_CLASSES:
        return None
    return reference.check_norm(official, row.arch, norm)


def _predict_and_score(
    base: GhnRow, ghn: Any, official: str | None, model: torch.nn.Module, graph: Any, built: Any,
    config: GhnBenchConfig, scorer: _Scorer | None, device: torch.device, progress: Callable[[float, str], None],
) -> GhnRow:
    from dataclasses import replace

    from ghnctl.predict import predict_parameters

    progress(0.05, "predicting parameters")
    devices = [device] if device.type == "cuda" else []
    tick = time.perf_counter()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)  # a ViT's class-token row is drawn at prediction time
        _, report = predict_parameters(ghn, model, graph, bn_track_running_stats=False, return_report=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    predict_s = time.perf_counter() - tick
    norm = report.total_norm
    row = replace(base, n_unpredicted=len(report.unpredicted), norm=norm,
                  norm_check=norm_check(base, official, built.source, norm), predict_s=predict_s)
    if scorer is None:
        return row
    progress(0.5, "evaluating (zero-shot)")
    tick = time.perf_counter()
    result = scorer(model)
    return replace(row, top1=result.accuracy, loss=result.loss, images=result.images,
                   eval_s=time.perf_counter() - tick)


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
