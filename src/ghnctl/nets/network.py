"""A DeepNets architecture as an ``nn.Module`` image classifier (spec section 5).

Built from a ``NetPlan``, so the widths and strides are the ones the parameter counter used.
Parts that cannot reach the output are neither built nor computed (in the reference they are
built and computed, but change neither the output nor the GHN graph), and the forward pass
returns the logits only.
"""

from __future__ import annotations

import torch
from torch import nn

from ..graph.ops import register_pos_enc
from .arch import Arch
from .ops import PosEnc, Skipped, adapter_module, edge_module, norm_layer
from .plan import CellPlan, NetPlan, make_plan


class Cell(nn.Module):
    """One cell: two input adapters, the edge ops, and the concatenation of the listed nodes."""

    def __init__(self, plan: CellPlan, norm: str, track: bool) -> None:
        super().__init__()
        self.pre0 = adapter_module(plan.pre0, plan.c_prev_prev, plan.c, norm, track)
        self.pre1 = adapter_module(plan.pre1, plan.c_prev, plan.c, norm, track)
        self.edges = nn.ModuleList(
            edge_module(e.op, e.c_in, e.c_out, e.stride, norm, track) if e.live else Skipped() for e in plan.edges)
        self._sources = [e.source for e in plan.edges]
        self._live = [e.live for e in plan.edges]
        self._uses = (plan.pre0 != "unused", plan.pre1 != "unused")
        self._concat = list(plan.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states: list[torch.Tensor | None] = [
            self.pre0(s0) if self._uses[0] else None,
            self.pre1(s1) if self._uses[1] else None,
        ]
        for node in range(len(self.edges) // 2):
            total = None
            for k in (2 * node, 2 * node + 1):
                if not self._live[k]:
                    continue
                out = self.edges[k](states[self._sources[k]])
                total = out if total is None else total + out
            states.append(total)
        outputs = [states[c] for c in self._concat]
        if any(s is None for s in outputs):
            # A listed node that gets nothing: zeros shaped like a computed one (as the reference).
            like = next(s for s in outputs if s is not None)
            outputs = [like * 0 if s is None else s for s in outputs]
        # cat even of one tensor: the graph builder's cse test looks at neighbouring autograd nodes,
        # so the autograd graph keeps the reference's shape
        return torch.cat(outputs, dim=1)


class DeepNet(nn.Module):
    """A network of the DeepNets family for 32x32 or 224x224 inputs.

    ``expected_input_sz`` tells the graph builder the input size (as the official ``Network``).
    """

    def __init__(self, plan: NetPlan, track_running_stats: bool = False) -> None:
        super().__init__()
        a = plan.arch.args
        track = track_running_stats
        self.arch = plan.arch
        self.expected_input_sz = plan.image_size
        self._stem = plan.stem
        C = plan.C
        if plan.stem == "patch":
            pad = 1 if plan.patch < 4 else 0
            self.stem = nn.Conv2d(3, C, plan.patch, stride=plan.patch, padding=pad, bias=False)
            self.pos_enc = PosEnc(C, plan.grid)
        elif plan.stem == "simple":
            self.stem = nn.Sequential(
                nn.Conv2d(3, plan.c_stem, a.ks, stride=plan.stem_stride, padding=a.ks // 2, bias=False),
                norm_layer(a.norm, plan.c_stem, track),
                nn.MaxPool2d(3, stride=2, padding=1) if a.stem_pool else nn.Identity(),
            )
        else:
            half = C // 2
            self.stem0 = nn.Sequential(
                nn.Conv2d(3, half, a.ks, stride=plan.stem_stride, padding=a.ks // 2, bias=False),
                norm_layer(a.norm, half, track),
                nn.ReLU(),
                nn.Conv2d(half, C, 3, stride=plan.stem_stride, padding=1, bias=False),
                norm_layer(a.norm, C, track),
            )
            # In place, as in the reference: stem1 also turns s0 into relu(s0), which cell 0 reads.
            # With preprocessing (every generated stem-1 net) cell 0's adapter starts with a ReLU,
            # so values are the same either way; the autograd graph, and so the GHN graph, is not.
            self.stem1 = nn.Sequential(
                nn.ReLU(inplace=True),
                nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
                norm_layer(a.norm, C, track),
            )
        self.cells = nn.ModuleList(Cell(cell, a.norm, track) if cell.live else Skipped() for cell in plan.cells)
        self._live_cells = [cell.live for cell in plan.cells]
        self.pool = nn.AdaptiveAvgPool2d(1) if a.glob_avg else nn.Identity()
        if a.fc_layers == 1:
            self.classifier = nn.Sequential(nn.Linear(plan.head_in, plan.num_classes))
        else:
            self.classifier = nn.Sequential(
                nn.Linear(plan.head_in, a.fc_dim), nn.ReLU(), nn.Dropout(0.5),
                nn.Linear(a.fc_dim, plan.num_classes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._stem == "patch":
            s0 = s1 = self.pos_enc(self.stem(x))
        elif self._stem == "simple":
            s0 = s1 = self.stem(x)
        else:
            s0 = self.stem0(x)
            s1 = self.stem1(s0)
        for cell, live in zip(self.cells, self._live_cells):
            s0, s1 = s1, (cell(s0, s1) if live else None)
        out = self.pool(s1)
        return self.classifier(out.reshape(out.size(0), -1))


# The graph builder types PosEnc weights as pos_enc and adds a sum node after them in DeepNet graphs.
register_pos_enc(DeepNet, PosEnc)


def build_network(arch: Arch, image_size: int = 32, num_classes: int | None = None, *,
                  track_running_stats: bool = False, imagenet_stride: int = 4,
                  device: str | torch.device | None = None) -> DeepNet:
    """The network of ``arch`` for ``image_size`` (32 or 224) and ``num_classes`` (default 10 at
    32, 1000 at 224). BatchNorm layers use batch statistics unless ``track_running_stats``; ``device``
    (e.g. ``"meta"``) is where parameters are allocated."""
    plan = make_plan(arch, image_size, num_classes, imagenet_stride=imagenet_stride)
    if device is None:
        return DeepNet(plan, track_running_stats)
    with torch.device(device):
        return DeepNet(plan, track_running_stats)
