"""ghnctl.training.evaluate: loss and accuracy by hand, unreadable images, BN batch statistics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ghnctl.errors import UsageError
from ghnctl.training.evaluate import evaluate
from ghnctl.training.loaders import Batch
from ghnctl.training.transforms import Normalizer


def _identity_model() -> nn.Module:
    """Logits = inputs: the accuracy and the loss can be worked out by hand."""
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    return model


def _ce(logits: list[float], target: int) -> float:
    return -(logits[target] - math.log(sum(math.exp(v) for v in logits)))


def test_accuracy_and_loss_match_the_hand_computation() -> None:
    xs = [[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.5, 0.0], [0.0, 2.0]]
    ys = [0, 1, 1, 1, 1]  # the 3rd and 4th are wrong: 3 of 5 correct
    loader = [(torch.tensor(xs[:3]), torch.tensor(ys[:3])), (torch.tensor(xs[3:]), torch.tensor(ys[3:]))]
    model = _identity_model().train()
    result = evaluate(model, loader)
    assert result.accuracy == pytest.approx(60.0) and result.images == 5 and result.bad == ()
    expected_loss = sum(_ce(x, y) for x, y in zip(xs, ys)) / 5
    assert result.loss == pytest.approx(expected_loss, rel=1e-6)
    assert model.training  # the mode is restored


def test_unreadable_images_are_reported_and_not_counted() -> None:
    mean, std = (0.5, 0.5), (0.25, 0.25)
    images = torch.tensor([[[[255]], [[0]]], [[[0]], [[255]]]], dtype=torch.uint8)  # 2 images, 2 "channels"
    loader = [
        Batch(images, torch.tensor([0, 0]), (("a.jpg", "broken"),)),
        Batch(None, None, (("b.png", "empty"),)),
    ]
    model = nn.Sequential(nn.Flatten(), _identity_model())
    result = evaluate(model, loader, normalizer=Normalizer(mean, std))
    # Normalised logits: (2, -2) -> class 0 (right), (-2, 2) -> class 1 (wrong).
    assert result.images == 2 and result.accuracy == pytest.approx(50.0)
    assert result.loss == pytest.approx((_ce([2.0, -2.0], 0) + _ce([-2.0, 2.0], 0)) / 2, rel=1e-6)
    assert result.bad == (("a.jpg", "broken"), ("b.png", "empty"))
    ticks: list[int] = []
    evaluate(model, loader, normalizer=Normalizer(mean, std), on_batch=ticks.append)
    assert ticks == [1, 2]  # an empty batch still advances a progress bar
    empty = evaluate(model, [Batch(None, None, (("c", "x"),))])
    assert empty.loss is None and empty.accuracy is None and empty.images == 0


def test_batch_statistics_option_leaves_running_stats_alone() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm1d(2), _identity_model()).eval()
    bn = model[0]
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([10.0, 0.0]))  # wrong running statistics: eval mode says class 1
    xs = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    ys = torch.tensor([1, 0, 1, 0])
    plain = evaluate(model, [(xs, ys)])
    batch = evaluate(model, [(xs, ys)], batch_stats=True)
    assert batch.accuracy == 100.0 and plain.accuracy == 50.0
    assert bn.running_mean.tolist() == [10.0, 0.0] and int(bn.num_batches_tracked) == 0
    assert not bn.training and bn.track_running_stats


def test_output_width_is_checked() -> None:
    with pytest.raises(UsageError, match="data has 3 classes"):
        evaluate(_identity_model(), [(torch.zeros(2, 2), torch.zeros(2, dtype=torch.int64))], num_classes=3)


def test_tuple_outputs_and_bad_batches() -> None:
    class TupleNet(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x.sum()

    result = evaluate(TupleNet(), [(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))], device="cpu")
    assert result.accuracy == 100.0
    with pytest.raises(TypeError, match="Batch or an"):
        evaluate(_identity_model(), [torch.zeros(2, 2)])


def test_a_model_without_tensors_needs_a_device() -> None:
    batches = [(torch.tensor([[0.0, 1.0]]), torch.tensor([1]))]
    with pytest.raises(ValueError, match="pass device="):
        evaluate(nn.Identity(), batches)
    assert evaluate(nn.Identity(), batches, device="cpu").accuracy == 100.0
