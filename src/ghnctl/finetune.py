"""Fine-tuning engine: ``FinetuneConfig`` and ``finetune(model, data, config) -> History``.

The engine never prints; it reports through ``on_event`` (``RunStarted``, ``EpochStarted``,
``StepDone``, ``Evaluating``, ``EpochDone``, ``BadImages``, ``CheckpointSaved``).

Recipe (defaults, all overridable):

* SGD with Nesterov momentum 0.9, weight decay 5e-4, lr ``0.1 * batch_size / 128`` from a random
  init and ``0.025 * batch_size / 128`` from predicted parameters (GHN or file): the official
  GHN-3 fine-tuning uses 0.025 instead of 0.1 (ResNet-50, batch 128, spec section 6).
  AdamW: lr 1e-3 / 2.5e-4 (the same 4x reduction; ghnctl's choice, not an official number),
  weight decay 0.05.
* Cosine schedule stepped per step, after a linear warmup (default 5% of the steps; none below 20).
* Gradient clipping at global L2 norm 5 (the official trainer's default); label smoothing 0.
* AMP on CUDA (bf16 where supported, else fp16 with a GradScaler); fp32 elsewhere unless asked.

Reproducibility: on the CPU, at a fixed thread count, the same seed and the same initial parameters
give the same curve, whatever the number of loader workers (augmentations use per-sample seeds, see ``ghnctl.data``).
A training-state checkpoint (safetensors tensors + JSON metadata, no pickle) holds the model, the
optimizer, the scheduler, the scaler, the position (epoch, step), the running metrics and every RNG
state, so a resumed run ends exactly where the uninterrupted one does.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ghnctl import io
from ghnctl.data import DataBundle, DataError, Normalizer, eval_loader, train_loader
from ghnctl.devices import resolve_device
from ghnctl.errors import GhnctlError, UsageError

STATE_FORMAT = "ghnctl-finetune-state/1"
WEIGHTS_FORMAT = "ghnctl-finetuned/1"
NOT_FINE_TUNED = "not fine-tuned"
OPTIMIZERS = ("sgd", "adamw")
DEVICES = ("auto", "cpu", "cuda", "mps")
AMP_DTYPES = ("auto", "bf16", "fp16")
REFERENCE_BATCH = 128
# Fields that do not change the numbers a run produces; a resumed run may change them.
_FREE_FIELDS = frozenset({"device", "workers", "log_every", "eval_batch_size"})


class StateError(GhnctlError):
    """A training-state checkpoint is unreadable or does not fit this run."""


# --------------------------------------------------------------------------------------------
# configuration


def recipe_lr(optimizer: str, batch_size: int, pretrained: bool) -> float:
    """The default learning rate (see the module docstring for the sources)."""
    if optimizer == "sgd":
        return (0.025 if pretrained else 0.1) * batch_size / REFERENCE_BATCH
    return 2.5e-4 if pretrained else 1e-3


def recipe_weight_decay(optimizer: str) -> float:
    return 5e-4 if optimizer == "sgd" else 0.05


@dataclass(frozen=True)
class FinetuneConfig:
    """How to fine-tune. Validated on construction (UsageError, exit 2).

    ``lr`` and ``weight_decay`` None take the recipe's defaults, resolved here (so the saved config
    holds the numbers used); ``pretrained_init`` only selects the lower default lr. ``max_steps``
    overrides ``epochs`` (the run lasts ``max_steps`` steps and the schedule spans them).
    ``bn_batch_stats_epoch0`` evaluates the untrained model with BatchNorm batch statistics, as the
    official evaluation of predicted parameters does (they come without running statistics).
    """

    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float | None = None
    pretrained_init: bool = False
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float | None = None
    label_smoothing: float = 0.0
    warmup_steps: int | None = None
    grad_clip: float = 5.0
    amp: bool | None = None
    amp_dtype: str = "auto"
    device: str = "auto"
    seed: int = 0
    workers: int | None = None
    eval_batch_size: int | None = None
    bn_batch_stats_epoch0: bool = False
    log_every: int = 10

    def __post_init__(self) -> None:
        def bad(message: str, hint: str | None = None) -> None:
            raise UsageError(message, hint=hint)

        opt = str(self.optimizer).lower()
        if opt not in OPTIMIZERS:
            bad(f"unknown --optimizer {self.optimizer!r}", hint="use sgd or adamw")
        object.__setattr__(self, "optimizer", opt)
        if self.epochs < 1:
            bad(f"--epochs must be at least 1, got {self.epochs}")
        if self.max_steps is not None and self.max_steps < 1:
            bad(f"--max-steps must be at least 1, got {self.max_steps}")
        if self.batch_size < 2:
            bad(f"--batch-size must be at least 2, got {self.batch_size}", hint="BatchNorm needs two images")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            bad(f"--lr must be a positive number, got {self.lr}")
        if self.weight_decay is not None and not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            bad(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if not (0.0 <= self.label_smoothing < 1.0):
            bad(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if not (0.0 <= self.momentum < 1.0):
            bad(f"momentum must be in [0, 1), got {self.momentum}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            bad(f"--warmup-steps must be >= 0, got {self.warmup_steps}")
        if not (self.grad_clip >= 0 and math.isfinite(self.grad_clip)):
            bad(f"--grad-clip must be >= 0 (0 turns it off), got {self.grad_clip}")
        dtype = str(self.amp_dtype).lower()
        if dtype not in AMP_DTYPES:
            bad(f"unknown --amp-dtype {self.amp_dtype!r}", hint="use auto, bf16 or fp16")
        object.__setattr__(self, "amp_dtype", dtype)
        device = str(self.device).lower()
        if device not in DEVICES and not device.startswith(("cuda:", "mps:")):
            bad(f"unknown --device {self.device!r}", hint="use auto, cpu, cuda, cuda:N or mps")
        object.__setattr__(self, "device", device)
        if self.workers is not None and self.workers < 0:
            bad(f"--workers must be >= 0, got {self.workers}")
        if self.eval_batch_size is not None and self.eval_batch_size < 1:
            bad(f"eval batch size must be at least 1, got {self.eval_batch_size}")
        if self.log_every < 1:
            bad(f"log_every must be at least 1, got {self.log_every}")
        if self.lr is None:
            object.__setattr__(self, "lr", recipe_lr(opt, self.batch_size, self.pretrained_init))
        if self.weight_decay is None:
            object.__setattr__(self, "weight_decay", recipe_weight_decay(opt))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinetuneConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# --------------------------------------------------------------------------------------------
# events and results


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
        return {
            "records": [r.to_dict() for r in self.records],
            "device": self.device,
            "amp": self.amp,
            "lr": self.lr,
            "total_steps": self.total_steps,
            "steps_per_epoch": self.steps_per_epoch,
            "warmup_steps": self.warmup_steps,
            "global_step": self.global_step,
            "bad_images": self.bad_images,
            "stopped": self.stopped,
            "wall_s": self.wall_s,
        }


# --------------------------------------------------------------------------------------------
# runtime pieces


def resolve_amp(config: FinetuneConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32. AMP defaults to on for CUDA only."""
    enabled = device.type == "cuda" if config.amp is None else config.amp
    if not enabled:
        return None
    if config.amp_dtype == "bf16":
        return torch.bfloat16
    if config.amp_dtype == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if device.type == "mps" else torch.bfloat16


