"""Loaders: a seeded epoch sampler, the train / eval datasets over an ``ImageSet``, and ``collate``.

* Samples come out as ``uint8`` HWC tensors; ``collate`` stacks them into one NCHW batch and the
  training loop normalises it on its device (``transforms.Normalizer``).
* Augmentation randomness comes from a per-sample seed that ``EpochSampler`` derives from
  ``(seed, epoch, position)``, not from a worker's RNG stream: the images a run sees do not depend
  on the number of workers, and a run resumed in the middle of an epoch sees exactly the images the
  uninterrupted run would have seen.
* Unreadable images are not pre-scanned (that would cost a full decode of the data set): the
  dataset returns a ``BadSample`` marker, ``collate`` drops it and the batch carries its name.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from ghnctl.training.seeding import derive_seed, eval_order
from ghnctl.training.sources import ImageSet

if TYPE_CHECKING:
    from ghnctl.training.data import DataBundle

MAX_DEFAULT_WORKERS = 4


class BadSample:
    """Marker returned instead of a sample whose image could not be read."""

    __slots__ = ("name", "reason")

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (BadSample, (self.name, self.reason))


Sample = tuple[torch.Tensor, int]


def _to_hwc_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img, dtype=np.uint8, copy=True))


def _load(images: ImageSet, i: int) -> Image.Image | BadSample:
    try:
        return images.load(i)
    except Exception as exc:  # any decoder failure: the file is skipped and reported, never fatal
        return BadSample(images.name(i), f"{type(exc).__name__}: {exc}")


class TrainView(Dataset):
    """Indexed by ``(position, sample_seed)`` pairs from ``EpochSampler``."""

    def __init__(self, images: ImageSet, transform: Callable[[Image.Image, random.Random], Image.Image]) -> None:
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> Sample | BadSample:
        i, sample_seed = key
        img = _load(self.images, i)
        if isinstance(img, BadSample):
            return img
        return _to_hwc_tensor(self.transform(img, random.Random(sample_seed))), self.images.target(i)


class EvalView(Dataset):
    def __init__(self, images: ImageSet, transform: Callable[[Image.Image], Image.Image]) -> None:
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Sample | BadSample:
        img = _load(self.images, i)
        if isinstance(img, BadSample):
            return img
        return _to_hwc_tensor(self.transform(img)), self.images.target(i)


class Batch(NamedTuple):
    """``images``: uint8 NCHW (None when every image of the batch was unreadable);
    ``bad``: ``(name, reason)`` of the unreadable ones."""

    images: torch.Tensor | None
    targets: torch.Tensor | None
    bad: tuple[tuple[str, str], ...]


def collate(samples: list[Sample | BadSample]) -> Batch:
    good = [s for s in samples if not isinstance(s, BadSample)]
    bad = tuple((s.name, s.reason) for s in samples if isinstance(s, BadSample))
    if not good:
        return Batch(None, None, bad)
    images = torch.stack([s[0] for s in good]).permute(0, 3, 1, 2)  # one permute per batch, not per image
    targets = torch.tensor([s[1] for s in good], dtype=torch.int64)
    return Batch(images.contiguous(), targets, bad)


def epoch_seed(seed: int, epoch: int) -> int:
    """The generator seed of one epoch's order and augmentations."""
    return derive_seed("ghnctl-epoch", seed, epoch)


class EpochSampler(Sampler):
    """Yields ``(position, sample_seed)`` for one epoch, from ``start`` (for resuming mid-epoch).

    The order and the seeds depend only on ``(seed, epoch)``. When the last batch would hold a
    single image it is dropped (BatchNorm cannot train on one image).
    """

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n = n
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 1
        self.start = 0
        self.n_used = n - 1 if n > 1 and n % batch_size == 1 else n

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_used / self.batch_size)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch = epoch
        self.start = min(start_step * self.batch_size, self.n_used)

    def __len__(self) -> int:
        return self.n_used - self.start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        order = torch.randperm(self.n, generator=g).tolist()
        seeds = torch.randint(0, 1 << 62, (self.n,), generator=g).tolist()
        for pos in range(self.start, self.n_used):
            yield order[pos], seeds[pos]


def default_workers(device: torch.device) -> int:
    """0 on the CPU (the model needs the cores; decoding 32x32 images in-process is cheap),
    up to 4 worker processes when an accelerator does the training."""
    if device.type == "cpu":
        return 0
    return max(0, min(MAX_DEFAULT_WORKERS, (os.cpu_count() or 1) - 1))


def _seed_worker(worker_id: int) -> None:
    # Augmentations use per-sample seeds; this only makes any other library randomness repeatable.
    seed = torch.initial_seed() % (1 << 32)
    random.seed(seed)
    np.random.seed(seed)


def train_loader(
    bundle: DataBundle,
    batch_size: int,
    seed: int,
    workers: int = 0,
    pin_memory: bool = False,
) -> tuple[DataLoader, EpochSampler]:
    """A loader over the training images; call ``sampler.set_epoch(e, start_step)`` before each epoch."""
    sampler = EpochSampler(len(bundle.train), batch_size, seed)
    loader = DataLoader(
        TrainView(bundle.train, bundle.train_transform),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        drop_last=False,
        persistent_workers=workers > 0,
        worker_init_fn=_seed_worker if workers > 0 else None,
        # A private generator: creating an iterator must not draw from the global RNG.
        generator=torch.Generator().manual_seed(seed),
    )
    return loader, sampler


def eval_loader(bundle: DataBundle, batch_size: int, workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """The validation images in a fixed, class-mixed order (``seeding.eval_order``), every time."""
    return DataLoader(
        EvalView(bundle.val, bundle.eval_transform),
        batch_size=batch_size,
        sampler=eval_order(len(bundle.val), bundle.info.split_seed),
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
