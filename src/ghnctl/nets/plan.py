"""The layout of a network before it is built: widths, strides, resolutions, which edges reach the
output, and the exact parameter count (spec section 5). Torch-free.

``ghnctl.nets.network`` builds modules from this plan, so the channel walk exists once; the
generator uses it to count parameters and to reject architectures with parameters that cannot
influence the output, without instantiating anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .arch import Arch
from .genotype import Edge, op_info

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
    ``conv`` = ReLU-1x1conv-norm, ``stride`` = subsample by 2, ``identity``)."""

    index: int
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

    def num_params(self) -> int:
        """The exact number of parameters of the built network."""
        return _count(self)

    def problems(self) -> list[str]:
        """Why this network should not be used: a cell whose output is never computed, or modules
        with parameters that cannot influence the output (empty when all is well)."""
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
        if a.preproc:
            pre0 = "reduce" if (reduction_prev and not arch.is_vit) else "conv"
            pre1 = "conv"
        else:
            pre0 = "stride" if (reduction_prev and not arch.is_vit) else "identity"
            pre1 = "identity"
        flow = flows[reduction]
        c_in_inputs = c if a.preproc else c_p
        plans = []
        for j, (op, index) in enumerate(edges):
            live = flow.contributes[j] and j // 2 in flow.live
            stride = 2 if (spatial and index < 2) else 1
            plans.append(EdgePlan(op, index, c_in_inputs if index < 2 else c, c, stride, live))
        if spatial:
            res = _conv_out(res, 3, 2, 1)
        cell = CellPlan(k, reduction, c_pp, c_p, c, pre0, pre1, tuple(plans), tuple(concat), flow, res)
        cells.append(cell)
        reduction_prev = reduction
        c_pp, c_p = c_p, cell.c_out

    head_in = c_p if a.glob_avg else c_p * res * res
    return NetPlan(arch, image_size, num_classes, stem, c_stem, stem_stride, patch, grid, tuple(cells),
                   head_in, res)


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


def _count(plan: NetPlan) -> int:
    total = stem_params(plan) + head_params(plan)
    for cell in plan.cells:
        total += _adapter_params(plan, cell.pre0, cell.c_prev_prev, cell.c)
        total += _adapter_params(plan, cell.pre1, cell.c_prev, cell.c)
        total += sum(edge_params(plan, e) for e in cell.edges)
    return total


# ------------------------------------------------------------------------------------------------
# Reachability of parameters


def _problems(plan: NetPlan) -> list[str]:
    out: list[str] = []
    if any(cell.flow.output_none for cell in plan.cells):
        return ["a cell computes none of its concatenated nodes"]
    n = len(plan.cells)
    live_cells = [False] * n
    live_cells[-1] = True
    stem_used = [False, False]  # whether the stem's two outputs (s0, s1 of cell 0) are used
    for k in range(n - 1, -1, -1):
        if not live_cells[k]:
            continue
        for which, offset in ((0, 2), (1, 1)):
            if not plan.cells[k].flow.uses[which]:
                continue
            source = k - offset
            if source >= 0:
                live_cells[source] = True
            else:  # the stem: cell 0 reads s0 (-2) and s1 (-1); cell 1 reads s1 through index 0
                stem_used[0 if source == -2 else 1] = True
    for cell in plan.cells:
        if not live_cells[cell.index]:
            if _cell_params(plan, cell):
                out.append(f"cell {cell.index} does not reach the output")
            continue
        for which, kind, c_in in ((0, cell.pre0, cell.c_prev_prev), (1, cell.pre1, cell.c_prev)):
            if not cell.flow.uses[which] and _adapter_params(plan, kind, c_in, cell.c):
                out.append(f"cell {cell.index}: input {which} adapter does not reach the output")
        dead = [f"{e.op}({e.source})" for e in cell.edges if not e.live and edge_params(plan, e)]
        if dead:
            out.append(f"cell {cell.index}: edges {', '.join(dead)} do not reach the output")
    if plan.stem == "darts":
        # s1 = stem1(stem0(x)): stem0 is used through s1 as well; stem1 only through s1
        if not stem_used[1]:
            out.append("the second stem block does not reach the output")
    elif not any(stem_used):
        out.append("the stem does not reach the output")
    return out


def _cell_params(plan: NetPlan, cell: CellPlan) -> int:
    return (_adapter_params(plan, cell.pre0, cell.c_prev_prev, cell.c)
            + _adapter_params(plan, cell.pre1, cell.c_prev, cell.c)
            + sum(edge_params(plan, e) for e in cell.edges))