def default_workers(device: torch.device) -> int:
    """0 on the CPU (the model needs the cores; decoding 32x32 images in-process is cheap),
    up to 4 worker processes when an accelerator does the training."""
    if device.type == "cpu":
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def lr_schedule(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Linear warmup to the peak, then half a cosine to (almost) zero, per optimizer step."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def build_optimizer(model: nn.Module, config: FinetuneConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            weight_decay=config.weight_decay,
        )
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def seed_everything(seed: int) -> None:
    """torch (CPU and CUDA), Python's ``random`` and NumPy's global RNG."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % (1 << 32))


def _logits(output: Any) -> torch.Tensor:
    """Logits from a model output: a tensor, a (named) tuple whose first item is them, or ``.logits``."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    raise GhnctlError(f"the model returned {type(output).__name__}, not logits")


@contextlib.contextmanager
def batch_stats_bn(model: nn.Module, enabled: bool) -> Iterator[None]:
    """BatchNorm layers use batch statistics and leave their running statistics untouched."""
    if not enabled:
        yield
        return
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.track_running_stats) for m in norms]
    for m in norms:
        m.train()
        m.track_running_stats = False  # with training=True this passes no running stats to F.batch_norm
    try:
        yield
    finally:
        for m, (training, track) in zip(norms, saved, strict=True):
            m.train(training)
            m.track_running_stats = track


