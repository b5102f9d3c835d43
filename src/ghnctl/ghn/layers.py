"""Building blocks of the GHN: shape encoder, Graphormer layer (GHN-3) and GatedGNN (GHN-2).

Module and parameter names reproduce the official ones (numbering gaps included: the
parameter-free activations and ``Identity`` slots keep their positions), so that official weights
load strictly into these modules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

MAX_DEGREE = 100
MAX_INPUT_DIST = 1000
EDGE_VOCAB = 257  # Graphormer edge-embedding rows (distances 0..50 enter as 2..52)


# --------------------------------------------------------------------------------------------------
# Shape encoder

def channel_vocabulary(num_classes: int) -> list[int]:
    """Sorted channel counts the GHN knows: {1, 3, K} and 8-steps, 16-steps, 32-steps up to 8192."""
    values = {1, 3, num_classes}
    values.update(range(8, 64, 8))
    values.update(range(64, 4096, 16))
    values.update(range(4096, 8192 + 1, 32))
    return sorted(values)


def spatial_vocabulary(max_spatial: int) -> list[int]:
    """Sorted kernel sizes the GHN knows: odd sizes below max(12, S), plus 14 and 16."""
    return sorted(set(range(1, max(12, max_spatial), 2)) | {14, 16})


def _nearest_index(vocab: Sequence[int], value: int) -> int:
    """Index of the vocabulary entry closest to ``value``; ties go to the smaller entry."""
    best = 0
    for i, v in enumerate(vocab):
        if abs(v - value) < abs(vocab[best] - value):
            best = i
    return best


def _vocab_index(vocab: Sequence[int], value: int, aliases: dict[int, int]) -> int:
    """Exact entry, else an alias, else the nearest entry for 1 <= value < max, else the last entry."""
    if value in vocab:
        return vocab.index(value)
    if value in aliases:
        return vocab.index(aliases[value])
    if 1 <= value < vocab[-1]:
        return _nearest_index(vocab, value)
    return len(vocab) - 1


class ShapeEncoder(nn.Module):
    """Embeds a tensor shape (c_out, c_in, kh, kw) as four table look-ups concatenated to ``hid``."""

    _CHANNEL_ALIASES = {c: 8 for c in range(4, 8)}  # 4-7 channels are treated as 8
    _SPATIAL_ALIASES = {2: 3}  # 2x2 kernels (unseen in training) are treated as 3x3

    def __init__(self, hid: int, num_classes: int, max_shape: Sequence[int]) -> None:
        super().__init__()
        self.channels = channel_vocabulary(num_classes)
        self.spatial = spatial_vocabulary(max_shape[3])
        self._cache: dict[tuple[bool, int], int] = {}
        self.embed_spatial = nn.Embedding(len(self.spatial) + 1, hid // 4)
        self.embed_channel = nn.Embedding(len(self.channels) + 1, hid // 4)

    def channel_index(self, c: int) -> int:
        if (True, c) not in self._cache:
            self._cache[(True, c)] = _vocab_index(self.channels, c, self._CHANNEL_ALIASES)
        return self._cache[(True, c)]

    def spatial_index(self, k: int) -> int:
        if (False, k) not in self._cache:
            self._cache[(False, k)] = _vocab_index(self.spatial, k, self._SPATIAL_ALIASES)
        return self._cache[(False, k)]

    def shape_indices(self, shapes: Sequence[tuple[int, ...] | None]) -> torch.Tensor:
        """(N, 4) look-up rows; ``None`` (no shape) takes the padding row of each table."""
        pad = (len(self.channels), len(self.channels), len(self.spatial), len(self.spatial))
        rows = []
        for shape in shapes:
            if shape is None:
                rows.append(pad)
            else:
                o, i, h, w = shape_to_4d(shape)
                rows.append((self.channel_index(o), self.channel_index(i),
                             self.spatial_index(h), self.spatial_index(w)))
        return torch.tensor(rows, dtype=torch.long).reshape(len(rows), 4)

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.embed_channel(indices[:, 0]), self.embed_channel(indices[:, 1]),
                          self.embed_spatial(indices[:, 2]), self.embed_spatial(indices[:, 3])), dim=1)


def shape_to_4d(shape: Sequence[int]) -> tuple[int, int, int, int]:
    """The 4-D view of a tensor shape the shape encoder uses (spec 3.2)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1:
        return (shape[0], 1, 1, 1)
    if len(shape) == 2:
        return (shape[0], shape[1], 1, 1)
    if len(shape) == 3:
        if shape[0] == 1 and min(shape[1:]) > 1:  # positional embedding (1, T, D)
            s = math.isqrt(shape[1])
            return (1, shape[2], s, s)
        return (shape[0], shape[1], shape[2], 1)
    if len(shape) == 4:
        return shape  # type: ignore[return-value]
    raise ValueError(f"cannot encode a {len(shape)}-D shape {shape}")


