"""Helpers shared by the data / inits / finetune tests (no tests here).

* ``make_tree``: a tiny synthetic ImageFolder tree drawn with PIL (for tests that need no real data);
* ``cifar_subset``: 20 real CIFAR-10 images per class, extracted once per session from
  ``<shared>/data/cifar10-train-jpg.tar.gz`` (skipped with the reason when that file is absent);
* ``tiny_net``: a small conv net (conv, BN, ReLU, dropout, pool, linear) for fast engine tests;
* ``one_thread``: run a test with one torch thread (others share these 2-core machines).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

CLASSES = ("ant", "bee", "cat")
# A model file for CLI tests (``nets.py:tiny``).
TINY_NET_SOURCE = """
from torch import nn


def tiny(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes),
    )
"""
_SUBSET_CACHE: dict[str, Path] = {}


def make_tree(
    root: Path,
    per_class: int = 12,
    classes: tuple[str, ...] = CLASSES,
    splits: tuple[str, ...] = ("train",),
    size: tuple[int, int] = (32, 32),
    seed: int = 0,
) -> Path:
    """``root/<split>/<class>/<i>.png``: class c is a noisy image of a distinct mean colour."""
    rng = np.random.default_rng(seed)
    for split in splits:
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                base = np.zeros((size[1], size[0], 3), np.float32)
                base[..., c % 3] = 160.0
                pixels = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


def tiny_net(num_classes: int = 3, seed: int = 0) -> nn.Module:
    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Dropout(0.2),  # consumes the global RNG: exercises RNG save/restore in resume tests
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )
    torch.set_rng_state(generator_state)
    return net


def extract_cifar_subset(shared: Path, dest: Path, per_class: int = 20) -> Path:
    """The first ``per_class`` images of every class of the shared CIFAR-10 training archive."""
    if "cifar" in _SUBSET_CACHE:
        return _SUBSET_CACHE["cifar"]
    archive = shared / "data" / "cifar10-train-jpg.tar.gz"
    if not archive.is_file():
        pytest.skip(f"shared CIFAR-10 archive not found at {archive}")
    counts: dict[str, int] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:  # streamed: members come class by class
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) != 3 or parts[0] != "train":
                continue
            cls = parts[1]
            if counts.get(cls, 0) >= per_class:
                continue
            out = dest / "train" / cls / parts[2]
            out.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            out.write_bytes(source.read())
            counts[cls] = counts.get(cls, 0) + 1
    assert len(counts) == 10 and all(v == per_class for v in counts.values()), counts
    _SUBSET_CACHE["cifar"] = dest
    return dest


@pytest.fixture(scope="session")
def cifar_subset(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return extract_cifar_subset(shared_dir, tmp_path_factory.mktemp("cifar10-subset"))


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
