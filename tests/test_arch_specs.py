"""Training architecture lists: deepnets:SPLIT expansion and SPEC=W draw weights."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from ghnctl.errors import UsageError
from ghnctl.training.arch_pool import ArchPool
from ghnctl.training.arch_specs import expand_specs, expand_weighted_specs, split_weight
from ghnctl.training.seeding import derive_seed
from ghnctl.training.train_config import TrainConfig


def pool(specs: list[str], weights: list[float] | None, seed: int = 0) -> ArchPool:
    # draw() never builds a model, so the model-building arguments can be placeholders
    return ArchPool(specs, num_classes=10, image_size=32, ghn_config=None, device=torch.device("cpu"),
                    seed=seed, weights=weights)


def test_split_weight_reads_a_trailing_weight_and_defaults_to_one() -> None:
    assert split_weight("resnet18") == ("resnet18", 1.0)
    assert split_weight(" resnet18=250 ") == ("resnet18", 250.0)
    assert split_weight("deepnets:train=0.5") == ("deepnets:train", 0.5)
    assert split_weight("nets/my.py:factory=2") == ("nets/my.py:factory", 2.0)


@pytest.mark.parametrize("entry", ["resnet18=", "resnet18=0", "resnet18=-1", "resnet18=abc", "resnet18=nan",
                                   "resnet18=inf", "=3"])
def test_a_bad_weight_is_a_usage_error_naming_the_entry(entry: str) -> None:
    with pytest.raises(UsageError, match="weight after '='") as info:
        split_weight(entry)
    assert entry in str(info.value)


def test_weights_apply_to_every_net_of_a_split() -> None:
    specs, weights = expand_weighted_specs(["deepnets:train=2", "resnet18=5", "vgg11"], 3)
    assert specs == ["deepnets:train/0", "deepnets:train/1", "deepnets:train/2", "resnet18", "vgg11"]
    assert weights == [2.0, 2.0, 2.0, 5.0, 1.0]


def test_plain_expansion_refuses_weights() -> None:
    assert expand_specs(["deepnets:test"], 2) == ["deepnets:test/0", "deepnets:test/1"]
    with pytest.raises(UsageError, match="only apply to the training architectures"):
        expand_specs(["deepnets:test=3"], 2)


def test_the_config_rejects_a_bad_weight_on_construction() -> None:
    with pytest.raises(UsageError, match="resnet18=x"):
        TrainConfig(archs=("deepnets:train", "resnet18=x"))
    assert TrainConfig(archs=("deepnets:train", "resnet18=10")).archs[1] == "resnet18=10"


def test_unweighted_and_uniform_draws_are_the_plain_seeded_permutation() -> None:
    # Runs made before weights existed must draw what they always drew (a resume depends on it).
    specs = [f"n{i}" for i in range(7)]
    for weights in (None, [3.0] * 7):
        p = pool(specs, weights, seed=4)
        for step in range(5):
            g = torch.Generator().manual_seed(derive_seed("ghnctl-archs", 4, step, 1))
            assert p.draw(3, step, 1) == torch.randperm(7, generator=g)[:3].tolist()


def test_weighted_draws_follow_the_weights_without_repeats_and_are_reproducible() -> None:
    specs, weights = expand_weighted_specs(["deepnets:train", "resnet18=9"], 9)  # resnet18: half the mass
    p = pool(specs, weights)
    counts: Counter[str] = Counter()
    steps = 4000
    for step in range(steps):
        drawn = p.draw(1, step, 0)
        assert drawn == pool(specs, weights).draw(1, step, 0)  # same (seed, step, shard) -> same draw
        counts[specs[drawn[0]]] += 1
    share = counts["resnet18"] / steps
    # binomial(4000, 0.5): std 0.008; 5 std either side
    assert abs(share - 0.5) < 0.04, share
    for step in range(200):
        drawn = p.draw(4, step, 0)
        assert len(set(drawn)) == 4  # a meta-batch never holds the same entry twice
    assert len(p.draw(50, 0, 0)) == len(specs)  # asking for more than the pool gives the whole pool


def test_weights_must_match_the_specs() -> None:
    with pytest.raises(ValueError, match="2 weights for 3 architectures"):
        pool(["a", "b", "c"], [1.0, 2.0])
