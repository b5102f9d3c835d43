"""ghnctl.training.configs and resume_config: configs from option values, the merge on resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from ghnctl.errors import UsageError
from ghnctl.training.configs import changed_fields, config_from_fields, resume_fields
from ghnctl.training.data import DataConfig
from ghnctl.training.errors import StateError
from ghnctl.training.finetune import FinetuneConfig, resume_config


def test_config_from_fields_takes_the_values_named_like_its_fields() -> None:
    values = {"epochs": 3, "lr": 0.2, "optimizer": "SGD", "model": "resnet18", "init": "ghn", "source": "cifar10"}
    config = config_from_fields(FinetuneConfig, values, pretrained_init=True)
    assert (config.epochs, config.lr, config.optimizer, config.pretrained_init) == (3, 0.2, "sgd", True)
    assert config.batch_size == FinetuneConfig().batch_size  # absent: the dataclass default
    assert config_from_fields(FinetuneConfig, {"lr": 0.2}, lr=0.3).lr == 0.3  # explicit wins
    assert config_from_fields(DataConfig, values) == DataConfig("cifar10")
    with pytest.raises(TypeError, match="no field"):
        config_from_fields(FinetuneConfig, {}, colour="red")
    with pytest.raises(UsageError, match="--epochs"):
        config_from_fields(FinetuneConfig, {"epochs": 0})


def test_resume_fields_keep_saved_values_and_refuse_changes() -> None:
    saved = FinetuneConfig(epochs=3, lr=0.05, device="cpu").to_dict()
    merged = resume_fields(FinetuneConfig, saved, {"workers": 2, "device": "cuda", "epochs": 3, "optimizer": "SGD"},
                           FinetuneConfig.RESUME_FREE)
    assert (merged.workers, merged.device, merged.epochs, merged.lr) == (2, "cuda", 3, 0.05)
    assert changed_fields(FinetuneConfig.from_dict(saved), merged, FinetuneConfig.RESUME_FREE) == []
    with pytest.raises(UsageError) as info:
        resume_fields(FinetuneConfig, saved, {"lr": 0.5}, FinetuneConfig.RESUME_FREE)
    assert "--lr 0.5 differs from the checkpoint's 0.05" in info.value.message and info.value.exit_code == 2


def _saved(**meta) -> dict:
    return {
        "config": FinetuneConfig(epochs=2, batch_size=8, lr=0.05, pretrained_init=True).to_dict(),
        "data_config": DataConfig("/data/tree", val_fraction=0.2).to_dict(),
        "meta": {"model": "resnet18", "init": {"kind": "ghn"}, **meta},
    }


def test_resume_config_merges_saved_and_given_settings() -> None:
    run = resume_config(_saved(), {"source": "/moved/tree", "data_dir": "/tmp/d", "device": "cpu", "out": "w.st",
                                   "json_out": True, "batch_size": 8, "model": "resnet18"})
    assert run.model == "resnet18" and run.meta["init"] == {"kind": "ghn"}
    assert run.data.source == "/moved/tree" and run.data.data_dir == Path("/tmp/d") and run.data.val_fraction == 0.2
    assert run.config.device == "cpu" and run.config.lr == 0.05 and run.config.pretrained_init


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"noise": 0.0}, "--noise has no effect with --resume"),
        ({"init": "random"}, "--init has no effect with --resume"),
        ({"model": "resnet50"}, "MODEL 'resnet50' differs from the checkpoint's 'resnet18'"),
        ({"val_fraction": 0.3}, "--val-fraction 0.3 differs from the checkpoint's 0.2"),
        ({"epochs": 5}, "--epochs 5 differs from the checkpoint's 2"),
    ],
)
def test_resume_config_refuses_what_would_change_the_run(overrides, message) -> None:
    with pytest.raises(UsageError, match=message):
        resume_config(_saved(), overrides)


def test_resume_config_needs_the_model_spec() -> None:
    saved = _saved()
    del saved["meta"]["model"]
    with pytest.raises(StateError, match="does not name its model"):
        resume_config(saved, {})
