"""``FinetuneConfig``: how to fine-tune, validated on construction; and the settings of a resumed run.

The recipe's numbers (lr, weight decay, warmup) are ``optim``'s; this module only names them and
checks the values. ``resume_config`` merges a checkpoint's settings with the options a user gave
when resuming, refusing those that would change the run.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from ghnctl.devices import check_device_name
from ghnctl.errors import UsageError
from ghnctl.training.amp import AMP_DTYPES
from ghnctl.training.configs import resume_fields
from ghnctl.training.data import DataConfig
from ghnctl.training.errors import StateError
from ghnctl.training.optim import OPTIMIZERS, recipe_lr, recipe_weight_decay

# Settings that only shape the initial weights; on resume the weights come from the checkpoint.
INIT_SETTINGS = ("init", "ghn", "noise", "orth")


@dataclass(frozen=True)
class FinetuneConfig:
    """How to fine-tune. Validated on construction (UsageError, exit 2).

    ``lr`` and ``weight_decay`` None take the recipe's defaults (``optim``), resolved here so the
    saved config holds the numbers used; ``pretrained_init`` only selects the lower default lr.
    ``max_steps`` overrides ``epochs`` (the run lasts ``max_steps`` steps and the schedule spans
    them). ``bn_batch_stats_epoch0`` evaluates the untrained model with BatchNorm batch statistics,
    as the official evaluation of predicted parameters does (they come without running statistics).
    """

    # Fields that do not change the numbers a run produces; a resumed run may change them.
    RESUME_FREE: ClassVar[frozenset[str]] = frozenset({"device", "workers", "log_every", "eval_batch_size"})

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
        opt = str(self.optimizer).lower()
        if opt not in OPTIMIZERS:
            raise UsageError(f"unknown --optimizer {self.optimizer!r}", hint="use sgd or adamw")
        object.__setattr__(self, "optimizer", opt)
        dtype = str(self.amp_dtype).lower()
        if dtype not in AMP_DTYPES:
            raise UsageError(f"unknown --amp-dtype {self.amp_dtype!r}", hint="use auto, bf16 or fp16")
        object.__setattr__(self, "amp_dtype", dtype)
        object.__setattr__(self, "device", check_device_name(self.device))
        for message in self._problems():
            raise UsageError(message)
        if self.lr is None:
            object.__setattr__(self, "lr", recipe_lr(opt, self.batch_size, self.pretrained_init))
        if self.weight_decay is None:
            object.__setattr__(self, "weight_decay", recipe_weight_decay(opt))

    def _problems(self) -> Iterator[str]:
        if self.epochs < 1:
            yield f"--epochs must be at least 1, got {self.epochs}"
        if self.max_steps is not None and self.max_steps < 1:
            yield f"--max-steps must be at least 1, got {self.max_steps}"
        if self.batch_size < 2:
            yield f"--batch-size must be at least 2 (BatchNorm needs two images), got {self.batch_size}"
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            yield f"--lr must be a positive number, got {self.lr}"
        if self.weight_decay is not None and not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            yield f"--weight-decay must be >= 0, got {self.weight_decay}"
        if not (0.0 <= self.label_smoothing < 1.0):
            yield f"--label-smoothing must be in [0, 1), got {self.label_smoothing}"
        if not (0.0 <= self.momentum < 1.0):
            yield f"momentum must be in [0, 1), got {self.momentum}"
        if self.warmup_steps is not None and self.warmup_steps < 0:
            yield f"--warmup-steps must be >= 0, got {self.warmup_steps}"
        if not (self.grad_clip >= 0 and math.isfinite(self.grad_clip)):
            yield f"--grad-clip must be >= 0 (0 turns it off), got {self.grad_clip}"
        if self.workers is not None and self.workers < 0:
            yield f"--workers must be >= 0, got {self.workers}"
        if self.eval_batch_size is not None and self.eval_batch_size < 1:
            yield f"eval batch size must be at least 1, got {self.eval_batch_size}"
        if self.log_every < 1:
            yield f"log_every must be at least 1, got {self.log_every}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinetuneConfig:
        return cls(**data)


@dataclass(frozen=True)
class ResumedRun:
    """The settings a resumed run continues with."""

    config: FinetuneConfig
    data: DataConfig
    model: str  # the model spec the run was started with
    meta: dict[str, Any]  # the ``meta`` the run was started with


def resume_config(saved: Mapping[str, Any], overrides: Mapping[str, Any]) -> ResumedRun:
    """Merge a checkpoint's settings (``read_state_fields``) with the options given explicitly.

    ``overrides`` holds the options the user typed, by name (the names of ``FinetuneConfig`` and
    ``DataConfig`` fields, ``model``, and the init options; other names are not settings and are
    ignored). Options that cannot change the numbers apply (device, workers, moved data files,
    offline); one that would is refused with a UsageError, as is any init option (the weights
    come from the checkpoint).
    """
    given_init = [name for name in INIT_SETTINGS if name in overrides]
    if given_init:
        raise UsageError(
            f"--{given_init[0]} has no effect with --resume",
            hint="the weights come from the checkpoint; drop the option",
        )
    meta = dict(saved.get("meta") or {})
    model = meta.get("model")
    if not isinstance(model, str):
        raise StateError("the checkpoint does not name its model", hint="it was not written by `ghnctl finetune`")
    if "model" in overrides and overrides["model"] != model:
        raise UsageError(
            f"MODEL {overrides['model']!r} differs from the checkpoint's {model!r}",
            hint="a resumed run keeps its model; drop MODEL",
        )
    config = resume_fields(FinetuneConfig, saved["config"], overrides, FinetuneConfig.RESUME_FREE)
    data = resume_fields(DataConfig, saved["data_config"], overrides, DataConfig.RESUME_FREE)
    return ResumedRun(config=config, data=data, model=model, meta=meta)