# --------------------------------------------------------------------------------------------------
# Graphormer (GHN-3)

def sinusoidal_table(rows: int, dim: int) -> torch.Tensor:
    """Transformer sinusoidal position table with row 0 zeroed (the official edge-embedding init)."""
    position = torch.arange(rows).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    table = torch.zeros(rows, dim)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)
    table[0] = 0
    return table


class EdgeEmbedding(nn.Module):
    def __init__(self, dim: int, rows: int = EDGE_VOCAB) -> None:
        super().__init__()
        self.embed = nn.Embedding(rows, dim)
        with torch.no_grad():
            self.embed.weight.copy_(sinusoidal_table(rows, dim))


class GraphAttention(nn.Module):
    """Multi-head self-attention with an additive per-head edge bias (computed in layer 0 only)."""

    def __init__(self, dim: int, heads: int, edge_dim: int = 0) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Identity())
        if edge_dim:
            self.edge_embed = EdgeEmbedding(dim)
            self.proj_e = nn.Sequential(nn.Linear(edge_dim * dim, dim), nn.ReLU(), nn.Linear(dim, heads))

    def edge_bias(self, dist: torch.Tensor) -> torch.Tensor:
        """(B, N, N) distances -> (B, H, N, N) attention bias.

        The bias of a pair depends only on (dist[i, j], dist[j, i]), and a graph has few distinct
        such pairs, so the projection MLP runs on the distinct pairs and the result is gathered.
        """
        codes = (dist + 2) * EDGE_VOCAB + (dist.transpose(1, 2) + 2)
        unique, inverse = _unique_codes(codes)
        pairs = torch.stack((unique // EDGE_VOCAB, unique % EDGE_VOCAB), dim=-1)  # (U, 2)
        features = self.edge_embed.embed(pairs).reshape(len(unique), -1)  # (U, 2*dim)
        bias = self.proj_e(features)  # (U, H)
        return bias[inverse].permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, n, dim = x.shape
        qkv = self.to_qkv(x).reshape(batch, n, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.scale + bias
        if mask is not None:
            attn = attn.masked_fill(~mask.unsqueeze(1), -(2.0**15))
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, n, dim)
        return self.to_out(out)


def _unique_codes(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.unique(codes, return_inverse=True)``; on the CPU through numpy, whose sort-based
    unique takes 1-8 ms on a 191x191 graph where torch's took 110-200 ms with 2 threads on busy
    cores (its thread pool waits for a descheduled thread). Same result either way."""
    if codes.device.type != "cpu":
        return torch.unique(codes, return_inverse=True)
    unique, inverse = np.unique(codes.numpy(), return_inverse=True)
    return torch.from_numpy(unique), torch.from_numpy(inverse.reshape(codes.shape))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Identity(), nn.Linear(hidden, dim),
                                 nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GraphormerLayer(nn.Module):
    """Pre-norm transformer block; the first layer also owns the structural embeddings.

    Layer 0 adds in/out-degree and distance-from-input embeddings to the node features and turns
    the distance matrix into an attention bias that every layer reuses.
    """

    def __init__(self, dim: int, heads: int, first: bool, eps: float = 1e-5) -> None:
        super().__init__()
        self.first = first
        self.ln1 = nn.LayerNorm(dim, eps=eps)
        self.attn = GraphAttention(dim, heads, edge_dim=2 if first else 0)
        self.ln2 = nn.LayerNorm(dim, eps=eps)
        self.ff = FeedForward(dim, dim * 4)
        if first:
            self.centrality_embed_in = nn.Embedding(MAX_DEGREE + 1, dim)
            self.centrality_embed_out = nn.Embedding(MAX_DEGREE + 1, dim)
            self.input_dist_embed = nn.Embedding(MAX_INPUT_DIST + 1, dim)

    def embed_structure(self, x: torch.Tensor, dist: torch.Tensor,
                        node_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer-0 additions: degree and input-distance embeddings, and the edge bias."""
        one_hop = (dist == 1).long()
        x = x + self.centrality_embed_in(one_hop.sum(1).clamp(0, MAX_DEGREE))
        x = x + self.centrality_embed_out(one_hop.sum(2).clamp(0, MAX_DEGREE))
        x = x + self.input_dist_embed(dist[:, 0, :].clamp(0, MAX_INPUT_DIST))
        if node_mask is not None:
            x = x * node_mask.unsqueeze(-1)
        return x, self.attn.edge_bias(dist)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), bias, mask)
        return x + self.ff(self.ln2(x))


class Graphormer(nn.ModuleList):
    """The GHN-3 stack; state_dict keys ``gnn.{l}.*``."""

    def __init__(self, dim: int, heads: int, layers: int) -> None:
        super().__init__([GraphormerLayer(dim, heads, first=layer == 0) for layer in range(layers)])

    def forward(self, x: torch.Tensor, dist: torch.Tensor, node_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        """x (B, N, h) node features, dist (B, N, N) int64, node_mask (B, N) bool for padded batches."""
        pair_mask = None if node_mask is None else node_mask.unsqueeze(2) & node_mask.unsqueeze(1)
        x, bias = self[0].embed_structure(x, dist, node_mask)
        for layer in self:
            x = layer(x, bias, pair_mask)
        return x


# --------------------------------------------------------------------------------------------------
# GatedGNN (GHN-2)

class MLP(nn.Module):
    """Linear/ReLU stack with the official key numbering (``fc.0``, ``fc.2``, ...)."""

    def __init__(self, in_features: int, hidden: Sequence[int], last_relu: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for j, width in enumerate(hidden):
            layers.append(nn.Linear(in_features if j == 0 else hidden[j - 1], width))
            layers.append(nn.ReLU() if (j < len(hidden) - 1 or last_relu) else nn.Identity())
        self.fc = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class GatedGNN(nn.Module):
    """GHN-2 message passing: one forward and one backward sweep with a shared GRU cell.

    Nodes are updated one at a time in index order (forward) and reverse order (backward), each
    from the current states of its predecessors (successors), so later nodes see updated states.
    """

    def __init__(self, dim: int, ve: bool) -> None:
        super().__init__()
        self.ve = ve
        self.mlp = MLP(dim, (dim // 2 if ve else dim, dim))
        if ve:
            self.mlp_ve = MLP(dim, (dim // 2, dim))
        self.gru = nn.GRUCell(dim, dim)

    def forward(self, x: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        """x (N, h) node features of one graph, dist (N, N) int64 -> updated (N, h)."""
        if not self.ve:
            dist = dist * (dist == 1)
        src, dst = torch.nonzero(dist, as_tuple=True)
        if len(src) == 0:
            return x
        weight = 1.0 / dist[src, dst].to(x.dtype)
        one_hop = dist[src, dst] == 1
        last = int(dst.max())  # the official sweeps cover nodes 0..max destination
        h = x.clone()
        zero = x.new_zeros(1, x.shape[1])
        for order in ("forward", "backward"):
            target, source = (dst, src) if order == "forward" else (src, dst)
            by_node = _group_edges(target, last + 1)
            nodes = range(last + 1) if order == "forward" else range(last, -1, -1)
            for v in nodes:
                edges = by_node[v]
                message = zero
                if edges is not None:
                    hop = edges[one_hop[edges]]
                    message = self.mlp(h[source[hop]]).sum(0, keepdim=True) if len(hop) else zero
                    if self.ve:
                        message = message + (self.mlp_ve(h[source[edges]]) * weight[edges, None]).sum(
                            0, keepdim=True)
                h[v] = self.gru(message, h[v: v + 1])[0]
        return h


def _group_edges(target: torch.Tensor, n: int) -> list[torch.Tensor | None]:
    """Edge indices per target node (in edge order), None for nodes without edges."""
    order = torch.argsort(target, stable=True)
    counts = torch.bincount(target, minlength=n).tolist()
    groups: list[torch.Tensor | None] = []
    start = 0
    for count in counts:
        groups.append(order[start: start + count] if count else None)
        start += count
    return groups

