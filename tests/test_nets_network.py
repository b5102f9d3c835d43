"""DeepNets networks as modules: sizes, forward passes, and what a GHN reads and predicts of them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ghnctl import build_graph, nets, predict_parameters
from ghnctl.ghn import GHN, GhnConfig
from ghnctl.nets import DARTS, SPLITS, Arch, NetArgs, build_network, make_plan
from ghnctl.nets.ops import PosEnc, Skipped

SPLIT_NAMES = [name for name in SPLITS if name != "predefined"]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def ghn() -> GHN:
    torch.manual_seed(0)
    return GHN.from_config(GhnConfig(max_shape=(64, 64, 11, 11), num_classes=10, hid=32, layers=2, heads=8)).eval()


def test_darts_has_the_papers_parameter_count_and_runs() -> None:
    model = build_network(Arch(DARTS, NetArgs(n_cells=20, C=36)), 32, 10)
    assert n_params(model) == 3_349_342  # DARTS's train.py prints "param size = 3.349342MB"
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize(("split", "index", "size"), [
    ("train", 0, 32), ("train", 1, 224), ("deep", 0, 32), ("dense", 0, 32), ("bnfree", 0, 224),
    ("predefined", 1, 32), ("predefined", 1, 224),
])
def test_forward_gives_finite_logits_in_train_and_eval_mode(split: str, index: int, size: int) -> None:
    torch.manual_seed(0)
    model = nets.get(split, index).build(size, num_classes=7)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        for mode in (True, False):
            out = model.train(mode)(x)
            assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_parts_that_cannot_reach_the_output_are_not_built() -> None:
    net = nets.get("train", 12)  # some cells feed nothing the output depends on
    plan = make_plan(net.arch, 32)
    dead = [cell.index for cell in plan.cells if not cell.live]
    assert dead and plan.dead_params() > 0
    model = net.build(32)
    assert all(isinstance(model.cells[k], Skipped) for k in dead)
    assert not any(name.startswith(tuple(f"cells.{k}." for k in dead)) for name, _ in model.named_parameters())
    graph = build_graph(model)
    assert graph.uncovered == [] and graph.warnings == []
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(2, 3, 32, 32))).all()


def test_batchnorm_uses_batch_statistics_unless_asked() -> None:
    net = nets.get("test", 0)
    plain = net.build(32, device="meta")
    assert not any(isinstance(m, nn.BatchNorm2d) and m.track_running_stats for m in plain.modules())
    assert not list(plain.buffers())
    tracked = net.build(32, track_running_stats=True, device="meta")
    assert any(name.endswith("running_mean") for name, _ in tracked.named_buffers())
    resnet = nets.get("predefined", 0).build(32, device="meta")
    assert not list(resnet.buffers()) and n_params(resnet) == nets.get("predefined", 0).num_params(32)
    assert resnet.conv1.kernel_size == (3, 3) and resnet.conv1.stride == (1, 1)
    assert isinstance(resnet.maxpool, nn.Identity)


def test_resolution_walk_of_the_spec() -> None:
    """Spec 5.4: the map size after the stem and after each reduction, per stem and input size."""
    base = dict(n_cells=6, C=8)
    cases = [({}, 32, 8), ({"stem_pool": True}, 32, 4), ({"stem_type": 1}, 32, 4),
             ({}, 224, 14), ({"stem_pool": True}, 224, 7), ({"stem_type": 1}, 224, 7)]
    for extra, size, final in cases:
        arch = Arch(DARTS, NetArgs(**base, **extra, glob_avg=False))
        plan = make_plan(arch, size)
        assert plan.final_resolution == final, (extra, size)
        model = build_network(arch, size)
        with torch.no_grad():
            assert model(torch.randn(2, 3, size, size)).shape == (2, 10 if size == 32 else 1000)
    vit = make_plan(nets.VIT_ARCH, 224)
    assert (vit.grid, vit.final_resolution) == (14, 14)


def _check_graph(net: nets.SplitNet, size: int) -> None:
    model = net.build(size, device="meta")
    assert n_params(model) == net.num_params(size) and model.expected_input_sz == size
    graph = build_graph(model, arch=net.spec)
    assert graph.uncovered == [] and graph.warnings == [], (net.spec, size, graph.warnings)
    # every parameter has its node; a norm's bias is predicted with its weight's node
    covered = {node.param for node in graph.nodes if node.param is not None}
    covered |= {node.param[: -len("weight")] + "bias" for node in graph.nodes if node.op in ("bn", "ln")}
    assert {name for name, _ in model.named_parameters()} == covered
    last = f"classifier.{len(model.classifier) - 1}"
    assert graph.nodes[0].op == "input"
    assert (graph.nodes[-2].param, graph.nodes[-1].param) == (f"{last}.weight", f"{last}.bias")
    if any(isinstance(m, PosEnc) for m in model.modules()):
        i = next(n.index for n in graph.nodes if n.op == "pos_enc")
        assert graph.nodes[i + 1].op == "sum"  # the official pos-enc sum node


@pytest.mark.parametrize("split", SPLIT_NAMES)
def test_every_parameter_is_a_graph_node(split: str) -> None:
    for i in range(4):
        _check_graph(nets.get(split, i), 32)
    for i in range(4, 6):
        _check_graph(nets.get(split, i), 224)


@pytest.mark.slow
@pytest.mark.parametrize("split", SPLIT_NAMES)
def test_every_parameter_is_a_graph_node_large_sample(split: str) -> None:
    for i in range(6, 11):  # with the 6 above: 11 nets per split in the suite (more in benchmarks)
        for size in (32, 224):
            _check_graph(nets.get(split, i), size)


@pytest.mark.parametrize(("split", "index", "size"), [
    *((name, 0, 32) for name in SPLIT_NAMES), ("train", 1, 224), ("test", 1, 224),
    ("predefined", 0, 32), ("predefined", 1, 224),
])
def test_a_ghn_predicts_every_parameter(ghn: GHN, split: str, index: int, size: int) -> None:
    net = nets.get(split, index)
    model = net.build(size, device="meta").to_empty(device="cpu")
    assert n_params(model) == net.num_params(size)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))  # anything not predicted stays NaN
    model, report = predict_parameters(ghn, model, return_report=True)
    assert report.unpredicted == [], (net.spec, size, [p.name for p in report.unpredicted][:5])
    assert all(torch.isfinite(p).all() for p in model.parameters()), net.spec
    if split in ("train", "test", "predefined"):
        with torch.no_grad():
            out = model(torch.randn(2, 3, size, size))
        assert out.shape == (2, 10 if size == 32 else 1000) and torch.isfinite(out).all()
