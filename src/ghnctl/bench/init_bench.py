"""``bench init``: models x initialisations x seeds, accuracy before and after fine-tuning.

Every cell (one model, one init, one seed) is an ordinary ``ghnctl.training.finetune`` run: the
model is built with the seed (``ghnctl.zoo.resolve_model``), initialised (``random``, ``file:PATH``
through ``ghnctl.inits.apply_init``, ``ghn`` through ``ghnctl.predict.init_model`` with the GHN
loaded once and the model's graph built once), then fine-tuned with the same recipe
``ghnctl finetune`` uses. Epoch 0 of its history is the model before any optimizer step and is
labelled "no fine-tuning" (``labels``); the others "fine-tuned N epoch(s)".

Finished cells go to the results file at once (``store``); with ``resume`` the cells whose key is
already there are read back instead of recomputed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ghnctl.bench.data import data_identity, limit_eval_images
from ghnctl.bench.events import BenchStarted, CellDone, CellProgress, CellStarted, Emit, Note, ignore
from ghnctl.bench.ghns import GhnCache
from ghnctl.bench.labels import epoch_label
from ghnctl.bench.stats import Summary, summarize
from ghnctl.bench.store import ResultStore, cell_key
from ghnctl.errors import UsageError
from ghnctl.inits import InitSpec
from ghnctl.training import events as ft_events
from ghnctl.training.configs import config_from_fields, field_names
from ghnctl.training.data import DataBundle, DataInfo
from ghnctl.training.finetune import FinetuneConfig, finetune

# Fields a cell sets itself: its seed, and what its init implies (the lower lr default for
# parameters that come from elsewhere, BatchNorm batch statistics for an untrained GHN model).
PER_CELL_FIELDS = frozenset({"seed", "pretrained_init", "bn_batch_stats_epoch0"})


def parse_inits(text: str, ghn: str, noise: float, orth: bool) -> tuple[InitSpec, ...]:
    """``"ghn,random,file:w.safetensors,ghn:other.pt"`` -> InitSpecs (``ghn`` uses ``--ghn``)."""
    specs: list[InitSpec] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item.startswith("ghn:"):
            specs.append(InitSpec("ghn", ghn=item[len("ghn:"):].strip(), noise=noise, orth=orth))
        else:
            specs.append(InitSpec.parse(item, ghn=ghn, noise=noise, orth=orth))
    if not specs:
        raise UsageError("--inits is empty", hint="for example --inits ghn,random")
    labels = [s.label for s in specs]
    twice = [label for i, label in enumerate(labels) if label in labels[:i]]
    if twice:
        raise UsageError(f"--inits names {twice[0]} twice")
    return tuple(specs)


def parse_seeds(text: str, first: int = 0) -> tuple[int, ...]:
    """``"3"`` -> ``first .. first+2``; ``"0,4,7"`` -> those seeds."""
    text = text.strip()
    try:
        if "," in text:
            seeds = tuple(int(part) for part in text.split(",") if part.strip())
        else:
            count = int(text)
            if count < 1:
                raise UsageError(f"--seeds must be at least 1, got {count}")
            seeds = tuple(range(first, first + count))
    except ValueError:
        raise UsageError(f"--seeds {text!r} is neither a count nor a comma list of seeds",
                         hint="for example --seeds 3 or --seeds 0,1,5") from None
    if not seeds or any(s < 0 for s in seeds):
        raise UsageError(f"--seeds {text!r}: seeds are integers >= 0")
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text!r} repeats a seed")
    return seeds


@dataclass(frozen=True)
class InitBenchConfig:
    """What to compare. Validated on construction (UsageError, exit 2).

    ``training`` holds ``FinetuneConfig`` fields by name (other names are ignored, so a command
    can pass all its option values); the per-cell fields (``PER_CELL_FIELDS``) are set by each cell.
    ``eval_images`` scores every cell on a seeded subset of the validation images (None: all).
    """

    models: tuple[str, ...]
    inits: tuple[InitSpec, ...]
    seeds: tuple[int, ...] = (0,)
    training: Mapping[str, Any] = field(default_factory=dict)
    eval_images: int | None = None

    def __post_init__(self) -> None:
        models = tuple(m.strip() for m in self.models if m.strip())
        if not models:
            raise UsageError("no MODEL given", hint="for example: ghnctl bench init resnet18 --data cifar10")
        if len(set(models)) != len(models):
            raise UsageError("a MODEL is given twice")
        if not self.inits:
            raise UsageError("--inits is empty", hint="for example --inits ghn,random")
        if not self.seeds or any(s < 0 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise UsageError(f"seeds must be distinct integers >= 0, got {list(self.seeds)}")
        if self.eval_images is not None and self.eval_images < 1:
            raise UsageError(f"--eval-images must be at least 1, got {self.eval_images}")
        names = field_names(FinetuneConfig) - PER_CELL_FIELDS
        object.__setattr__(self, "models", models)
        object.__setattr__(self, "inits", tuple(self.inits))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "training", {k: v for k, v in self.training.items() if k in names})
        for init in self.inits:  # every recipe is checked before any work starts
            self.finetune_config(init, self.seeds[0])

    def finetune_config(self, init: InitSpec, seed: int) -> FinetuneConfig:
        """The fine-tuning config of one cell: the common settings, its seed, its init's defaults."""
        return config_from_fields(
            FinetuneConfig, self.training, seed=seed, pretrained_init=init.pretrained,
            bn_batch_stats_epoch0=init.kind == "ghn",
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": list(self.models),
            "inits": [i.to_dict() for i in self.inits],
            "seeds": list(self.seeds),
            "training": dict(self.training),
            "eval_images": self.eval_images,
        }


