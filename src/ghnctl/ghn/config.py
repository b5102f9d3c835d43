"""GHN configuration: the constructor arguments of a GHN-3 / GHN-2, validated, with JSON round-trip.

``infer_config`` reproduces the official ``from_pretrained`` rules that derive a configuration from
the keys and shapes of a bare state_dict (spec section 2), for files that carry no config.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

import torch

from ..errors import CheckpointError, excerpt

# Upper bounds of every size, far above any published GHN (GHN-3-XL: hid 384, 24 layers, 16 heads,
# max_shape (384, 384, 16, 16)): a config from a file cannot make ghnctl allocate without limit.
LIMITS = {"hid": 8192, "layers": 256, "heads": 256, "num_classes": 1_000_000, "channels": 16384, "spatial": 64}

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
        if not isinstance(self.max_shape, tuple | list):
            raise ValueError(f"max_shape must be 4 positive integers, got {excerpt(self.max_shape)}")
        shape = tuple(self.max_shape)
        if len(shape) != 4 or not all(_is_int(v) and v > 0 for v in shape):
            raise ValueError(f"max_shape must be 4 positive integers, got {excerpt(shape)}")
        if max(shape[:2]) > LIMITS["channels"] or shape[2] > LIMITS["spatial"]:
            raise ValueError(f"max_shape {shape} is larger than any GHN (channels <= {LIMITS['channels']}, "
                             f"kernel <= {LIMITS['spatial']})")
        object.__setattr__(self, "max_shape", tuple(int(v) for v in shape))
        if shape[2] != shape[3]:
            raise ValueError(f"max_shape must have a square kernel (S, S), got {shape[2]}x{shape[3]}")
        for name in ("num_classes", "hid", "heads"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {excerpt(value)}")
        if not _is_int(self.layers) or self.layers < 0:
            raise ValueError(f"layers must be a non-negative integer, got {excerpt(self.layers)}")
        for name in ("hid", "layers", "heads", "num_classes"):
            if getattr(self, name) > LIMITS[name]:
                raise ValueError(f"{name} = {excerpt(getattr(self, name))} is larger than any GHN "
                                 f"(at most {LIMITS[name]})")
        for name in ("is_ghn2", "weight_norm", "ve", "layernorm", "pretrained_layout"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {excerpt(getattr(self, name))}")
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
        if not isinstance(data, Mapping):
            raise ValueError(f"a GhnConfig must be a mapping of field names, got {excerpt(data)}")
        bad_keys = [k for k in data if not isinstance(k, str)]
        if bad_keys:
            raise ValueError(f"GhnConfig field names must be strings, got {excerpt(bad_keys[0])}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown GhnConfig field(s): {', '.join(excerpt(k, 40) for k in unknown[:5])}")
        values = dict(data)
        missing = [f.name for f in fields(cls) if f.name not in values and f.default is MISSING]
        if missing:
            raise ValueError(f"incomplete GhnConfig: missing {', '.join(missing)}")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> GhnConfig:
        if len(text) > 100_000:
            raise ValueError(f"GhnConfig JSON is {len(text)} characters long; a config is a few hundred")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"GhnConfig JSON is not valid JSON: {exc}") from None
        except RecursionError:
            raise ValueError("GhnConfig JSON nests too deeply") from None
        if not isinstance(data, dict):
            raise ValueError("GhnConfig JSON must be an object")
        return cls.from_dict(data)

    @classmethod
    def from_official(cls, config: Mapping[str, Any], *, is_ghn2: bool | None = None) -> GhnConfig:
        """Build from the ``config`` dict the official trainer stores in its checkpoints.

        ``is_ghn2`` is what the state_dict keys say; when the dict carries ``is_ghn2`` too, both
        must agree (as the official loader asserts).
        """
        if not isinstance(config, Mapping) or not all(isinstance(k, str) for k in config):
            raise CheckpointError("checkpoint config is not a dict of named settings",
                                  "the file is not a GHN checkpoint of a known format")
        values = dict(config)
        for key, expected in _FIXED_OFFICIAL_KEYS.items():
            if key in values and values.pop(key) != expected:
                raise CheckpointError(f"checkpoint config has {key}={excerpt(config[key])}; ghnctl supports "
                                      f"{key}={expected!r} only")
        if is_ghn2 is not None:
            if "is_ghn2" in values and bool(values["is_ghn2"]) != is_ghn2:
                raise CheckpointError(
                    f"checkpoint config says is_ghn2={excerpt(values['is_ghn2'])} but its weights are "
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
