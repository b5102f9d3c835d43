"""The cache: layout, what counts as a trusted entry, listing and clearing (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ghnctl.errors import UsageError
from ghnctl.hub import cache, cache_path, clear, list_cached, list_partial, lookup


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GHNCTL_CACHE_DIR", str(tmp_path / "c"))
    return tmp_path / "c"


def fake_entry(name: str, payload: bytes = b"safetensors bytes") -> Path:
    """An entry as a pull leaves it (the file content does not matter to the cache)."""
    directory = cache.entry_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    sha = "ab" * 32
    (directory / f"{sha}.safetensors").write_bytes(payload)
    cache.write_meta(
        name,
        {
            "name": name,
            "file": f"{sha}.safetensors",
            "file_size": len(payload),
            "url": "http://x/y.pt",
            "sha256": sha,
            "sha256_source": "server",
            "size": 123,
            "original_format": "joblib",
            "params": 7,
            "config": {"hid": 32},
            "downloaded_at": "2025-01-01T00:00:00+00:00",
        },
    )
    return directory / f"{sha}.safetensors"


def test_cache_dir_is_read_at_call_time(root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert cache_path() == root
    monkeypatch.setenv("GHNCTL_CACHE_DIR", str(tmp_path / "other"))
    assert cache_path() == tmp_path / "other"
    monkeypatch.delenv("GHNCTL_CACHE_DIR")
    assert cache_path().name == "ghnctl"  # the platform default


def test_layout_and_lookup(root: Path) -> None:
    path = fake_entry("ghn3tm8")
    assert path.parent == root / "ghns" / "ghn3tm8"
    hit = lookup("ghn3tm8")
    assert hit is not None and hit.path == path and hit.params == 7 and hit.sha256_source == "server"
    assert json.loads((path.parent / "meta.json").read_text())["meta_version"] == cache.META_VERSION
    assert [c.name for c in list_cached()] == ["ghn3tm8"]


@pytest.mark.parametrize("damage", ["no-meta", "bad-meta", "no-file", "short-file", "escape"])
def test_incomplete_or_damaged_entries_are_not_trusted(root: Path, damage: str) -> None:
    path = fake_entry("ghn3tm8")
    meta = path.parent / "meta.json"
    if damage == "no-meta":
        meta.unlink()
    elif damage == "bad-meta":
        meta.write_text("{not json")
    elif damage == "no-file":
        path.unlink()
    elif damage == "short-file":
        path.write_bytes(b"short")
    else:  # meta.json pointing outside the entry directory
        data = json.loads(meta.read_text())
        data["file"] = "../../../etc/passwd"
        meta.write_text(json.dumps(data))
    assert lookup("ghn3tm8") is None
    assert list_cached() == []


def test_partial_downloads_are_listed_but_not_cached(root: Path) -> None:
    directory = cache.entry_dir("ghn3sm8")
    directory.mkdir(parents=True)
    (directory / "download-0123.part").write_bytes(b"x" * 10)
    assert lookup("ghn3sm8") is None
    [partial] = list_partial()
    assert (partial.name, partial.size) == ("ghn3sm8", 10)


def test_clear_one_and_all(root: Path) -> None:
    fake_entry("ghn3tm8", b"a" * 100)
    fake_entry("ghn3sm8")
    assert clear("ghn3xlm16").names == []  # not cached: nothing to do
    cleared = clear("ghn3tm8")
    assert cleared.names == ["ghn3tm8"] and cleared.freed_bytes > 100
    assert lookup("ghn3tm8") is None and lookup("ghn3sm8") is not None
    assert clear().names == ["ghn3sm8"]
    assert list_cached() == [] and list_partial() == []
    assert clear().names == []


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", "", ".hidden", "x" * 200])
def test_unsafe_names_are_refused(root: Path, name: str) -> None:
    with pytest.raises(UsageError):
        cache.entry_dir(name)
    with pytest.raises(UsageError):
        clear(name)


def test_empty_cache(root: Path) -> None:
    assert list_cached() == [] and list_partial() == [] and not root.exists()
