"""Evaluate a model on a loader: mean cross-entropy and top-1 accuracy, with unreadable images skipped.

No trainer object is needed: ``bench`` evaluates predicted parameters with it, ``finetune`` and the
GHN trainer their models after each epoch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ghnctl.errors import GhnctlError, UsageError
from ghnctl.training.amp import autocast
from ghnctl.training.loaders import Batch
from ghnctl.training.transforms import Normalizer


@dataclass(frozen=True)
class EvalResult:
    """``loss`` (mean per image) and ``accuracy`` (top-1, %) are None when no image was readable."""

    loss: float | None
    accuracy: float | None
    images: int
    bad: tuple[tuple[str, str], ...]  # (name, reason) of the unreadable images


def logits_of(output: Any) -> torch.Tensor:
    """Logits from a model output: a tensor, a (named) tuple whose first item is them, or ``.logits``."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    raise GhnctlError(f"the model returned {type(output).__name__}, not logits")


def check_logits(logits: torch.Tensor, num_classes: int) -> None:
    """UsageError unless ``logits`` is ``(batch, num_classes)``: the model was built for other data."""
    if logits.dim() != 2 or logits.shape[1] != num_classes:
        raise UsageError(
            f"the model outputs {tuple(logits.shape[1:])} per image but the data has {num_classes} classes",
            hint=f"build the model with num_classes={num_classes}",
        )


@contextlib.contextmanager
def batch_stats_bn(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """BatchNorm layers use batch statistics and leave their running statistics untouched.

    The official evaluation of predicted parameters does this: they come without running statistics.
    """
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


def _unpack(batch: Any) -> tuple[torch.Tensor | None, torch.Tensor | None, tuple[tuple[str, str], ...]]:
    if isinstance(batch, Batch):
        return batch.images, batch.targets, batch.bad
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1], ()
    raise TypeError(f"a loader batch must be a ghnctl Batch or an (images, targets) pair, not {type(batch).__name__}")


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    raise ValueError("the model has no parameters or buffers to take a device from: pass device=")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    device: torch.device | str | None = None,
    normalizer: Normalizer | None = None,
    amp_dtype: torch.dtype | None = None,
    batch_stats: bool = False,
    num_classes: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> EvalResult:
    """Mean cross-entropy and top-1 accuracy (%) of ``model`` over ``loader``, in eval mode.

    Batches are ghnctl ``Batch``es (uint8 images: pass the ``normalizer``) or ``(images, targets)``
    pairs of ready inputs. ``device`` defaults to the device of the model's first parameter.
    ``batch_stats`` evaluates with BatchNorm batch statistics; ``num_classes`` checks the model's
    output width once. ``on_batch(n)`` is called after the n-th batch (1-based), for progress bars.
    The model's training mode is restored afterwards.
    """
    device = torch.device(device) if device is not None else _model_device(model)
    criterion = nn.CrossEntropyLoss(reduction="sum")
    # Device-side sums: no host sync per batch on an accelerator; float64 so the mean is exact enough.
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    bad: list[tuple[str, str]] = []
    was_training = model.training
    model.eval()
    try:
        with batch_stats_bn(model, batch_stats):
            for index, batch in enumerate(loader, start=1):
                images, targets, batch_bad = _unpack(batch)
                bad.extend(batch_bad)
                if images is None or targets is None:
                    if on_batch is not None:
                        on_batch(index)
                    continue
                x = images.to(device, non_blocking=True)
                x = normalizer(x) if normalizer is not None else x
                y = targets.to(device, non_blocking=True)
                with autocast(device, amp_dtype):
                    logits = logits_of(model(x))
                if num_classes is not None and seen == 0:
                    check_logits(logits, num_classes)
                loss_sum += criterion(logits.float(), y).double()
                correct += (logits.argmax(dim=1) == y).sum()
                seen += len(y)
                if on_batch is not None:
                    on_batch(index)
    finally:
        model.train(was_training)
    if seen == 0:
        return EvalResult(None, None, 0, tuple(bad))
    return EvalResult(float(loss_sum) / seen, 100.0 * int(correct) / seen, seen, tuple(bad))
