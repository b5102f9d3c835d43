"""GHN configuration: the constructor arguments of a GHN-3 / GHN-2, validated, with JSON round-trip.

``infer_config`` reproduces the official ``from_pretrained`` rules that derive a configuration from
the keys and shapes of a bare state_dict (spec section 2), for files that carry no config.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from ..errors import CheckpointError

# Keys of an official trainer ``config`` dict that ghnctl understands, and the one value each
# non-model key may take (ghnctl implements the official conv decoder and GatedGNN/Graphormer only).
_FIXED_OFFICIAL_KEYS = {"hypernet": "gatedgnn", "decoder": "conv"}


@dataclass(frozen=True)
class GhnConfig:
    """Hyper-parameters of a GHN.

    ``max_shape`` is (max out-channels, max in-channels, max kernel h, max kernel w) the decoder
    predicts; ``pretrained_layout`` records that the checkpoint keeps the Graphormer centrality and
    input-distance embeddings at the top level (HuggingFace GHN-3 files) instead of under ``gnn.0.``.
    It changes how a file is read and written, never the network.
    """

    max_shape: tuple[int, int, int, int]
    num_classes: int
    hid: int
    layers: int
    heads: int
    is_ghn2: bool = False
    weight_norm: bool = True
    ve: bool = True
    layernorm: bool = True
    pretrained_layout: bool = False

    def __post_init__(self) -> None:
        shape = tuple(self.max_shape)
        if len(shape) != 4 or not all(_is_int(v) and v > 0 for v in shape):
            raise ValueError(f"max_shape must be 4 positive integers, got {self.max_shape!r}")
        object.__setattr__(self, "max_shape", tuple(int(v) for v in shape))
        if shape[2] != shape[3]:
            raise ValueError(f"max_shape must have a square kernel (S, S), got {shape[2]}x{shape[3]}")
        for name in ("num_classes", "hid", "heads"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not _is_int(self.layers) or self.layers < 0:
            raise ValueError(f"layers must be a non-negative integer, got {self.layers!r}")
        for name in ("is_ghn2", "weight_norm", "ve", "layernorm", "pretrained_layout"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.hid % 4:
            raise ValueError(f"hid must be a multiple of 4 (the shape encoder uses hid/4), got {self.hid}")
        if self.is_ghn2:
            if self.ve and self.hid % 2:
                raise ValueError(f"a GHN-2 with virtual edges needs an even hid, got {self.hid}")
        else:
            if self.layers < 1:
                raise ValueError("a GHN-3 needs at least one Graphormer layer (layers >= 1)")
            if self.hid % self.heads:
                raise ValueError(f"hid ({self.hid}) must be divisible by heads ({self.heads})")

    # ----------------------------------------------------------------------------------------------
    @property
    def max_channels(self) -> int:
        """``Cm = max(C0, C1)``: the length of the 1-D decoder's vectors."""
        return max(self.max_shape[:2])

    @property
    def kind(self) -> str:
        return "ghn2" if self.is_ghn2 else "ghn3"

    def official_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the official ``GHN3(...)`` constructor for this config."""
        return {
            "max_shape": self.max_shape, "num_classes": self.num_classes, "hid": self.hid,
            "heads": self.heads, "layers": self.layers, "is_ghn2": self.is_ghn2,
            "weight_norm": self.weight_norm, "ve": self.ve, "layernorm": self.layernorm,
            "pretrained": self.pretrained_layout,
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["max_shape"] = list(self.max_shape)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GhnConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown GhnConfig field(s): {', '.join(unknown)}")
        values = dict(data)
        if "max_shape" in values:
            values["max_shape"] = tuple(values["max_shape"])
        try:
            return cls(**values)
        except TypeError as exc:  # a missing required field
            raise ValueError(f"incomplete GhnConfig: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> GhnConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"GhnConfig JSON is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("GhnConfig JSON must be an object")
        return cls.from_dict(data)

    @classmethod
    def from_official(cls, config: Mapping[str, Any], *, is_ghn2: bool | None = None) -> GhnConfig:
        """Build from the ``config`` dict the official trainer stores in its checkpoints.

        ``is_ghn2`` is what the state_dict keys say; when the dict carries ``is_ghn2`` too, both
        must agree (as the official loader asserts).
        """
        values = dict(config)
        for key, expected in _FIXED_OFFICIAL_KEYS.items():
            if key in values and values.pop(key) != expected:
                raise CheckpointError(f"checkpoint config has {key}={config[key]!r}; ghnctl supports "
                                      f"{key}={expected!r} only")
        if is_ghn2 is not None:
            if "is_ghn2" in values and bool(values["is_ghn2"]) != is_ghn2:
                raise CheckpointError(
                    f"checkpoint config says is_ghn2={values['is_ghn2']!r} but its weights are "
                    f"{'GHN-2' if is_ghn2 else 'GHN-3'} weights", "the file is inconsistent")
            values["is_ghn2"] = is_ghn2
        if "pretrained" in values:
            values["pretrained_layout"] = bool(values.pop("pretrained"))
        # Defaults of the official constructors (GHN3: heads 8, layers 3; GHN base: the flags off).
        for key, default in (("heads", 8), ("layers", 3), ("weight_norm", False), ("ve", False),
                             ("layernorm", False)):
            values.setdefault(key, default)
        values.pop("debug_level", None)
        for key in ("weight_norm", "ve", "layernorm", "is_ghn2", "pretrained_layout"):
            if key in values:
                values[key] = bool(values[key])
        try:
            return cls.from_dict(values)
        except ValueError as exc:
            raise CheckpointError(f"invalid GHN config in checkpoint: {exc}") from None


def infer_config(
    state_dict: Mapping[str, torch.Tensor],
    *,
    num_classes: int = 10,
    layers: int = 0,
    hid: int = 32,
    layernorm: bool = False,
    pretrained: bool = False,
    max_shape: int | tuple[int, int, int, int] = 64,
) -> GhnConfig:
    """Infer a GhnConfig from a bare state_dict exactly as the official ``from_pretrained`` does.

    The keyword arguments are the official defaults that the keys may override. Rules are applied
    in key order, first match per key wins (spec section 2).
    """
    keys = list(state_dict)
    is_ghn2 = any("gnn.gru." in k for k in keys)
    for key in keys:
        if "class_layer_predictor" in key:
            num_classes = len(state_dict[key])
            break
    spatial = 16 if num_classes >= 1000 else 11
    for key in keys:
        tensor = state_dict[key]
        if key.endswith("ln.weight"):
            layernorm = True
        elif key.endswith("embed.weight"):
            hid = int(tensor.shape[-1])
        elif key.endswith("decoder.conv.2.weight"):
            max_shape = int(math.isqrt(len(tensor)))
            if max_shape * max_shape != len(tensor):
                raise CheckpointError(
                    f"decoder.conv.2.weight has {len(tensor)} rows, not a square C*C",
                    "ghnctl infers max_shape only for square channel maxima; use a file with a config")
        elif key.endswith("shape_enc.embed_spatial.weight"):
            spatial = 11 if len(tensor) == 9 else 16
        elif key.endswith("ln1.weight") and "gnn." in key:
            layers += 1
        elif "centrality_embed_in" in key and "gnn." not in key:
            pretrained = True
    shape = max_shape if isinstance(max_shape, tuple) else (max_shape, max_shape, spatial, spatial)
    try:
        return GhnConfig(
            max_shape=shape, num_classes=num_classes, hid=hid, layers=layers,
            heads=16 if hid > 64 else 8, is_ghn2=is_ghn2, weight_norm=True, ve=True,
            layernorm=layernorm, pretrained_layout=pretrained,
        )
    except ValueError as exc:
        raise CheckpointError(f"cannot infer a valid GHN config from the weights: {exc}",
                              "the file may not be a GHN-3/GHN-2 checkpoint") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
