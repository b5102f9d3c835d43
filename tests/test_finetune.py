"""ghnctl.training.finetune: config, recipe, loss goes down, exact reproducibility, exact resume, bad data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn

from ghnctl.devices import resolve_device
from ghnctl.errors import UsageError
from ghnctl.inits import InitSpec, apply_init
from ghnctl.training import data as D
from ghnctl.training import events as E
from ghnctl.training import finetune as F
from ghnctl.training.errors import StateError
from ghnctl.training.evaluate import batch_stats_bn
from ghnctl.training.optim import warmup_cosine
from test_finetune_support import cifar_subset, make_tree, one_thread, tiny_net  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("one_thread")


def _curve(history: E.History) -> list[tuple]:
    """Everything in the history that must repeat exactly (not the timings)."""
    return [
        (r.epoch, r.label, r.global_step, r.train_loss, r.train_acc, r.val_loss, r.val_acc, r.lr, r.train_images)
        for r in history.records
    ]


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def tree_data(tmp_path_factory) -> D.DataBundle:
    root = make_tree(tmp_path_factory.mktemp("tree"), per_class=14)
    return D.load_data(D.DataConfig(str(root), val_fraction=0.2))


def _config(**kwargs) -> F.FinetuneConfig:
    base = {"epochs": 2, "batch_size": 8, "lr": 0.05, "device": "cpu", "workers": 0}
    return F.FinetuneConfig(**{**base, **kwargs})


# --------------------------------------------------------------------------------------------
# config and recipe


def test_recipe_defaults() -> None:
    assert F.FinetuneConfig(batch_size=128).lr == pytest.approx(0.1)
    assert F.FinetuneConfig(batch_size=256, pretrained_init=True).lr == pytest.approx(0.05)
    assert F.FinetuneConfig(optimizer="AdamW").lr == pytest.approx(1e-3)
    assert F.FinetuneConfig(optimizer="adamw", pretrained_init=True).lr == pytest.approx(2.5e-4)
    assert F.FinetuneConfig().weight_decay == 5e-4 and F.FinetuneConfig(optimizer="adamw").weight_decay == 0.05
    assert F.FinetuneConfig(lr=0.3).lr == 0.3
    config = F.FinetuneConfig(epochs=3)
    assert F.FinetuneConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    "kwargs, flag",
    [
        ({"epochs": 0}, "--epochs"),
        ({"max_steps": 0}, "--max-steps"),
        ({"batch_size": 1}, "--batch-size"),
        ({"lr": 0.0}, "--lr"),
        ({"lr": float("inf")}, "--lr"),
        ({"weight_decay": -1.0}, "--weight-decay"),
        ({"label_smoothing": 1.0}, "--label-smoothing"),
        ({"optimizer": "lamb"}, "--optimizer"),
        ({"device": "tpu"}, "--device"),
        ({"amp_dtype": "fp8"}, "--amp-dtype"),
        ({"workers": -1}, "--workers"),
        ({"grad_clip": -1.0}, "--grad-clip"),
    ],
)
def test_config_rejects_bad_values(kwargs, flag) -> None:
    with pytest.raises(UsageError) as info:
        F.FinetuneConfig(**kwargs)
    assert flag in str(info.value) and info.value.exit_code == 2


def test_schedule_warms_up_then_decays() -> None:
    f = warmup_cosine(total_steps=100, warmup_steps=5)
    warm = [f(s) for s in range(5)]
    assert warm == sorted(warm) and warm[0] > 0 and f(5) == pytest.approx(1.0)
    decay = [f(s) for s in range(5, 100)]
    assert decay == sorted(decay, reverse=True) and 0 < decay[-1] < 0.01
    assert warmup_cosine(10, 0)(0) == 1.0


def test_unavailable_device_is_a_usage_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(UsageError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"


def test_batch_stats_context_restores_bn_and_leaves_running_stats() -> None:
    net = tiny_net().eval()
    bn = net[1]
    before = (bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked))
    with batch_stats_bn(net, True):
        assert bn.training and not bn.track_running_stats
        net(torch.randn(4, 3, 8, 8))
    assert not bn.training and bn.track_running_stats
    assert torch.equal(bn.running_mean, before[0]) and int(bn.num_batches_tracked) == before[2]


# --------------------------------------------------------------------------------------------
# training


def test_few_steps_on_real_cifar_lower_the_loss(cifar_subset) -> None:  # noqa: F811
    bundle = D.load_data(D.DataConfig(str(cifar_subset), val_fraction=0.2))
    assert bundle.info.n_train == 160 and bundle.num_classes == 10
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)  # ImageNet stem, 32x32 input
    events: list = []
    history = F.finetune(model, bundle, _config(epochs=3, batch_size=32, lr=0.02), on_event=events.append)
    first, *_, last = history.records
    assert first.label == E.NOT_FINE_TUNED and first.train_loss is None and first.val_acc is not None
    losses = [r.train_loss for r in history.records[1:]]
    assert losses[-1] < losses[0], losses
    assert history.total_steps == 15 and history.global_step == 15 and not history.stopped
    kinds = {type(e).__name__ for e in events}
    assert {"RunStarted", "EpochStarted", "StepDone", "Evaluating", "EvalStepDone", "EpochDone"} <= kinds
    # Every evaluation announces its batch count, then reports each batch once, in order.
    for i, event in enumerate(events):
        if isinstance(event, E.Evaluating):
            following = [e.batch for e in events[i + 1 : i + 1 + event.batches]]
            assert following == list(range(1, event.batches + 1))
            assert all(e.epoch == event.epoch for e in events[i + 1 : i + 1 + event.batches])


def test_same_seed_same_curve_other_seed_other_curve(tree_data) -> None:
    a, b, c = tiny_net(), tiny_net(), tiny_net()
    ha = F.finetune(a, tree_data, _config(seed=3))
    hb = F.finetune(b, tree_data, _config(seed=3))
    hc = F.finetune(c, tree_data, _config(seed=4))
    assert _curve(ha) == _curve(hb) and _same_weights(a, b)
    assert _curve(ha) != _curve(hc)
    assert ha.records[2].train_loss < ha.records[1].train_loss


def test_ghn_init_and_random_init_give_different_runs(tree_data) -> None:
    def fake_ghn(model: nn.Module, predict_classifier: bool) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(9)
        return {k: torch.randn(v.shape, generator=g) * 0.3 for k, v in model.named_parameters()}

    random_net, ghn_net = tiny_net(), tiny_net()
    apply_init(ghn_net, InitSpec("ghn"), num_classes=3, predictor=fake_ghn, ghn_num_classes=1000)
    h_random = F.finetune(random_net, tree_data, _config(epochs=1))
    h_ghn = F.finetune(ghn_net, tree_data, _config(epochs=1, bn_batch_stats_epoch0=True))
    assert h_random.records[0].val_loss != h_ghn.records[0].val_loss
    assert _curve(h_random) != _curve(h_ghn)


def test_resume_continues_exactly(tree_data, tmp_path) -> None:
    # max_steps spans 2.x epochs so the stop falls mid-epoch and the run ends with a partial epoch.
    config = _config(epochs=3, max_steps=9)
    full = tiny_net()
    h_full = F.finetune(full, tree_data, config)
    assert h_full.records[-1].partial and h_full.records[-1].label == "3 (partial)"

    state = tmp_path / "run.state"
    steps = []
    stopped = tiny_net()
    h_stop = F.finetune(
        stopped, tree_data, config,
        on_event=lambda e: steps.append(e) if isinstance(e, E.StepDone) else None,
        checkpoint=state, stop=lambda: len(steps) >= 5,
    )
    assert h_stop.stopped and h_stop.global_step == 5 and state.is_file()
    with safe_open(str(state), framework="pt") as f:  # safetensors + JSON: no pickle anywhere
        position = json.loads(f.metadata()["position"])
    assert (position["epoch"], position["step_in_epoch"]) == (2, 1)  # 4 steps per epoch: mid-epoch 2

    torch.manual_seed(1234)  # a different global RNG state: the checkpoint must restore its own
    resumed = tiny_net(seed=99)  # and different weights: they come from the checkpoint
    h_resumed = F.finetune(resumed, tree_data, _config(epochs=3, max_steps=9, workers=1), resume=state)
    assert _curve(h_resumed) == _curve(h_full)
    assert _same_weights(resumed, full)


def test_resume_refuses_other_settings_and_other_files(tree_data, tmp_path) -> None:
    state = tmp_path / "s.state"
    F.finetune(tiny_net(), tree_data, _config(epochs=1), checkpoint=state)
    with pytest.raises(UsageError, match="lr"):
        F.finetune(tiny_net(), tree_data, _config(epochs=1, lr=0.5), resume=state)
    weights = tmp_path / "w.safetensors"
    net = tiny_net()
    history = F.finetune(net, tree_data, _config(epochs=1))
    F.save_weights(weights, net, _config(epochs=1), history, meta={"model": "tiny"})
    with pytest.raises(StateError, match="not a ghnctl training-state checkpoint"):
        F.finetune(tiny_net(), tree_data, _config(epochs=1), resume=weights)
    with pytest.raises(StateError, match="does not exist"):
        F.finetune(tiny_net(), tree_data, _config(epochs=1), resume=tmp_path / "nope")


def test_saved_weights_carry_config_and_history(tree_data, tmp_path) -> None:
    net = tiny_net()
    config = _config(epochs=1)
    history = F.finetune(net, tree_data, config)
    path = F.save_weights(tmp_path / "w.safetensors", net, config, history, meta={"model": "tiny"})
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        assert set(f.keys()) == set(net.state_dict())
    assert meta["format"] == F.WEIGHTS_FORMAT
    assert json.loads(meta["config"])["lr"] == 0.05
    assert json.loads(meta["history"])["records"][0]["label"] == E.NOT_FINE_TUNED
    loaded = tiny_net(seed=7)
    apply_init(loaded, InitSpec.parse(f"file:{path}"), 3)  # the output is a valid --init file:
    assert _same_weights(loaded, net)
    with pytest.raises(Exception, match="exists"):
        F.save_weights(path, net, config, history)


def test_corrupt_images_are_counted_not_fatal(tmp_path) -> None:
    root = make_tree(tmp_path, per_class=6, splits=("train", "val"))
    (root / "train" / "bee" / "bad.jpg").write_bytes(b"\xff\xd8 broken")
    (root / "val" / "cat" / "bad.png").write_bytes(b"")
    bundle = D.load_data(D.DataConfig(str(root)))
    events: list = []
    history = F.finetune(tiny_net(), bundle, _config(epochs=2), on_event=events.append)
    assert sorted(Path(p).name for p in history.bad_images) == ["bad.jpg", "bad.png"]
    reported = [n for e in events if isinstance(e, E.BadImages) for n in e.names]
    assert len(reported) == 2  # each file is reported once, not once per epoch
    assert history.records[1].skipped_images == 2 and history.records[1].train_images == 18


def test_wrong_number_of_outputs_is_a_usage_error(tree_data) -> None:
    with pytest.raises(UsageError, match="data has 3 classes"):
        F.finetune(tiny_net(num_classes=10), tree_data, _config(epochs=1))


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_amp_path_runs_on_cpu(tree_data, dtype) -> None:
    # The CUDA recipe's code path (autocast, GradScaler for fp16), exercised on the CPU.
    history = F.finetune(tiny_net(), tree_data, _config(epochs=1, max_steps=3, amp=True, amp_dtype=dtype))
    assert history.amp == dtype
    assert all(math.isfinite(r.val_loss) for r in history.records)
