"""Helpers for the ``bench`` tests (no tests here): a tiny data tree, tiny model files, a tiny GHN."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from test_finetune_support import make_tree

# Two small nets a GHN can predict: a conv/BN/linear net and a two-conv one.
NETS_SOURCE = """
from torch import nn


def tiny(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes),
    )


def tiny2(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes),
    )
"""


def write_nets(folder: Path) -> Path:
    path = folder / "nets.py"
    path.write_text(NETS_SOURCE)
    return path


def tiny_ghn(path: Path, num_classes: int = 3) -> Path:
    """A small GHN-3 with seeded random weights, saved in ghnctl's format (mechanics, not quality)."""
    from ghnctl.ghn import GHN, GhnConfig

    state = torch.get_rng_state()
    torch.manual_seed(0)
    ghn = GHN.from_config(GhnConfig(max_shape=(16, 16, 3, 3), num_classes=num_classes, hid=16, layers=1, heads=2))
    torch.set_rng_state(state)
    ghn.save(path)
    return path


def make_bench_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Working directory tmp_path with a 3-class tree (12 images per class), nets.py and a tiny GHN.

    Each test module wraps it in its own ``bench_env`` fixture.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GHNCTL_DATA_DIR", str(tmp_path / "data-dir"))
    return {
        "tree": make_tree(tmp_path / "tree", per_class=12),
        "nets": write_nets(tmp_path),
        "ghn": tiny_ghn(tmp_path / "ghn3c.safetensors"),
    }


def run_cli(*args: object):
    from ghnctl.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args], prog_name="ghnctl")


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]
