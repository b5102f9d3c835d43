"""The architectures a GHN trains on (or is evaluated on): specs, built on demand, graphs built once.

A pool entry is a model spec (``deepnets:train/17``, ``resnet18``, ``file.py:factory``, ...).
``deepnets:SPLIT`` in a list of specs stands for the first ``size`` nets of that split, and
``SPEC=W`` draws each net of SPEC W times as often as a net of weight 1 (``ghnctl.training.arch_specs``).
Graphs and prediction plans are the expensive, fixed part of an architecture: they are built the
first time an architecture is drawn and kept. Models are rebuilt when they fall out of a small cache: their
weights are never used (``functional_call`` supplies the predicted ones), only their structure,
buffers and the few parameters a GHN does not predict.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ghnctl.ghn.decoding import PredictionPlan, plan_prediction
from ghnctl.training.seeding import derive_seed


@dataclass
class Arch:
    """One architecture, ready to be predicted: its model (structure), graph and plan."""

    spec: str
    model: nn.Module
    plan: PredictionPlan


class ArchPool:
    """Architectures by index; ``draw(n, step, shard)`` picks ``n`` of them for one training step."""

    def __init__(self, specs: Sequence[str], *, num_classes: int, image_size: int, ghn_config: object,
                 device: torch.device, seed: int = 0, model_cache: int = 64,
                 weights: Sequence[float] | None = None) -> None:
        self.specs = list(specs)
        if weights is not None and len(weights) != len(self.specs):
            raise ValueError(f"{len(weights)} weights for {len(self.specs)} architectures")
        # Uniform weights keep the plain permutation draw, so unweighted runs draw what they always drew.
        self.weights = (torch.tensor(list(weights), dtype=torch.float64)
                        if weights is not None and len(set(weights)) > 1 else None)
        self.num_classes = num_classes
        self.image_size = image_size
        self.ghn_config = ghn_config
        self.device = device
        self.seed = seed
        self._graphs: dict[int, object] = {}
        self._models: OrderedDict[int, Arch] = OrderedDict()
        self._model_cache = model_cache

    def __len__(self) -> int:
        return len(self.specs)

    def draw(self, n: int, step: int, shard: int) -> list[int]:
        """``n`` distinct indices (fewer if the pool is smaller), the same for the same (seed, step, shard)."""
        g = torch.Generator().manual_seed(derive_seed("ghnctl-archs", self.seed, step, shard))
        n = min(n, len(self.specs))
        if self.weights is not None:
            return torch.multinomial(self.weights, n, replacement=False, generator=g).tolist()
        return torch.randperm(len(self.specs), generator=g)[:n].tolist()

    def get(self, index: int) -> Arch:
        """The architecture ``index``: its graph is built once; the model is cached for a while."""
        if index in self._models:
            self._models.move_to_end(index)
            return self._models[index]
        from ghnctl.graph import build_graph
        from ghnctl.zoo import resolve_model

        spec = self.specs[index]
        # Seeded: the few parameters a GHN does not predict (e.g. a class token) are the same
        # whenever this architecture is rebuilt, on every rank and after a resume.
        built = resolve_model(spec, num_classes=self.num_classes, image_size=self.image_size,
                              seed=derive_seed("ghnctl-arch-init", self.seed, index) % (2**31))
        model = built.model.to(self.device).train()
        graph = self._graphs.get(index)
        if graph is None:
            graph = build_graph(model, arch=built.arch, image_size=self.image_size)
            self._graphs[index] = graph
        plan = plan_prediction(self.ghn_config, model, graph)  # type: ignore[arg-type]
        arch = Arch(spec, model, plan)
        self._models[index] = arch
        if len(self._models) > self._model_cache:
            self._models.popitem(last=False)
        return arch
