"""ghnctl.training.optim and amp: the schedule's values, the recipe, the clipped (scaled) step, AMP dtypes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ghnctl.training import amp as A
from ghnctl.training import optim as O


def test_warmup_cosine_values_at_warmup_peak_middle_and_end() -> None:
    f = O.warmup_cosine(total_steps=110, warmup_steps=10)
    assert f(0) == pytest.approx(1 / 11)  # never 0: the first step learns
    assert f(4) == pytest.approx(5 / 11)
    assert f(9) == pytest.approx(10 / 11)
    assert f(10) == 1.0  # peak right after the warmup
    assert f(60) == pytest.approx(0.5)  # half-way through the cosine
    assert f(85) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.75)))
    assert f(110) == pytest.approx(0.0, abs=1e-12) and f(500) == pytest.approx(0.0, abs=1e-12)
    assert 0 < f(109) < 1e-3
    assert O.warmup_cosine(10, 0)(0) == 1.0


def test_scheduler_sets_the_learning_rate_per_step() -> None:
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.2)
    sched = O.build_scheduler(opt, total_steps=20, warmup_steps=4)
    lrs = []
    for _ in range(21):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.2 / 5) and lrs[4] == pytest.approx(0.2)
    assert lrs[12] == pytest.approx(0.1) and lrs[20] == pytest.approx(0.0, abs=1e-12)


def test_recipe_defaults() -> None:
    assert O.recipe_lr("sgd", 128, pretrained=False) == pytest.approx(0.1)
    assert O.recipe_lr("sgd", 256, pretrained=True) == pytest.approx(0.05)
    assert O.recipe_lr("adamw", 64, pretrained=False) == 1e-3 and O.recipe_lr("adamw", 64, True) == 2.5e-4
    assert O.recipe_weight_decay("sgd") == 5e-4 and O.recipe_weight_decay("adamw") == 0.05
    assert [O.default_warmup(n) for n in (1, 19, 20, 352, 1000)] == [0, 0, 1, 17, 50]


def test_build_optimizer() -> None:
    net = nn.Linear(3, 2)
    net.bias.requires_grad_(False)
    sgd = O.build_optimizer(net.parameters(), "sgd", lr=0.1, weight_decay=5e-4)
    group = sgd.param_groups[0]
    assert isinstance(sgd, torch.optim.SGD) and group["nesterov"] and group["momentum"] == 0.9
    assert len(group["params"]) == 1  # frozen parameters are left out
    assert not O.build_optimizer(net.parameters(), "sgd", 0.1, 0.0, momentum=0.0).param_groups[0]["nesterov"]
    assert isinstance(O.build_optimizer(net.parameters(), "adamw", 1e-3, 0.05), torch.optim.AdamW)
    with pytest.raises(ValueError, match="unknown optimizer"):
        O.build_optimizer(net.parameters(), "lamb", 1e-3, 0.0)


@pytest.mark.parametrize("scaled", [False, True])
def test_optimizer_step_clips_the_true_gradient_norm(scaled) -> None:
    p = nn.Parameter(torch.zeros(4))
    opt = torch.optim.SGD([p], lr=1.0)
    target = torch.tensor([30.0, -40.0, 0.0, 0.0])  # gradient of the loss below: norm 50
    loss = -(p * target).sum()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0) if scaled else None
    O.optimizer_step(loss, opt, [p], max_norm=5.0, scaler=scaler)
    # One plain SGD step of lr 1 moves p by the clipped gradient: norm 5, direction of target.
    assert p.detach().norm().item() == pytest.approx(5.0, rel=1e-5)
    torch.testing.assert_close(p.detach(), target / 10)


def test_optimizer_step_without_clipping() -> None:
    p = nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=1.0)
    O.optimizer_step(-(p * torch.tensor([30.0, 40.0])).sum(), opt, [p], max_norm=0.0)
    assert p.detach().tolist() == [30.0, 40.0]


def test_amp_dtypes() -> None:
    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
    assert A.resolve_amp_dtype(cpu) is None  # default: off except on CUDA
    assert A.resolve_amp_dtype(cpu, enabled=True) == torch.bfloat16
    assert A.resolve_amp_dtype(cpu, enabled=True, dtype="fp16") == torch.float16
    assert A.resolve_amp_dtype(mps, enabled=True) == torch.float16
    assert A.resolve_amp_dtype(cuda, enabled=False) is None
    assert A.resolve_amp_dtype(cuda, dtype="bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="unknown AMP dtype"):
        A.resolve_amp_dtype(cpu, enabled=True, dtype="fp8")
    assert [A.amp_name(d) for d in (None, torch.bfloat16, torch.float16)] == [None, "bf16", "fp16"]
    assert A.make_grad_scaler(cpu, torch.float16) is not None
    assert A.make_grad_scaler(cpu, torch.bfloat16) is None and A.make_grad_scaler(cpu, None) is None
    with A.autocast(cpu, torch.bfloat16):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with A.autocast(cpu, None):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
