"""What the fine-tuning loop reports: progress events (through ``on_event``) and the history it returns.

The engine never prints: a CLI turns these into progress bars and lines, a notebook into plots.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

NOT_FINE_TUNED = "not fine-tuned"


@dataclass(frozen=True)
class RunStarted:
    device: str
    amp: str | None
    workers: int
    lr: float
    total_steps: int
    steps_per_epoch: int
    epochs: int
    warmup_steps: int
    start_epoch: int
    start_step: int
    resumed: bool


@dataclass(frozen=True)
class EpochStarted:
    epoch: int
    steps: int  # steps of this epoch
    first_step: int  # > 0 when resuming in the middle of the epoch


@dataclass(frozen=True)
class StepDone:
    epoch: int
    step: int  # within the epoch, 1-based
    global_step: int
    loss: float | None  # running mean train loss of the epoch, every ``log_every`` steps
    lr: float


@dataclass(frozen=True)
class Evaluating:
    epoch: int
    batches: int


@dataclass(frozen=True)
class EvalStepDone:
    epoch: int
    batch: int  # 1-based, of ``Evaluating.batches``


@dataclass(frozen=True)
class BadImages:
    names: tuple[str, ...]  # files seen unreadable for the first time


@dataclass(frozen=True)
class CheckpointSaved:
    path: str
    epoch: int
    step: int


@dataclass
class EpochRecord:
    """One row of the history. Epoch 0 is the model before any training (``NOT_FINE_TUNED``)."""

    epoch: int
    label: str
    global_step: int
    train_loss: float | None
    train_acc: float | None
    val_loss: float | None
    val_acc: float | None
    lr: float | None
    train_images: int
    train_time_s: float
    eval_time_s: float
    images_per_s: float | None
    skipped_images: int
    partial: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EpochRecord:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class EpochDone:
    record: EpochRecord


@dataclass
class History:
    records: list[EpochRecord]
    device: str
    amp: str | None
    lr: float
    total_steps: int
    steps_per_epoch: int
    warmup_steps: int
    global_step: int
    bad_images: dict[str, str] = field(default_factory=dict)
    stopped: bool = False
    wall_s: float = 0.0

    @property
    def final(self) -> EpochRecord:
        return self.records[-1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # the records become dicts too