@dataclass
class _Position:
    """Where the run is, plus the running sums of the current epoch (all saved in checkpoints)."""

    epoch: int = 1
    step_in_epoch: int = 0
    global_step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    skipped: int = 0
    train_time_s: float = 0.0


class _Trainer:
    """Holds the objects of one run; ``finetune`` drives it."""

    def __init__(self, model: nn.Module, data: DataBundle, config: FinetuneConfig) -> None:
        self.model = model
        self.data = data
        self.config = config
        self.device = resolve_device(config.device)
        self.amp_dtype = resolve_amp(config, self.device)
        self.workers = config.workers if config.workers is not None else default_workers(self.device)
        pin = self.device.type == "cuda"
        self.loader, self.sampler = train_loader(data, config.batch_size, config.seed, self.workers, pin)
        self.eval_loader = eval_loader(data, config.eval_batch_size or 2 * config.batch_size, self.workers, pin)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        if self.steps_per_epoch == 0:
            raise DataError("no training batches", hint="the training set has fewer than two images")
        self.total_steps = config.max_steps or config.epochs * self.steps_per_epoch
        self.epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        self.warmup_steps = (
            config.warmup_steps if config.warmup_steps is not None
            else (int(0.05 * self.total_steps) if self.total_steps >= 20 else 0)
        )
        model.to(self.device)
        self.normalizer = Normalizer(data.info.mean, data.info.std, self.device)
        self.optimizer = build_optimizer(model, config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_schedule(self.total_steps, self.warmup_steps)
        )
        self.scaler = (
            torch.amp.GradScaler(self.device.type) if self.amp_dtype == torch.float16 else None
        )
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.bad: dict[str, str] = {}

    @property
    def amp_name(self) -> str | None:
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.amp_dtype) if self.amp_dtype else None

    def steps_in_epoch(self, epoch: int) -> int:
        return min(self.steps_per_epoch, self.total_steps - (epoch - 1) * self.steps_per_epoch)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def new_bad(self, bad: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
        """Record unreadable files; return the names not seen before (each is reported once)."""
        fresh = []
        for name, reason in bad:
            if name not in self.bad:
                self.bad[name] = reason
                fresh.append(name)
        return tuple(fresh)

    def train_step(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.normalizer(images.to(self.device, non_blocking=True))
        y = targets.to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            logits = _logits(self.model(x))
            loss = self.criterion(logits, y)
        clip = self.config.grad_clip
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if clip > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.optimizer.step()
        correct = (logits.detach().argmax(dim=1) == y).sum()
        return loss.detach(), correct

    @torch.no_grad()
    def evaluate(
        self, epoch: int, batch_stats: bool, emit: Callable[[Any], None]
    ) -> tuple[float | None, float | None, int]:
        """Mean loss and accuracy (%) on the validation images; unreadable ones are skipped."""
        emit(Evaluating(epoch, len(self.eval_loader)))
        was_training = self.model.training
        self.model.eval()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = skipped = 0
        checked = False
        criterion = nn.CrossEntropyLoss(reduction="sum")
        try:
            with batch_stats_bn(self.model, batch_stats):
                for batch in self.eval_loader:
                    if batch.bad:
                        skipped += len(batch.bad)
                        fresh = self.new_bad(batch.bad)
                        if fresh:
                            emit(BadImages(fresh))
                    if batch.images is None:
                        continue
                    x = self.normalizer(batch.images.to(self.device, non_blocking=True))
                    y = batch.targets.to(self.device, non_blocking=True)
                    with self.autocast():
                        logits = _logits(self.model(x))
                    if not checked:
                        self.check_outputs(logits)
                        checked = True
                    loss_sum += criterion(logits.float(), y).double()
                    correct += (logits.argmax(dim=1) == y).sum()
                    seen += len(y)
        finally:
            self.model.train(was_training)
        if seen == 0:
            return None, None, skipped
        return float(loss_sum) / seen, 100.0 * int(correct) / seen, skipped

    def check_outputs(self, logits: torch.Tensor) -> None:
        n = self.data.num_classes
        if logits.dim() != 2 or logits.shape[1] != n:
            raise UsageError(
                f"the model outputs {tuple(logits.shape[1:])} per image but the data has {n} classes",
                hint=f"build the model with num_classes={n}",
            )


# --------------------------------------------------------------------------------------------
# the loop


def finetune(
    model: nn.Module,
    data: DataBundle,
    config: FinetuneConfig,
    *,
    on_event: Callable[[Any], None] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    stop: Callable[[], bool] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> History:
    """Fine-tune ``model`` on ``data``; return the history (epoch 0 = before training).

    ``checkpoint``: write the training state there after every epoch and when ``stop()`` turns
    true (then return early with ``history.stopped``). ``resume``: continue from such a file; the
    model's weights come from it. ``meta`` is stored in checkpoints as it is (the CLI keeps the
    model spec and data options there).
    """
    emit = on_event or (lambda event: None)
    started = time.perf_counter()
    t = _Trainer(model, data, config)
    pos = _Position()
    records: list[EpochRecord] = []
    cudnn_benchmark = torch.backends.cudnn.benchmark
    if t.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest kernels
    try:
        if resume is not None:
            pos, records = _load_state(Path(resume), t)
        else:
            seed_everything(config.seed)
            records.append(_evaluate_record(t, 0, pos, emit))
            emit(EpochDone(records[-1]))
        emit(
            RunStarted(
                device=str(t.device), amp=t.amp_name, workers=t.workers, lr=float(config.lr or 0.0),
                total_steps=t.total_steps, steps_per_epoch=t.steps_per_epoch, epochs=t.epochs,
                warmup_steps=t.warmup_steps, start_epoch=pos.epoch, start_step=pos.step_in_epoch,
                resumed=resume is not None,
            )
        )
        stopped = _run_epochs(t, pos, records, emit, checkpoint, stop, meta)
    finally:
        torch.backends.cudnn.benchmark = cudnn_benchmark
    return History(
        records=records,
        device=str(t.device),
        amp=t.amp_name,
        lr=float(config.lr or 0.0),
        total_steps=t.total_steps,
        steps_per_epoch=t.steps_per_epoch,
        warmup_steps=t.warmup_steps,
        global_step=pos.global_step,
        bad_images=dict(t.bad),
        stopped=stopped,
        wall_s=time.perf_counter() - started,
    )


def _run_epochs(
    t: _Trainer,
    pos: _Position,
    records: list[EpochRecord],
    emit: Callable[[Any], None],
    checkpoint: str | os.PathLike[str] | None,
    stop: Callable[[], bool] | None,
    meta: Mapping[str, Any] | None,
) -> bool:
    """Train from ``pos`` to the end; return True when ``stop()`` ended the run early."""
    log_every = t.config.log_every
    while pos.epoch <= t.epochs:
        steps = t.steps_in_epoch(pos.epoch)
        t.sampler.set_epoch(pos.epoch, pos.step_in_epoch)
        emit(EpochStarted(pos.epoch, steps, pos.step_in_epoch))
        t.model.train()
        # Device-side sums: no host sync per step on an accelerator; exact float64 across resumes.
        loss_sum = torch.tensor(pos.loss_sum, dtype=torch.float64, device=t.device)
        correct = torch.tensor(pos.correct, dtype=torch.int64, device=t.device)
        tick = time.perf_counter()
        if pos.step_in_epoch < steps:
            for batch in t.loader:
                if stop is not None and stop():
                    pos.loss_sum, pos.correct = float(loss_sum), int(correct)
                    pos.train_time_s += time.perf_counter() - tick
                    if checkpoint is not None:
                        _save_state(Path(checkpoint), t, pos, records, meta)
                        emit(CheckpointSaved(str(checkpoint), pos.epoch, pos.step_in_epoch))
                    return True
                if batch.bad:
                    pos.skipped += len(batch.bad)
                    fresh = t.new_bad(batch.bad)
                    if fresh:
                        emit(BadImages(fresh))
                if batch.images is not None and len(batch.images) >= 2:
                    loss, hits = t.train_step(batch.images, batch.targets)
                    n = len(batch.targets)
                    loss_sum += loss.double() * n
                    correct += hits
                    pos.seen += n
                # A step whose images were all unreadable still advances the schedule, so the
                # learning rate stays a function of the position in the data.
                t.scheduler.step()
                pos.step_in_epoch += 1
                pos.global_step += 1
                report = pos.step_in_epoch % log_every == 0 or pos.step_in_epoch == steps
                emit(
                    StepDone(
                        pos.epoch, pos.step_in_epoch, pos.global_step,
                        float(loss_sum) / pos.seen if report and pos.seen else None,
                        t.optimizer.param_groups[0]["lr"],
                    )
                )
                if pos.step_in_epoch >= steps:
                    break
        pos.loss_sum, pos.correct = float(loss_sum), int(correct)
        if t.device.type == "cuda":
            torch.cuda.synchronize(t.device)
        pos.train_time_s += time.perf_counter() - tick
        records.append(_evaluate_record(t, pos.epoch, pos, emit, partial=steps < t.steps_per_epoch))
        emit(EpochDone(records[-1]))
        pos.epoch += 1
        pos.step_in_epoch = 0
        pos.loss_sum, pos.correct, pos.seen, pos.skipped, pos.train_time_s = 0.0, 0, 0, 0, 0.0
        if checkpoint is not None:
            _save_state(Path(checkpoint), t, pos, records, meta)
            emit(CheckpointSaved(str(checkpoint), pos.epoch, 0))
    return False


def _evaluate_record(
    t: _Trainer, epoch: int, pos: _Position, emit: Callable[[Any], None], partial: bool = False
) -> EpochRecord:
    tick = time.perf_counter()
    batch_stats = epoch == 0 and t.config.bn_batch_stats_epoch0
    val_loss, val_acc, val_skipped = t.evaluate(epoch, batch_stats, emit)
    eval_time = time.perf_counter() - tick
    trained = epoch > 0 and pos.seen > 0
    return EpochRecord(
        epoch=epoch,
        label=NOT_FINE_TUNED if epoch == 0 else (f"{epoch} (partial)" if partial else str(epoch)),
        global_step=pos.global_step,
        train_loss=pos.loss_sum / pos.seen if trained else None,
        train_acc=100.0 * pos.correct / pos.seen if trained else None,
        val_loss=val_loss,
        val_acc=val_acc,
        lr=t.optimizer.param_groups[0]["lr"] if epoch > 0 else None,
        train_images=pos.seen,
        train_time_s=pos.train_time_s,
        eval_time_s=eval_time,
        images_per_s=pos.seen / pos.train_time_s if trained and pos.train_time_s > 0 else None,
        skipped_images=pos.skipped + val_skipped,
        partial=partial,
    )


# --------------------------------------------------------------------------------------------
# training-state checkpoints (safetensors + JSON, never pickle)


def _json_safe(value: Any) -> Any:
    """Optimizer/scheduler state values as JSON (tuples become lists; tensors are not allowed)."""
    if isinstance(value, torch.Tensor):
        raise TypeError("tensor in JSON state")
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _save_state(
    path: Path, t: _Trainer, pos: _Position, records: list[EpochRecord], meta: Mapping[str, Any] | None
) -> None:
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in t.model.state_dict().items()}
    optim = t.optimizer.state_dict()
    optim_scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in optim["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                optim_scalars.setdefault(str(pid), {})[key] = _json_safe(value)
    tensors["rng.torch"] = torch.get_rng_state()
    if t.device.type == "cuda":
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    np_state = np.random.get_state()
    state = {
        "position": asdict(pos),
        "records": [r.to_dict() for r in records],
        "bad_images": t.bad,
        "optimizer_param_groups": _json_safe(optim["param_groups"]),
        "optimizer_scalars": optim_scalars,
        "scheduler": _json_safe(t.scheduler.state_dict()),
        "scaler": _json_safe(t.scaler.state_dict()) if t.scaler is not None else None,
        "python_random": _json_safe(random.getstate()),
        "numpy_random": [np_state[0], np_state[1].tolist(), *(_json_safe(x) for x in np_state[2:])],
    }
    metadata = {
        "format": STATE_FORMAT,
        "config": t.config.to_dict(),
        "data": t.data.info.fingerprint(),
        "state": state,
        "meta": dict(meta or {}),
        "torch": torch.__version__,
    }
    io.save_safetensors_atomic(tensors, path, metadata=metadata, force=True)


def read_state_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON parts of a training-state checkpoint (config, data fingerprint, meta, state)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise StateError(f"checkpoint {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise StateError(f"cannot read {str(path)!r} as a training-state checkpoint: {exc}") from exc
    if raw.get("format") != STATE_FORMAT:
        raise StateError(
            f"{str(path)!r} is not a ghnctl training-state checkpoint",
            hint="--resume takes the file written by --checkpoint (model weights go to --init file:PATH)",
        )
    try:
        return {k: json.loads(v) for k, v in raw.items() if k in ("config", "data", "state", "meta")}
    except json.JSONDecodeError as exc:
        raise StateError(f"{str(path)!r} has damaged metadata: {exc}") from exc


def _load_state(path: Path, t: _Trainer) -> tuple[_Position, list[EpochRecord]]:
    from safetensors.torch import load_file

    meta = read_state_metadata(path)
    saved_config = meta["config"]
    current = t.config.to_dict()
    changed = sorted(k for k in current if k not in _FREE_FIELDS and saved_config.get(k) != current[k])
    if changed:
        diffs = ", ".join(f"{k}: {saved_config.get(k)!r} -> {current[k]!r}" for k in changed[:4])
        raise UsageError(f"the run differs from the checkpoint's ({diffs})", hint="resume with the same settings")
    if meta["data"] != t.data.info.fingerprint():
        raise DataError(
            "the data differs from the checkpoint's (classes, sizes, split or image size)",
            hint="resume with the same --data, --val-fraction, --split-seed, --n-shots and --image-size",
        )
    tensors = load_file(str(path))
    state = meta["state"]
    model_sd = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        t.model.load_state_dict(model_sd, strict=True)
    except RuntimeError as exc:
        raise StateError(f"the checkpoint's weights do not fit the model: {str(exc).splitlines()[0]}") from exc

    optim_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            optim_state.setdefault(int(pid), {})[name] = value
    for pid, scalars in state["optimizer_scalars"].items():
        optim_state.setdefault(int(pid), {}).update(scalars)
    groups = state["optimizer_param_groups"]
    try:
        t.optimizer.load_state_dict({"state": optim_state, "param_groups": groups})
        t.scheduler.load_state_dict(state["scheduler"])
        if t.scaler is not None and state["scaler"]:
            t.scaler.load_state_dict(state["scaler"])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise StateError(f"the checkpoint's optimizer state does not fit: {exc}") from exc

    # RNG states last: nothing after this point may draw random numbers before training resumes.
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[f"rng.cuda.{i}"] for i in range(len(tensors)) if f"rng.cuda.{i}" in tensors]
    if cuda_states and t.device.type == "cuda":
        torch.cuda.set_rng_state_all(cuda_states)
    version, internal, gauss = state["python_random"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, npos, has_gauss, cached = state["numpy_random"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), npos, has_gauss, cached))

    t.bad.update(state["bad_images"])
    pos = _Position(**state["position"])
    records = [EpochRecord.from_dict(r) for r in state["records"]]
    return pos, records


# --------------------------------------------------------------------------------------------
# final weights


def save_weights(
    path: str | os.PathLike[str],
    model: nn.Module,
    config: FinetuneConfig,
    history: History,
    meta: Mapping[str, Any] | None = None,
    force: bool = False,
) -> Path:
    """The fine-tuned state_dict as safetensors (atomic), with config and history as metadata.

    The file loads back with ``--init file:PATH`` or ``safetensors.torch.load_file``.
    """
    metadata = {
        "format": WEIGHTS_FORMAT,
        "config": config.to_dict(),
        "history": history.to_dict(),
        "meta": dict(meta or {}),
    }
    return io.save_safetensors_atomic(model.state_dict(), path, metadata=metadata, force=force)
