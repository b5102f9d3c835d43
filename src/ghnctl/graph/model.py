"""The GHN graph as plain data: nodes, 1-hop edges and the distance matrix the GHN reads.

A ``GhnGraph`` holds no reference to the traced ``nn.Module``; it can be saved, compared with the
golden files, rendered, or fed to a GHN together with the model it was built from.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch

# Node types in the order of the GHN's op embedding (PRIMITIVES_DEEPNETS1M); index = embedding row.
PRIMITIVES: tuple[str, ...] = (
    "max_pool", "avg_pool", "sep_conv", "dil_conv", "conv", "msa", "cse", "sum",
    "concat", "input", "bias", "bn", "ln", "pos_enc", "glob_avg",
)
OP_INDEX: dict[str, int] = {op: i for i, op in enumerate(PRIMITIVES)}


@dataclass(frozen=True)
class Node:
    """One graph node.

    ``name`` is the official internal name (parameter name, autograd function name such as
    ``AddBackward0``, or ``input``); ``param`` is the parameter name for parameter-backed nodes;
    ``shape`` is the shape the GHN sees (with the official 3-D and 1x1-classifier rewrites);
    ``module`` is the dotted path of the owning module (``""`` for the root), None for op nodes.
    """

    index: int
    op: str
    name: str
    param: str | None = None
    shape: tuple[int, ...] | None = None
    module: str | None = None
    module_type: str | None = None

    @property
    def op_index(self) -> int:
        return OP_INDEX[self.op]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.index,
            "op": self.op,
            "name": self.name,
            "param": self.param,
            "shape": list(self.shape) if self.shape is not None else None,
            "module": self.module,
            "module_type": self.module_type,
        }


@dataclass
class GhnGraph:
    """A model's GHN graph.

    ``dist[i, j]`` is the shortest forward path length from node i to node j when it is between 1
    and ``ve_cutoff`` (1 = a real edge), else 0. ``uncovered`` lists trainable parameters that have
    no node (the GHN will not predict them); ``warnings`` lists what a user should know (parameters
    left out, subclasses typed by their base class, disconnected nodes); ``notes`` lists the
    official code's informational messages that change nothing for the user (e.g. a ViT's
    positional embedding read as a 2-D grid, no global pooling node), for ``--debug`` output.
    """

    arch: str
    nodes: list[Node]
    dist: torch.Tensor  # (N, N) int64
    image_size: tuple[int, int, int] = (3, 224, 224)
    ve_cutoff: int = 50
    warnings: list[str] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    # The statistics below use numpy on the matrix (a view, no copy): torch runs even tiny reductions
    # through its thread pool, which costs up to 100x more when the machine's cores are busy.
    def _dist_np(self) -> Any:
        return self.dist.detach().cpu().numpy()

    @property
    def edges(self) -> list[tuple[int, int]]:
        """1-hop edges (src, dst) in row-major order."""
        src, dst = (self._dist_np() == 1).nonzero()
        return list(zip(src.tolist(), dst.tolist()))

    @property
    def num_edges(self) -> int:
        return int((self._dist_np() == 1).sum())

    @property
    def op_indices(self) -> torch.Tensor:
        return torch.tensor([n.op_index for n in self.nodes], dtype=torch.long)

    @property
    def in_degree(self) -> list[int]:
        return (self._dist_np() == 1).sum(0).tolist()

    @property
    def out_degree(self) -> list[int]:
        return (self._dist_np() == 1).sum(1).tolist()

    @property
    def depth(self) -> int:
        """Longest shortest-path distance from the input node (node 0)."""
        return int(self._dist_np()[0].max()) if self.num_nodes else 0

    @property
    def diameter(self) -> int:
        """Largest finite shortest-path distance between any two nodes (capped at ``ve_cutoff``)."""
        return int(self._dist_np().max()) if self.num_nodes else 0

    def op_histogram(self) -> dict[str, int]:
        counts = Counter(n.op for n in self.nodes)
        return {op: counts[op] for op in PRIMITIVES if counts[op]}

    def dist_histogram(self) -> dict[int, int]:
        import numpy as np

        values, counts = np.unique(self._dist_np(), return_counts=True)
        return {int(v): int(c) for v, c in zip(values.tolist(), counts.tolist())}

    @property
    def covered(self) -> list[str]:
        """Parameter names that have a node, in node order."""
        return [n.param for n in self.nodes if n.param is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "image_size": list(self.image_size),
            "num_nodes": self.num_nodes,
            "num_edges": self.num_edges,
            "nodes": [n.to_json() for n in self.nodes],
            "edges": [list(e) for e in self.edges],
            "dist_hist": {str(k): v for k, v in self.dist_histogram().items()},
            "depth": self.depth,
            "op_histogram": self.op_histogram(),
            "uncovered_params": list(self.uncovered),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }
