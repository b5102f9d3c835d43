"""The registry of known GHNs, URL building, and how ``--ghn SPEC`` is interpreted (no network)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ghnctl.errors import CheckpointError, UsageError
from ghnctl.hub import REGISTRY, get_entry, resolve_ghn
from ghnctl.hub.registry import AUTO_DOWNLOAD, AUTO_PREFERENCE, HF_REVISION, registry_name


def test_registry_has_the_official_ghns_and_the_builtin_one() -> None:
    official = {"ghn3tm8", "ghn3sm8", "ghn3lm8", "ghn3xlm16", "ghn2_cifar10", "ghn2_imagenet"}
    assert set(REGISTRY) == official | {"ghnctl-c10"}
    assert not any(REGISTRY[name].builtin for name in official) and REGISTRY["ghnctl-c10"].builtin
    xl = REGISTRY["ghn3xlm16"]
    assert (xl.arch.hid, xl.arch.layers, xl.arch.heads, xl.arch.max_shape) == (384, 24, 16, (384, 384, 16, 16))
    assert xl.params == 654_365_184 and REGISTRY["ghn3tm8"].params == 6_906_632
    assert REGISTRY["ghn2_cifar10"].arch.num_classes == 10 and REGISTRY["ghn2_cifar10"].arch.is_ghn2
    for entry in REGISTRY.values():
        assert entry.licence == "MIT"
        assert entry.sha256 is None or len(entry.sha256) == 64
        with pytest.raises(dataclasses.FrozenInstanceError):
            entry.name = "x"  # type: ignore[misc]
    assert AUTO_DOWNLOAD == AUTO_PREFERENCE[0] == "ghn3xlm16"


def test_default_urls() -> None:
    assert REGISTRY["ghn3tm8"].url() == (
        f"https://huggingface.co/SamsungSAILMontreal/ghn3/resolve/{HF_REVISION}/ghn3tm8.pt"
    )
    assert REGISTRY["ghn2_imagenet"].url() == (
        "https://raw.githubusercontent.com/facebookresearch/ppuda/main/checkpoints/ghn2_imagenet.pt"
    )


def test_hub_url_overrides_every_entry_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHNCTL_HUB_URL", "http://127.0.0.1:8080/mirror/")
    assert (
        REGISTRY["ghn3xlm16"].url() == "http://127.0.0.1:8080/mirror/SamsungSAILMontreal/ghn3/resolve/main/ghn3xlm16.pt"
    )
    assert REGISTRY["ghn2_cifar10"].url() == (
        "http://127.0.0.1:8080/mirror/facebookresearch/ppuda/resolve/main/checkpoints/ghn2_cifar10.pt"
    )
    monkeypatch.delenv("GHNCTL_HUB_URL")
    assert REGISTRY["ghn3xlm16"].url().startswith("https://huggingface.co/")


def test_names_with_and_without_pt() -> None:
    assert registry_name("ghn3tm8") == registry_name("ghn3tm8.pt") == "ghn3tm8"
    assert registry_name("ghn3tm9") is None
    assert get_entry("ghn2_imagenet.pt").name == "ghn2_imagenet"
    with pytest.raises(UsageError, match="unknown GHN 'ghn3tm9'") as info:
        get_entry("ghn3tm9")
    assert "ghn3tm8" in info.value.hint


# ------------------------------------------------------------------------------------------------
@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Any download attempt fails the test."""
    from ghnctl.hub import store

    def fail(*args, **kwargs):
        raise AssertionError("resolve_ghn tried to download")

    monkeypatch.setattr(store, "fetch", fail)
    monkeypatch.setenv("GHNCTL_CACHE_DIR", str(tmp_path / "cache"))


def test_local_file_is_returned_as_is(no_network, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "mine.pt"
    weights.write_bytes(b"\x80")
    assert resolve_ghn(weights) == weights
    assert resolve_ghn(str(weights)) == weights
    monkeypatch.chdir(tmp_path)
    assert resolve_ghn("mine.pt") == Path("mine.pt")
    # A bare registry name is the registry even if a file of that name exists; ./ means the file.
    (tmp_path / "ghn3tm8.pt").write_bytes(b"\x80")
    assert resolve_ghn("./ghn3tm8.pt") == Path("./ghn3tm8.pt")


def test_missing_file_and_unknown_names(no_network, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_ghn(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_ghn("nope.safetensors")
    with pytest.raises(CheckpointError, match="not a file"):
        resolve_ghn(tmp_path)
    with pytest.raises(UsageError, match="unknown GHN 'ghn3xl'") as info:
        resolve_ghn("ghn3xl")
    assert "ghn3xlm16" in info.value.hint


def test_bad_offline_value_is_a_usage_error(no_network, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHNCTL_OFFLINE", "ture")
    with pytest.raises(UsageError, match="GHNCTL_OFFLINE"):
        resolve_ghn("ghn3tm8")
