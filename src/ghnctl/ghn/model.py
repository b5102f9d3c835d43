"""The GHN network (GHN-3 Graphormer or GHN-2 GatedGNN) and loading it from a file.

``GHN.state_dict()`` keys equal the official ones (with the Graphormer embeddings under ``gnn.0.``,
where the official loader moves them), so official weights load strictly. The module computes node
embeddings (``embed_nodes``); turning embeddings into parameters of a target model is the job of
``ghnctl.predict`` (``GHN.predict`` is a shortcut to it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import CheckpointError
from .checkpoint import read_checkpoint, save_ghn
from .config import GhnConfig
from .decoder import ConvDecoder
from .layers import MLP, GatedGNN, Graphormer, ShapeEncoder

if TYPE_CHECKING:
    from ..graph.model import GhnGraph

NUM_PRIMITIVES = 15


class GHN(nn.Module):
    """A Graph HyperNetwork: graph of a model -> node embeddings -> the model's parameters."""

    def __init__(self, config: GhnConfig) -> None:
        super().__init__()
        self.config = config
        hid = config.hid
        if config.layernorm:
            self.ln = nn.LayerNorm(hid)
        self.embed = nn.Embedding(NUM_PRIMITIVES, hid)
        self.shape_enc = ShapeEncoder(hid, config.num_classes, config.max_shape)
        self.gnn: nn.Module = (GatedGNN(hid, config.ve) if config.is_ghn2
                               else Graphormer(hid, config.heads, config.layers))
        self.decoder = ConvDecoder(hid, config.max_shape, config.num_classes)
        self.decoder_1d = MLP(hid, (hid * 2, 2 * config.max_channels), last_relu=False)
        self.bias_class = nn.Sequential(nn.ReLU(), nn.Linear(config.max_channels, config.num_classes))

    # ----------------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: GhnConfig, *, device: str | torch.device | None = None) -> GHN:
        """A GHN with fresh (untrained) weights; ``device='meta'`` allocates nothing."""
        if device is None:
            return cls(config)
        with torch.device(device):
            return cls(config)

    @property
    def is_ghn2(self) -> bool:
        return self.config.is_ghn2

    @property
    def device(self) -> torch.device:
        return self.embed.weight.device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        c = self.config
        return (f"{c.kind}: hid={c.hid}, layers={c.layers}, heads={c.heads}, max_shape={c.max_shape}, "
                f"num_classes={c.num_classes}")

    # ----------------------------------------------------------------------------------------------
    def embed_nodes(self, graph: GhnGraph, shapes: Sequence[tuple[int, ...] | None]) -> torch.Tensor:
        """(N, h) node embeddings of ``graph`` after message passing and the final LayerNorm.

        ``shapes`` is the shape the shape encoder sees per node: the target parameter's shape for
        nodes matched to a parameter, the node's own shape otherwise (pooling), or None.
        """
        device = self.device
        ops = graph.op_indices.to(device)
        dist = graph.dist.to(device=device, dtype=torch.long)
        x = self.embed(ops) + self.shape_enc(self.shape_enc.shape_indices(shapes).to(device))
        x = self.gnn(x, dist) if self.is_ghn2 else self.gnn(x.unsqueeze(0), dist.unsqueeze(0))[0]
        if self.config.layernorm:
            x = self.ln(x)
        return x

    def predict(self, model: nn.Module, graph: GhnGraph | None = None, **kwargs: Any) -> nn.Module:
        """Write predicted parameters into ``model`` and return it (see ``ghnctl.predict_parameters``)."""
        from ..predict import predict_parameters

        return predict_parameters(self, model, graph, **kwargs)

    # ----------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Save in ghnctl's safetensors format (weights + config JSON)."""
        return save_ghn(path, self.state_dict(), self.config, force=force)


def load_ghn(name_or_path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> GHN:
    """Load a GHN: a local file (official joblib / torch.save checkpoint or ghnctl safetensors), or
    else a registry name or URL resolved (and downloaded once) by ``ghnctl.hub.resolve_ghn``.

    Official files are read with a restricted unpickler (see ``ghnctl.ghn.checkpoint``); weights
    load strictly. The GHN is returned in eval mode (predictions do not depend on the mode).
    """
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        from ..hub import resolve_ghn

        path = resolve_ghn(name_or_path)
    checkpoint = read_checkpoint(path)
    return ghn_from_state_dict(checkpoint.state_dict, checkpoint.config, device=device)


def ghn_from_state_dict(state_dict: dict[str, torch.Tensor], config: GhnConfig, *,
                        device: str | torch.device = "cpu") -> GHN:
    """Build a GHN for ``config`` around ghnctl-layout weights, strictly (no copy on CPU)."""
    ghn = GHN.from_config(config, device="meta")
    expected = ghn.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {_names(missing)}")
        if unexpected:
            parts.append(f"unexpected {_names(unexpected)}")
        raise CheckpointError(f"checkpoint does not fit a {config.kind} GHN with {config.to_json()}: "
                              + "; ".join(parts))
    for key, ref in expected.items():
        if tuple(state_dict[key].shape) != tuple(ref.shape):
            raise CheckpointError(f"checkpoint tensor {key!r} has shape {tuple(state_dict[key].shape)}, "
                                  f"expected {tuple(ref.shape)} for {config.to_json()}")
    tensors = {k: v.to(device=device, dtype=torch.float32) for k, v in state_dict.items()}
    ghn.load_state_dict(tensors, strict=True, assign=True)
    return ghn.eval().requires_grad_(False)


def _names(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
