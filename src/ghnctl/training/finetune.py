"""Fine-tuning: ``finetune(model, data, FinetuneConfig) -> History``.

The loop is assembled from the shared training layer: the recipe's optimizer and warmup + cosine
schedule (``optim``), AMP (``amp``), seeds (``seeding``), evaluation (``evaluate``), the seeded
loaders (``loaders``) and exact-resume checkpoints (``state``). It reports through ``on_event``
(``events``) and never prints. The config is ``finetune_config``'s (re-exported here).

Reproducibility: on the CPU, at a fixed thread count, the same seed and the same initial
parameters give the same curve, whatever the number of loader workers. A checkpoint holds the
model, optimizer, scheduler, scaler, position, the running metrics of the epoch and every RNG
state, so a resumed run ends exactly where the uninterrupted one does.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ghnctl import io
from ghnctl.devices import resolve_device
from ghnctl.errors import UsageError
from ghnctl.training import state
from ghnctl.training.amp import amp_name, autocast, make_grad_scaler, resolve_amp_dtype
from ghnctl.training.configs import changed_fields
from ghnctl.training.data import DataBundle
from ghnctl.training.errors import DataError
from ghnctl.training.evaluate import evaluate, logits_of
from ghnctl.training.events import (
    NOT_FINE_TUNED,
    BadImages,
    CheckpointSaved,
    EpochDone,
    EpochRecord,
    EpochStarted,
    EvalStepDone,
    Evaluating,
    History,
    RunStarted,
    StepDone,
)
from ghnctl.training.finetune_config import FinetuneConfig, ResumedRun, resume_config
from ghnctl.training.loaders import default_workers, eval_loader, train_loader
from ghnctl.training.optim import build_optimizer, build_scheduler, default_warmup, optimizer_step
from ghnctl.training.seeding import seed_everything
from ghnctl.training.transforms import Normalizer

__all__ = ["FinetuneConfig", "ResumedRun", "finetune", "read_state_fields", "resume_config", "save_weights"]

STATE_FORMAT = "ghnctl-finetune-state/2"
WEIGHTS_FORMAT = "ghnctl-finetuned/1"
Emit = Callable[[Any], None]


def read_state_fields(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON fields of a fine-tuning checkpoint (``config``, ``data_config``, ``meta``, ...),
    without loading its tensors."""
    return state.read_state(path, format=STATE_FORMAT)[1]


# --------------------------------------------------------------------------------------------
# one run's objects


@dataclass
class _Progress:
    """Where the run is, plus the running sums of the current epoch (all saved in checkpoints)."""

    epoch: int = 1
    step_in_epoch: int = 0
    global_step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    skipped: int = 0
    train_time_s: float = 0.0

    def position(self) -> state.Position:
        return state.Position(self.epoch, self.step_in_epoch, self.global_step)

    def running(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in asdict(self.position())}

    def next_epoch(self) -> None:
        self.epoch += 1
        self.step_in_epoch = 0
        self.loss_sum, self.correct, self.seen, self.skipped, self.train_time_s = 0.0, 0, 0, 0, 0.0