# --------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class EpochPoint:
    """Validation accuracy of one cell after ``steps`` optimizer steps (epoch 0: none)."""

    epoch: int
    steps: int
    partial: bool
    label: str
    val_acc: float | None
    val_loss: float | None
    train_loss: float | None
    train_acc: float | None

    @classmethod
    def from_record(cls, record: ft_events.EpochRecord) -> EpochPoint:
        steps = record.global_step if record.epoch > 0 else 0
        return cls(
            epoch=record.epoch, steps=steps, partial=record.partial,
            label=epoch_label(record.epoch, steps, record.partial),
            val_acc=record.val_acc, val_loss=record.val_loss,
            train_loss=record.train_loss, train_acc=record.train_acc,
        )


@dataclass(frozen=True)
class InitCell:
    """One finished cell: a model, an init, a seed, and its accuracy curve."""

    key: str
    model: str
    arch: str
    init: str  # the init's label: random, ghn:ghn3tm8, file:PATH
    seed: int
    points: tuple[EpochPoint, ...]
    lr: float
    steps_per_epoch: int
    total_steps: int
    wall_s: float
    notes: tuple[str, ...] = ()
    identity: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["points"] = [asdict(p) for p in self.points]
        out["notes"] = list(self.notes)
        out["identity"] = dict(self.identity)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InitCell:
        points = []
        for p in data["points"]:
            # The label is recomputed from the steps: a hand-edited file cannot rename a column.
            point = {k: p[k] for k in ("epoch", "steps", "partial", "val_acc", "val_loss", "train_loss", "train_acc")}
            points.append(EpochPoint(label=epoch_label(point["epoch"], point["steps"], point["partial"]), **point))
        return cls(
            key=str(data["key"]), model=data["model"], arch=data["arch"], init=data["init"], seed=int(data["seed"]),
            points=tuple(points), lr=float(data["lr"]), steps_per_epoch=int(data["steps_per_epoch"]),
            total_steps=int(data["total_steps"]), wall_s=float(data["wall_s"]), notes=tuple(data.get("notes", ())),
            identity=dict(data.get("identity", {})),
        )


@dataclass(frozen=True)
class PointSummary:
    """One column of one row: an epoch's accuracy over the seeds."""

    epoch: int
    steps: int
    label: str
    acc: Summary
    loss: Summary

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "steps": self.steps, "label": self.label,
                "val_acc": self.acc.to_dict(), "val_loss": self.loss.to_dict()}


@dataclass(frozen=True)
class InitRow:
    """One model x init over its seeds."""

    model: str
    arch: str
    init: str
    seeds: tuple[int, ...]
    points: tuple[PointSummary, ...]
    lr: float

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "arch": self.arch, "init": self.init, "seeds": list(self.seeds), "lr": self.lr,
                "points": [p.to_dict() for p in self.points]}


