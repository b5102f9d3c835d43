"""The golden official-format checkpoints (joblib, torch zip, GHN-2) through the download path.

Each file is served by a local server, pinned to the sha256 and size of ``checkpoints.json``,
pulled, converted once and compared with a direct read of the original. Skipped when the shared
folder is absent (see ``shared_dir`` in conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ghnctl.ghn.checkpoint import read_checkpoint
from ghnctl.hub import Target, lookup, pull, resolve_ghn
from ghnctl.hub.registry import HF_REPO
from test_hub_server import HubServer

GOLDEN = ("ghn3-tiny-c1000", "ghn3-tiny-c10", "ghn2-tiny-c1000")


@pytest.fixture(scope="module")
def golden(shared_dir: Path) -> dict:
    return json.loads((shared_dir / "golden" / "checkpoints.json").read_text())["checkpoints"]


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GHNCTL_CACHE_DIR", str(tmp_path / "cache"))
    with HubServer() as s:
        monkeypatch.setenv("GHNCTL_HUB_URL", s.url)
        yield s


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_checkpoint_pulled_verified_and_converted(
    name: str, golden: dict, shared_dir: Path, server: HubServer
) -> None:
    info = golden[name]
    original = shared_dir / "golden" / info["file"]
    url = server.add(f"/golden/{info['file']}", original.read_bytes(), etag=None)

    cached, downloaded = pull(Target(name=name, url=url, size=info["bytes"], sha256=info["sha256"]))

    assert downloaded and cached.sha256 == info["sha256"] and cached.sha256_source == "registry"
    assert cached.original_format == info["format"].replace("torch", "torch-zip")
    assert cached.params == info["n_ghn_params"]
    config = {k: v for k, v in cached.config.items() if k != "pretrained_layout"}
    assert config == info["config"]

    converted = read_checkpoint(cached.path)
    direct = read_checkpoint(original)
    assert converted.format == "safetensors" and converted.config == direct.config
    assert sorted(converted.state_dict) == sorted(direct.state_dict)  # safetensors sorts its keys
    for key, tensor in direct.state_dict.items():
        assert torch.equal(converted.state_dict[key], tensor), key


def test_golden_joblib_file_as_a_huggingface_download(golden: dict, shared_dir: Path, server: HubServer) -> None:
    """The HuggingFace path end to end: redirect, X-Linked-ETag, registry name, joblib."""
    info = golden["ghn3-tiny-c1000"]
    server.add_hf(HF_REPO, "ghn3tm8.pt", (shared_dir / "golden" / info["file"]).read_bytes())
    path = resolve_ghn("ghn3tm8")
    entry = lookup("ghn3tm8")
    assert entry.path == path and entry.sha256 == info["sha256"] and entry.sha256_source == "server"
    assert read_checkpoint(path).config.pretrained_layout  # top-level Graphormer embeddings in the original
