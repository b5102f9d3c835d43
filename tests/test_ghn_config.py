"""GhnConfig validation and JSON round-trip; config inference from bare state_dicts (spec section 2)."""

from __future__ import annotations

import pytest

from ghnctl.errors import CheckpointError
from ghnctl.ghn import GHN, GhnConfig, infer_config

BASE = {"max_shape": (64, 64, 11, 11), "num_classes": 1000, "hid": 32, "layers": 2, "heads": 8}


def test_json_round_trip() -> None:
    config = GhnConfig(**BASE, pretrained_layout=True)
    assert GhnConfig.from_json(config.to_json()) == config
    assert config.to_dict()["max_shape"] == [64, 64, 11, 11]
    assert config.max_channels == 64 and config.kind == "ghn3"


@pytest.mark.parametrize(("change", "message"), [
    ({"max_shape": (64, 64, 11)}, "4 positive integers"),
    ({"max_shape": (64, 64, 11, 9)}, "square"),
    ({"max_shape": (64, 0, 11, 11)}, "4 positive integers"),
    ({"hid": 30}, "multiple of 4"),
    ({"hid": 36, "heads": 8}, "divisible by heads"),
    ({"layers": 0}, "at least one Graphormer layer"),
    ({"layers": -1}, "non-negative"),
    ({"num_classes": 0}, "num_classes"),
    ({"heads": True}, "heads"),
    ({"ve": 1}, "ve must be a bool"),
])
def test_invalid_configs_are_refused(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GhnConfig(**{**BASE, **change})


def test_ghn2_may_have_zero_layers() -> None:
    assert GhnConfig(**{**BASE, "layers": 0, "is_ghn2": True}).kind == "ghn2"


def test_from_json_errors() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        GhnConfig.from_json("{")
    with pytest.raises(ValueError, match="unknown GhnConfig field"):
        GhnConfig.from_json('{"bogus": 1}')
    with pytest.raises(ValueError, match="incomplete"):
        GhnConfig.from_json('{"hid": 32}')


def test_from_official_trainer_config() -> None:
    official = {"max_shape": (64, 64, 11, 11), "num_classes": 10, "hypernet": "gatedgnn", "decoder": "conv",
                "weight_norm": True, "ve": True, "layernorm": True, "hid": 32, "layers": 2, "heads": 8,
                "is_ghn2": False}
    config = GhnConfig.from_official(official, is_ghn2=False)
    assert config == GhnConfig(max_shape=(64, 64, 11, 11), num_classes=10, hid=32, layers=2, heads=8)
    with pytest.raises(CheckpointError, match="hypernet"):
        GhnConfig.from_official({**official, "hypernet": "mlp"})
    with pytest.raises(CheckpointError, match="is_ghn2"):
        GhnConfig.from_official(official, is_ghn2=True)
    bare = GhnConfig.from_official({"max_shape": (8, 8, 11, 11), "num_classes": 10, "hid": 8, "heads": 2})
    assert (bare.layers, bare.weight_norm, bare.ve, bare.layernorm) == (3, False, False, False)


@pytest.mark.parametrize("config", [
    GhnConfig(**BASE),
    GhnConfig(max_shape=(64, 64, 16, 16), num_classes=1000, hid=64, layers=3, heads=8),
    GhnConfig(max_shape=(96, 96, 11, 11), num_classes=10, hid=96, layers=1, heads=16),
    GhnConfig(max_shape=(32, 32, 11, 11), num_classes=1000, hid=32, layers=0, heads=8, is_ghn2=True),
])
def test_infer_config_recovers_official_shaped_configs(config: GhnConfig) -> None:
    state_dict = GHN.from_config(config, device="meta").state_dict()
    assert infer_config(state_dict) == config


def test_infer_config_rules_in_detail() -> None:
    state_dict = GHN.from_config(GhnConfig(**{**BASE, "layernorm": False}), device="meta").state_dict()
    inferred = infer_config(state_dict)
    assert not inferred.layernorm and inferred.layers == 2 and inferred.max_shape == (64, 64, 11, 11)
    # top-level embeddings (HuggingFace layout) -> pretrained layout
    moved = {(k[len("gnn.0."):] if "centrality" in k or "input_dist" in k else k): v for k, v in state_dict.items()}
    assert infer_config(moved).pretrained_layout
    # the spatial size comes from the spatial table (9 rows -> 11, else 16), not from num_classes
    assert infer_config(state_dict).max_shape[2] == 11
    # as in the official code, decoder.conv.2.weight overrides a caller's max_shape; a 4-tuple
    # survives only when that key is absent
    assert infer_config(state_dict, max_shape=(64, 64, 7, 7)).max_shape == (64, 64, 11, 11)
    no_decoder = {k: v for k, v in state_dict.items() if k != "decoder.conv.2.weight"}
    assert infer_config(no_decoder, max_shape=(64, 64, 7, 7)).max_shape == (64, 64, 7, 7)


def test_infer_config_refuses_non_ghn_weights() -> None:
    import torch

    with pytest.raises(CheckpointError, match="cannot infer"):
        infer_config({"embed.weight": torch.zeros(15, 30)})
