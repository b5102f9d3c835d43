"""Training architecture lists: ``deepnets:SPLIT`` expanded to nets, ``SPEC=W`` draw weights.

``SPEC=W`` gives each net of SPEC the draw weight W (default 1), so ``deepnets:train,resnet18=1000``
with 1,000 generated nets spends about half of the draws on ResNet-18. Kept free of torch so that a
config can validate its ``--archs`` before anything heavy is imported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ghnctl.errors import UsageError
from ghnctl.zoo import DEEPNETS_PREFIX


def split_weight(entry: str) -> tuple[str, float]:
    """``SPEC=W`` -> (SPEC, W); a plain ``SPEC`` has weight 1. W must be a positive finite number."""
    spec, sep, text = entry.strip().rpartition("=")
    if not sep:
        return entry.strip(), 1.0
    try:
        weight = float(text)
    except ValueError:
        weight = math.nan
    if not (math.isfinite(weight) and weight > 0) or not spec.strip():
        raise UsageError(f"architecture entry {entry.strip()!r}: the weight after '=' must be a positive number",
                         hint="for example --archs deepnets:train,resnet18=100")
    return spec.strip(), weight


def expand_weighted_specs(specs: Sequence[str], size: int) -> tuple[list[str], list[float]]:
    """Like ``expand_specs``, with each net's draw weight (``SPEC=W`` gives every net of SPEC weight W)."""
    out: list[str] = []
    weights: list[float] = []
    for entry in specs:
        if not entry.strip():
            continue
        spec, weight = split_weight(entry)
        whole_split = spec.startswith(DEEPNETS_PREFIX) and "/" not in spec
        nets = [f"{spec}/{i}" for i in range(size)] if whole_split else [spec]
        out.extend(nets)
        weights.extend([weight] * len(nets))
    if not out:
        raise UsageError("the architecture list is empty", hint="for example --archs deepnets:train")
    return out, weights


def expand_specs(specs: Sequence[str], size: int) -> list[str]:
    """``deepnets:SPLIT`` -> its first ``size`` nets (``deepnets:SPLIT/0`` ...); others as they are."""
    out, weights = expand_weighted_specs(specs, size)
    if any(w != 1.0 for w in weights):
        raise UsageError("weights (SPEC=W) only apply to the training architectures (--archs)")
    return out
