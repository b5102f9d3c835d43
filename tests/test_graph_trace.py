"""Shape tracing (ShapeTensors) against FakeTensor tracing, its fallbacks, and the graph's notes."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from ghnctl.graph import build_graph
from ghnctl.graph import trace as tracing


def _raw(model: nn.Module, mode: str, size: tuple[int, int, int] = (3, 224, 224)) -> tuple[list, list]:
    raw = tracing.trace(model, size, mode)
    return [(n.name, n.size, n.kernel_size) for n in raw.nodes], raw.edges


@pytest.mark.parametrize("arch", ["swin_t", "vit_b_16", "efficientnet_b0", "mobilenet_v3_small"])
def test_shape_tracing_records_the_fake_tracing_graph(arch: str) -> None:
    # swin_t: a channels-last adaptive_avg_pool2d restrides its output in place (as_strided_);
    # vit_b_16: scaled-dot-product attention must take the CPU kernel, as on real tensors;
    # efficientnet_b0: stochastic depth draws real noise inside the forward pass;
    # mobilenet_v3_small: hardswish / squeeze-excitation Mul nodes.
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, num_classes=10)
    assert _raw(model, "shape") == _raw(model, "fake")


def test_shape_tracing_leaves_model_and_rng_untouched() -> None:
    torch.manual_seed(0)
    model = torchvision.models.efficientnet_b0(num_classes=10)  # train mode: BN stats, stochastic depth
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    build_graph(model, trace_mode="shape")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(type(p) is nn.Parameter for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    assert model.training


def test_second_trace_of_a_model_runs_no_meta_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    model = torchvision.models.resnet18(num_classes=10)
    tracing.trace(model, (3, 224, 224), "shape")

    def refuse(*args: object) -> None:
        raise AssertionError("an op missed the metadata cache")

    monkeypatch.setattr(tracing, "_run_meta", refuse)
    tracing.trace(model, (3, 224, 224), "shape")


class _ValueDependent(nn.Module):
    """A forward pass that branches on a value: shape tracing cannot run it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if y.sum() > -1e30:  # always true, but needs the value
            y = y.relu()
        return self.fc(y.mean((2, 3)))


class _WritesRealTensor(nn.Module):
    """Copies an activation into a tensor it creates: shape tracing refuses to fill a real tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).mean((2, 3))
        buffer = torch.zeros(y.shape[0], 4)
        buffer.copy_(y)
        return self.fc(buffer)


@pytest.mark.parametrize("cls", [_ValueDependent, _WritesRealTensor])
def test_models_shape_tracing_refuses_fall_back_to_the_same_graph(cls: type[nn.Module]) -> None:
    model = cls()
    with pytest.raises((RuntimeError, NotImplementedError)):
        tracing.trace(model, (3, 16, 16), "shape")
    auto = build_graph(model, image_size=16)
    real = build_graph(model, image_size=16, trace_mode="real")
    assert [n.name for n in auto.nodes] == [n.name for n in real.nodes]
    assert torch.equal(auto.dist, real.dist)


def test_vit_official_messages_are_notes_not_warnings() -> None:
    graph = build_graph(torchvision.models.vit_b_16(num_classes=10), "vit_b_16")
    assert graph.warnings == ["not predicted (no graph node): 1 x VisionTransformer.class_token (768 values)"]
    grid, pooling = graph.notes
    assert grid.startswith("encoder.pos_embedding (1, 197, 768) is read by a GHN as a 768-channel 14x14 grid")
    assert "class token" in grid and "setting a 4d size (1, 768, 14, 14) instead of 3d (1, 197, 768)" in grid
    assert pooling.startswith("0 global-average-pooling nodes") and "not affected" in pooling
    assert graph.to_json()["notes"] == graph.notes
    assert build_graph(torchvision.models.resnet18(), "resnet18").notes == []


def test_graph_command_does_not_print_the_notes(cli) -> None:
    result = cli("graph", "vit_b_16")
    assert result.exit_code == 0, result.output
    assert "4d size" not in result.stderr and "n_glob_avg" not in result.stderr
    assert "warning: not predicted (no graph node): 1 x VisionTransformer.class_token" in result.stderr


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "3d", "strided"])
def test_batch_norm_shortcut_matches_the_meta_kernel(training: bool, layout: str) -> None:
    x = torch.empty(2, 8, 5, 5, device="meta")
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "3d":
        x = torch.empty(2, 8, 5, device="meta")
    elif layout == "strided":
        x = x[:, :, ::2]
    stats = [torch.empty(8, device="meta") for _ in range(4)]
    expected = torch.ops.aten.native_batch_norm.default(x, *stats, training, 0.1, 1e-5)
    shortcut = tracing._batch_norm_outputs(x, *stats, training, 0.1, 1e-5)
    if layout == "strided":
        assert shortcut is None
        return
    _, _, described = shortcut
    for (_, size, stride, offset, dtype, _), t in zip(described, expected):
        assert (size, stride, offset, dtype) == (t.shape, t.stride(), t.storage_offset(), t.dtype)
    assert tracing._batch_norm_outputs(x, torch.empty(4, device="meta"), *stats[1:]) is None
