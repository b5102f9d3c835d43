"""The layout of a network before it is built: widths, strides, resolutions, which parts reach the
output, and the exact parameter count (spec section 5). Torch-free.

``ghnctl.nets.network`` builds modules from this plan, so the channel walk exists once; the
generator uses it to count parameters and to reject broken architectures without instantiating
anything. Parts that cannot influence the output (an edge into a node nothing reads, the adapter
of an input no edge uses, a cell no later cell uses) are marked dead: the network does not build
them, so every parameter it has is one a GHN predicts (spec section 9.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .genotype import Edge, op_info

if TYPE_CHECKING:  # arch.py uses cell_flow from here at run time; this module needs Arch for types only
    from .arch import Arch

IMAGE_SIZES = (32, 224)  # the CIFAR and ImageNet variants


@dataclass(frozen=True)
class CellFlow:
    """What reaches a cell's output, assuming both cell inputs are computed.

    ``contributes[k]``: edge k is computed into its node (not ``none``, input computed);
    ``live``: intermediate nodes (0-based) whose value reaches the output; ``uses``: whether
    inputs 0 and 1 reach it; ``output_none``: no concatenated node is computed at all.
    """

    contributes: tuple[bool, ...]
    live: frozenset[int]
    uses: tuple[bool, bool]
    output_none: bool


def cell_flow(edges: Sequence[Edge], concat: Sequence[int]) -> CellFlow:
    steps = len(edges) // 2
    computed = [True, True]  # states 0, 1: the cell inputs
    contributes: list[bool] = []
    for i in range(steps):
        pair = [op != "none" and computed[index] for op, index in edges[2 * i: 2 * i + 2]]
        contributes.extend(pair)
        computed.append(any(pair))
    live: set[int] = set()
    uses = [False, False]
    todo = [c - 2 for c in concat if computed[c]]
    while todo:
        node = todo.pop()
        if node in live:
            continue
        live.add(node)
        for k in (2 * node, 2 * node + 1):
            if contributes[k]:
                index = edges[k][1]
                if index < 2:
                    uses[index] = True
                else:
                    todo.append(index - 2)
    return CellFlow(tuple(contributes), frozenset(live), (uses[0], uses[1]),
                    output_none=not any(computed[c] for c in concat))


@dataclass(frozen=True)
class EdgePlan:
    op: str
    source: int
    c_in: int
    c_out: int
    stride: int
    live: bool


@dataclass(frozen=True)
class CellPlan:
    """One cell: ``pre0``/``pre1`` are the input adapters (``reduce`` = factorized reduce,
    ``conv`` = ReLU-1x1conv-norm, ``stride`` = subsample by 2, ``identity``, or ``unused`` when
    no edge reads that input); ``live`` is False for a cell no later cell (or the head) uses."""

    index: int
    live: bool
    reduction: bool
    c_prev_prev: int
    c_prev: int
    c: int
    pre0: str
    pre1: str
    edges: tuple[EdgePlan, ...]
    concat: tuple[int, ...]
    flow: CellFlow
    resolution: int

    @property
    def c_out(self) -> int:
        return len(self.concat) * self.c


@dataclass(frozen=True)
class NetPlan:
    """Everything needed to build (or count) the network of ``arch`` for one input size.

    ``stem`` is ``patch`` (attention nets), ``simple`` (stem_type 0) or ``darts`` (stem_type 1);
    ``head_in`` is the input size of the first classifier layer.
    """

    arch: Arch
    image_size: int
    num_classes: int
    stem: str
    c_stem: int
    stem_stride: int
    patch: int
    grid: int
    cells: tuple[CellPlan, ...]
    head_in: int
    final_resolution: int

    @property
    def C(self) -> int:
        return self.arch.args.C

    stem_used: tuple[bool, bool] = (True, True)

    def num_params(self) -> int:
        """The exact number of parameters of the built network (dead parts are not built)."""
        return _count(self)

    def dead_params(self) -> int:
        """Parameters the dead parts would have (the reference builds them; nothing trains them)."""
        return _count(self, dead=True)

    def problems(self) -> list[str]:
        """Why this network should not be used (empty when all is well): a used cell that computes
        none of its outputs, an output that does not depend on the input, or (DARTS stem) an
        unused second stem block."""
        return _problems(self)


def make_plan(arch: Arch, image_size: int = 32, num_classes: int | None = None,
              imagenet_stride: int = 4) -> NetPlan:
    """The layout of ``arch`` for ``image_size`` (32 or 224) and ``num_classes`` (default 10 at 32,
    1000 at 224). ``imagenet_stride`` is the simple stem's stride at 224 (GHN-3 also uses 2)."""
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"DeepNets networks come for 32x32 and 224x224 inputs, not {image_size}")
    if imagenet_stride not in (2, 4):
        raise ValueError(f"imagenet_stride must be 2 or 4, got {imagenet_stride}")
    if imagenet_stride != 4 and not arch.args.glob_avg:
        raise ValueError("imagenet_stride 2 changes the final map size: it needs glob_avg=True")
    if num_classes is None:
        num_classes = 10 if image_size == 32 else 1000
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    a, g = arch.args, arch.genotype
    imagenet = image_size == 224
    C = a.C
    patch = grid = 0
    if arch.is_vit:
        stem, stem_stride = "patch", 16 if imagenet else 3
        patch = stem_stride
        grid = 14 if imagenet else 11
        c_stem, res0, res1 = C, grid, grid
    elif a.stem_type == 0:
        stem, stem_stride = "simple", imagenet_stride if imagenet else 1
        c_stem = 3 * C if (a.preproc and not imagenet) else C
        res0 = _conv_out(image_size, a.ks, stem_stride, a.ks // 2)
        if a.stem_pool:
            res0 = _conv_out(res0, 3, 2, 1)
        res1 = res0
    else:
        stem, stem_stride = "darts", 2 if imagenet else 1
        c_stem = C
        res0 = _conv_out(_conv_out(image_size, a.ks, stem_stride, a.ks // 2), 3, stem_stride, 1)
        res1 = _conv_out(res0, 3, 2, 1)

    reductions = {k for k in (a.n_cells // 3, 2 * a.n_cells // 3) if k > 0}
    flows = {reduction: cell_flow(*g.cell(reduction)) for reduction in (False, True)}
    live_cells, stem_used = _live_cells([flows[k in reductions] for k in range(a.n_cells)])
    cells = []
    c_pp = c_p = c_stem
    c = C
    reduction_prev = stem == "darts"
    res = res1
    for k in range(a.n_cells):
        reduction = k in reductions
        if reduction:
            c *= a.C_mult
        edges, concat = g.cell(reduction)
        spatial = reduction and not arch.is_vit
        flow = flows[reduction]
        live = live_cells[k]
        if a.preproc:
            pre0 = "reduce" if (reduction_prev and not arch.is_vit) else "conv"
            pre1 = "conv"
        else:
            pre0 = "stride" if (reduction_prev and not arch.is_vit) else "identity"
            pre1 = "identity"
        pre0 = pre0 if (live and flow.uses[0]) else "unused"
        pre1 = pre1 if (live and flow.uses[1]) else "unused"
        c_in_inputs = c if a.preproc else c_p
        plans = []
        for j, (op, index) in enumerate(edges):
            edge_live = live and flow.contributes[j] and j // 2 in flow.live
            stride = 2 if (spatial and index < 2) else 1
            plans.append(EdgePlan(op, index, c_in_inputs if index < 2 else c, c, stride, edge_live))
        if spatial:
            res = _conv_out(res, 3, 2, 1)
        cell = CellPlan(k, live, reduction, c_pp, c_p, c, pre0, pre1, tuple(plans), tuple(concat), flow, res)
        cells.append(cell)
        reduction_prev = reduction
        c_pp, c_p = c_p, cell.c_out

    head_in = c_p if a.glob_avg else c_p * res * res
    return NetPlan(arch, image_size, num_classes, stem, c_stem, stem_stride, patch, grid, tuple(cells),
                   head_in, res, stem_used)


def _live_cells(flows: list[CellFlow]) -> tuple[list[bool], tuple[bool, bool]]:
    """Which cells the output depends on, and whether it depends on the stem's two outputs.

    Cell k reads cell k-2 through input 0 and cell k-1 through input 1; index -2 and -1 are the
    stem's two outputs (s0, s1). The last cell feeds the head.
    """
    n = len(flows)
    live = [False] * n
    live[-1] = True
    stem = [False, False]
    for k in range(n - 1, -1, -1):
        if not live[k]:
            continue
        for which, offset in ((0, 2), (1, 1)):
            if flows[k].uses[which]:
                source = k - offset
                if source >= 0:
                    live[source] = True
                else:  # cell 0 reads s0 (-2) and s1 (-1); cell 1 reads s1 through its input 0
                    stem[source + 2] = True
    return live, (stem[0], stem[1])


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


# ------------------------------------------------------------------------------------------------
# Parameter counts (must equal sum(p.numel()) of the built network; tested)


def _norm(plan: NetPlan, c: int) -> int:
    return 2 * c if plan.arch.args.norm == "bn" else 0


def edge_params(plan: NetPlan, edge: EdgePlan) -> int:
    info = op_info(edge.op)
    ci, co, k = edge.c_in, edge.c_out, info.kernel
    kind = info.kind
    if kind == "skip":
        return _factorized_reduce(plan, ci, co) if edge.stride > 1 else 0
    if kind == "conv":
        return ci * co * k * k + _norm(plan, co)
    if kind == "conv2":
        return ci * ci * k + ci * co * k + _norm(plan, co)
    if kind == "sep_conv":
        return 2 * ci * k * k + ci * ci + ci * co + _norm(plan, ci) + _norm(plan, co)
    if kind == "dil_conv":
        return ci * k * k + ci * co + _norm(plan, co)
    if kind == "msa":
        # fused qkv (no bias), output projection, two LayerNorms, MLP with hidden size c_out
        return 3 * ci * ci + (ci * co + co) + 4 * ci + (ci * co + co) + (co * ci + ci)
    if kind == "cse":
        half = ci // 2
        return (ci * half + half) + (half * ci + ci)
    return 0  # none, pools


def _factorized_reduce(plan: NetPlan, ci: int, co: int) -> int:
    return 2 * ci * (co // 2) + _norm(plan, co)


def _adapter_params(plan: NetPlan, kind: str, ci: int, co: int) -> int:
    if kind == "reduce":
        return _factorized_reduce(plan, ci, co)
    if kind == "conv":
        return ci * co + _norm(plan, co)
    return 0


def _full_adapter(plan: NetPlan, cell: CellPlan, which: int) -> str:
    """The adapter the reference builds whether used or not."""
    a = plan.arch.args
    if not a.preproc:
        return "identity"
    after_reduction = (cell.index > 0 and plan.cells[cell.index - 1].reduction) or (
        cell.index == 0 and plan.stem == "darts")
    return "reduce" if (which == 0 and after_reduction and not plan.arch.is_vit) else "conv"


def stem_params(plan: NetPlan) -> int:
    a, C = plan.arch.args, plan.C
    if plan.stem == "patch":
        return 3 * C * plan.patch * plan.patch + C * plan.grid * plan.grid
    if plan.stem == "simple":
        return 3 * plan.c_stem * a.ks * a.ks + _norm(plan, plan.c_stem)
    half = C // 2
    return 3 * half * a.ks * a.ks + _norm(plan, half) + half * C * 9 + _norm(plan, C) + C * C * 9 + _norm(plan, C)


def head_params(plan: NetPlan) -> int:
    a = plan.arch.args
    if a.fc_layers == 1:
        return plan.head_in * plan.num_classes + plan.num_classes
    return plan.head_in * a.fc_dim + a.fc_dim + a.fc_dim * plan.num_classes + plan.num_classes


def _count(plan: NetPlan, dead: bool = False) -> int:
    """Parameters of the built network, or (``dead``) of the parts it leaves out."""
    total = 0 if dead else stem_params(plan) + head_params(plan)
    for cell in plan.cells:
        for which, ci, kind in ((0, cell.c_prev_prev, cell.pre0), (1, cell.c_prev, cell.pre1)):
            if dead:
                total += _adapter_params(plan, _full_adapter(plan, cell, which), ci, cell.c) if kind == "unused" else 0
            else:
                total += _adapter_params(plan, kind, ci, cell.c)
        total += sum(edge_params(plan, e) for e in cell.edges if e.live != dead)
    return total


# ------------------------------------------------------------------------------------------------
# Reachability of parameters


def _problems(plan: NetPlan) -> list[str]:
    out: list[str] = []
    if any(cell.live and cell.flow.output_none for cell in plan.cells):
        out.append("a cell the output depends on computes none of its concatenated nodes")
    if not any(plan.stem_used):
        out.append("the output does not depend on the input")
    elif plan.stem == "darts" and not plan.stem_used[1]:
        # the reference's second stem block relus s0 in place even when unused: reject rather
        # than build a block nothing trains
        out.append("the second stem block does not reach the output")
    return out
