"""Reading GHN checkpoints: formats, inferred configs, ghnctl's own format, broken files."""

from __future__ import annotations

import bz2
import gzip
import json
import pickle
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from ghnctl.errors import CheckpointError, UnsafeCheckpoint
from ghnctl.ghn import GHN, GhnConfig, convert, detect_format, load_ghn, read_checkpoint
from ghnctl.ghn.checkpoint import to_ghnctl_layout, to_official_layout
from test_ghn_golden import GOLDEN, needs_golden

CHECKPOINTS = json.loads((GOLDEN / "checkpoints.json").read_text())["checkpoints"] if GOLDEN.is_dir() else {}


def _config_dict(config: GhnConfig) -> dict:
    data = config.to_dict()
    data.pop("pretrained_layout")
    return data


@needs_golden
@pytest.mark.parametrize("name", ["ghn3-tiny-c1000", "ghn3-tiny-c10", "ghn2-tiny-c1000"])
def test_golden_checkpoints_load_with_the_recorded_config(name: str) -> None:
    info = CHECKPOINTS[name]
    path = GOLDEN / info["file"]
    checkpoint = read_checkpoint(path)
    assert checkpoint.format == {"joblib": "joblib", "torch": "torch-zip"}[info["format"]]
    assert _config_dict(checkpoint.config) == info["config"]
    ghn = load_ghn(path)
    assert ghn.num_parameters() == info["n_ghn_params"]
    assert set(ghn.state_dict()) == set(checkpoint.state_dict)
    for key, value in checkpoint.state_dict.items():
        assert torch.equal(ghn.state_dict()[key], value), key


@needs_golden
def test_hf_ghn3_file_keeps_embeddings_top_level_and_is_moved_under_gnn0() -> None:
    checkpoint = read_checkpoint(GOLDEN / "ghn3-tiny-c1000.pt")
    assert checkpoint.config.pretrained_layout
    assert "gnn.0.centrality_embed_in.weight" in checkpoint.state_dict
    assert not any(k.startswith(("centrality", "input_dist")) for k in checkpoint.state_dict)
    official = to_official_layout(checkpoint.state_dict, checkpoint.config)
    assert "centrality_embed_in.weight" in official and "input_dist_embed.weight" in official


@needs_golden
def test_trainer_file_reads_config_and_metadata() -> None:
    checkpoint = read_checkpoint(GOLDEN / "ghn3-tiny-c10.pt")
    assert checkpoint.config.num_classes == 10 and not checkpoint.config.pretrained_layout
    assert checkpoint.extra == {"epoch": 0, "step": 0}


@needs_golden
def test_ghn2_decoder_weights_are_squeezed_to_2d() -> None:
    checkpoint = read_checkpoint(GOLDEN / "ghn2-tiny-c1000.pt")
    assert checkpoint.config.is_ghn2 and checkpoint.config.layers == 0
    assert checkpoint.state_dict["decoder.conv.2.weight"].shape == (64 * 64, 256)
    assert checkpoint.state_dict["decoder.class_layer_predictor.1.weight"].shape == (1000, 64)
    assert "gnn.gru.weight_ih" in checkpoint.state_dict


@needs_golden
def test_safetensors_round_trip_and_convert(tmp_path: Path) -> None:
    out = tmp_path / "ghn.safetensors"
    original = convert(GOLDEN / "ghn3-tiny-c1000.pt", out)
    assert detect_format(out) == "safetensors"
    again = read_checkpoint(out)
    assert again.config == original.config and again.format == "safetensors"
    assert again.state_dict.keys() == original.state_dict.keys()
    assert all(torch.equal(again.state_dict[k], v) for k, v in original.state_dict.items())
    with pytest.raises(Exception, match="already exists"):
        convert(GOLDEN / "ghn3-tiny-c1000.pt", out)
    ghn = load_ghn(out)
    assert ghn.config == original.config


def test_save_ghn_and_load_ghn_for_a_fresh_ghn(tmp_path: Path) -> None:
    config = GhnConfig(max_shape=(16, 16, 11, 11), num_classes=10, hid=16, layers=1, heads=4)
    torch.manual_seed(0)
    ghn = GHN.from_config(config)
    path = ghn.save(tmp_path / "fresh.safetensors")
    loaded = load_ghn(path)
    assert loaded.config == config
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in ghn.state_dict().items())


def test_a_safetensors_file_that_is_not_a_ghn_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a ghnctl GHN"):
        read_checkpoint(path)


# --------------------------------------------------------------------------------------------------
# Files written here with torch itself, in every layout the reader supports

def _tiny_state_dict() -> tuple[dict[str, torch.Tensor], GhnConfig]:
    config = GhnConfig(max_shape=(8, 8, 11, 11), num_classes=10, hid=8, layers=1, heads=2)
    torch.manual_seed(0)
    return GHN.from_config(config).state_dict(), config


def test_torch_zip_with_transposed_and_sliced_views(tmp_path: Path) -> None:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    tensors = {"t": base.t(), "s": base[1:, 2:], "d": torch.arange(3, dtype=torch.float64),
               "l": torch.arange(5), "h": torch.ones(2, dtype=torch.float16)}
    path = tmp_path / "views.pt"
    torch.save(tensors, path)
    from ghnctl.ghn.checkpoint import _load_zip

    loaded = _load_zip(path)
    for key, value in tensors.items():
        assert loaded[key].dtype == value.dtype and torch.equal(loaded[key], value), key


