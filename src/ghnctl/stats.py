"""Activation statistics of a model: is the signal well-scaled from layer to layer?

Predicted parameters can make activations explode or vanish with depth (the GHN-3 paper adds a
regulariser on predicted parameters for this reason). ``activation_stats`` sends a batch of N(0, 1)
images through the model and records each parameterised layer's output standard deviation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

# An output std this far from the input's (1.0) is flagged. Wide on purpose: a healthy network
# rescales by a few x here and there; 100x or 1/100x means the signal is blowing up or dying.
EXPLODE_ABOVE = 1e2
VANISH_BELOW = 1e-2


@dataclass(frozen=True)
class LayerStat:
    name: str
    module_type: str
    std: float
    mean: float
    flag: str | None  # "explodes", "vanishes", "non-finite" or None

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "type": self.module_type, "std": self.std, "mean": self.mean,
                "flag": self.flag}


def _flag(std: float) -> str | None:
    if not math.isfinite(std):
        return "non-finite"
    if std > EXPLODE_ABOVE:
        return "explodes"
    if std < VANISH_BELOW:
        return "vanishes"
    return None


def activation_stats(model: nn.Module, image_size: int, batch_size: int = 8, seed: int = 0,
                     batch_norm_statistics: bool = True) -> list[LayerStat]:
    """Per-layer output std for a batch of N(0, 1) inputs, in execution order.

    Predicted parameters come without BatchNorm running statistics, so by default BatchNorm layers
    normalise with the batch's own statistics (as the official evaluation of predicted parameters
    does). The model, its buffers and the global RNG are left as they were.
    """
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(batch_size, 3, image_size, image_size, generator=generator).to(device)
    stats: list[LayerStat] = []
    handles = []

    def hook(name: str):
        def record(module: nn.Module, inputs: object, output: object) -> None:
            out = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(out, torch.Tensor) and out.is_floating_point() and out.numel() > 1:
                out = out.detach().float()
                std = float(out.std())
                stats.append(LayerStat(name, type(module).__name__, std, float(out.mean()), _flag(std)))
        return record

    for name, module in model.named_modules():
        if any(True for _ in module.parameters(recurse=False)):
            handles.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    saved = {k: b.clone() for k, b in model.named_buffers()}
    bn_modes: list[tuple[nn.modules.batchnorm._BatchNorm, bool]] = []
    try:
        model.eval()
        if batch_norm_statistics:
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    bn_modes.append((m, m.training))
                    m.train()  # batch statistics; running stats restored below
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m, mode in bn_modes:
            m.train(mode)
        model.train(was_training)
        with torch.no_grad():
            for k, b in model.named_buffers():
                b.copy_(saved[k])
    return stats
