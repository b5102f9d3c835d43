"""ghnctl.training.seeding: every RNG captured and restored, through JSON + tensors; derived seeds."""

from __future__ import annotations

import json
import random

import numpy as np
import torch

from ghnctl.training.seeding import RngState, capture_rng, derive_seed, restore_rng, seed_everything


def _draws() -> tuple:
    """One draw from each global RNG a training run uses."""
    return (
        torch.rand(3).tolist(),
        torch.randint(0, 1000, (2,)).tolist(),
        random.random(),
        random.gauss(0, 1),  # leaves a cached Gaussian in Python's state
        np.random.rand(2).tolist(),
        float(np.random.standard_normal()),
    )


def test_restore_gives_the_same_draws_again() -> None:
    seed_everything(11)
    _draws()
    saved = capture_rng()
    first = _draws()
    _draws()
    restore_rng(saved)
    assert _draws() == first


def test_state_survives_json_and_tensors() -> None:
    seed_everything(5)
    random.gauss(0, 1)
    saved = capture_rng()
    expected = _draws()
    data = json.loads(json.dumps(saved.json()))  # what a checkpoint stores
    tensors = {k: v.clone() for k, v in saved.tensors().items()}
    seed_everything(99)  # disturb everything
    restore_rng(RngState.from_parts(tensors, data))
    assert _draws() == expected


def test_seed_everything_repeats_and_differs() -> None:
    seed_everything(3)
    a = _draws()
    seed_everything(3)
    assert _draws() == a
    seed_everything(4)
    assert _draws() != a


def test_capture_does_not_start_cuda() -> None:
    state = capture_rng()
    if not torch.cuda.is_initialized():
        assert state.cuda == () and not torch.cuda.is_initialized()


def test_derived_seeds_are_stable_and_independent() -> None:
    a = derive_seed("ghnctl-epoch", 0, 1)
    assert a == derive_seed("ghnctl-epoch", 0, 1)
    assert 0 <= a < 2**63
    others = {derive_seed("ghnctl-epoch", 0, 2), derive_seed("ghnctl-epoch", 1, 1), derive_seed("ghnctl-shard", 0, 1)}
    assert a not in others and len(others) == 3


def test_eval_subset_is_a_uniform_draw_not_the_first_images() -> None:
    """A stratified validation split is stored class by class: the first 500 of CIFAR-10's 5,000
    are one class. Zero-shot evaluation (train) and bench score on a seeded draw over all of it."""
    from ghnctl.training.seeding import eval_subset

    labels = [i // 500 for i in range(5000)]  # 10 classes, stored in order
    picked = eval_subset(5000, 500, split_seed=0)
    assert len(picked) == len(set(picked)) == 500
    counts = [sum(1 for i in picked if labels[i] == c) for c in range(10)]
    assert min(counts) >= 25 and max(counts) <= 80  # every class, near 50 each
    assert eval_subset(5000, 500, split_seed=0) == picked != eval_subset(5000, 500, split_seed=1)
    whole = eval_subset(300, 500, split_seed=0)
    assert sorted(whole) == list(range(300)) and whole != list(range(300))


def test_evaluation_batches_mix_the_classes() -> None:
    """With BatchNorm batch statistics (how predicted parameters are scored) a batch of one class
    scores near chance: the evaluation order must mix classes in every batch, not only overall."""
    from ghnctl.training.seeding import eval_order, eval_subset

    labels = [i // 500 for i in range(5000)]
    for order in (eval_subset(5000, 1000, split_seed=0), eval_order(5000, split_seed=0)):
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            if len(batch) == 64:
                assert len({labels[i] for i in batch}) >= 6, start  # ~10 classes in 64 random draws
    assert sorted(eval_order(5000, 3)) == list(range(5000)) and eval_order(5000, 3) == eval_order(5000, 3)
