"""Sampling architectures as the DeepNets-1M generator does (spec sections 3, 4, 6 and 7). Torch-free.

``sample_arch`` draws candidates from a ``Stream`` until one passes the generator's filters (and
an optional ``accept`` test on its canonical key, which the splits use to partition the key space).
``eval_width`` and ``train_size`` give the width of an evaluation net and the per-draw width of a
training net.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from .arch import Arch, NetArgs
from .genotype import LARGE_CONVS, POOL_PRIMITIVES, PRIMITIVES, Edge, Genotype, op_info
from .plan import make_plan
from .stream import Stream

MAX_ATTEMPTS = 100_000  # far above need (held-out splits need ~40 on average); a bug guard


@dataclass(frozen=True)
class Rule:
    """Generator constants of one split family (spec section 4, all ranges inclusive).

    ``steps`` is drawn from ``min_steps .. max_steps`` when ``n_cells <= T`` and from
    ``min_steps .. medium_steps`` otherwise, ``T`` drawn from ``thresholds``; ``max_params`` caps
    the parameter count at C=32 of both the CIFAR-10 and the ImageNet variant.
    """

    name: str
    min_cells: int
    max_cells: int
    thresholds: tuple[int, ...]
    min_steps: int
    max_steps: int
    medium_steps: int
    max_params: int
    bn_free: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.min_cells <= self.max_cells:
            raise ValueError(f"{self.name}: need 1 <= min_cells <= max_cells")
        if not 1 <= self.min_steps <= self.medium_steps <= self.max_steps:
            raise ValueError(f"{self.name}: need 1 <= min_steps <= medium_steps <= max_steps")
        if not self.thresholds or self.max_params < 1:
            raise ValueError(f"{self.name}: thresholds and max_params are required")


TRAIN_RULE = Rule("train", 4, 18, (7, 8, 9, 10), 1, 4, 2, 10_000_000)
BNFREE_RULE = replace(TRAIN_RULE, name="bnfree", bn_free=True)
DEEP_RULE = Rule("deep", 10, 36, (18,), 1, 4, 2, 100_000_000)
DENSE_RULE = Rule("dense", 4, 18, (7, 8, 9, 10), 2, 10, 6, 100_000_000)

STEM_KERNELS = (3, 5, 7)


def sample_genotype(stream: Stream, steps: int, only_pool: bool, drop_concat: bool, allow_none: bool,
                    allow_msa: bool = True) -> Genotype:
    """Spec section 3: per node two distinct inputs, each with a uniformly drawn op."""
    full = [op for op in PRIMITIVES if (allow_none or op != "none") and (allow_msa or op != "msa")]
    pools = (["none"] if allow_none else []) + list(POOL_PRIMITIVES)
    cells: list[tuple[Edge, ...]] = []
    for reduction in (False, True):
        ops = pools if (reduction and only_pool) else full
        edges: list[Edge] = []
        for node in range(steps):
            for index in stream.two_distinct(node + 2):
                edges.append((stream.choice(ops), index))
        cells.append(tuple(edges))
    last = steps + 1
    if drop_concat:
        concat = tuple(c for c in range(2, last) if stream.bernoulli(0.5)) + (last,)
    else:
        concat = tuple(range(2, last + 1))
    return Genotype(cells[0], concat, cells[1], concat)


def genotype_filter(genotype: Genotype) -> str | None:
    """The reason the generator rejects this genotype (spec section 4 step 4), or None."""
    ops = genotype.ops()
    infos = [op_info(op) for op in ops]
    if "cse" in ops and not any("conv" in op for op in ops):
        return "cse without conv"
    for cell in (genotype.normal, genotype.reduce):
        cell_ops = [op for op, _ in cell]
        if cell_ops.count("cse") > 1:
            return "several cse in a cell"
        if sum(op in LARGE_CONVS for op in cell_ops) > 1:
            return "several large convs in a cell"
    if not any(info.learnable for info in infos):
        return "no learnable op"
    return None


def sample_candidate(rule: Rule, stream: Stream) -> tuple[Arch | None, str | None]:
    """One candidate (spec section 4 steps 1-10): ``(arch, None)``, or ``(None, reason)`` when the
    genotype filter rejects it."""
    n_cells = stream.integer(rule.min_cells, rule.max_cells)
    threshold = stream.choice(rule.thresholds)
    deep = n_cells > threshold
    steps = stream.integer(rule.min_steps, rule.medium_steps if deep else rule.max_steps)
    only_pool = stream.bernoulli(0.5)
    drop_concat = stream.bernoulli(0.5) if steps > 1 else False
    genotype = sample_genotype(stream, steps, only_pool, drop_concat, allow_none=steps > 1)
    ks = stream.choice(STEM_KERNELS)
    reason = genotype_filter(genotype)
    if reason is not None:
        return None, reason
    is_vit = genotype.is_vit
    C_mult = stream.integer(1, 2)
    # 1x1 adapters are needed to match widths; optional (80% off) only for 1-step attention nets
    preproc = stream.bernoulli(0.2) if (is_vit and steps == 1 and C_mult == 1) else True
    glob_avg = True if (is_vit or deep) else stream.bernoulli(0.9)
    if rule.bn_free:
        norm = "none"
    elif n_cells <= rule.min_cells + 1 and steps <= rule.medium_steps:
        norm = "none" if stream.bernoulli(0.5) else "bn"
    else:
        norm = "bn"
    stem_type = stream.integer(0, 1)
    stem_pool = stem_type == 0 and stream.bernoulli(0.5)
    fc_layers = stream.integer(1, 2)
    args = NetArgs(n_cells=n_cells, C=32, C_mult=C_mult, ks=ks, stem_type=stem_type, stem_pool=stem_pool,
                   preproc=preproc, glob_avg=glob_avg, norm=norm, fc_layers=fc_layers, fc_dim=256)
    return Arch(genotype, args), None


@dataclass(frozen=True)
class Sampled:
    """An accepted architecture, its parameter counts at C=32 (CIFAR-10 and ImageNet classes) and
    how many candidates it took (``rejected`` counts the reasons of the others)."""

    arch: Arch
    params_cifar10: int
    params_imagenet: int
    attempts: int
    rejected: Counter[str]


def sample_arch(rule: Rule, stream: Stream, accept: Callable[[str], bool] | None = None) -> Sampled:
    """Draw candidates until one passes every filter of spec section 4 (and ``accept(arch.key())``).

    Filters: the genotype filter; ``accept``; the parameter cap at C=32 for 32x32/10 classes and
    224x224/1000 classes; and ``NetPlan.problems`` (the spec's "output is None / disconnected"
    filter). Parts that cannot reach the output are not built, so every parameter of the network
    influences the output (spec section 9.3) without rejecting the architecture.
    """
    rejected: Counter[str] = Counter()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        arch, reason = sample_candidate(rule, stream)
        if arch is None:
            rejected[reason or "?"] += 1
            continue
        if accept is not None and not accept(arch.key()):
            rejected["key refused"] += 1
            continue
        cifar = make_plan(arch, 32, 10)
        n_cifar = cifar.num_params()
        n_imagenet = make_plan(arch, 224, 1000).num_params()
        if max(n_cifar, n_imagenet) > rule.max_params:
            rejected["too many parameters"] += 1
            continue
        if cifar.problems():
            rejected["output not computed or not connected"] += 1
            continue
        return Sampled(arch, n_cifar, n_imagenet, attempt, rejected)
    raise RuntimeError(f"{rule.name}: no architecture accepted in {MAX_ATTEMPTS} candidates ({stream.key})")


# ------------------------------------------------------------------------------------------------
# Widths

EVAL_WIDTHS = tuple(range(16, 257, 8))
EVAL_MIN_PARAMS = 2_500_000
EVAL_FC_DIM = 256


def eval_width(arch: Arch) -> int:
    """ghnctl's width rule for evaluation nets (spec section 6): the smallest C in 16, 24, ..., 256
    whose CIFAR-10 model has at least 2.5M parameters, else 256."""
    counts = _LazyCounts(arch)
    i = bisect.bisect_left(counts, EVAL_MIN_PARAMS)
    return EVAL_WIDTHS[min(i, len(EVAL_WIDTHS) - 1)]


class _LazyCounts:
    """CIFAR-10 parameter counts over EVAL_WIDTHS, computed only where bisect looks."""

    def __init__(self, arch: Arch) -> None:
        self.arch = arch

    def __len__(self) -> int:
        return len(EVAL_WIDTHS)

    def __getitem__(self, i: int) -> int:
        return make_plan(self.arch.with_size(C=EVAL_WIDTHS[i]), 32, 10).num_params()


TRAIN_WIDTHS = (32, 48, 64, 80, 96, 112, 128)
TRAIN_FC_DIMS = (64, 128, 192, 256, 320, 384, 448, 512)


@dataclass(frozen=True)
class TrainSize:
    """Width, classifier hidden size and ImageNet stem stride for one training draw of a net."""

    C: int
    fc_dim: int
    imagenet_stride: int = 4


def train_size(arch: Arch, stream: Stream, params_cifar10: int, params_imagenet: int, *,
               imagenet: bool = False, wider: bool = False) -> TrainSize:
    """Spec section 7: the width and fc_dim a training net gets each time it is drawn.

    ``params_*`` are the counts at C=32 (``Sampled``); ``imagenet`` picks the ImageNet count;
    ``wider`` applies the GHN-3 ImageNet rules (larger thresholds, CIFAR-10 count, stem stride 2
    or 4). The stream should be the trainer's own, seeded from its seed.
    """
    a = arch.args
    dense = any(op in LARGE_CONVS for op in arch.genotype.ops())
    P = (params_cifar10 if (wider or not imagenet) else params_imagenet) / 1e6
    first = (P > 2.0 or a.n_cells > 14) if wider else (P > 0.8 or a.n_cells > 12)
    fc_dims = TRAIN_FC_DIMS[:4]
    if first or not a.glob_avg or dense:
        widths: tuple[int, ...] = TRAIN_WIDTHS[:1]
    elif P > 0.4 or a.n_cells > 10:
        widths = TRAIN_WIDTHS[:4] if wider else TRAIN_WIDTHS[:2]
    elif P > 0.2 or a.n_cells > 8:
        widths = TRAIN_WIDTHS[:5] if wider else TRAIN_WIDTHS[:3]
    else:
        widths = TRAIN_WIDTHS
    C = stream.choice(widths)
    if widths == TRAIN_WIDTHS and C <= 64:
        fc_dims = TRAIN_FC_DIMS
    fc_dim = stream.choice(fc_dims)
    stride = 4
    big = P > 0.2 or a.n_cells > 8 or dense
    if wider and a.glob_avg and a.stem_type == 0 and a.stem_pool and not big and not arch.is_vit:
        stride = stream.choice((2, 4))
    return TrainSize(C, fc_dim, stride)
