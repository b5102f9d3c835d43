"""Which graph node predicts which model parameter, and how a prediction becomes that parameter.

Mirrors the official ``_map_net_params`` / ``_tile_params`` / ``_normalize`` / ``_set_params``
semantics (spec 3.5-3.9, 4.9):

* ``layered_targets`` lists the writable parameters of a model under the official names
  (``<module>.weight``, ``.bias``, ``.in_proj_weight``, ``.in_proj_bias``, ``.pos_embedding.weight``);
* ``match_nodes`` pairs graph nodes with them and classifies each pair (``Assignment``): its
  grouping key, the decoder it uses and what the decoder must produce (``DecodeSpec``);
* ``normalize`` and ``tile`` turn a predicted block into the target tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .config import GhnConfig
from .decoder import DecodeSpec, kernel_crop

_NAME_SUFFIXES = (".weight", ".bias", "in_proj_weight", "in_proj_bias")


@dataclass(frozen=True)
class Target:
    """A parameter the GHN can write: ``module.<attr>``, known to the GHN as ``key``."""

    key: str
    module: nn.Module
    attr: str
    shape: tuple[int, ...]
    is_weight: bool

    def parameter(self) -> nn.Parameter | None:
        value = getattr(self.module, self.attr, None)
        return value if isinstance(value, nn.Parameter) else None


def layered_targets(model: nn.Module) -> dict[str, Target]:
    """The official ``named_layered_modules`` of a model: official key -> Target."""
    targets: dict[str, Target] = {}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        weight_attr = next((attr for attr in ("layer_scale", "in_proj_weight", "pos_embedding", "weight")
                            if getattr(module, attr, None) is not None), None)
        bias_attr = next((attr for attr in ("in_proj_bias", "bias") if getattr(module, attr, None) is not None),
                         None)
        if weight_attr is not None:
            suffix = "pos_embedding.weight" if weight_attr == "pos_embedding" else weight_attr
            value = getattr(module, weight_attr)
            targets[prefix + suffix] = Target(prefix + suffix, module, weight_attr, _shape_of(value), True)
        if bias_attr is not None:
            value = getattr(module, bias_attr)
            targets[prefix + bias_attr] = Target(prefix + bias_attr, module, bias_attr, _shape_of(value), False)
    return targets


def _shape_of(value: object) -> tuple[int, ...]:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, list | tuple):  # light-weight modules store shapes instead of tensors
        return tuple(int(v) for v in value)
    return ()


def official_param_key(node_param: str) -> str:
    """The key a node name is looked up under (``encoder.pos_embedding`` -> ``...pos_embedding.weight``)."""
    return node_param if node_param.endswith(_NAME_SUFFIXES) else node_param + ".weight"


# --------------------------------------------------------------------------------------------------
# Node -> parameter assignments

@dataclass(frozen=True)
class Write:
    """One tensor to write: a target plus whether it takes the decoder's "weight" treatment."""

    target: Target
    row: int  # decoder_1d row for 1-D tensors (0 = weight, 1 = bias); unused otherwise
    as_weight: bool  # weight normalisation: sigmoid for 1-D weights, tanh for biases


@dataclass(frozen=True)
class Assignment:
    """A graph node matched to a model parameter, and how its prediction is produced.

    ``kind``: ``vector`` (decoder_1d), ``class_bias`` (decoder_1d + bias_class), ``conv``,
    ``class_weight`` or ``pos_embedding`` (conv decoder, ``spec`` says what to decode), or
    ``vector3d`` (decoder_1d viewed as (2*Cm, 1, 1)). ``key`` is the official grouping key.
    """

    node: int
    kind: str
    key: tuple[int, ...]
    writes: tuple[Write, ...]
    spec: DecodeSpec | None = None

    @property
    def is_classifier(self) -> bool:
        return self.kind in ("class_weight", "class_bias")


def group_key(shape: Sequence[int], max_shape: Sequence[int], last_weight: bool, last_bias: bool
              ) -> tuple[int, ...]:
    """The official shape key that groups nodes for the decoders (spec 3.5)."""

    def rounded(j: int) -> int:
        n = min(shape[j], max_shape[j])
        if n % 3 == 0:
            n = n // 3 * 4
        if n >= max_shape[j] / 2:
            n = max_shape[j]
        return n

    if len(shape) == 1:
        return (rounded(0), -1) if last_bias else (rounded(0), 0)
    if last_weight:
        return (rounded(0), rounded(1))
    if len(shape) == 2:
        return (rounded(0), rounded(1), 1, 1)
    if len(shape) == 3:
        if shape[0] == 1 and min(shape[1:]) > 1:
            s = math.isqrt(shape[1])
            return (1, shape[2], s, s)
        return (rounded(0), rounded(1), rounded(2))
    return (rounded(0), rounded(1), shape[2], shape[3])


