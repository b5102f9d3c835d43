"""Genotypes, macro arguments and canonical keys of DeepNets architectures (torch-free)."""

from __future__ import annotations

import json

import pytest

from ghnctl.nets import DARTS, PRIMITIVES, VIT, VIT_ARCH, Arch, Genotype, NetArgs
from ghnctl.nets.genotype import op_info
from ghnctl.nets.plan import cell_flow


def one_step(normal: list[tuple[str, int]], reduce: list[tuple[str, int]] | None = None) -> Genotype:
    return Genotype(tuple(normal), (2,), tuple(reduce or [("max_pool_3x3", 0), ("conv_3x3", 1)]), (2,))


def test_the_fifteen_primitives_parse_to_their_modules() -> None:
    assert len(PRIMITIVES) == 15
    kinds = {name: (op_info(name).kind, op_info(name).kernel) for name in PRIMITIVES}
    assert kinds["conv_7x1_1x7"] == ("conv2", 7)
    assert kinds["dil_conv_5x5"] == ("dil_conv", 5)
    assert kinds["skip_connect"] == ("skip", 0)
    assert kinds["max_pool_3x3"] == ("max_pool", 3)
    assert kinds["msa"] == ("msa", 0)
    learnable = {name for name in PRIMITIVES if op_info(name).learnable}
    assert learnable == {n for n in PRIMITIVES if "conv" in n} | {"msa", "cse"}
    assert op_info("skip_connect").has_params(2) and not op_info("skip_connect").has_params(1)


@pytest.mark.parametrize(
    ("normal", "concat", "message"),
    [
        ([("conv_3x3", 0)], (2,), r"2 \* steps edges"),
        ([("conv_9x9", 0), ("conv_3x3", 1)], (2,), "unknown edge op 'conv_9x9'"),
        ([("conv_3x3", 0), ("conv_3x3", 2)], (2,), r"node 0 can read inputs 0\.\.1, got 2"),
        ([("conv_3x3", 0), ("conv_3x3", True)], (2,), "must be an int"),
        ([("conv_3x3", 0), ("conv_3x3", 1)], (3,), "increasing node indices in 2..2"),
        ([("conv_3x3", 0), ("conv_3x3", 1)], (), "increasing node indices"),
    ],
)
def test_a_bad_genotype_is_refused_on_construction(normal: list, concat: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Genotype(tuple(normal), concat, (("none", 0), ("max_pool_3x3", 1)), (2,))


def test_genotype_round_trips_through_json() -> None:
    for genotype in (DARTS, VIT):
        data = json.loads(json.dumps(genotype.to_dict()))
        assert Genotype.from_dict(data) == genotype
    assert DARTS.steps == 4 and not DARTS.is_vit and VIT.is_vit


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"C": 21}, "even"),
        ({"ks": 4}, "odd"),
        ({"stem_type": 1, "stem_pool": True}, "stem_pool"),
        ({"norm": "ln"}, "norm must be"),
        ({"fc_layers": 3}, "fc_layers"),
        ({"n_cells": 2, "glob_avg": False}, "flatten head"),
        ({"preproc": "yes"}, "bool"),
    ],
)
def test_bad_macro_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NetArgs(**{"n_cells": 8, **kwargs})


def test_arch_checks_genotype_against_arguments() -> None:
    with pytest.raises(ValueError, match="preproc=False"):
        Arch(DARTS, NetArgs(n_cells=8, preproc=False, C_mult=1))
    with pytest.raises(ValueError, match="8 heads"):
        Arch(VIT, NetArgs(n_cells=8, C=36))
    with pytest.raises(ValueError, match="glob_avg"):
        Arch(VIT, NetArgs(n_cells=8, glob_avg=False))
    arch = Arch.from_dict(json.loads(json.dumps(VIT_ARCH.to_dict())))
    assert arch == VIT_ARCH
    with pytest.raises(ValueError, match="unknown arch fields: colour"):
        Arch.from_dict({**VIT_ARCH.to_dict(), "colour": "red"})


def test_cell_flow_follows_what_reaches_the_output() -> None:
    # node 0 = conv(input 1) + none; node 1 reads node 0 and input 0; node 2 is dangling
    edges = (("conv_3x3", 1), ("none", 0), ("max_pool_3x3", 2), ("conv_1x1", 0), ("sep_conv_3x3", 0), ("none", 1))
    flow = cell_flow(edges, (3,))
    assert flow.contributes == (True, False, True, True, True, False)
    assert flow.live == {0, 1} and flow.uses == (True, True) and not flow.output_none
    # a node whose edges are all none is never computed, and neither is what reads only it
    flow = cell_flow((("none", 0), ("none", 1), ("conv_3x3", 2), ("none", 0)), (2, 3))
    assert flow.output_none and flow.live == frozenset() and flow.uses == (False, False)


def test_key_ignores_what_does_not_change_the_network() -> None:
    args = NetArgs(n_cells=8)
    base = Arch(one_step([("conv_3x3", 0), ("sep_conv_3x3", 1)]), args)
    swapped = Arch(one_step([("sep_conv_3x3", 1), ("conv_3x3", 0)]), args)
    assert base.key() == swapped.key()
    assert base.key() == base.with_size(C=64, fc_dim=64).key()  # width is not identity
    assert base.key() != Arch(base.genotype, NetArgs(n_cells=9)).key()
    assert base.key() != Arch(one_step([("conv_3x3", 1), ("sep_conv_3x3", 0)]), args).key()

    # a none edge reads nothing; a dangling parameter-free node computes nothing into the output
    two = lambda e0, e1: Genotype((("conv_3x3", 0), e0, ("max_pool_3x3", 1), e1), (2,),  # noqa: E731
                                  (("conv_3x3", 0), ("conv_1x1", 1), ("max_pool_3x3", 1), ("skip_connect", 0)), (2,))
    k1 = Arch(two(("none", 0), ("avg_pool_3x3", 0)), args).key()
    k2 = Arch(two(("none", 1), ("skip_connect", 2)), args).key()
    assert k1 == k2 and "dead" in k1

    # attention nets ignore the stem kernel and stem type
    vit = lambda **kw: Arch(one_step([("msa", 1), ("conv_1x1", 0)]), NetArgs(n_cells=8, **kw)).key()  # noqa: E731
    assert vit(ks=3) == vit(ks=7, stem_type=1) == vit(ks=5, stem_pool=True)
    assert vit(norm="none") != vit(norm="bn")


def test_describe_is_one_line() -> None:
    line = Arch(DARTS, NetArgs(n_cells=8, stem_type=1)).describe()
    assert "\n" not in line
    assert line.startswith("8 cells x 4 steps, C=32, x2, stem1 k3, avg+fc1, BN; normal: sep_conv_3x3")
