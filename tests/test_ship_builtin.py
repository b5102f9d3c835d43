"""tools/ship_builtin.py: the training command written on the built-in GHN's card is one that
`ghnctl train` accepts and that reproduces the run's settings."""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import typer

from ghnctl.cli.app import app
from ghnctl.training.train_config import TrainConfig

TOOL = Path(__file__).resolve().parent.parent / "tools" / "ship_builtin.py"


def _tool():
    spec = importlib.util.spec_from_file_location("ship_builtin", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_card_command_parses_back_to_the_run_settings() -> None:
    config = TrainConfig(archs=("resnet18",), eval_archs="resnet18", eval_n=1, meta_batch=1, batch_size=64,
                         steps=18000, lr=0.001, warmup_steps=100, label_smoothing=0.1, max_channels=64).to_dict()
    data = {"source": "../shared/data/cifar10-train-jpg.tar.gz", "val_fraction": 0.1, "split_seed": 3,
            "image_size": None}
    command = _tool().training_command(config, data, {}, "runs/r18")
    argv = shlex.split(command)
    assert argv[:2] == ["ghnctl", "train"]
    train = typer.main.get_command(app).commands["train"]
    params = train.make_context("train", argv[2:]).params  # raises on an unknown flag or a bad value
    assert str(params["out"]) == "runs/r18" and params["archs"] == "resnet18"
    assert params["split_seed"] == 3 and params["val_fraction"] == 0.1
    for key in ("steps", "lr", "meta_batch", "batch_size", "warmup_steps", "eval_n", "eval_archs",
                "max_channels", "label_smoothing", "hid", "layers", "heads", "seed"):
        assert params[key] == config[key], key
