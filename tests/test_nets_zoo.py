"""``deepnets:SPLIT/INDEX`` model specs: through ``resolve_model``, ``ghnctl graph`` and ``ghnctl predict``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ghnctl import nets, zoo
from ghnctl.errors import UnknownModel, UsageError
from ghnctl.ghn import GHN, GhnConfig

# Runs ghnctl as `python -m ghnctl` does, then says whether torch got imported.
WRAPPER = """
import runpy, sys
sys.argv = ["ghnctl", *sys.argv[1:]]
try:
    runpy.run_module("ghnctl", run_name="__main__", alter_sys=True)
finally:
    sys.stderr.write("\\ntorch imported: " + str("torch" in sys.modules) + "\\n")
"""


def test_resolve_model_builds_the_cifar_variant_by_default() -> None:
    spec = zoo.resolve_model("deepnets:test/17", seed=0)
    assert (spec.source, spec.arch, spec.image_size, spec.num_classes) == ("deepnets", "deepnets:test/17", 32, 10)
    assert sum(p.numel() for p in spec.model.parameters()) == nets.get("test", 17).num_params(32)
    again = zoo.resolve_model("deepnets:test/17", seed=0)
    assert all(torch.equal(a, b) for a, b in zip(spec.model.parameters(), again.model.parameters()))


def test_resolve_model_imagenet_variant_and_class_count() -> None:
    spec = zoo.resolve_model("deepnets:train/3", image_size=224)
    assert (spec.image_size, spec.num_classes) == (224, 1000)
    assert spec.model.classifier[-1].out_features == 1000
    spec = zoo.resolve_model("deepnets:predefined/1", num_classes=100)
    assert (spec.image_size, spec.num_classes, spec.model.classifier[-1].out_features) == (32, 100, 100)


def test_resolve_model_refuses_bad_deepnets_specs() -> None:
    with pytest.raises(UnknownModel, match="unknown DeepNets split 'tset'"):
        zoo.resolve_model("deepnets:tset/1")
    with pytest.raises(UsageError, match="32x32 or 224x224"):
        zoo.resolve_model("deepnets:test/1", image_size=64)
    assert zoo.spec_name("deepnets:test/17") == "deepnets_test_17"


def _run(*args: str, cwd: Path) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHNCTL_")}
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)
    return proc.returncode, proc.stderr.strip()


def test_a_bad_split_is_refused_in_one_line_before_torch(tmp_path: Path) -> None:
    code, err = _run("graph", "deepnets:tset/1", cwd=tmp_path)
    lines = err.splitlines()
    assert code == 2 and lines[-1] == "torch imported: False", err
    assert lines[0].startswith("error: unknown DeepNets split 'tset' in 'deepnets:tset/1' (use one of: train 0..999999")
    assert len([line for line in lines if line.strip()]) == 2


def test_graph_command_summarises_and_draws_a_deepnets_net(cli, tmp_path: Path) -> None:
    result = cli("graph", "deepnets:test/17", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["spec"] == "deepnets:test/17" and data["source"] == "deepnets"
    assert data["params"]["not_covered"]["count"] == 0 and data["warnings"] == []
    picture = tmp_path / "net.svg"
    result = cli("graph", "deepnets:test/17", "--out", picture, "--engine", "python")
    assert result.exit_code == 0, result.stderr
    assert picture.read_text().lstrip().startswith("<")


def test_predict_command_writes_every_parameter(cli, tmp_path: Path) -> None:
    torch.manual_seed(0)
    ghn_path = tmp_path / "tiny.safetensors"
    GHN.from_config(GhnConfig(max_shape=(16, 16, 11, 11), num_classes=10, hid=16, layers=1, heads=4)).save(ghn_path)
    out = tmp_path / "net.safetensors"
    result = cli("predict", "deepnets:test/17", "--ghn", ghn_path, "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["models"][0]["n_unpredicted"] == 0
    model = nets.get("test", 17).build(32)
    model.load_state_dict(load_file(out), strict=True)
