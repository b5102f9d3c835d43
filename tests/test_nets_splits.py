"""The DeepNets splits: nets are pure functions of (split, index), and no architecture is in two
splits or twice in an evaluation split."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from ghnctl import nets
from ghnctl.errors import UnknownModel, UsageError
from ghnctl.nets import SPLITS, make_plan, splits
from ghnctl.nets.sample import EVAL_WIDTHS, sample_arch

# sha256 of each net's metadata JSON (generator version 1). A change here means every user's
# split changed: bump GENERATOR_VERSION rather than edit these.
PINNED = {
    ("train", 0): "668f5a3031689442",
    ("train", 1): "23b4b018b8f7baca",
    ("train", 999_999): "5b2a59e9b24b8c6b",
    ("val", 0): "a4fd632098fe3272",
    ("test", 17): "40e43c914b072134",
    ("wide", 3): "cb2dff47f0264a89",
    ("deep", 5): "02c91597984822ae",
    ("dense", 7): "1efbdaddc5e9d851",
    ("bnfree", 9): "97533e182d933d92",
}

DIGEST = """
import hashlib, json, sys
from ghnctl import nets
for spec in sys.argv[1:]:
    split, index = spec.split("/")
    net = nets.get(split, int(index))
    print(hashlib.sha256(json.dumps(net.to_dict(), sort_keys=True).encode()).hexdigest()[:16])
"""


def digest(net: nets.SplitNet) -> str:
    return hashlib.sha256(json.dumps(net.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def test_nets_are_pinned_and_independent_of_request_order() -> None:
    splits.clear_cache()
    backwards = {key: digest(nets.get(*key)) for key in reversed(list(PINNED))}
    assert backwards == PINNED
    splits.clear_cache()
    assert digest(nets.get("test", 17)) == PINNED[("test", 17)]  # alone, after a cleared cache


def test_nets_are_the_same_in_another_process_with_another_hash_seed() -> None:
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    specs = [f"{s}/{i}" for s, i in PINNED if s in ("train", "test", "dense")]
    out = subprocess.run([sys.executable, "-c", DIGEST, *specs], capture_output=True, text=True, env=env,
                         check=True, timeout=120).stdout.split()
    assert out == [PINNED[(s.split("/")[0], int(s.split("/")[1]))] for s in specs]


def test_the_key_space_is_partitioned_between_splits() -> None:
    held_out = {name: info for name, info in SPLITS.items() if info.bucket is not None}
    assert len({info.bucket for info in held_out.values()}) == len(held_out)  # one bucket each
    train = [nets.get("train", i) for i in range(1000)]
    assert not {splits.bucket_of(n.arch.key()) for n in train} & splits.HELD_OUT_BUCKETS
    train_keys = {n.arch.key() for n in train}
    for name, info in held_out.items():
        for i in range(25):
            key = nets.get(name, i).arch.key()
            assert splits.bucket_of(key) == info.bucket, (name, i)
            assert key not in train_keys
    # a held-out net is never accepted by the train split, whatever the seed
    assert not splits._accepts(SPLITS["train"], nets.get("deep", 0).arch.key())


def test_an_evaluation_split_never_holds_an_architecture_twice() -> None:
    # val/81's first accepted candidate is val/31's architecture: the split skips it
    info = SPLITS["val"]
    first = sample_arch(info.rule, splits._stream("val", 0, 81), accept=lambda k: splits._accepts(info, k)).arch
    assert first.key() == nets.get("val", 31).arch.key()
    assert nets.get("val", 81).arch.key() != first.key()
    keys = [nets.get("val", i).arch.key() for i in range(82)]
    assert len(set(keys)) == len(keys)


def test_split_definitions() -> None:
    assert {name: info.size for name, info in SPLITS.items()} == {
        "train": 1_000_000, "val": 500, "test": 500, "wide": 100, "deep": 100, "dense": 100, "bnfree": 100,
        "predefined": 2}
    for i in range(6):
        train = nets.get("train", i)
        assert (train.arch.args.C, train.arch.args.fc_dim) == (32, 256)
        test = nets.get("test", i)
        width = test.arch.args.C
        assert width in EVAL_WIDTHS and test.arch.args.fc_dim == 256
        assert test.num_params(32) >= 2_500_000 or width == EVAL_WIDTHS[-1]
        assert test.params_cifar10 == make_plan(test.arch.with_size(C=32), 32, 10).num_params()
        wide = nets.get("wide", i)
        assert wide.arch_for(32).args.C == 4 * wide.arch.args.C
        assert wide.arch_for(224).args.C == 2 * wide.arch.args.C
        assert nets.get("deep", i).arch.args.n_cells >= 10
        assert nets.get("dense", i).arch.steps >= 2
        assert nets.get("bnfree", i).arch.args.norm == "none"
    assert nets.get("predefined", 0).arch is None  # ResNet-50
    assert nets.get("predefined", 1).arch == nets.VIT_ARCH
    # the released ViT sizes (spec 2.3): ~1.01M parameters for CIFAR-10, ~1.24M for ImageNet
    assert nets.get("predefined", 1).num_params(32) == 1_012_234
    assert nets.get("predefined", 1).num_params(224) == 1_244_392
    assert nets.get("predefined", 0).num_params(224) == 25_557_032  # torchvision's ResNet-50


def test_another_seed_is_another_draw_still_disjoint_from_train() -> None:
    net = nets.get("test", 3, seed=1)
    assert net.spec == "deepnets:test/3@1" and net.arch.key() != nets.get("test", 3).arch.key()
    assert splits.bucket_of(net.arch.key()) == SPLITS["test"].bucket
    assert nets.parse_spec("deepnets:test/3@1") == ("test", 3, 1)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("deepnets:tset/1", "unknown DeepNets split 'tset'"),
        ("deepnets:test/500", "has nets 0..499, not 500"),
        ("deepnets:test", "names no DeepNets net"),
        ("deepnets:test/-1", "must be a number"),
        ("deepnets:test/x", "must be a number"),
        ("deepnets:test/1@z", "seed"),
    ],
)
def test_bad_specs_name_the_valid_splits_and_ranges(spec: str, message: str) -> None:
    with pytest.raises(UnknownModel, match=message) as info:
        nets.parse_spec(spec)
    assert "\n" not in str(info.value)
    if "split" in message or "has nets" in message:
        assert "train 0..999999" in str(info.value) and "bnfree 0..99" in str(info.value)


def test_get_refuses_what_parse_would() -> None:
    with pytest.raises(UnknownModel, match="unknown DeepNets split"):
        nets.get("nope", 0)
    with pytest.raises(UnknownModel, match="0..1, not 2"):
        nets.get("predefined", 2)
    with pytest.raises(UsageError, match="32x32 or 224x224"):
        nets.get("test", 0).num_params(64)


def test_describe_and_metadata() -> None:
    net = nets.get("test", 17)
    line = net.describe()
    assert line.startswith("deepnets:test/17: ") and "params at 32x32" in line and "\n" not in line
    meta = net.to_dict()
    assert meta["generator_version"] == nets.GENERATOR_VERSION
    assert nets.Arch.from_dict(meta["arch"]) == net.arch
    assert set(meta["num_params"]) == {"cifar10", "imagenet"}
    assert "ResNet-50" in nets.get("predefined", 0).describe(224)