def aggregate(cells: Sequence[InitCell]) -> list[InitRow]:
    """Rows of model x init (in the order the cells come), each epoch's accuracy over the seeds."""
    groups: dict[tuple[str, str], list[InitCell]] = {}
    for cell in cells:
        groups.setdefault((cell.model, cell.init), []).append(cell)
    rows = []
    for (model, init), members in groups.items():
        epochs = sorted({p.epoch for c in members for p in c.points})
        points = []
        for epoch in epochs:
            at = [p for c in members for p in c.points if p.epoch == epoch]
            first = at[0]
            points.append(PointSummary(
                epoch=epoch, steps=first.steps, label=first.label,
                acc=summarize(p.val_acc for p in at), loss=summarize(p.val_loss for p in at),
            ))
        rows.append(InitRow(model, members[0].arch, init, tuple(c.seed for c in members), tuple(points),
                            members[0].lr))
    return rows


@dataclass
class InitBenchResult:
    config: InitBenchConfig
    data: DataInfo
    evaluated_on: str  # which images the accuracies are measured on, in words
    cells: list[InitCell]
    total: int  # cells this run asked for
    reused: int  # of which read back from the results file
    stopped: bool
    wall_s: float

    @property
    def rows(self) -> list[InitRow]:
        return aggregate(self.cells)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bench": "init",
            "settings": self.config.to_dict(),
            "data": self.data.to_dict(),
            "evaluated_on": self.evaluated_on,
            "cells_total": self.total,
            "cells_finished": len(self.cells),
            "cells_reused": self.reused,
            "stopped": self.stopped,
            "wall_s": round(self.wall_s, 3),
            "rows": [r.to_dict() for r in self.rows],
            "cells": [c.to_dict() for c in self.cells],
        }


# --------------------------------------------------------------------------------------------
# the run


@dataclass(frozen=True)
class _Cell:
    index: int
    model: str
    init: InitSpec
    seed: int
    key: str
    identity: Mapping[str, Any]

    @property
    def label(self) -> str:
        return f"{self.model} · {self.init.label} · seed {self.seed}"


def run_init_bench(
    config: InitBenchConfig,
    data: DataBundle,
    *,
    store: ResultStore | None = None,
    resume: bool = False,
    ghn_paths: Mapping[str, Path] | None = None,
    on_event: Emit | None = None,
    stop: Callable[[], bool] | None = None,
) -> InitBenchResult:
    """Run every cell not already in ``store`` (with ``resume``); return all finished cells.

    ``stop()`` is polled between cells and, through ``finetune``, before every step; a cell cut
    short is not recorded, and the result says ``stopped``.
    """
    emit = on_event or ignore
    started = time.perf_counter()
    data, evaluated_on = limit_eval_images(data, config.eval_images)
    cells = _plan(config, data)
    previous = store.load().cells if store is not None and resume else {}
    reused = sum(c.key in previous for c in cells)  # (a malformed record is recomputed, and said so)
    emit(BenchStarted("init", len(cells), reused))
    initializer = _Initializer(GhnCache(ghn_paths), emit)
    finished: list[InitCell] = []
    stopped = False
    for cell in cells:
        done = _reuse(previous.get(cell.key), emit)
        if done is not None:
            finished.append(done)
            emit(CellDone(cell.index, cell.label, done.to_dict(), reused=True))
            continue
        if stop is not None and stop():
            stopped = True
            break
        emit(CellStarted(cell.index, cell.label))
        done = _run_cell(cell, config, data, initializer, emit, stop)
        if done is None:
            stopped = True
            break
        if store is not None:
            store.append(done.to_dict())
        finished.append(done)
        emit(CellDone(cell.index, cell.label, done.to_dict()))
    return InitBenchResult(config, data.info, evaluated_on, finished, len(cells), reused, stopped,
                           time.perf_counter() - started)


def _reuse(record: Mapping[str, Any] | None, emit: Emit) -> InitCell | None:
    """A finished cell read back from the results file; None (recompute it) when it is unusable."""
    if record is None:
        return None
    try:
        return InitCell.from_dict(record)
    except (KeyError, TypeError, ValueError) as exc:
        emit(Note(f"a result of {record.get('model', '?')} in the results file is incomplete "
                  f"({type(exc).__name__}: {exc}); computing it again", warning=True))
        return None


def _plan(config: InitBenchConfig, data: DataBundle) -> list[_Cell]:
    """The cells in run order (model, then init, then seed), each with its key."""
    data_id = data_identity(data, config.eval_images)
    free = FinetuneConfig.RESUME_FREE
    cells = []
    for model in config.models:
        for init in config.inits:
            for seed in config.seeds:
                recipe = {k: v for k, v in config.finetune_config(init, seed).to_dict().items() if k not in free}
                identity = {"bench": "init", "model": model, "init": init.to_dict(), "seed": seed,
                            "finetune": recipe, "data": data_id}
                cells.append(_Cell(len(cells), model, init, seed, cell_key(identity), identity))
    return cells


