"""``TrainConfig``: every setting of a GHN training run, validated on construction.

The official trainer hard-codes most of these; here each is a field (and a ``ghnctl train`` flag).
Defaults follow the GHN-3 paper's recipe (AdamW, lr 4e-4, weight decay 1e-2, warmup then cosine,
gradient clipping at 5, the predicted-parameter regulariser 3e-5 for GHN-3 and 0 for GHN-2), scaled
down where the paper's numbers assume days on GPUs (a CPU-sized meta-batch and GHN).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ghnctl.errors import UsageError
from ghnctl.training.arch_specs import split_weight

DEFAULT_ARCHS = ("deepnets:train",)
DEFAULT_EVAL_ARCHS = "deepnets:test"


@dataclass(frozen=True)
class TrainConfig:
    """One GHN training run. The number of classes and the image size come from the data."""

    # The GHN
    hid: int = 64
    layers: int = 3
    heads: int = 8
    max_channels: int | None = None  # max_shape[0:2]; default: hid (the official choice)
    max_kernel: int | None = None  # max_shape[2:4]; default: 11 for images <= 64 px, else 16
    ghn2: bool = False
    # What it trains on
    archs: tuple[str, ...] = DEFAULT_ARCHS  # "deepnets:SPLIT" (its first --pool nets) or model specs
    pool: int = 1000
    meta_batch: int = 4
    batch_size: int = 64
    # How long
    steps: int | None = None  # default: one epoch of the training images per --epochs
    epochs: int = 1
    # Optimiser
    lr: float = 4e-4
    weight_decay: float = 1e-2
    warmup_steps: int | None = None  # default: 5% of the steps
    grad_clip: float = 5.0
    predparam_wd: float | None = None  # default: 3e-5 for GHN-3, 0 for GHN-2 (the paper's)
    label_smoothing: float = 0.0
    amp: bool | None = None  # default: on for CUDA only
    amp_dtype: str = "auto"
    # Zero-shot evaluation on held-out architectures
    eval_archs: str = DEFAULT_EVAL_ARCHS
    eval_n: int = 10
    eval_every: int = 100
    eval_images: int = 500
    # Bookkeeping
    save_every: int = 100
    save_minutes: float = 10.0  # also save when this much time passed since the last save
    seed: int = 0
    shards: int | None = None  # meta-batch shards per step; default: the world size
    device: str = "auto"
    workers: int | None = None

    def __post_init__(self) -> None:
        positive = ("hid", "layers", "heads", "pool", "meta_batch", "batch_size", "epochs", "eval_every",
                    "save_every")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "layers" else 1):
                raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        for name in ("steps", "warmup_steps", "max_channels", "max_kernel", "shards", "workers"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < (0 if name != "steps" else 1)):
                raise UsageError(f"--{name.replace('_', '-')} must be a non-negative integer, got {value!r}")
        for name in ("lr", "weight_decay", "grad_clip", "label_smoothing"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise UsageError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value!r}")
        if self.lr <= 0:
            raise UsageError(f"--lr must be > 0, got {self.lr}")
        if self.predparam_wd is not None and not (math.isfinite(self.predparam_wd) and self.predparam_wd >= 0):
            raise UsageError(f"--predparam-wd must be a finite number >= 0, got {self.predparam_wd}")
        if not self.ghn2 and self.hid % self.heads:
            raise UsageError(f"--hid ({self.hid}) must be divisible by --heads ({self.heads})")
        if self.hid % 4:
            raise UsageError(f"--hid must be a multiple of 4 (the shape encoder uses hid/4), got {self.hid}")
        if not self.archs:
            raise UsageError("no architectures to train on", hint="for example --archs deepnets:train")
        for entry in self.archs:
            split_weight(entry)  # a malformed SPEC=W fails here, before any data is read
        if self.shards is not None and self.meta_batch % self.shards:
            raise UsageError(f"--meta-batch ({self.meta_batch}) must be a multiple of the shards ({self.shards})")
        if not (math.isfinite(self.save_minutes) and self.save_minutes > 0):
            raise UsageError(f"--save-minutes must be a positive number, got {self.save_minutes}")
        if self.eval_n < 0 or self.eval_images < 1:
            raise UsageError("--eval-n must be >= 0 and --eval-images >= 1")
        if self.amp_dtype not in ("auto", "bf16", "fp16"):
            raise UsageError(f"--amp-dtype must be auto, bf16 or fp16, got {self.amp_dtype!r}")

    # ----------------------------------------------------------------------------------------------
    @property
    def regulariser(self) -> float:
        """lambda of ``lambda * sum ||p||_F`` over the predicted parameters (spec section 5)."""
        if self.predparam_wd is not None:
            return self.predparam_wd
        return 0.0 if self.ghn2 else 3e-5

    def max_shape(self, image_size: int) -> tuple[int, int, int, int]:
        channels = self.max_channels or self.hid
        kernel = self.max_kernel or (11 if image_size <= 64 else 16)
        return (channels, channels, kernel, kernel)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["archs"] = list(self.archs)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "archs" in values:
            values["archs"] = tuple(values["archs"])
        return cls(**values)
