"""DARTS-style genotypes: the cell DAGs of a DeepNets architecture (spec sections 2 and 2.3).

A genotype holds a *normal* and a *reduction* cell. Each cell is a list of ``2 * steps`` edges
``(op, input)``; edges ``2i`` and ``2i+1`` feed intermediate node ``i``, whose value is their sum.
Input ``0`` is the cell two back, ``1`` the previous cell, ``j >= 2`` intermediate node ``j - 2``.
The cell output concatenates the nodes of its concat list. Torch-free.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The 15 edge primitives ("extended DARTS" set), in the order the sampler draws from.
PRIMITIVES: tuple[str, ...] = (
    "none", "skip_connect", "max_pool_3x3", "avg_pool_3x3",
    "conv_1x1", "conv_3x3", "conv_5x5", "conv_7x7", "conv_7x1_1x7",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
    "msa", "cse",
)
# Reduction cells of "only_pool" genotypes draw from these (plus none when allowed).
POOL_PRIMITIVES: tuple[str, ...] = ("skip_connect", "max_pool_3x3", "avg_pool_3x3")
# Dense convolutions large enough that the generator allows at most one per cell (memory).
LARGE_CONVS: frozenset[str] = frozenset({"conv_5x5", "conv_7x7"})

_KERNEL = re.compile(r"^(\d+)x(\d+)$")

Edge = tuple[str, int]


@dataclass(frozen=True)
class OpInfo:
    """What an edge primitive builds: ``kind`` (none, skip, max_pool, avg_pool, conv, conv2,
    sep_conv, dil_conv, msa, cse) and ``kernel`` (0 for ops without one)."""

    name: str
    kind: str
    kernel: int

    @property
    def learnable(self) -> bool:
        """A conv-type op, msa or cse: what the "no learnable op" filter looks for."""
        return self.kind in ("conv", "conv2", "sep_conv", "dil_conv", "msa", "cse")

    def has_params(self, stride: int) -> bool:
        """Whether the edge module holds parameters (a stride-2 skip is a factorized reduce)."""
        return self.learnable or (self.kind == "skip" and stride > 1)


def op_info(name: str) -> OpInfo:
    """Parse an op name: each ``AxB`` token gives the kernel ``max(A, B)``; two such tokens make the
    factorised double conv (``conv_7x1_1x7``)."""
    if name not in PRIMITIVES:
        raise ValueError(f"unknown edge op {name!r}; known: {', '.join(PRIMITIVES)}")
    return _OP_INFO[name]


def _parse(name: str) -> OpInfo:
    words, kernels = [], []
    for token in name.split("_"):
        match = _KERNEL.match(token)
        if match:
            kernels.append(max(int(match[1]), int(match[2])))
        else:
            words.append(token)
    kind = "_".join(words)
    kind = {"skip_connect": "skip"}.get(kind, kind)
    if kind == "conv" and len(kernels) > 1:
        kind = "conv2"
    return OpInfo(name, kind, max(kernels, default=0))


_OP_INFO: dict[str, OpInfo] = {name: _parse(name) for name in PRIMITIVES}


def _cell(edges: Iterable[Sequence[Any]], which: str) -> tuple[Edge, ...]:
    """The edges as (op, input) tuples, checked: known ops, node ``k // 2`` reads ``0 .. k // 2 + 1``."""
    cell = []
    for k, edge in enumerate(edges):
        if len(edge) != 2:
            raise ValueError(f"{which}: an edge is (op, input), got {edge!r}")
        op, index = edge
        if op not in _OP_INFO:
            raise ValueError(f"{which}: unknown edge op {op!r}; known: {', '.join(PRIMITIVES)}")
        if isinstance(index, bool) or not isinstance(index, int):
            raise ValueError(f"{which}: input index must be an int, got {index!r}")
        if not 0 <= index <= k // 2 + 1:
            raise ValueError(f"{which}: node {k // 2} can read inputs 0..{k // 2 + 1}, got {index}")
        cell.append((op, index))
    return tuple(cell)


def _concat(concat: Iterable[Any], steps: int, which: str) -> tuple[int, ...]:
    values = tuple(concat)
    if (not values or any(isinstance(c, bool) or not isinstance(c, int) for c in values)
            or any(b <= a for a, b in zip(values, values[1:])) or values[0] < 2 or values[-1] > steps + 1):
        raise ValueError(f"{which}_concat must be increasing node indices in 2..{steps + 1}, got {list(values)}")
    return values


@dataclass(frozen=True)
class Genotype:
    """A normal and a reduction cell with their concat lists (validated on construction)."""

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        normal, reduce = _cell(self.normal, "normal"), _cell(self.reduce, "reduce")
        n = len(normal)
        if n == 0 or n % 2:
            raise ValueError(f"a cell has 2 * steps edges (steps >= 1), got {n}")
        if len(reduce) != n:
            raise ValueError(f"normal and reduction cells must have the same steps, got {n} and {len(reduce)} edges")
        object.__setattr__(self, "normal", normal)
        object.__setattr__(self, "reduce", reduce)
        object.__setattr__(self, "normal_concat", _concat(self.normal_concat, n // 2, "normal"))
        object.__setattr__(self, "reduce_concat", _concat(self.reduce_concat, n // 2, "reduce"))

    @property
    def steps(self) -> int:
        """Intermediate (sum) nodes per cell."""
        return len(self.normal) // 2

    def cell(self, reduction: bool) -> tuple[tuple[Edge, ...], tuple[int, ...]]:
        """(edges, concat) of the reduction or the normal cell."""
        return (self.reduce, self.reduce_concat) if reduction else (self.normal, self.normal_concat)

    def ops(self) -> list[str]:
        """Every edge op of both cells."""
        return [op for op, _ in self.normal + self.reduce]

    @property
    def is_vit(self) -> bool:
        """Any attention edge: the network gets a patch-embedding stem and no spatial reduction."""
        return any(op == "msa" for op in self.ops())

    def to_dict(self) -> dict[str, Any]:
        """The serialised form: pairs as 2-element lists."""
        return {
            "normal": [list(e) for e in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(e) for e in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Genotype:
        missing = {"normal", "normal_concat", "reduce", "reduce_concat"} - set(data)
        if missing:
            raise ValueError(f"genotype is missing {', '.join(sorted(missing))}")
        return cls(data["normal"], tuple(data["normal_concat"]), data["reduce"], tuple(data["reduce_concat"]))


def _nodes(*pairs: Edge) -> tuple[Edge, ...]:
    return tuple(pairs)


# The best DARTS cell (spec 2.3): 4 steps, all nodes concatenated.
DARTS = Genotype(
    normal=_nodes(("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
                  ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)),
    normal_concat=(2, 3, 4, 5),
    reduce=_nodes(("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
                  ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)),
    reduce_concat=(2, 3, 4, 5),
)

# One transformer block per cell (spec 2.3); built with C=128, 12 cells, no preprocessing.
VIT = Genotype(
    normal=_nodes(("none", 0), ("msa", 1)),
    normal_concat=(2,),
    reduce=_nodes(("none", 0), ("avg_pool_3x3", 1)),
    reduce_concat=(2,),
)
