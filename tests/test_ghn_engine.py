"""The GHN network and the prediction engine beyond the goldens: layouts, sizes, the economical
decoder against the literal transcription of the official one, batching, options and reports."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torchvision
from torch import nn

from _tolerance import EPS32, element_tol
from ghnctl.ghn import GHN, GhnConfig, read_checkpoint
from ghnctl.ghn.reference import reference_predict
from ghnctl.graph import build_graph
from ghnctl.predict import predict_parameters
from test_ghn_golden import GOLDEN, golden_graph, needs_golden

TINY = GhnConfig(max_shape=(64, 64, 11, 11), num_classes=1000, hid=32, layers=2, heads=8)


def test_state_dict_matches_the_spec_table() -> None:
    shapes = {k: tuple(v.shape) for k, v in GHN.from_config(TINY, device="meta").state_dict().items()}
    expected = {
        "ln.weight": (32,), "embed.weight": (15, 32), "shape_enc.embed_spatial.weight": (9, 8),
        "shape_enc.embed_channel.weight": (392, 8), "gnn.1.attn.to_qkv.weight": (96, 32),
        "gnn.0.attn.to_out.0.weight": (32, 32), "gnn.0.attn.edge_embed.embed.weight": (257, 32),
        "gnn.0.attn.proj_e.0.weight": (32, 64), "gnn.0.attn.proj_e.2.weight": (8, 32),
        "gnn.1.ff.net.0.weight": (128, 32), "gnn.1.ff.net.3.weight": (32, 128),
        "gnn.0.centrality_embed_in.weight": (101, 32), "gnn.0.input_dist_embed.weight": (1001, 32),
        "decoder.fc.0.weight": (15488, 32), "decoder.conv.0.weight": (256, 128),
        "decoder.conv.2.weight": (4096, 256), "decoder.class_layer_predictor.1.weight": (1000, 64),
        "decoder_1d.fc.0.weight": (64, 32), "decoder_1d.fc.2.weight": (128, 64), "bias_class.1.weight": (1000, 64),
    }
    assert {k: shapes[k] for k in expected} == expected
    assert "gnn.1.attn.proj_e.0.weight" not in shapes and "gnn.1.centrality_embed_in.weight" not in shapes
    assert sum(torch.Size(s).numel() for s in shapes.values()) == 1_815_264


@pytest.mark.parametrize(("config", "count"), [
    (GhnConfig(max_shape=(64, 64, 16, 16), num_classes=1000, hid=64, layers=3, heads=8), 6_906_632),
    (GhnConfig(max_shape=(384, 384, 16, 16), num_classes=1000, hid=384, layers=24, heads=16), 654_365_184),
])
def test_official_model_sizes(config: GhnConfig, count: int) -> None:
    assert GHN.from_config(config, device="meta").num_parameters() == count


def test_ghn2_keys() -> None:
    config = GhnConfig(max_shape=(64, 64, 11, 11), num_classes=1000, hid=32, layers=0, heads=8, is_ghn2=True)
    keys = set(GHN.from_config(config, device="meta").state_dict())
    gnn = {k for k in keys if k.startswith("gnn.")}
    assert gnn == {f"gnn.{m}.fc.{i}.{p}" for m in ("mlp", "mlp_ve") for i in (0, 2) for p in ("weight", "bias")} | {
        f"gnn.gru.{p}" for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}


@needs_golden
def test_key_order_equals_the_official_trainer_file() -> None:
    checkpoint = read_checkpoint(GOLDEN / "ghn3-tiny-c10.pt")
    assert list(GHN.from_config(checkpoint.config, device="meta").state_dict()) == list(checkpoint.state_dict)


def test_shape_encoder_vocabularies_and_lookups() -> None:
    enc = GHN.from_config(TINY, device="meta").shape_enc
    assert len(enc.channels) == 391 and enc.spatial == [1, 3, 5, 7, 9, 11, 14, 16]
    assert GHN.from_config(GhnConfig(max_shape=(64, 64, 16, 16), num_classes=10, hid=32, layers=1, heads=8),
                           device="meta").shape_enc.spatial == [1, 3, 5, 7, 9, 11, 13, 14, 15, 16]
    ch = enc.channels
    assert ch[enc.channel_index(5)] == 8 and ch[enc.channel_index(2)] == 1  # 4..7 -> 8; tie -> smaller
    assert enc.channel_index(0) == enc.channel_index(9000) == len(ch) - 1
    assert ch[enc.channel_index(100)] == 96 and ch[enc.channel_index(1000)] == 1000
    sp = enc.spatial
    assert sp[enc.spatial_index(2)] == 3 and sp[enc.spatial_index(4)] == 3 and sp[enc.spatial_index(13)] == 14
    assert sp[enc.spatial_index(15)] == 14 and enc.spatial_index(17) == len(sp) - 1


# --------------------------------------------------------------------------------------------------
# The economical decoder against the official algorithm, on shapes the goldens do not cover

class OddShapes(nn.Module):
    """Kernels larger than S, 1xk / kx1 kernels, depthwise, one output channel, channels % 3 == 0."""

    def __init__(self, num_classes: int = 7) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 5, 13, padding=6)
        self.bn = nn.BatchNorm2d(5)
        self.row = nn.Conv2d(5, 96, (1, 7), padding=(0, 3))
        self.col = nn.Conv2d(96, 96, (7, 1), padding=(3, 0), groups=96, bias=False)
        self.one = nn.Conv2d(96, 1, 3, padding=1)
        self.up = nn.Conv2d(1, 130, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.ln = nn.LayerNorm(130)
        self.fc = nn.Linear(130, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        x = self.pool(self.up(self.one(self.col(self.row(x))))).flatten(1)
        return self.fc(self.ln(x))


CONFIGS = {
    "ghn3-s16": GhnConfig(max_shape=(32, 32, 16, 16), num_classes=1000, hid=32, layers=2, heads=8),
    "ghn3-s11": GhnConfig(max_shape=(24, 24, 11, 11), num_classes=10, hid=16, layers=1, heads=4),
    "ghn2-s11": GhnConfig(max_shape=(32, 32, 11, 11), num_classes=1000, hid=32, layers=0, heads=8, is_ghn2=True),
}


@functools.cache
def _random_ghn(name: str) -> GHN:
    torch.manual_seed(0)
    return GHN.from_config(CONFIGS[name]).eval()


def _model(arch: str) -> nn.Module:
    torch.manual_seed(0)
    return OddShapes() if arch == "odd" else getattr(torchvision.models, arch)()


def _max_rel_diff(a: nn.Module, b: nn.Module) -> float:
    return max(float(((p - q).abs().max() / q.abs().max().clamp_min(1e-12)).detach())
               for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("arch", ["odd", "resnet18", "vit_b_16", "squeezenet1_0", "mobilenet_v3_small"])
@pytest.mark.parametrize("ghn_name", list(CONFIGS))
def test_economical_decoding_equals_the_official_algorithm(ghn_name: str, arch: str) -> None:
    ghn = _random_ghn(ghn_name)
    model = _model(arch)
    graph = build_graph(model)
    reference = copy.deepcopy(model)
    torch.manual_seed(1)
    predict_parameters(ghn, model, graph)
    torch.manual_seed(1)
    reference_predict(ghn, reference, graph)
    # Both compute the same dot products (length 8*hid in the decoder's last layer) in other
    # orders and batch shapes: the bound that holds for any order, relative to each tensor's size.
    assert _max_rel_diff(model, reference) < element_tol(1.0, 8 * ghn.config.hid)


@needs_golden
@pytest.mark.parametrize("ghn_name", ["ghn3-s16", "ghn2-s11"])
def test_several_models_in_one_call_equal_each_alone(ghn_name: str) -> None:
    ghn = _random_ghn(ghn_name)
    archs = ["squeezenet1_0", "resnet18", "mobilenet_v3_small"]  # small graph first: the official offset bug
    alone = []
    for arch in archs:
        torch.manual_seed(5)
        alone.append(predict_parameters(ghn, _model(arch), golden_graph(arch, 1000)))
    torch.manual_seed(5)
    together = predict_parameters(ghn, [_model(a) for a in archs], [golden_graph(a, 1000) for a in archs])
    reduction = 8 * ghn.config.hid  # BLAS may order a batch's dot products differently from one row's
    for a, b in zip(alone, together):
        for p, q in zip(a.parameters(), b.parameters()):
            torch.testing.assert_close(q, p, rtol=4 * EPS32, atol=element_tol(float(p.abs().max()), reduction))


# --------------------------------------------------------------------------------------------------
# Options and reports

@needs_golden
def test_group_keys_of_resnet18_match_the_spec_example() -> None:
    config = GhnConfig(max_shape=(16, 16, 11, 11), num_classes=1000, hid=16, layers=1, heads=8)
    torch.manual_seed(0)
    _, report = predict_parameters(GHN.from_config(config), _model("resnet18"), golden_graph("resnet18", 1000),
                                   return_report=True)
    keys = {p.name: p.group for p in report.predicted}
    assert keys["conv1.weight"] == (16, 4, 7, 7)
    assert {keys[n] for n in keys if ".bn" in n or n.startswith("bn1")} == {(16, 0)}
    assert keys["layer1.0.conv1.weight"] == keys["layer4.1.conv2.weight"] == (16, 16, 3, 3)
    assert keys["layer2.0.downsample.0.weight"] == (16, 16, 1, 1)
    assert keys["fc.weight"] == (16, 16) and keys["fc.bias"] == (16, -1)
    assert set(report.groups) == {str(k) for k in keys.values()}
    assert sum(g["count"] for g in report.groups.values()) == len(report.predicted) == 62


@needs_golden
def test_report_explains_unpredicted_parameters() -> None:
    ghn = _random_ghn("ghn3-s11")
    _, report = predict_parameters(ghn, _model("convnext_tiny"), golden_graph("convnext_tiny", 1000),
                                   return_report=True)
    unpredicted = {p.name: p.reason for p in report.unpredicted}
    assert "features.1.0.layer_scale" in unpredicted and "not in the graph" in unpredicted["features.1.0.layer_scale"]
    assert report.n_predicted_values + sum(torch.Size(p.shape).numel() for p in report.unpredicted) == sum(
        p.numel() for p in _model("convnext_tiny").parameters())
    data = report.to_dict()
    assert data["n_params"] == len(report.params) and set(data["timings"]) == {"graph", "forward", "assign", "total"}


@needs_golden
def test_predict_class_layers_false_keeps_the_classifier() -> None:
    ghn = _random_ghn("ghn3-s11")
    model = _model("resnet18")
    before = model.fc.weight.clone(), model.fc.bias.clone()
    _, report = predict_parameters(ghn, model, golden_graph("resnet18", 1000), predict_class_layers=False,
                                   return_report=True)
    assert torch.equal(model.fc.weight, before[0]) and torch.equal(model.fc.bias, before[1])
    reasons = {p.name: p.reason for p in report.unpredicted}
    assert set(reasons) == {"fc.weight", "fc.bias"} and "predict_class_layers" in reasons["fc.weight"]


@needs_golden
def test_bn_track_running_stats_false_switches_to_batch_statistics() -> None:
    model = predict_parameters(_random_ghn("ghn3-s11"), _model("resnet18"), golden_graph("resnet18", 1000),
                               bn_track_running_stats=False)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not m.track_running_stats and m.training for m in bns)


def test_default_graph_progress_and_ghn_predict_method() -> None:
    ghn = _random_ghn("ghn3-s11")
    events = []
    model = predict_parameters(ghn, _model("resnet18"), on_progress=lambda *e: events.append(e))
    assert {e[0] for e in events} == {"graph", "forward", "assign"}
    assert all(0 <= done <= total for _, done, total in events)
    again = ghn.predict(_model("resnet18"))
    for p, q in zip(model.parameters(), again.parameters()):
        assert torch.equal(p, q)


def test_prediction_leaves_buffers_and_rng_alone() -> None:
    ghn = _random_ghn("ghn3-s11")
    model = _model("resnet18")
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    state = torch.random.get_rng_state()
    predict_parameters(ghn, model)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(v, buffers[k]) for k, v in model.named_buffers())


def test_mismatched_model_and_graph_lists() -> None:
    with pytest.raises(ValueError, match="2 models but 1 graphs"):
        predict_parameters(_random_ghn("ghn3-s11"), [_model("resnet18"), _model("resnet18")], [None])


def test_channel_families_merge_only_into_supersets_and_only_when_cheaper() -> None:
    from ghnctl.ghn.decoding import merge_channel_families

    requests = {(384, 384): 36, (384, 256): 7, (256, 64): 4, (64, 64): 28, (64, 3): 49, (128, 384): 3}
    family = merge_channel_families(requests)
    assert set(family) == set(requests)
    for (out_ch, in_ch), (f_out, f_in) in family.items():
        assert f_out >= out_ch and f_in >= in_ch
    assert family[(384, 384)] == (384, 384) and family[(64, 3)] == (64, 3)  # compute-bound: alone
    assert family[(384, 256)] == (384, 384)  # 7 rows: reading its own weights costs more
    assert family[(256, 64)] == (256, 64)  # few pairs: its own weights are cheap to read
    assert merge_channel_families({(8, 8): 1}) == {(8, 8): (8, 8)}