def _run_cell(
    cell: _Cell, config: InitBenchConfig, data: DataBundle, initializer: _Initializer, emit: Emit,
    stop: Callable[[], bool] | None,
) -> InitCell | None:
    from ghnctl.zoo import resolve_model

    tick = time.perf_counter()
    emit(CellProgress(cell.index, 0.0, "building the model"))
    built = resolve_model(cell.model, num_classes=data.num_classes, image_size=data.info.image_size, seed=cell.seed)
    emit(CellProgress(cell.index, 0.0, f"initialising ({cell.init.label})"))
    notes = initializer.apply(built, cell.init, data.num_classes, cell.seed)
    recipe = config.finetune_config(cell.init, cell.seed)
    history = finetune(built.model, data, recipe, on_event=_FinetuneProgress(cell.index, emit), stop=stop)
    if history.stopped:
        return None
    return InitCell(
        key=cell.key, model=cell.model, arch=built.arch, init=cell.init.label, seed=cell.seed,
        points=tuple(EpochPoint.from_record(r) for r in history.records), lr=history.lr,
        steps_per_epoch=history.steps_per_epoch, total_steps=history.total_steps,
        wall_s=time.perf_counter() - tick, notes=tuple(notes), identity=cell.identity,
    )


class _Initializer:
    """Applies a cell's init. A GHN is loaded once, a model's graph built once, for all cells."""

    def __init__(self, ghns: GhnCache, emit: Emit) -> None:
        self.ghns = ghns
        self.emit = emit
        self._graphs: dict[tuple[str, int, int], Any] = {}
        self._told: set[str] = set()

    def apply(self, built: Any, init: InitSpec, num_classes: int, seed: int) -> list[str]:
        """Initialise ``built.model`` in place; return notes for the report."""
        if init.kind != "ghn":
            from ghnctl.inits import apply_init

            return list(apply_init(built.model, init, num_classes, seed=seed).notes)
        from ghnctl.predict import init_model

        ghn = self.ghns.get(init.ghn)
        predict_classifier = ghn.config.num_classes == num_classes
        notes = []
        if not predict_classifier:
            notes.append(f"{init.label} predicts {ghn.config.num_classes} classes and the data has {num_classes}: "
                         "the classifier keeps its random initialisation")
            if init.label not in self._told:  # once per GHN, not once per cell
                self._told.add(init.label)
                self.emit(Note(notes[-1], warning=True))
        result = init_model(ghn, built.model, self._graph(built, num_classes), seed=seed, noise=init.noise,
                            orth=init.orth, predict_class_layers=predict_classifier)
        return notes + list(result.report.warnings)

    def _graph(self, built: Any, num_classes: int) -> Any:
        key = (built.spec, built.image_size, num_classes)
        graph = self._graphs.get(key)
        if graph is None:
            from ghnctl.graph import build_graph

            graph = build_graph(built.model, arch=built.arch, image_size=built.image_size)
            self._graphs[key] = graph
        return graph


class _FinetuneProgress:
    """Turns ``finetune``'s events into the bench's: the fraction of this cell's steps done."""

    def __init__(self, index: int, emit: Emit) -> None:
        self.index = index
        self.emit = emit
        self.total_steps = 0
        self.eval_batches = 0
        self.done = 0.0

    def __call__(self, event: Any) -> None:
        if isinstance(event, ft_events.RunStarted):
            self.total_steps = event.total_steps
        elif isinstance(event, ft_events.StepDone) and self.total_steps:
            self.done = event.global_step / self.total_steps
            self.emit(CellProgress(self.index, self.done, f"epoch {event.epoch}, step {event.step}"))
        elif isinstance(event, ft_events.Evaluating):
            self.eval_batches = event.batches
            self.emit(CellProgress(self.index, self.done, f"evaluating ({self._what(event.epoch)})"))
        elif isinstance(event, ft_events.EvalStepDone):
            detail = f"evaluating ({self._what(event.epoch)}) {event.batch}/{self.eval_batches}"
            self.emit(CellProgress(self.index, self.done, detail))
        elif isinstance(event, ft_events.BadImages):
            self.emit(Note(f"skipping {len(event.names)} unreadable image(s): {', '.join(event.names[:3])}",
                           warning=True))

    @staticmethod
    def _what(epoch: int) -> str:
        return "no fine-tuning" if epoch == 0 else f"epoch {epoch}"
