"""``ghnctl predict`` and ``ghnctl convert`` end to end, with a small random GHN made by the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ghnctl.ghn import GHN, GhnConfig


@pytest.fixture(scope="module")
def tiny_ghn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GHN-3 with random weights in ghnctl's format (no download, no ../shared needed)."""
    torch.manual_seed(0)
    cfg = GhnConfig(max_shape=(16, 16, 11, 11), num_classes=10, hid=16, layers=1, heads=4)
    path = tmp_path_factory.mktemp("ghn") / "tiny.safetensors"
    GHN.from_config(cfg).save(path)
    return path


def _predict(cli, tmp_path: Path, *args: str):
    return cli("predict", *args)


def test_predict_writes_a_strict_loadable_file_with_metadata(cli, tiny_ghn: Path, tmp_path: Path) -> None:
    out = tmp_path / "r18.safetensors"
    result = cli("predict", "resnet18", "--num-classes", "10", "--ghn", tiny_ghn, "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["models"][0]["n_unpredicted"] == 0
    model = torchvision.models.resnet18(num_classes=10)
    state = load_file(out)
    assert set(state) == set(model.state_dict())
    model.load_state_dict(state, strict=True)
    with safe_open(out, "pt") as f:
        meta = f.metadata()
    for key in ("ghnctl_version", "ghn", "ghn_sha256", "model", "num_classes", "image_size",
                "torch_version", "noise", "timestamp", "seed"):
        assert key in meta, key
    assert meta["num_classes"] == "10" and meta["model"] == "resnet18"
    # predicted, not torchvision's init: BN weights are 2*sigmoid(.) of the decoder, not all ones
    assert not torch.equal(state["bn1.weight"], torch.ones(64))


def test_predict_is_deterministic_and_several_models_match_alone(cli, tiny_ghn: Path, tmp_path: Path) -> None:
    alone = tmp_path / "alone.safetensors"
    assert cli("predict", "mobilenet_v3_small", "-c", "10", "--ghn", tiny_ghn, "-o", alone).exit_code == 0
    outdir = tmp_path / "many"
    res = cli("predict", "resnet18", "mobilenet_v3_small", "-c", "10", "--ghn", tiny_ghn, "--out-dir", outdir)
    assert res.exit_code == 0, res.stderr
    a, b = load_file(alone), load_file(outdir / "mobilenet_v3_small.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (outdir / "resnet18.safetensors").is_file()


NET_WITH_UNPREDICTED_PARAM = """
import torch
from torch import nn


class Scale(nn.Module):  # not a module type the GHN predicts: keeps its own random init
    def __init__(self, n):
        super().__init__()
        self.w = nn.Parameter(torch.randn(n))

    def forward(self, x):
        return x * self.w.view(1, -1, 1, 1)


def net(num_classes=10):
    return nn.Sequential(nn.Conv2d(3, 8, 3), Scale(8), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, num_classes))
"""


def test_seed_fixes_the_tensors_the_ghn_does_not_predict(cli, tiny_ghn: Path, tmp_path: Path) -> None:
    factory = tmp_path / "scalenet.py"
    factory.write_text(NET_WITH_UNPREDICTED_PARAM)
    files = {}
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        files[name] = tmp_path / f"{name}.safetensors"
        res = cli("predict", f"{factory}:net", "--image-size", "32", "--ghn", tiny_ghn,
                  "-o", files[name], "--seed", seed)
        assert res.exit_code == 0, res.stderr
    a, b, c = (load_file(files[k]) for k in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)  # same seed, same file
    assert not torch.equal(a["1.w"], c["1.w"])  # the unpredicted tensor follows the seed
    assert torch.equal(a["0.weight"], c["0.weight"])  # predicted ones do not
    torch.manual_seed(1)
    torch.nn.Conv2d(3, 8, 3)  # the factory builds the conv first, then Scale draws its values
    assert torch.equal(a["1.w"], torch.randn(8))


def test_existing_output_is_refused_without_force(cli, tiny_ghn: Path, tmp_path: Path) -> None:
    out = tmp_path / "r18.safetensors"
    out.write_bytes(b"keep me")
    res = cli("predict", "resnet18", "--ghn", tiny_ghn, "--out", out)
    assert res.exit_code != 0
    assert "already exists" in res.stderr and "--force" in res.stderr
    assert out.read_bytes() == b"keep me"
    assert cli("predict", "resnet18", "--ghn", tiny_ghn, "--out", out, "--force").exit_code == 0
    assert out.read_bytes() != b"keep me"


@pytest.mark.parametrize("content", [None, b"", b"garbage, not a GHN", "truncated", "not-a-ghn", "mismatch"])
def test_bad_ghn_files_give_one_line_and_no_output(cli, tiny_ghn: Path, tmp_path: Path, content) -> None:
    ghn = tmp_path / "bad.safetensors"
    if content == "truncated":
        ghn.write_bytes(tiny_ghn.read_bytes()[: tiny_ghn.stat().st_size // 2])
    elif content == "not-a-ghn":
        save_file({"weight": torch.zeros(3)}, str(ghn))
    elif content == "mismatch":  # the config in the metadata does not fit the tensors
        with safe_open(tiny_ghn, "pt") as f:
            meta = f.metadata()
        cfg = json.loads(meta["ghn_config"])
        meta["ghn_config"] = json.dumps({**cfg, "hid": cfg["hid"] * 2})
        save_file(load_file(tiny_ghn), str(ghn), metadata=meta)
    elif content is not None:
        ghn.write_bytes(content)
    out = tmp_path / "out.safetensors"
    res = cli("predict", "resnet18", "--ghn", ghn, "--out", out)
    assert res.exit_code != 0
    lines = [line for line in res.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists()
    assert not list(tmp_path.glob("*.tmp*")) and not list(tmp_path.glob(".*out*"))


def test_bad_flags(cli, tiny_ghn: Path, tmp_path: Path) -> None:
    res = cli("predict", "resnet18", "mobilenet_v3_small", "--ghn", tiny_ghn, "--out", tmp_path / "x.safetensors")
    assert res.exit_code == 2 and "--out-dir" in res.stderr
    res = cli("predict", "resnet18", "--ghn", tiny_ghn, "--out", tmp_path / "x.pt")
    assert res.exit_code == 2 and ".safetensors" in res.stderr
    res = cli("predict", "resnt18", "--ghn", tiny_ghn, "--out", tmp_path / "x.safetensors")
    assert res.exit_code == 2 and "did you mean" in res.stderr
    res = cli("predict", "resnet18", "--ghn", tiny_ghn, "--device", "tpu", "--out", tmp_path / "x.safetensors")
    assert res.exit_code == 2


def test_stats_reports_every_layer(cli, tiny_ghn: Path, tmp_path: Path) -> None:
    out = tmp_path / "r18.safetensors"
    res = cli("predict", "resnet18", "-c", "10", "--ghn", tiny_ghn, "-o", out, "--stats", "--json")
    assert res.exit_code == 0, res.stderr
    stats = json.loads(res.stdout)["models"][0]["activation_stats"]
    names = [s["name"] for s in stats]
    assert names[0] == "conv1" and names[-1] == "fc"
    assert all(s["std"] > 0 for s in stats)


def test_convert_then_predict_gives_the_same_parameters(cli, shared_dir: Path, tmp_path: Path) -> None:
    official = shared_dir / "golden" / "ghn3-tiny-c1000.pt"
    converted = tmp_path / "tiny.safetensors"
    res = cli("convert", official, converted)
    assert res.exit_code == 0, res.stderr
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    assert cli("predict", "squeezenet1_0", "--ghn", official, "-o", a).exit_code == 0
    assert cli("predict", "squeezenet1_0", "--ghn", converted, "-o", b).exit_code == 0
    sa, sb = load_file(a), load_file(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert cli("convert", official, converted).exit_code != 0  # exists, no --force