def test_legacy_torch_save_file_is_read(tmp_path: Path) -> None:
    state_dict, config = _tiny_state_dict()
    path = tmp_path / "legacy.pt"
    torch.save({"state_dict": state_dict, "config": config.official_kwargs(), "epoch": 3}, path,
               _use_new_zipfile_serialization=False)
    checkpoint = read_checkpoint(path)
    assert checkpoint.format == "torch-legacy" and checkpoint.extra == {"epoch": 3}
    assert checkpoint.config == config
    assert all(torch.equal(checkpoint.state_dict[k], v) for k, v in state_dict.items())


@pytest.mark.parametrize("compress", [None, zlib.compress, gzip.compress, bz2.compress])
def test_joblib_style_pickle_of_tensors_and_parameters(tmp_path: Path, compress) -> None:
    state_dict, config = _tiny_state_dict()
    values = OrderedDict((k, torch.nn.Parameter(v) if i % 2 else v) for i, (k, v) in enumerate(state_dict.items()))
    data = pickle.dumps(values, protocol=4)  # what joblib.dump writes for torch tensors
    path = tmp_path / "joblib.pt"
    path.write_bytes(compress(data) if compress else data)
    checkpoint = read_checkpoint(path)
    assert checkpoint.format == "joblib"
    assert checkpoint.config.hid == 8 and checkpoint.config.layers == 1
    assert all(torch.equal(checkpoint.state_dict[k], v) for k, v in state_dict.items())


def test_trainer_args_namespace_is_read_without_importing_argparse_objects(tmp_path: Path) -> None:
    import argparse

    state_dict, config = _tiny_state_dict()
    path = tmp_path / "trainer.pt"
    torch.save({"state_dict": state_dict, "config": config.official_kwargs(), "epoch": 1, "step": 5,
                "args": argparse.Namespace(lr=0.1, name="x")}, path)
    checkpoint = read_checkpoint(path)
    assert checkpoint.config == config and checkpoint.extra == {"epoch": 1, "step": 5}


def test_config_is_ghn2_must_agree_with_the_weights(tmp_path: Path) -> None:
    state_dict, config = _tiny_state_dict()
    path = tmp_path / "bad.pt"
    torch.save({"state_dict": state_dict, "config": {**config.official_kwargs(), "is_ghn2": True}}, path)
    with pytest.raises(CheckpointError, match="is_ghn2"):
        read_checkpoint(path)


def test_missing_and_misshaped_weights_are_reported(tmp_path: Path) -> None:
    state_dict, config = _tiny_state_dict()
    del state_dict["bias_class.1.bias"]
    path = tmp_path / "missing.pt"
    torch.save({"state_dict": state_dict, "config": config.official_kwargs()}, path)
    with pytest.raises(CheckpointError, match="missing 'bias_class.1.bias'"):
        load_ghn(path)


def test_to_ghnctl_layout_refuses_duplicate_embeddings() -> None:
    state_dict, config = _tiny_state_dict()
    state_dict["centrality_embed_in.weight"] = state_dict["gnn.0.centrality_embed_in.weight"]
    with pytest.raises(CheckpointError, match="twice"):
        to_ghnctl_layout(state_dict, config)


# --------------------------------------------------------------------------------------------------
# Broken files: one-line CheckpointError, never a traceback from pickle or zipfile

def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


@needs_golden
@pytest.mark.parametrize("name", ["ghn3-tiny-c1000.pt", "ghn3-tiny-c10.pt"])
def test_truncated_files_raise_checkpoint_error(tmp_path: Path, name: str) -> None:
    data = (GOLDEN / name).read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 300):
        path = tmp_path / f"cut{cut}.pt"
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as exc:
            read_checkpoint(path)
        assert not isinstance(exc.value, UnsafeCheckpoint)
        _one_line(exc)


@pytest.mark.parametrize("content", [b"", b"hello world, not a checkpoint", bytes(range(256)) * 4,
                                     b"\x80\x04garbage", b"PK\x03\x04broken zip"])
def test_garbage_raises_checkpoint_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as exc:
        read_checkpoint(path)
    _one_line(exc)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_ghn(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="not a file"):
        read_checkpoint(tmp_path)


def test_pickle_of_something_else_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=4))
    with pytest.raises(CheckpointError, match="not a state_dict"):
        read_checkpoint(path)


def _rewritten_zip(tmp_path: Path, edit, compression: int = zipfile.ZIP_STORED) -> Path:
    """torch.save of a small dict, re-zipped with ``edit(name, data)`` applied to every entry."""
    path = tmp_path / "t.pt"
    torch.save({"x": torch.zeros(4)}, path)
    out = tmp_path / "edited.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", compression=compression) as dst:
        for name in src.namelist():
            dst.writestr(name, edit(name, src.read(name)))
    return out


def test_zip_with_a_storage_of_the_wrong_size(tmp_path: Path) -> None:
    out = _rewritten_zip(tmp_path, lambda name, data: data[:-4] if name.endswith("data/0") else data)
    with pytest.raises(CheckpointError, match="expected 16"):
        read_checkpoint(out)


def test_tensor_view_beyond_its_storage_is_refused(tmp_path: Path) -> None:
    data = pickle.dumps({"x": torch.zeros(4)}, protocol=4)
    assert data.count(b"K\x04\x85") == 1  # the size tuple (4,) of the outer reduce
    path = tmp_path / "oob.pt"
    path.write_bytes(data.replace(b"K\x04\x85", b"K\x10\x85"))
    with pytest.raises(CheckpointError, match="reaches element"):
        read_checkpoint(path)


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pt"
    path.write_bytes(zlib.compress(b"\x80\x04" + bytes(200_000_000), 9))
    with pytest.raises(CheckpointError, match="expands too much"):
        read_checkpoint(path)


def test_zip_with_a_compressed_storage_is_refused(tmp_path: Path) -> None:
    out = _rewritten_zip(tmp_path, lambda name, data: data, compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError, match="compressed"):
        read_checkpoint(out)
