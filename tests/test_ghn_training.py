"""The differentiable prediction core: predicted tensors carry gradients into the GHN.

Checked three ways: the values equal the inference path's; the gradients equal finite differences
(float64, tiny GHN) and, when ../shared/official is present, the official ``keep_grads=True``
path's; and a few optimiser steps through ``functional_call`` lower the loss of a meta-batch.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.func import functional_call

from _tolerance import EPS32, element_tol
from ghnctl.ghn import GHN, GhnConfig, load_ghn
from ghnctl.graph import GhnGraph, build_graph
from ghnctl.predict import predict_parameters

TINY = GhnConfig(max_shape=(8, 8, 3, 3), num_classes=3, hid=8, layers=1, heads=2)


def _small_net(width: int = 6, classes: int = 3) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes),
    )


def _graphs(nets: list[nn.Module]) -> list[GhnGraph]:
    """Built once per architecture (as a trainer does), from a float32 copy of the net."""
    return [build_graph(copy.deepcopy(net).float(), arch=f"net{i}", image_size=8) for i, net in enumerate(nets)]


def _loss(ghn: GHN, nets: list[nn.Module], x: torch.Tensor, y: torch.Tensor,
          graphs: list[GhnGraph] | None = None) -> torch.Tensor:
    predicted = ghn.predict_tensors(nets, graphs)
    losses = [F.cross_entropy(functional_call(net, tensors, (x,)), y) for net, tensors in zip(nets, predicted)]
    return torch.stack(losses).mean()


def test_tensors_with_gradients_equal_the_inference_path(shared_dir: Path) -> None:
    ghn = load_ghn(shared_dir / "golden" / "ghn3-tiny-c10.pt").requires_grad_(True)
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    reference = torchvision.models.resnet18(num_classes=10)
    predict_parameters(ghn, reference)
    tensors = ghn.predict_tensors([net])[0]
    params = dict(reference.named_parameters())
    assert set(tensors) == set(params)  # resnet18: every parameter has a node
    # Equal up to float32 rounding: with autograd on, oneDNN may pick other matmul/conv kernels (it
    # does on some x86 CPUs), so the bound is per value, for dot products of the GHN's width.
    reduction = 8 * ghn.config.hid
    for name, value in tensors.items():
        assert value.requires_grad, name
        expected = params[name].detach()
        torch.testing.assert_close(value.detach(), expected, rtol=4 * EPS32,
                                   atol=element_tol(float(expected.abs().max()), reduction), msg=name)
    assert not any(torch.equal(p, params[n]) for n, p in net.named_parameters())  # the model is untouched


def test_gradients_equal_finite_differences() -> None:
    torch.manual_seed(0)
    ghn = GHN.from_config(TINY).double().requires_grad_(True)
    nets = [_small_net().double().eval()]
    graphs = _graphs(nets)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1])
    loss = _loss(ghn, nets, x, y, graphs)
    loss.backward()
    generator = torch.Generator().manual_seed(1)
    checked = 0
    for name in ("embed.weight", "gnn.0.ff.net.0.weight", "decoder.fc.0.weight", "decoder.conv.2.weight",
                 "decoder_1d.fc.2.weight", "bias_class.1.bias", "decoder.class_layer_predictor.1.weight"):
        param = dict(ghn.named_parameters())[name]
        for flat in torch.randint(param.numel(), (3,), generator=generator).tolist():
            index = torch.unravel_index(torch.tensor(flat), param.shape)
            eps = 1e-6
            with torch.no_grad():
                param[index] += eps
                up = _loss(ghn, nets, x, y, graphs).item()
                param[index] -= 2 * eps
                down = _loss(ghn, nets, x, y, graphs).item()
                param[index] += eps
            numeric = (up - down) / (2 * eps)
            analytic = param.grad[index].item()
            assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-8), (name, flat)
            checked += analytic != 0.0
    assert checked >= 10  # most sampled coordinates have a real gradient


def test_a_few_steps_lower_the_loss_of_a_meta_batch() -> None:
    torch.manual_seed(0)
    ghn = GHN.from_config(TINY).requires_grad_(True)
    nets = [_small_net(6).eval(), _small_net(8).eval()]  # two architectures, as in a meta-batch
    x = torch.randn(16, 3, 8, 8)
    y = torch.randint(3, (16,))
    graphs = _graphs(nets)
    optimizer = torch.optim.AdamW(ghn.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = _loss(ghn, nets, x, y, graphs)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def _official(shared_dir: Path):  # noqa: ANN202 - the official module's classes
    root = shared_dir / "official"
    if not (root / "ghn3" / "ghn3" / "nn.py").is_file():
        pytest.skip(f"official code not found in {root}")
    pytest.importorskip("joblib", reason="the official code imports joblib")
    pytest.importorskip("networkx", reason="the official code imports networkx")
    pytest.importorskip("huggingface_hub", reason="the official code imports huggingface_hub")
    for sub in ("stubs", "ppuda", "ghn3"):
        if str(root / sub) not in sys.path:
            sys.path.insert(0, str(root / sub))
    try:
        import ghn3
    except ImportError as exc:  # a dependency of the official code this environment lacks
        pytest.skip(f"the official code needs {exc.name}, which is not installed")
    return ghn3


def test_gradients_equal_the_official_keep_grads_path(shared_dir: Path) -> None:
    ghn3 = _official(shared_dir)
    checkpoint = torch.load(shared_dir / "golden" / "ghn3-tiny-c10.pt", map_location="cpu", weights_only=False)
    official = ghn3.GHN3(**checkpoint["config"])
    official.load_state_dict(checkpoint["state_dict"], strict=True)
    official.train()
    ours = load_ghn(shared_dir / "golden" / "ghn3-tiny-c10.pt").requires_grad_(True)

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).eval()
    twin = torchvision.models.resnet18(num_classes=10).eval()
    twin.load_state_dict(net.state_dict())
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([1, 2, 3, 4])

    twin = official(twin, keep_grads=True, reduce_graph=False, bn_track_running_stats=True)
    F.cross_entropy(twin(x), y).backward()
    loss = _loss(ours, [net], x, y)
    loss.backward()

    theirs = dict(official.named_parameters())
    total = torch.sqrt(sum(p.grad.square().sum() for p in theirs.values() if p.grad is not None))
    for name, param in ours.named_parameters():
        expected = theirs[name].grad
        assert expected is not None and param.grad is not None, name
        # Per tensor: float32 rounding relative to the tensor's own gradient, or to the whole
        # gradient for tensors whose gradient is analytically zero (a bias added to every
        # attention logit of a head cancels in the softmax: only rounding noise is left).
        tolerance = 1e-4 * expected.norm() + 1e-6 * total
        assert (param.grad - expected).norm() <= tolerance, name
