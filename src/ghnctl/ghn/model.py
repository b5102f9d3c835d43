"""The GHN network (GHN-3 Graphormer or GHN-2 GatedGNN) and loading it from a file.

``GHN.state_dict()`` keys equal the official ones (with the Graphormer embeddings under ``gnn.0.``,
where the official loader moves them), so official weights load strictly. The module computes node
embeddings (``embed_nodes``); ``ghnctl.ghn.decoding`` turns them into a model's parameters
(``GHN.predict`` writes them, ``GHN.predict_tensors`` returns them with gradients for training).

Loading here is from a local file only; ``ghnctl.load_ghn`` also takes registry names and URLs
(it asks ``ghnctl.hub`` for the file first), so this package never reaches the network.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import CheckpointError, excerpt
from .checkpoint import read_checkpoint, save_ghn
from .config import GhnConfig
from .decoder import ConvDecoder
from .layers import MLP, GatedGNN, Graphormer, ShapeEncoder

if TYPE_CHECKING:
    from ..graph.model import GhnGraph

NUM_PRIMITIVES = 15


@dataclass
class GhnSource:
    """Where a loaded GHN came from: a display ``name`` (registry name, URL or file name) and its file.

    ``sha256`` of the file is computed on first use (a 2.6 GB checkpoint takes seconds to hash).
    """

    name: str
    path: Path | None = None
    _sha256: str | None = field(default=None, repr=False)
    trained_image_size: int | None = None  # when the file or the registry says (None: unknown)

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            if self.path is None:
                return ""
            from ..io import sha256_file

            self._sha256 = sha256_file(self.path)
        return self._sha256


class GHN(nn.Module):
    """A Graph HyperNetwork: graph of a model -> node embeddings -> the model's parameters."""

    def __init__(self, config: GhnConfig) -> None:
        super().__init__()
        self.config = config
        self.source = GhnSource(name=f"untrained {config.kind}")
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

    @torch.no_grad()
    def init_for_training(self, generator: torch.Generator | None = None) -> GHN:
        """The official initialisation for training from scratch (spec section 5); returns self.

        Every embedding table: truncated normal with std ``dim ** -0.5`` for its own row width
        (this also replaces the sinusoidal init of the edge embedding). The last linear layer of ``decoder_1d``, of the
        decoder's per-position stack and of the class-layer head: weights divided by 5, bias 0, so
        the first predictions are small. Draws from ``generator`` (default: the global RNG).
        """
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                std = module.weight.shape[1] ** -0.5
                nn.init.trunc_normal_(module.weight, std=std, generator=generator)  # cut at +-2, torch's default
        lasts = [self.decoder_1d.fc[-2], self.decoder.conv[2], self.decoder.class_layer_predictor[-1]]
        for layer in lasts:
            layer.weight.div_(5)
            layer.bias.zero_()
        return self

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

    def predict(self, model: nn.Module, graph: GhnGraph | None = None, *,
                predict_class_layers: bool = True) -> nn.Module:
        """Write predicted parameters into ``model`` (no gradients) and return it.

        ``ghnctl.predict_parameters`` does the same and can also report what it did.
        """
        from .decoding import decode_parameters, plan_prediction, write_parameters

        plan = plan_prediction(self.config, model, graph, predict_class_layers=predict_class_layers)
        with torch.no_grad():
            tensors = decode_parameters(self, [plan])[0]
        write_parameters(model, tensors)
        return model

    def predict_tensors(self, models: Sequence[nn.Module], graphs: Sequence[GhnGraph | None] | None = None,
                        *, predict_class_layers: bool = True) -> list[dict[str, torch.Tensor]]:
        """Per model, ``parameter name -> predicted tensor``, differentiable w.r.t. the GHN's weights.

        For training: run a model on them with ``torch.func.functional_call(model, tensors, x)``
        (unpredicted parameters and buffers come from the model itself). Under ``torch.no_grad()``
        this is the inference path. The models are not modified.
        """
        from .decoding import decode_parameters, plan_prediction

        graphs = list(graphs) if graphs is not None else [None] * len(models)
        if len(graphs) != len(models):
            raise ValueError(f"got {len(models)} models but {len(graphs)} graphs")
        plans = [plan_prediction(self.config, m, g, predict_class_layers=predict_class_layers)
                 for m, g in zip(models, graphs)]
        return decode_parameters(self, plans)

    # ----------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Save in ghnctl's safetensors format (weights + config JSON)."""
        return save_ghn(path, self.state_dict(), self.config, force=force)


def load_ghn(path: str | os.PathLike[str], *, device: str | torch.device = "cpu", name: str | None = None) -> GHN:
    """Load a GHN from a local file: official joblib / torch.save checkpoint or ghnctl safetensors.

    Official files are read with a restricted unpickler (see ``ghnctl.ghn.checkpoint``); weights
    load strictly. The GHN is returned in eval mode, frozen (``requires_grad_(True)`` to train it);
    predictions do not depend on the mode. ``name`` is recorded in ``ghn.source`` (default: the
    file name). Registry names and URLs: ``ghnctl.load_ghn``.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        problem = "is not a file" if file.exists() else "does not exist"
        raise CheckpointError(f"GHN checkpoint {os.fspath(path)!r} {problem}",
                              hint="give the path of a checkpoint file; registry names and URLs go "
                                   "through ghnctl.load_ghn")
    checkpoint = read_checkpoint(file)
    ghn = ghn_from_state_dict(checkpoint.state_dict, checkpoint.config, device=device)
    ghn.source = GhnSource(name=name or file.name, path=file,
                           trained_image_size=checkpoint.extra.get("trained_image_size"))
    return ghn


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
            raise CheckpointError(f"checkpoint tensor {excerpt(key)} has shape {tuple(state_dict[key].shape)}, "
                                  f"expected {tuple(ref.shape)} for {config.to_json()}")
    for key, tensor in state_dict.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"checkpoint tensor {excerpt(key)} holds NaN or infinite values",
                                  "the GHN's weights are broken (diverged training or a corrupt file)")
    tensors = {k: v.to(device=device, dtype=torch.float32) for k, v in state_dict.items()}
    ghn.load_state_dict(tensors, strict=True, assign=True)
    return ghn.eval().requires_grad_(False)


def _names(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(excerpt(k, 60) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
