"""The fine-tuning recipe's perturbations of predicted parameters: noise and orthogonalisation.

Spec section 6: ``W += beta * std(corrcoef(W2d)) * N(0, 1)`` for every module with a >=2-D weight
except the last one (the classifier); BN weights and all biases are left alone. ``orth``
replaces each of those weights by the orthogonal factor of its QR decomposition, as the official
``ppuda.utils.init(orth=True)`` does (not part of the published fine-tuning recipe).

About ``W2d`` in the noise formula: the official ``get_corr`` reshapes the weight to
``(out, -1)`` and transposes it when it has fewer rows than columns, so the correlations are taken
between the rows of the *taller* orientation. ghnctl follows that code. Its standard deviation is
computed from the small Gram matrix (``||C||_F^2 = ||Xn^T Xn||_F^2``) instead of materialising the
n x n correlation matrix, which for e.g. VGG's 4096x25088 layer would be 2.5 GB; rows with zero
variance (NaN correlations in ``torch.corrcoef``) are left out instead of turning the noise into NaN.
"""

from __future__ import annotations

import torch
from torch import nn

DEFAULT_NOISE = 1e-5  # the published fine-tuning recipe's beta


def perturb_(model: nn.Module, *, noise: float, orth: bool, seed: int) -> tuple[int, int]:
    """Noise (drawn from a generator seeded with ``seed``), then orthogonalisation when asked.

    Returns (noised layers, orthogonalised layers). The global RNG is not used.
    """
    noised = add_noise_(model, noise, torch.Generator().manual_seed(seed)) if noise > 0 else 0
    orthed = orthogonalize_(model) if orth else 0
    return noised, orthed


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules with a ``weight`` of two or more dimensions, in ``model.modules()`` order."""
    out = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() >= 2:
            out.append((name, module))
    return out


def classifier_module(model: nn.Module) -> tuple[str | None, nn.Module | None]:
    """The last module with a >=2-D weight: the classifier, by the official convention."""
    layers = weight_layers(model)
    return layers[-1] if layers else (None, None)


def _tall(weight: torch.Tensor) -> torch.Tensor:
    """The weight as a 2-D matrix (out, rest), transposed when it is wide (official weights2mat)."""
    w2d = weight.reshape(weight.shape[0], -1)
    return w2d.t() if w2d.shape[0] < w2d.shape[1] else w2d


def corr_std(weight: torch.Tensor) -> float:
    """``torch.corrcoef(W2d).flatten().std()`` without building the n x n matrix.

    With Xn the centred, unit-norm rows: sum(C) = ||Xn^T 1||^2 and sum(C^2) = ||Xn^T Xn||_F^2.
    Zero-variance rows are left out. Returns 0.0 when fewer than two rows vary.
    """
    x = _tall(weight.detach()).to(torch.float64)
    x = x - x.mean(dim=1, keepdim=True)
    norms = x.norm(dim=1)
    x = x[norms > 0] / norms[norms > 0].unsqueeze(1)
    n = x.shape[0]
    if n < 2:
        return 0.0
    total = x.sum(dim=0).square().sum()
    total_sq = (x.t() @ x).square().sum()
    count = n * n
    var = (total_sq - total * total / count) / (count - 1)
    return float(var.clamp_min(0).sqrt())


@torch.no_grad()
def add_noise_(model: nn.Module, beta: float, generator: torch.Generator) -> int:
    """Official symmetry-breaking noise on every >=2-D weight but the last; returns the layer count."""
    layers = weight_layers(model)[:-1]
    for _, module in layers:
        weight = module.weight
        std = corr_std(weight)
        noise = torch.randn(weight.shape, generator=generator, dtype=torch.float32)
        weight.add_(noise.to(weight.device, weight.dtype), alpha=beta * std)
    return len(layers)


def orthogonalize(weight: torch.Tensor) -> torch.Tensor:
    """The Q factor of the QR decomposition of the tall 2-D weight, signs fixed by diag(R)."""
    w2d = weight.reshape(weight.shape[0], -1)
    transposed = w2d.shape[0] < w2d.shape[1]
    mat = (w2d.t() if transposed else w2d).to(torch.float64)
    q, r = torch.linalg.qr(mat)
    sign = torch.sign(torch.diagonal(r))
    q = q * torch.where(sign == 0, torch.ones_like(sign), sign)
    if transposed:
        q = q.t()
    return q.reshape(weight.shape).to(weight.dtype)


@torch.no_grad()
def orthogonalize_(model: nn.Module) -> int:
    layers = weight_layers(model)[:-1]
    for _, module in layers:
        module.weight.copy_(orthogonalize(module.weight))
    return len(layers)
