"""From graphs to predicted tensors: the differentiable core of prediction.

``plan_prediction`` pairs a model's graph nodes with its parameters (``ghnctl.ghn.assign``);
``decode_parameters`` runs the GHN over one or several plans and returns, per model, a dict
``parameter name -> predicted tensor`` of the parameter's exact shape, already tiled and normalised.
Gradients flow from those tensors into the GHN whenever autograd is enabled, so a trainer can use
them through ``torch.func.functional_call``; under ``torch.no_grad()`` the same code is the fast
inference path. ``write_parameters`` copies them into the model (always without gradients).

Only what ends up in a model is decoded: nodes are batched by the crop and channel counts they
need instead of by the official shape key, the decoder runs on the kept kernel positions only and
computes only the kept channel pairs (see ``ghnctl.ghn.decoder``). Several models in one call give
exactly what each gives alone (the official batched path misaligns node rows; that is not
reproduced). The only use of the global RNG is the class-token row of a ViT positional embedding,
drawn as the official code draws it (spec 3.7).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import GraphError, PredictionError
from .assign import Assignment, Write, layered_targets, match_nodes, normalize, tile
from .decoder import Crop, resize_kernel

if TYPE_CHECKING:
    from ..graph.model import GhnGraph
    from .config import GhnConfig
    from .model import GHN


@dataclass
class PredictionPlan:
    """What a GHN will predict for one model: matched nodes, and where each tensor goes.

    ``names`` maps each written parameter's object id to its name in ``model.named_parameters()``;
    ``unmatched`` gives, for parameter nodes that found no writable parameter, the reason.
    """

    model: nn.Module
    graph: GhnGraph
    assignments: list[Assignment]
    unmatched: dict[int, str]
    names: dict[int, str]

    def encoder_shapes(self) -> list[tuple[int, ...] | None]:
        """Per node, the shape the shape encoder embeds: the target's real shape when matched."""
        shapes: list[tuple[int, ...] | None] = [node.shape for node in self.graph.nodes]
        for a in self.assignments:
            shapes[a.node] = a.writes[0].target.shape
        return shapes


def plan_prediction(config: GhnConfig, model: nn.Module, graph: GhnGraph | None = None, *,
                    predict_class_layers: bool = True) -> PredictionPlan:
    """Match ``graph``'s nodes (built from ``model`` when None) to ``model``'s parameters."""
    if graph is None:
        graph = _build_graph(model)
    targets = layered_targets(model)
    nodes = [(node.index, node.param) for node in graph.nodes]
    assignments, unmatched = match_nodes(nodes, targets, config)
    if not predict_class_layers:
        assignments = [a for a in assignments if not a.is_classifier]
    names = {id(param): name for name, param in model.named_parameters()}
    return PredictionPlan(model, graph, assignments, unmatched, names)


def _build_graph(model: nn.Module) -> GhnGraph:
    from ..graph import build_graph  # graph construction is a sibling package, imported on use

    return build_graph(model, arch=type(model).__name__)


def decode_parameters(ghn: GHN, plans: Sequence[PredictionPlan]) -> list[dict[str, torch.Tensor]]:
    """Per plan, ``parameter name -> predicted tensor`` (the parameter's shape and dtype float32).

    Differentiable with respect to the GHN's weights when autograd is enabled.
    """
    embeddings = [ghn.embed_nodes(plan.graph, plan.encoder_shapes()) for plan in plans]
    blocks = _decode_blocks(ghn, plans, embeddings)
    out: list[dict[str, torch.Tensor]] = []
    for plan, plan_blocks in zip(plans, blocks):
        _check_finite(plan, plan_blocks)
        tensors: dict[str, torch.Tensor] = {}
        for a in plan.assignments:
            for write in a.writes:
                param = write.target.parameter()
                if param is None:
                    continue
                value = finish(a, write, plan_blocks[a.node])
                if tuple(value.shape) != tuple(param.shape):  # pragma: no cover - guarded by tile()
                    raise GraphError(f"predicted {tuple(value.shape)} for {write.target.key} "
                                     f"of shape {tuple(param.shape)}")
                tensors[plan.names[id(param)]] = value
        out.append(tensors)
    return out


