"""The graph engine against the official code's graphs in ../shared/golden (exact match).

Models are built through ``_model`` and graphs through ``_graph``, so that the tests after the
golden cases reuse what those built instead of initialising the same models again (vit_b_16's
86M values take seconds).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import pytest
import torch
import torchvision

from ghnctl.graph import GhnGraph, build_graph


def _golden_graph_files(shared: Path | None) -> list[Path]:
    if shared is None:
        return []
    return sorted((shared / "golden").glob("graph__*__c*.json"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _model(arch: str, num_classes: int = 1000, seed: int = 0, **kwargs: object) -> torch.nn.Module:
    """``torchvision.models.<arch>(num_classes=..., **kwargs)`` built after ``torch.manual_seed(seed)``;
    shared: only for tests that do not change it."""
    return _cached_model(arch, num_classes, seed, tuple(sorted(kwargs.items())))


def _graph(arch: str, num_classes: int = 1000, seed: int = 0, **kwargs: object) -> GhnGraph:
    """``build_graph`` of ``_model(...)`` (default trace mode), built once."""
    return _cached_graph(arch, num_classes, seed, tuple(sorted(kwargs.items())))


@functools.lru_cache(maxsize=2)
def _cached_model(arch: str, num_classes: int, seed: int, kwargs: tuple) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torchvision.models.get_model(arch, num_classes=num_classes, **dict(kwargs))


@functools.cache
def _cached_graph(arch: str, num_classes: int, seed: int, kwargs: tuple) -> GhnGraph:
    return build_graph(_cached_model(arch, num_classes, seed, kwargs), arch)


def _case_ids() -> list[str]:
    # collected before fixtures exist, so locate ../shared the same way the shared_dir fixture does
    import os

    env = os.environ.get("GHNCTL_SHARED")
    shared = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"
    return [p.stem for p in _golden_graph_files(shared if shared.is_dir() else None)] or ["no-golden-files"]


@pytest.mark.parametrize("case", _case_ids())
def test_graph_matches_official(case: str, shared_dir: Path) -> None:
    path = shared_dir / "golden" / f"{case}.json"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    gold = _load(path)
    graph = _graph(gold["arch"], gold["num_classes"], gold.get("model_seed", 0))

    assert graph.num_nodes == gold["n_nodes"]
    ours = [(n.op, n.param, n.name, list(n.shape) if n.shape is not None else None) for n in graph.nodes]
    theirs = [(n["op"], n["param"], n["name"], n["shape"]) for n in gold["nodes"]]
    assert ours == theirs
    assert [list(e) for e in graph.edges] == gold["edges"]
    assert graph.num_edges == gold["n_edges"]
    assert {str(k): v for k, v in graph.dist_histogram().items()} == gold["dist_hist"]
    assert int(graph.dist.max()) == gold["dist_max"]
    digest = hashlib.sha256(graph.dist.to(torch.uint8).contiguous().numpy().tobytes()).hexdigest()
    assert digest == gold["dist_sha256_uint8"]
    assert graph.dist[0].tolist() == gold["input_dist"]
    assert graph.in_degree == gold["in_degree"]
    assert graph.out_degree == gold["out_degree"]


def test_build_graph_leaves_model_and_rng_untouched() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)  # train mode, like a fresh model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    for mode in ("fake", "real"):
        build_graph(model, "resnet18", trace_mode=mode)
        after = model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before), mode
        assert torch.equal(torch.get_rng_state(), rng), mode
    assert model.training


def test_fake_and_real_tracing_agree_on_attention() -> None:
    # scaled-dot-product attention dispatches per device; FakeTensors must take the CPU path
    model = _model("swin_t")
    fake = build_graph(model, "swin_t", trace_mode="fake")
    real = build_graph(model, "swin_t", trace_mode="real")
    assert [(n.op, n.name, n.shape) for n in fake.nodes] == [(n.op, n.name, n.shape) for n in real.nodes]
    assert torch.equal(fake.dist, real.dist)
    assert fake.op_histogram()["msa"] == 12


def test_unpredicted_parameters_are_reported() -> None:
    graph = _graph("convnext_tiny", 10)
    assert sum(1 for name in graph.uncovered if name.endswith("layer_scale")) == 18
    assert any("CNBlock.layer_scale" in w for w in graph.warnings)
    assert _graph("vit_b_16", 10).uncovered == ["class_token"]


def test_norm_biases_count_as_covered() -> None:
    graph = _graph("resnet18")
    assert graph.uncovered == []
    assert "bn1.bias" not in graph.covered  # no node of its own...
    assert all(n.param != "bn1.bias" for n in graph.nodes)


def test_forward_failure_names_image_size() -> None:
    from ghnctl.errors import ModelBuildError

    with pytest.raises(ModelBuildError) as info:
        build_graph(_model("vit_b_16"), "vit_b_16", image_size=32)
    assert "vit_b_16" in info.value.message
    assert "--image-size" in (info.value.hint or "")


# Node / 1-hop edge counts of the official graphs for architectures without a golden file, from the
# reverse-engineered spec (../shared/docs/ghn3-format.md, section 4.10; default constructors).
SPEC_COUNTS = {
    "alexnet": (21, 20, {}),
    "swin_t": (170, 193, {"msa": 12}),
    "googlenet": (154, 180, {}),
    "regnet_x_400mf": (168, 189, {}),
    "inception_v3": (228, 262, {}),
}


@pytest.mark.parametrize("arch", sorted(SPEC_COUNTS))
def test_graph_counts_from_the_spec(arch: str) -> None:
    nodes, edges, ops = SPEC_COUNTS[arch]
    kwargs = {"init_weights": True} if arch in ("googlenet", "inception_v3") else {}
    graph = _graph(arch, **kwargs)
    assert (graph.num_nodes, graph.num_edges) == (nodes, edges)
    for op, count in ops.items():
        assert graph.op_histogram()[op] == count
    if arch == "inception_v3":
        assert graph.image_size == (3, 299, 299)


def test_auto_trace_mode_picks_by_cost_and_both_modes_agree() -> None:
    from ghnctl.graph.build import _real_trace_is_cheaper

    small = torchvision.models.mobilenet_v3_small()  # ~29k parameters per layer: real is cheaper
    big = torchvision.models.resnet18()  # ~285k per layer: fake is cheaper
    assert _real_trace_is_cheaper(small)
    assert not _real_trace_is_cheaper(big)
    assert not _real_trace_is_cheaper(torchvision.models.mobilenet_v3_small().to("meta"))
    for model in (small, big):
        fake = build_graph(model, trace_mode="fake")
        real = build_graph(model, trace_mode="real")
        auto = build_graph(model)
        assert [n.name for n in fake.nodes] == [n.name for n in real.nodes] == [n.name for n in auto.nodes]
        assert torch.equal(fake.dist, real.dist) and torch.equal(fake.dist, auto.dist)