def match_nodes(nodes: Sequence[tuple[int, str | None]], targets: dict[str, Target], config: GhnConfig
                ) -> tuple[list[Assignment], dict[int, str]]:
    """Pair graph nodes with targets.

    ``nodes`` are (index, parameter name or None) in graph order; the classifier is recognised by
    position (weight at N-2, bias at N-1) as in the official code. Returns the assignments in node
    order and, for parameter nodes without a target, the reason.
    """
    n_nodes = len(nodes)
    assignments: list[Assignment] = []
    unmatched: dict[int, str] = {}
    bias_of = {id(t.module): t for t in targets.values() if not t.is_weight}
    c0, c1, s, _ = config.max_shape
    for index, param in nodes:
        if param is None:
            continue
        key_name = official_param_key(param)
        target = targets.get(key_name)
        if target is None:
            unmatched[index] = f"no writable parameter named {key_name!r}"
            continue
        shape = target.shape
        if not 1 <= len(shape) <= 4:
            unmatched[index] = f"{len(shape)}-D parameters are not supported by the GHN decoders"
            continue
        last_weight = index == n_nodes - 2 and ".weight" in param
        last_bias = index == n_nodes - 1 and ".bias" in param
        key = group_key(shape, config.max_shape, last_weight, last_bias)
        spec = None
        if len(shape) == 1:
            kind = "class_bias" if last_bias else "vector"
            writes = [Write(target, 0 if target.is_weight else 1, target.is_weight)]
            bias = bias_of.get(id(target.module))
            if target.is_weight and bias is not None:
                writes.append(Write(bias, 1, False))
        elif len(key) == 2:
            kind = "class_weight"
            spec = DecodeSpec(kernel_crop(1, 1, s, not config.is_ghn2), c0, min(shape[1], c1),
                              classifier=True)
            writes = [Write(target, 0, True)]
        elif len(key) == 3:
            kind = "vector3d"
            writes = [Write(target, 0, True)]
        else:
            kind = "pos_embedding" if len(shape) == 3 else "conv"
            out_ch = 1 if kind == "pos_embedding" else min(shape[0], c0)
            kh, kw = key[2], key[3]
            crop = kernel_crop(kh, kw, s, not config.is_ghn2)
            resize = (kh, kw) if (kh, kw) != crop.size else None
            spec = DecodeSpec(crop, out_ch, min(key[1] if kind == "pos_embedding" else shape[1], c1), resize)
            writes = [Write(target, 0, True)]
        assignments.append(Assignment(index, kind, key, tuple(writes), spec))
    return assignments, unmatched


# --------------------------------------------------------------------------------------------------
# Prediction -> target tensor

def normalize(block: torch.Tensor, target_shape: Sequence[int], as_weight: bool) -> torch.Tensor:
    """The official fan-in weight normalisation, applied to a block whose tiling gives the target.

    Element-wise, so normalising before tiling equals normalising the tiled tensor; the scale
    comes from the target shape.
    """
    if len(target_shape) > 1:
        if len(target_shape) > 2 and target_shape[2] >= 11 and target_shape[0] == 1:
            return block  # positional embeddings (and 1-output convs with kernel >= 11) stay as is
        no_relu = len(target_shape) > 2 and (
            target_shape[1] == 1 or (len(target_shape) > 3 and target_shape[2] < target_shape[3]))
        beta = 1.0 if no_relu else 2.0
        fan_in = math.prod(target_shape[1:])
        return block * (beta / fan_in) ** 0.5
    if as_weight:
        return 2 * torch.sigmoid(0.5 * block)
    return torch.tanh(0.2 * block)


def tile(block: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Cyclic tiling / prefix truncation of every dim: ``out[j...] = block[j mod size ...]``."""
    if block.dim() != len(shape):
        raise ValueError(f"cannot tile a {tuple(block.shape)} block to {tuple(shape)}")
    if tuple(block.shape) == tuple(shape):
        return block
    reps = [max(1, -(-t // b)) for t, b in zip(shape, block.shape)]
    out = block.repeat(reps) if any(r > 1 for r in reps) else block
    return out[tuple(slice(0, t) for t in shape)]