def _check_finite(plan: PredictionPlan, blocks: Mapping[int, torch.Tensor]) -> None:
    """Refuse NaN/inf predictions. Checked on the decoded blocks, before tiling: every predicted
    value is a tiled, element-wise normalised copy of a block value, so this sees all of them at a
    fraction of the cost. One fused norm per plan: a norm is finite only if every value is (and no
    partial sum overflows, which at float32's range means absurd values anyway)."""
    if not blocks:
        return
    nodes = list(blocks)
    norms = torch._foreach_norm([blocks[n].detach() for n in nodes])
    bad = [n for n, norm in zip(nodes, norms) if not bool(torch.isfinite(norm))]
    if bad:
        node = plan.graph.nodes[bad[0]]
        raise PredictionError(f"the GHN predicted NaN or infinite values for {len(bad)} tensor(s), "
                              f"e.g. {node.param or node.index}",
                              "the GHN's weights are broken or do not suit this model")


@torch.no_grad()
def write_parameters(model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    """Copy predicted tensors into ``model``'s parameters of the same names (no gradients)."""
    params = dict(model.named_parameters())
    for name, value in tensors.items():
        params[name].copy_(value)


# --------------------------------------------------------------------------------------------------
# Decoding node embeddings into blocks

def _decode_blocks(ghn: GHN, plans: Sequence[PredictionPlan], embeddings: list[torch.Tensor]
                   ) -> list[dict[int, torch.Tensor]]:
    """Run the decoders once over all assignments of all plans; per plan, node -> block.

    Blocks: ``vector`` (2, Cm); ``class_bias`` (K,); ``vector3d`` (2*Cm, 1, 1); ``conv`` and
    ``pos_embedding`` (out, in, kh, kw); ``class_weight`` (K, in).
    """
    vectors: list[tuple[int, Assignment]] = []
    kernels: list[tuple[int, Assignment]] = []
    for b, plan in enumerate(plans):
        for a in plan.assignments:
            (vectors if a.spec is None else kernels).append((b, a))
    blocks: list[dict[int, torch.Tensor]] = [{} for _ in plans]
    for items, decode in ((vectors, _decode_vectors), (kernels, _decode_kernels)):
        if items:
            rows = torch.stack([embeddings[b][a.node] for b, a in items])
            for (b, a), block in zip(items, decode(ghn, [a for _, a in items], rows)):
                blocks[b][a.node] = block
    return blocks


def _decode_vectors(ghn: GHN, assignments: list[Assignment], rows: torch.Tensor) -> list[torch.Tensor]:
    """decoder_1d (and bias_class for classifier biases) for 1-D and layer-scale-like targets."""
    out = ghn.decoder_1d(rows)  # (n, 2*Cm)
    class_rows = [i for i, a in enumerate(assignments) if a.kind == "class_bias"]
    class_bias = dict(zip(class_rows, ghn.bias_class(out.view(len(out), 2, -1)[class_rows, 1]))) \
        if class_rows else {}
    blocks = []
    for i, a in enumerate(assignments):
        if a.kind == "class_bias":
            blocks.append(class_bias[i])
        elif a.kind == "vector3d":
            blocks.append(out[i].view(-1, 1, 1))
        else:
            blocks.append(out[i].view(2, -1))
    return blocks


def _decode_kernels(ghn: GHN, assignments: list[Assignment], rows: torch.Tensor) -> list[torch.Tensor]:
    """The conv decoder, computing only the kept positions and channel pairs of each node."""
    decoder = ghn.decoder
    # Stage 1: per crop, the per-position hidden features of the nodes that need that crop.
    by_crop: dict[Crop, list[int]] = defaultdict(list)
    for i, a in enumerate(assignments):
        by_crop[a.spec.crop].append(i)
    hidden: list[torch.Tensor] = [rows[:0]] * len(assignments)
    for crop, members in by_crop.items():
        for i, features in zip(members, decoder.hidden(rows[members], crop)):  # (P, 8h) each
            hidden[i] = features

    # Stage 2: one matmul per channel family over all positions of all nodes in it; small
    # requests ride along in a larger family when reading their own weights would cost more.
    rows_needed: dict[tuple[int, int], int] = defaultdict(int)
    for a in assignments:
        rows_needed[(a.spec.out_ch, a.spec.in_ch)] += a.spec.crop.positions
    family_of = merge_channel_families(rows_needed)
    by_family: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, a in enumerate(assignments):
        by_family[family_of[(a.spec.out_ch, a.spec.in_ch)]].append(i)
    blocks: list[torch.Tensor] = [rows[:0]] * len(assignments)
    centres: dict[int, list[tuple[int, torch.Tensor]]] = defaultdict(list)  # classifier in_ch -> rows
    for (out_ch, in_ch), members in sorted(by_family.items()):
        values = decoder.channels(torch.cat([hidden[i] for i in members]), out_ch, in_ch)  # (sum P, out, in)
        offset = 0
        for i in members:
            spec = assignments[i].spec
            hh, ww = spec.crop.size
            block = values[offset: offset + hh * ww, : spec.out_ch, : spec.in_ch]
            block = block.reshape(hh, ww, spec.out_ch, spec.in_ch).permute(2, 3, 0, 1)
            offset += hh * ww
            if spec.resize is not None:
                block = resize_kernel(block, spec.resize)
            if spec.classifier:
                centres[spec.in_ch].append((i, block[:, :, block.shape[2] // 2, block.shape[3] // 2]))
            else:
                blocks[i] = block
    for members in centres.values():  # the class-layer head, batched per in-channel count
        weights = decoder.classify(torch.stack([centre for _, centre in members]))  # (n, K, in)
        for (i, _), weight in zip(members, weights):
            blocks[i] = weight
    return blocks


# Rows (positions x nodes) below which a matmul over the decoder's last layer is limited by reading
# its weights rather than by arithmetic: ~ 2 * FLOP/s / (bytes/s) for float32 on a CPU.
MEMORY_BOUND_ROWS = 16


def merge_channel_families(rows: dict[tuple[int, int], int], memory_bound_rows: int = MEMORY_BOUND_ROWS
                           ) -> dict[tuple[int, int], tuple[int, int]]:
    """Map each (out, in) channel request to the family computed for it.

    Computing a request inside a larger family (more channel pairs, then sliced) reads no extra
    weights but does more arithmetic; with cost(pairs, rows) = pairs * max(rows, memory_bound_rows)
    requests are merged greedily while that lowers the total. Results do not depend on the merge
    (channel pairs are independent), only the time does.
    """
    families = {key: [key] for key in rows}
    total = dict(rows)

    def cost(key: tuple[int, int], n_rows: int) -> int:
        return key[0] * key[1] * max(n_rows, memory_bound_rows)

    while True:
        best, best_gain = None, 0
        for small in families:
            for big in families:
                if big == small or big[0] < small[0] or big[1] < small[1]:
                    continue
                gain = cost(small, total[small]) + cost(big, total[big]) - cost(big, total[big] + total[small])
                if gain > best_gain:
                    best, best_gain = (small, big), gain
        if best is None:
            break
        small, big = best
        families[big] += families.pop(small)
        total[big] += total.pop(small)
    return {request: key for key, members in families.items() for request in members}


# --------------------------------------------------------------------------------------------------
# Block -> tensor of the target's shape

def finish(a: Assignment, write: Write, block: torch.Tensor) -> torch.Tensor:
    """Predicted block -> normalised tensor of the target's shape (spec 3.7, 3.8)."""
    shape = write.target.shape
    if a.kind == "vector":
        block = block[write.row]
    elif a.kind == "conv" and len(shape) == 2:
        block = block[:, :, block.shape[2] // 2, block.shape[3] // 2]
    elif a.kind == "pos_embedding":
        tokens = block.reshape(1, block.shape[1], -1).transpose(1, 2)[:, : shape[1]]  # (1, s*s, in)
        class_token = torch.normal(mean=0.0, std=0.02, size=(1, 1, tokens.shape[2]), device=tokens.device)
        block = torch.cat((class_token.to(tokens.dtype), tokens), dim=1)
    if block.dim() < len(shape):  # e.g. a 1x1-conv classifier predicted as a 2-D weight
        block = block.reshape(*block.shape, *([1] * (len(shape) - block.dim())))
    return tile(normalize(block, shape, write.as_weight), shape)
