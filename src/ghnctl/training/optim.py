"""The optimisation recipe: optimizer, warmup + cosine schedule, and the clipped (scaled) step.

Defaults and their sources:

* SGD with Nesterov momentum 0.9, weight decay 5e-4, lr ``0.1 * batch_size / 128`` from a random
  init and ``0.025 * batch_size / 128`` from predicted parameters (GHN or file): the official GHN-3
  fine-tuning uses 0.025 instead of 0.1 (ResNet-50, batch 128, spec section 6).
* AdamW: lr 1e-3 / 2.5e-4 (the same 4x reduction; ghnctl's choice, not an official number),
  weight decay 0.05.
* Linear warmup over 5% of the steps (none below 20 steps), then half a cosine to zero, stepped
  once per optimizer step.
* Gradient clipping at global L2 norm 5 (the official trainer's default).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adamw")
REFERENCE_BATCH = 128
WARMUP_FRACTION = 0.05
MIN_STEPS_FOR_WARMUP = 20


def recipe_lr(optimizer: str, batch_size: int, pretrained: bool) -> float:
    """The default peak learning rate (see the module docstring for the sources)."""
    if optimizer == "sgd":
        return (0.025 if pretrained else 0.1) * batch_size / REFERENCE_BATCH
    return 2.5e-4 if pretrained else 1e-3


def recipe_weight_decay(optimizer: str) -> float:
    return 5e-4 if optimizer == "sgd" else 0.05


def default_warmup(total_steps: int) -> int:
    """5% of the steps, none for runs shorter than 20 steps (a warmup of 0 is then the sane choice)."""
    return int(WARMUP_FRACTION * total_steps) if total_steps >= MIN_STEPS_FOR_WARMUP else 0


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LambdaLR factor: linear warmup to 1 over ``warmup_steps``, then half a cosine to 0 at ``total_steps``.

    During warmup step s gets ``(s + 1) / (warmup + 1)``: never 0, so the first step already learns.
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def build_optimizer(
    parameters: Iterable[nn.Parameter],
    name: str,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    nesterov: bool = True,
) -> torch.optim.Optimizer:
    """``sgd`` (Nesterov when ``momentum > 0``) or ``adamw`` over the parameters that need gradients."""
    params = [p for p in parameters if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0, weight_decay=weight_decay
        )
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r} (use one of {', '.join(OPTIMIZERS)})")


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The warmup + cosine schedule; call ``step()`` once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, warmup_steps))


def optimizer_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    parameters: Iterable[nn.Parameter],
    *,
    max_norm: float = 0.0,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Backward, clip the global gradient norm to ``max_norm`` (0: no clipping), step.

    With a GradScaler (fp16) the loss is scaled, the gradients are unscaled before clipping (so the
    norm is the true one) and the scaler skips steps with inf/NaN gradients and updates its scale.
    The caller zeroes the gradients before the forward pass.
    """
    if scaler is None:
        loss.backward()
        if max_norm > 0:
            nn.utils.clip_grad_norm_(parameters, max_norm)
        optimizer.step()
        return
    scaler.scale(loss).backward()
    if max_norm > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(parameters, max_norm)
    scaler.step(optimizer)
    scaler.update()
