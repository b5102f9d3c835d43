"""Equivalence with the official DeepNets ``Network`` (ppuda) and GHN-3 ``Graph`` (ghn3), run from
../shared/official when present. For the same genotype and macro arguments:

* our parameters are, in order and shape, the official network's parameters that its output depends
  on (the official network also builds parts that cannot reach its output; ours leaves them out, and
  ``NetPlan.dead_params`` counts exactly what it leaves out);
* the GHN graph has the same node types in the same order, the same node shapes and the same
  distance matrix.

Nothing of the official code is imported by ghnctl itself."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ghnctl import build_graph, nets
from ghnctl.graph import PRIMITIVES
from ghnctl.nets import DARTS, VIT_ARCH, Arch, NetArgs, build_network, make_plan
from ghnctl.nets.plan import NetPlan

CASES = [
    ("darts", Arch(DARTS, NetArgs(n_cells=8, C=16)), 32),
    ("vit", VIT_ARCH, 224),
    ("train/95", "train/95", 32),  # a concatenated node that gets nothing (zeros in its place)
    ("train/223", "train/223", 224),  # flatten head
    ("train/55", "train/55", 32),  # DARTS stem, no norm, squeeze-excitation in a reduction cell
    ("train/48", "train/48", 32),  # attention without input adapters
    ("train/12", "train/12", 32),  # cells the output does not depend on
    ("train/17", "train/17", 224),  # edges into nodes nothing reads
]


@pytest.fixture(scope="module")
def official(shared_dir: Path) -> Any:
    root = shared_dir / "official"
    if not (root / "ppuda" / "ppuda" / "deepnets1m" / "net.py").is_file():
        pytest.skip(f"official code not found in {root}")
    for module in ("einops", "joblib", "networkx", "huggingface_hub"):
        pytest.importorskip(module, reason=f"the official code imports {module}")
    for sub in ("stubs", "ppuda", "ghn3"):  # ends up as ghn3, ppuda, stubs on sys.path
        if str(root / sub) not in sys.path:
            sys.path.insert(0, str(root / sub))
    try:
        import ghn3
        from ppuda.deepnets1m import genotypes, net
    except ImportError as exc:  # a dependency of the official code this environment lacks
        pytest.skip(f"the official code needs {exc.name}, which is not installed")
    return ghn3, genotypes, net


def _official_network(official: Any, arch: Arch, size: int) -> torch.nn.Module:
    _, genotypes, net = official
    g, a = arch.genotype, arch.args
    genotype = genotypes.Genotype(normal=list(g.normal), normal_concat=list(g.normal_concat),
                                  reduce=list(g.reduce), reduce_concat=list(g.reduce_concat))
    return net.Network(C=a.C, num_classes=10 if size == 32 else 1000, genotype=genotype, n_cells=a.n_cells, ks=a.ks,
                       is_imagenet_input=size == 224, stem_pool=a.stem_pool, stem_type=a.stem_type, norm=a.norm,
                       preproc=a.preproc, C_mult=a.C_mult, fc_layers=a.fc_layers, fc_dim=a.fc_dim,
                       glob_avg=a.glob_avg)


@pytest.mark.parametrize(("label", "arch", "size"), CASES, ids=[c[0] for c in CASES])
def test_same_network_and_graph_as_the_official_code(official: Any, label: str, arch: Arch | str, size: int) -> None:
    if isinstance(arch, str):
        split, index = arch.split("/")
        arch = nets.get(split, int(index)).arch
    torch.manual_seed(0)
    theirs = _official_network(official, arch, size)
    ours = build_network(arch, size)
    params = list(theirs.parameters())
    grads = torch.autograd.grad(theirs(torch.randn(2, 3, size, size))[0].sum(), params, allow_unused=True)
    used = [tuple(p.shape) for p, g in zip(params, grads) if g is not None]
    assert [tuple(p.shape) for p in ours.parameters()] == used
    unused = sum(p.numel() for p, g in zip(params, grads) if g is None)
    assert make_plan(arch, size).dead_params() == unused

    graph = official[0].Graph(theirs, ve_cutoff=50, dense=True, verbose=False)
    mine = build_graph(ours)
    assert [n.op for n in mine.nodes] == [PRIMITIVES[int(i)] for i in graph.node_feat.flatten()]
    assert np.array_equal(np.asarray(graph._Adj), mine.dist.numpy())
    their_shapes = {info[0]: tuple(info[3]) for cell in graph.node_info for info in cell if info[3] is not None}
    assert {n.index: tuple(n.shape) for n in mine.nodes if n.shape is not None} == their_shapes


def _plan(spec: str, size: int = 32) -> NetPlan:
    split, index = spec.split("/")
    return make_plan(nets.get(split, int(index)).arch, size)


def test_the_cases_still_have_the_features_they_are_chosen_for() -> None:
    """If the generator changes, pick new indices: these features are what the cases check."""
    assert any(c - 2 not in cell.flow.live for cell in _plan("train/95").cells for c in cell.concat)
    assert not _plan("train/223").arch.args.glob_avg
    a55 = _plan("train/55").arch
    assert a55.args.stem_type == 1 and a55.args.norm == "none" and "cse" in a55.genotype.ops()
    a48 = _plan("train/48").arch
    assert a48.is_vit and not a48.args.preproc
    assert not all(cell.live for cell in _plan("train/12").cells)
    assert _plan("train/17", 224).dead_params() > 0 and all(cell.live for cell in _plan("train/17", 224).cells)