class _Run:
    """The objects of one fine-tuning run; ``finetune`` drives it."""

    def __init__(self, model: nn.Module, data: DataBundle, config: FinetuneConfig) -> None:
        self.model, self.data, self.config = model, data, config
        self.device = resolve_device(config.device)
        self.amp_dtype = resolve_amp_dtype(self.device, config.amp, config.amp_dtype)
        self.workers = config.workers if config.workers is not None else default_workers(self.device)
        pin = self.device.type == "cuda"
        self.loader, self.sampler = train_loader(data, config.batch_size, config.seed, self.workers, pin)
        self.eval_loader = eval_loader(data, config.eval_batch_size or 2 * config.batch_size, self.workers, pin)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        if self.steps_per_epoch == 0:
            raise DataError("no training batches", hint="the training set has fewer than two images")
        self.total_steps = config.max_steps or config.epochs * self.steps_per_epoch
        self.epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        self.warmup_steps = config.warmup_steps if config.warmup_steps is not None else default_warmup(
            self.total_steps
        )
        model.to(self.device)
        self.normalizer = Normalizer(data.info.mean, data.info.std, self.device)
        # FinetuneConfig has replaced a None lr / weight decay by the recipe's numbers.
        self.peak_lr = float(config.lr)
        optimizer = build_optimizer(
            model.parameters(), config.optimizer, self.peak_lr, float(config.weight_decay), config.momentum,
            config.nesterov,
        )
        self.parts = state.TrainingParts(
            model, optimizer, build_scheduler(optimizer, self.total_steps, self.warmup_steps),
            make_grad_scaler(self.device, self.amp_dtype),
        )
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.bad: dict[str, str] = {}

    @property
    def lr(self) -> float:
        return self.parts.optimizer.param_groups[0]["lr"]

    def steps_in_epoch(self, epoch: int) -> int:
        return min(self.steps_per_epoch, self.total_steps - (epoch - 1) * self.steps_per_epoch)

    def new_bad(self, bad: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
        """Record unreadable files; return the names not seen before (each is reported once)."""
        fresh = tuple(name for name in dict(bad) if name not in self.bad)
        self.bad.update(bad)
        return fresh

    def train_step(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; the loss and the number of correct predictions stay on the device."""
        x = self.normalizer(images.to(self.device, non_blocking=True))
        y = targets.to(self.device, non_blocking=True)
        self.parts.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.amp_dtype):
            logits = logits_of(self.model(x))
            loss = self.criterion(logits, y)
        optimizer_step(
            loss, self.parts.optimizer, self.model.parameters(), max_norm=self.config.grad_clip,
            scaler=self.parts.scaler,
        )
        return loss.detach(), (logits.detach().argmax(dim=1) == y).sum()


# --------------------------------------------------------------------------------------------
# the loop


def finetune(
    model: nn.Module,
    data: DataBundle,
    config: FinetuneConfig,
    *,
    on_event: Emit | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    stop: Callable[[], bool] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> History:
    """Fine-tune ``model`` on ``data``; return the history (epoch 0 = before training).

    ``checkpoint``: write the training state there after every epoch and when ``stop()`` turns
    true (then return early with ``history.stopped``). ``resume``: continue from such a file; the
    model's weights come from it. ``meta`` is stored in checkpoints as it is; its ``model`` entry,
    the model spec, is what ``resume_config`` compares an explicit MODEL with.
    """
    emit = on_event or (lambda event: None)
    started = time.perf_counter()
    run = _Run(model, data, config)
    with _cudnn_benchmark(run.device):
        if resume is not None:
            progress, records = _resume(Path(resume), run)
        else:
            seed_everything(config.seed)
            progress, records = _Progress(), []
            records.append(_evaluate_record(run, 0, progress, emit))
            emit(EpochDone(records[-1]))
        emit(
            RunStarted(
                device=str(run.device), amp=amp_name(run.amp_dtype), workers=run.workers, lr=run.peak_lr,
                total_steps=run.total_steps, steps_per_epoch=run.steps_per_epoch, epochs=run.epochs,
                warmup_steps=run.warmup_steps, start_epoch=progress.epoch, start_step=progress.step_in_epoch,
                resumed=resume is not None,
            )
        )
        saver = _Saver(Path(checkpoint), run, meta, emit) if checkpoint is not None else None
        stopped = _run_epochs(run, progress, records, emit, saver, stop)
    return History(
        records=records,
        device=str(run.device),
        amp=amp_name(run.amp_dtype),
        lr=run.peak_lr,
        total_steps=run.total_steps,
        steps_per_epoch=run.steps_per_epoch,
        warmup_steps=run.warmup_steps,
        global_step=progress.global_step,
        bad_images=dict(run.bad),
        stopped=stopped,
        wall_s=time.perf_counter() - started,
    )


@contextlib.contextmanager
def _cudnn_benchmark(device: torch.device) -> Iterator[None]:
    """On CUDA let cuDNN pick its fastest kernels (fixed input size); restore the setting after."""
    before = torch.backends.cudnn.benchmark
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def _run_epochs(
    run: _Run, progress: _Progress, records: list[EpochRecord], emit: Emit, saver: _Saver | None,
    stop: Callable[[], bool] | None,
) -> bool:
    """Train from ``progress`` to the end; return True when ``stop()`` ended the run early."""
    while progress.epoch <= run.epochs:
        steps = run.steps_in_epoch(progress.epoch)
        finished = _train_epoch(run, progress, steps, emit, stop)
        if not finished:
            if saver is not None:
                saver.save(progress, records)
            return True
        records.append(_evaluate_record(run, progress.epoch, progress, emit, partial=steps < run.steps_per_epoch))
        emit(EpochDone(records[-1]))
        progress.next_epoch()
        if saver is not None:
            saver.save(progress, records)
    return False


def _train_epoch(run: _Run, progress: _Progress, steps: int, emit: Emit, stop: Callable[[], bool] | None) -> bool:
    """Train the steps left in this epoch; return False when ``stop()`` interrupted it."""
    run.sampler.set_epoch(progress.epoch, progress.step_in_epoch)
    emit(EpochStarted(progress.epoch, steps, progress.step_in_epoch))
    run.model.train()
    # Device-side sums: no host sync per step on an accelerator; exact float64 across resumes.
    loss_sum = torch.tensor(progress.loss_sum, dtype=torch.float64, device=run.device)
    correct = torch.tensor(progress.correct, dtype=torch.int64, device=run.device)
    tick = time.perf_counter()
    finished = True
    if progress.step_in_epoch < steps:
        for batch in run.loader:
            if stop is not None and stop():
                finished = False
                break
            if batch.bad:
                progress.skipped += len(batch.bad)
                fresh = run.new_bad(batch.bad)
                if fresh:
                    emit(BadImages(fresh))
            if batch.images is not None and len(batch.images) >= 2:
                loss, hits = run.train_step(batch.images, batch.targets)
                n = len(batch.targets)
                loss_sum += loss.double() * n
                correct += hits
                progress.seen += n
            # A step whose images were all unreadable still advances the schedule, so the
            # learning rate stays a function of the position in the data.
            run.parts.scheduler.step()
            progress.step_in_epoch += 1
            progress.global_step += 1
            report = progress.step_in_epoch % run.config.log_every == 0 or progress.step_in_epoch == steps
            mean_loss = float(loss_sum) / progress.seen if report and progress.seen else None
            emit(StepDone(progress.epoch, progress.step_in_epoch, progress.global_step, mean_loss, run.lr))
            if progress.step_in_epoch >= steps:
                break
    progress.loss_sum, progress.correct = float(loss_sum), int(correct)
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    progress.train_time_s += time.perf_counter() - tick
    return finished


def _evaluate_record(run: _Run, epoch: int, progress: _Progress, emit: Emit, partial: bool = False) -> EpochRecord:
    emit(Evaluating(epoch, len(run.eval_loader)))
    tick = time.perf_counter()
    result = evaluate(
        run.model, run.eval_loader, device=run.device, normalizer=run.normalizer, amp_dtype=run.amp_dtype,
        batch_stats=epoch == 0 and run.config.bn_batch_stats_epoch0, num_classes=run.data.num_classes,
        on_batch=lambda n: emit(EvalStepDone(epoch, n)),
    )
    eval_time = time.perf_counter() - tick
    fresh = run.new_bad(result.bad)
    if fresh:
        emit(BadImages(fresh))
    trained = epoch > 0 and progress.seen > 0
    return EpochRecord(
        epoch=epoch,
        label=NOT_FINE_TUNED if epoch == 0 else (f"{epoch} (partial)" if partial else str(epoch)),
        global_step=progress.global_step,
        train_loss=progress.loss_sum / progress.seen if trained else None,
        train_acc=100.0 * progress.correct / progress.seen if trained else None,
        val_loss=result.loss,
        val_acc=result.accuracy,
        lr=run.lr if epoch > 0 else None,
        train_images=progress.seen,
        train_time_s=progress.train_time_s,
        eval_time_s=eval_time,
        images_per_s=progress.seen / progress.train_time_s if trained and progress.train_time_s > 0 else None,
        skipped_images=progress.skipped + len(result.bad),
        partial=partial,
    )


# --------------------------------------------------------------------------------------------
# checkpoints


class _Saver:
    """Writes the run's training state to one file (atomically, replacing the previous state)."""

    def __init__(self, path: Path, run: _Run, meta: Mapping[str, Any] | None, emit: Emit) -> None:
        self.path, self.run, self.meta, self.emit = path, run, dict(meta or {}), emit

    def save(self, progress: _Progress, records: list[EpochRecord]) -> None:
        run = self.run
        fields = {
            "config": run.config.to_dict(),
            "data_config": run.data.config.to_dict(),
            "data": run.data.info.fingerprint(),
            "running": progress.running(),
            "records": [r.to_dict() for r in records],
            "bad_images": run.bad,
            "meta": self.meta,
        }
        state.save_state(self.path, run.parts, progress.position(), format=STATE_FORMAT, fields=fields)
        self.emit(CheckpointSaved(str(self.path), progress.epoch, progress.step_in_epoch))


def _resume(path: Path, run: _Run) -> tuple[_Progress, list[EpochRecord]]:
    """Check that the checkpoint fits this run, then load it (RNG states last)."""
    _, fields = state.read_state(path, format=STATE_FORMAT)
    changed = changed_fields(FinetuneConfig.from_dict(fields["config"]), run.config, FinetuneConfig.RESUME_FREE)
    if changed:
        diffs = ", ".join(f"{k}: {fields['config'][k]!r} -> {getattr(run.config, k)!r}" for k in changed[:4])
        raise UsageError(f"the run differs from the checkpoint's ({diffs})", hint="resume with the same settings")
    if fields["data"] != run.data.info.fingerprint():
        raise DataError(
            "the data differs from the checkpoint's (classes, sizes, split or image size)",
            hint="resume with the same --data, --val-fraction, --split-seed, --n-shots and --image-size",
        )
    loaded = state.load_state(path, run.parts, format=STATE_FORMAT)
    run.bad.update(fields["bad_images"])
    position = loaded.position
    progress = _Progress(position.epoch, position.step_in_epoch, position.global_step, **fields["running"])
    return progress, [EpochRecord.from_dict(r) for r in fields["records"]]


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
