"""An architecture: a genotype plus the macro arguments that size and wire the network (spec 1, 4).

``Arch`` is plain, validated, torch-free data with a JSON round trip and a canonical key; the
network itself is built by ``ghnctl.nets.network``. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .genotype import Genotype

NORMS = ("bn", "none")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class NetArgs:
    """Macro arguments ("net args") of one architecture.

    ``C`` is the base width and ``fc_dim`` the hidden size of a 2-layer classifier; both are
    sizes, not part of the architecture's identity (``Arch.key`` leaves them out). ``norm`` is
    ``bn`` (BatchNorm) or ``none``; ``preproc`` adds the 1x1 input adapters of every cell;
    ``stem_type`` 0 is a single conv (+ optional max-pool), 1 the DARTS ImageNet stem.
    """

    n_cells: int
    C: int = 32
    C_mult: int = 2
    ks: int = 3
    stem_type: int = 0
    stem_pool: bool = False
    preproc: bool = True
    glob_avg: bool = True
    norm: str = "bn"
    fc_layers: int = 1
    fc_dim: int = 256

    def __post_init__(self) -> None:
        for name in ("n_cells", "C", "C_mult", "ks", "fc_layers", "fc_dim"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("stem_pool", "preproc", "glob_avg"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.stem_type not in (0, 1) or isinstance(self.stem_type, bool):
            raise ValueError(f"stem_type must be 0 (simple) or 1 (DARTS ImageNet stem), got {self.stem_type!r}")
        if self.stem_pool and self.stem_type != 0:
            raise ValueError("stem_pool is only defined for stem_type 0")
        if self.ks % 2 == 0:
            raise ValueError(f"the stem kernel ks must be odd, got {self.ks}")
        if self.C % 2:
            # C/2 must be an integer: the DARTS stem and the factorized-reduce halves
            raise ValueError(f"C must be even, got {self.C}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.fc_layers > 2:
            raise ValueError(f"fc_layers must be 1 or 2, got {self.fc_layers}")
        if not self.glob_avg and self.n_cells < 3:
            raise ValueError("a flatten head needs two reduction cells (n_cells >= 3) or glob_avg=True")


@dataclass(frozen=True)
class Arch:
    """A genotype and its macro arguments, checked against each other on construction."""

    genotype: Genotype
    args: NetArgs

    def __post_init__(self) -> None:
        concat = max(len(self.genotype.normal_concat), len(self.genotype.reduce_concat))
        if not self.args.preproc and (concat > 1 or self.args.C_mult > 1):
            raise ValueError("preproc=False needs one concatenated node per cell and C_mult=1 "
                             "(the channel counts only match then)")
        if self.is_vit and self.args.C % 8:
            raise ValueError(f"attention (msa) networks need C divisible by its 8 heads, got {self.args.C}")
        if self.is_vit and not self.args.glob_avg:
            raise ValueError("attention (msa) networks keep their token grid: they need glob_avg=True")

    @property
    def is_vit(self) -> bool:
        return self.genotype.is_vit

    @property
    def steps(self) -> int:
        return self.genotype.steps

    def with_size(self, C: int | None = None, fc_dim: int | None = None) -> Arch:
        """The same architecture at another width and/or classifier hidden size."""
        args = replace(self.args, C=self.args.C if C is None else C,
                       fc_dim=self.args.fc_dim if fc_dim is None else fc_dim)
        return Arch(self.genotype, args)

    def key(self) -> str:
        """A canonical text that two archs share exactly when they build the same network (up to
        width and fc_dim, and up to renumbering the nodes of a cell).

        Edges are sorted within a node. An edge that adds nothing (a ``none`` op, or any op reading
        a node that is never computed) is written ``none@0``. Nodes that cannot reach the cell
        output are written ``dead``: they are neither built nor computed. The stem kernel and stem
        type of an attention network are unused and written as None. Macro arguments follow in the
        order (n_cells, C_mult, ks, stem_type, stem_pool, preproc, glob_avg, norm, fc_layers).
        """
        from .plan import cell_flow

        parts = []
        for reduction in (False, True):
            edges, concat = self.genotype.cell(reduction)
            flow = cell_flow(edges, concat)
            nodes = []
            for i in range(len(edges) // 2):
                if i not in flow.live:
                    nodes.append("dead")
                    continue
                pair = sorted(f"{edges[k][0]}@{edges[k][1]}" if flow.contributes[k] else "none@0"
                              for k in (2 * i, 2 * i + 1))
                nodes.append("+".join(pair))
            parts.append(" ".join(nodes) + " | " + ",".join(map(str, concat)))
        a = self.args
        vit = self.is_vit
        args = (a.n_cells, a.C_mult, None if vit else a.ks, None if vit else a.stem_type,
                None if vit else a.stem_pool, a.preproc, a.glob_avg, a.norm, a.fc_layers)
        # repr of ints, strs, bools and None is the same in every Python version
        return f"normal: {parts[0]}; reduce: {parts[1]}; args: {args!r}"

    def to_dict(self) -> dict[str, Any]:
        return {"genotype": self.genotype.to_dict(), **asdict(self.args)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Arch:
        if "genotype" not in data:
            raise ValueError("an arch needs a genotype")
        known = {f.name for f in fields(NetArgs)}
        unknown = set(data) - known - {"genotype"}
        if unknown:
            raise ValueError(f"unknown arch fields: {', '.join(sorted(unknown))}")
        return cls(Genotype.from_dict(data["genotype"]), NetArgs(**{k: data[k] for k in known if k in data}))

    def describe(self) -> str:
        """One line: cells, steps, stem, head, norm and the ops of both cells."""
        a = self.args
        stem = "patch stem" if self.is_vit else f"stem{a.stem_type} k{a.ks}" + (" +pool" if a.stem_pool else "")
        head = ("avg" if a.glob_avg else "flat") + f"+fc{a.fc_layers}"
        norm = "BN" if a.norm == "bn" else "no norm"
        parts = [f"{a.n_cells} cells x {self.steps} step{'s' if self.steps > 1 else ''}", f"C={a.C}",
                 f"x{a.C_mult}", stem, head, norm]
        if not a.preproc:
            parts.append("no preproc")
        ops = lambda edges: " ".join(op for op, _ in edges)  # noqa: E731
        normal, reduce = self.genotype.normal, self.genotype.reduce
        return ", ".join(parts) + f"; normal: {ops(normal)}; reduce: {ops(reduce)}"
