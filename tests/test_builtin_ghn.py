"""The built-in GHN ``ghnctl-c10``: shipped in the package, listed, used by ``--ghn auto`` with no network.

``auto`` falls back to it only when no official GHN-3 is cached and the hub is out of reach (offline
mode, a name that does not resolve, a refused connection), always saying so; any other download
failure stays an error.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch

from ghnctl.builtin import BUILTIN_C10, builtin_path, card
from ghnctl.errors import CheckpointError
from ghnctl.fit import fit_notes
from ghnctl.ghn import read_checkpoint, save_ghn
from ghnctl.hub import DownloadError, resolve_ghn
from ghnctl.hub.registry import REGISTRY
from ghnctl.io import sha256_file
from test_hub_server import HubServer


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("GHNCTL_CACHE_DIR", str(root))
    return root


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Any connection attempt is recorded and refused."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network used in a test that must not use it")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: connecting is refused


# ------------------------------------------------------------------------------------------------
# The shipped file

def test_registry_card_and_file_agree() -> None:
    entry = REGISTRY[BUILTIN_C10]
    path = builtin_path(BUILTIN_C10)
    info = card(BUILTIN_C10)
    assert entry.builtin and entry.url() == f"builtin:{BUILTIN_C10}"
    assert path.stat().st_size == entry.size == info["size"] <= 10 * 1024 * 1024
    assert sha256_file(path) == entry.sha256 == info["sha256"]
    checkpoint = read_checkpoint(path)
    assert sum(t.numel() for t in checkpoint.state_dict.values()) == entry.params == info["params"]
    config = checkpoint.config
    assert (config.hid, config.layers, config.heads, config.max_shape, config.num_classes) == (
        entry.arch.hid, entry.arch.layers, entry.arch.heads, entry.arch.max_shape, entry.arch.num_classes)
    assert checkpoint.extra["trained_image_size"] == entry.arch.image_size == info["trained_image_size"] == 32
    assert all(bool(t.isfinite().all()) for t in checkpoint.state_dict.values())
    assert info["command"].startswith("ghnctl train ") and "--data" in info["command"]


def test_builtin_name_resolves_without_network(empty_cache, no_network, monkeypatch) -> None:
    monkeypatch.setenv("GHNCTL_HUB_URL", "http://ghnctl-test.invalid")
    assert resolve_ghn(BUILTIN_C10) == builtin_path(BUILTIN_C10)
    assert no_network == []


def test_builtin_ghn_predicts_a_usable_resnet18(empty_cache, no_network) -> None:
    from torchvision.models import resnet18

    from ghnctl import load_ghn, predict_parameters

    ghn = load_ghn(BUILTIN_C10)
    assert ghn.source.name == BUILTIN_C10 and ghn.source.trained_image_size == 32
    model = resnet18(num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    predict_parameters(ghn, model)
    changed = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert len(changed) >= 60  # every conv, BN and the classifier
    assert all(bool(v.isfinite().all()) for v in model.state_dict().values() if v.is_floating_point())
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert logits.shape == (4, 10) and bool(logits.isfinite().all())
    assert no_network == []


# ------------------------------------------------------------------------------------------------
# --ghn auto

def test_auto_falls_back_when_the_hub_refuses_connections(empty_cache, monkeypatch) -> None:
    monkeypatch.setenv("GHNCTL_HUB_URL", f"http://127.0.0.1:{closed_port()}")
    notices: list[str] = []
    assert resolve_ghn("auto", on_notice=notices.append) == builtin_path(BUILTIN_C10)
    [line] = notices
    assert "the GHN hub cannot be reached (" in line and "using the built-in ghnctl-c10" in line
    assert "\n" not in line


def test_auto_does_not_fall_back_when_the_hub_answers_with_an_error(empty_cache, monkeypatch) -> None:
    """A reachable hub that fails (here 404) is a real problem to report, not a reason to switch GHNs."""
    notices: list[str] = []
    with HubServer() as server:
        monkeypatch.setenv("GHNCTL_HUB_URL", server.url)
        with pytest.raises(DownloadError, match="ghn3xlm16"):
            resolve_ghn("auto", on_notice=notices.append)
    assert notices == []


def test_auto_prefers_a_cached_official_ghn_over_the_builtin(empty_cache, monkeypatch) -> None:
    from test_hub_server import make_ghn_bytes

    with HubServer() as server:
        server.add_hf("SamsungSAILMontreal/ghn3", "ghn3tm8.pt", make_ghn_bytes(seed=3))
        monkeypatch.setenv("GHNCTL_HUB_URL", server.url)
        cached = resolve_ghn("ghn3tm8")
    notices: list[str] = []
    assert resolve_ghn("auto", offline=True, on_notice=notices.append) == cached
    assert notices == []


# ------------------------------------------------------------------------------------------------
# What a mismatch means

def test_fit_notes_say_what_a_class_or_size_mismatch_means() -> None:
    assert fit_notes("g", 10, 32, "resnet18", 10, 32) == []
    assert fit_notes("g", 1000, None, "resnet18", 10, 32) != []  # classes differ
    assert fit_notes("g", 10, None, "resnet18", 10, 224) == []  # size unknown: nothing to say
    [more] = fit_notes("g", 10, 32, "resnet18", 1000, 32)
    assert "10-class" in more and "1000 classes" in more and "cyclically repeated to 1000" in more
    [fewer] = fit_notes("g", 1000, 224, "resnet18", 10, 224)
    assert "cut to its first 10 rows" in fewer and "fine-tune" in fewer
    [size] = fit_notes("g", 10, 32, "resnet18", 10, 224)
    assert "32x32" in size and "224x224" in size


def test_predict_warns_about_classes_and_image_size(cli, empty_cache, no_network, tmp_path) -> None:
    out = tmp_path / "r18.safetensors"
    result = cli("predict", "resnet18", "--ghn", BUILTIN_C10, "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    [data] = json.loads(result.stdout)["models"]
    warnings = " ".join(data["warnings"])
    assert "ghnctl-c10 predicts 10-class classifiers and resnet18 has 1000 classes" in warnings
    assert "trained on 32x32 images and resnet18 is set up for 224x224" in warnings
    quiet = cli("predict", "resnet18", "--ghn", BUILTIN_C10, "--num-classes", "10", "--image-size", "32",
                "--out", tmp_path / "r18b.safetensors", "--json")
    assert quiet.exit_code == 0, quiet.stderr
    assert not any("ghnctl-c10" in w for w in json.loads(quiet.stdout)["models"][0]["warnings"])


# ------------------------------------------------------------------------------------------------
# Listing and pull

def test_ghn_list_and_pull_show_it_as_built_in(cli, empty_cache, no_network) -> None:
    listed = cli("ghn", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    [row] = [r for r in json.loads(listed.stdout)["ghns"] if r["name"] == BUILTIN_C10]
    assert row["builtin"] and row["cached"] and Path(row["cached_path"]) == builtin_path(BUILTIN_C10)
    table = cli("ghn", "list")
    assert "built in" in table.stderr
    pulled = cli("pull", BUILTIN_C10)
    assert pulled.exit_code == 0 and "built into ghnctl: nothing to download" in pulled.stderr
    assert no_network == []


# ------------------------------------------------------------------------------------------------
# The image size in ghnctl's GHN files

def test_trained_image_size_round_trips_and_is_validated(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    checkpoint = read_checkpoint(builtin_path(BUILTIN_C10))
    path = save_ghn(tmp_path / "g.safetensors", checkpoint.state_dict, checkpoint.config, trained_image_size=96)
    assert read_checkpoint(path).extra["trained_image_size"] == 96
    plain = save_ghn(tmp_path / "p.safetensors", checkpoint.state_dict, checkpoint.config)
    assert "trained_image_size" not in read_checkpoint(plain).extra
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
    for bad in ("-3", "huge", "1e9", "9" * 40):
        save_file(load_file(path), tmp_path / "bad.safetensors", metadata={**metadata, "trained_image_size": bad})
        with pytest.raises(CheckpointError, match="invalid trained_image_size"):
            read_checkpoint(tmp_path / "bad.safetensors")
