"""Image-classification data for ``finetune`` (and later ``bench`` and ``train``).

``--data`` names one of:

* ``cifar10`` / ``cifar100``: an ImageFolder tree ``<data-dir>/cifar10/{train,test}`` when one is
  there, else torchvision's files in ``<data-dir>`` (downloaded when online);
* a directory: an ImageFolder tree with ``train/`` and optionally ``val/`` or ``test/``
  (``train/<class>/<image>``); a single top-level folder around it is looked through;
* a ``.tar.gz`` / ``.tgz`` / ``.tar`` of such a tree: extracted safely, once, into
  ``<data-dir>/extracted/`` and reused.

Without a ``val/`` or ``test/`` split a stratified, seeded share of ``train`` is held out for
validation (``val_fraction``, ``split_seed``) and the report says so.

Design notes (why it looks like this):

* Samples come out as ``uint8`` HWC tensors; the batch is normalised on the training device
  (``Normalizer``), which moves 4x fewer bytes than float images and keeps the workers light.
* Augmentation randomness is drawn from a per-sample seed that the sampler derives from
  ``(seed, epoch, position)``, not from a worker's RNG stream: the images a run sees do not depend
  on the number of workers, and a run resumed in the middle of an epoch sees exactly the images the
  uninterrupted run would have seen.
* Unreadable images are not pre-scanned (that would cost a full decode of the data set): the
  dataset returns a ``BadSample`` marker, ``collate`` drops it and the batch carries its name, so the
  training loop can count and report each bad file once.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import random
import secrets
import shutil
import sys
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from ghnctl import settings
from ghnctl.errors import GhnctlError, UsageError

# Per-channel statistics of the training images (the values the official GHN code uses for CIFAR).
CIFAR10_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR10_STD = (0.24703233, 0.24348505, 0.26158768)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

NAMED_SETS = ("cifar10", "cifar100")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_COMPLETE_MARKER = ".ghnctl-extracted"
# 32x32 images (CIFAR-like) get the CIFAR transfer recipe; anything else the ImageNet one.
CIFAR_NATIVE_SIZE = 32


class DataError(GhnctlError):
    """The data set is missing, unreadable or inconsistent."""


# --------------------------------------------------------------------------------------------
# configuration and result


@dataclass(frozen=True)
class DataConfig:
    """What to load and how to split it. Validated on construction (UsageError, exit 2).

    ``image_size`` None keeps the recipe's default (32 for 32x32 data, else 224); ``split_seed``
    picks the held-out validation images and the ``n_shots`` subset, and is independent of the
    training seed so that runs with different seeds are scored on the same images.
    """

    source: str
    data_dir: Path | None = None
    val_fraction: float = 0.1
    split_seed: int = 0
    n_shots: int | None = None
    image_size: int | None = None
    augment: bool = True
    download: bool = True

    def __post_init__(self) -> None:
        if not str(self.source).strip():
            raise UsageError("--data is empty", hint="use cifar10, cifar100 or a path to an image folder")
        if not (0.0 < self.val_fraction < 1.0):
            raise UsageError(f"--val-fraction must be between 0 and 1 (exclusive), got {self.val_fraction}")
        if self.n_shots is not None and self.n_shots < 1:
            raise UsageError(f"--n-shots must be at least 1, got {self.n_shots}")
        if self.image_size is not None and self.image_size < 8:
            raise UsageError(f"--image-size must be at least 8, got {self.image_size}")
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser())

    def resolved_data_dir(self) -> Path:
        """``--data-dir``, else ``GHNCTL_DATA_DIR``, else the platform's user data dir (read now)."""
        return self.data_dir if self.data_dir is not None else settings.data_dir()


@dataclass
class DataInfo:
    """What was loaded, for the report and for the metadata of saved files."""

    source: str
    kind: str  # "torchvision", "folder" or "archive"
    root: str
    classes: list[str]
    n_train: int
    n_val: int
    val_source: str  # "test", "val" or "split"
    val_fraction: float | None
    split_seed: int
    n_shots: int | None
    image_size: int
    recipe: str  # "cifar" or "imagenet"
    mean: tuple[float, ...]
    std: tuple[float, ...]
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe_val(self) -> str:
        """One line on where the validation images come from."""
        if self.val_source == "split":
            pct = f"{self.val_fraction * 100:g}%" if self.val_fraction is not None else "a share"
            return (
                f"validation: {self.n_val:,} images held out from train ({pct}, stratified, "
                f"split seed {self.split_seed}); the data has no val/ or test/ split"
            )
        return f"validation: the {self.val_source} split ({self.n_val:,} images)"

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a resumed run to see the same data (paths may move)."""
        return {
            "classes": self.classes,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "val_source": self.val_source,
            "split_seed": self.split_seed,
            "n_shots": self.n_shots,
            "image_size": self.image_size,
            "recipe": self.recipe,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "root": self.root,
            "num_classes": self.num_classes,
            "classes": self.classes,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "val_source": self.val_source,
            "val_fraction": self.val_fraction,
            "split_seed": self.split_seed,
            "n_shots": self.n_shots,
            "image_size": self.image_size,
            "recipe": self.recipe,
            "mean": list(self.mean),
            "std": list(self.std),
            "notes": self.notes,
        }


@dataclass
class DataBundle:
    """Train and validation images with their transforms; build loaders with ``train_loader``."""

    train: ImageSet
    val: ImageSet
    train_transform: Callable[[Image.Image, random.Random], Image.Image]
    eval_transform: Callable[[Image.Image], Image.Image]
    info: DataInfo

    @property
    def num_classes(self) -> int:
        return self.info.num_classes


# --------------------------------------------------------------------------------------------
# images without transforms


class ImageSet:
    """Labelled images, either files (an ImageFolder tree) or a uint8 NHWC array (torchvision CIFAR).

    ``subset`` returns a view (no copy of the images); ``load`` raises on an unreadable file.
    """

    def __init__(
        self,
        items: Sequence[str] | np.ndarray,
        targets: Sequence[int] | np.ndarray,
        classes: Sequence[str],
        indices: np.ndarray | None = None,
    ) -> None:
        self._items = items
        self._targets = np.asarray(targets, dtype=np.int64)
        self.classes = list(classes)
        self._indices = np.arange(len(self._targets)) if indices is None else np.asarray(indices, np.int64)

    def __len__(self) -> int:
        return len(self._indices)

    @property
    def targets(self) -> np.ndarray:
        return self._targets[self._indices]

    def target(self, i: int) -> int:
        return int(self._targets[self._indices[i]])

    def name(self, i: int) -> str:
        j = int(self._indices[i])
        return self._items[j] if isinstance(self._items, list) else f"array[{j}]"

    def load(self, i: int) -> Image.Image:
        j = int(self._indices[i])
        if isinstance(self._items, np.ndarray):
            return Image.fromarray(self._items[j])
        with Image.open(self._items[j]) as img:
            return img.convert("RGB")  # forces the decode, so a broken file fails here

    def subset(self, positions: Sequence[int] | np.ndarray) -> ImageSet:
        return ImageSet(self._items, self._targets, self.classes, self._indices[np.asarray(positions, np.int64)])


# --------------------------------------------------------------------------------------------
# transforms (PIL in, PIL out; a seeded random.Random supplies the randomness)


class CifarTrainTransform:
    """The CIFAR transfer recipe: (resize,) random crop with zero padding, horizontal flip.

    The padding is 4 pixels at 32x32 and scales with ``--image-size``.
    """

    def __init__(self, size: int, augment: bool = True) -> None:
        self.size = size
        self.pad = max(1, round(4 * size / CIFAR_NATIVE_SIZE)) if augment else 0
        self.augment = augment

    def __call__(self, img: Image.Image, rng: random.Random) -> Image.Image:
        s = self.size
        if img.size != (s, s):
            img = img.resize((s, s), Image.Resampling.BILINEAR)
        if not self.augment:
            return img
        top, left = rng.randint(-self.pad, self.pad), rng.randint(-self.pad, self.pad)
        if top or left:
            img = img.crop((left, top, left + s, top + s))  # PIL fills outside the image with zeros
        if rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return img


class CifarEvalTransform:
    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, img: Image.Image) -> Image.Image:
        s = self.size
        return img if img.size == (s, s) else img.resize((s, s), Image.Resampling.BILINEAR)


class ImagenetTrainTransform:
    """Random resized crop (scale 0.08-1, ratio 3/4-4/3) and horizontal flip, for non-32x32 data."""

    def __init__(self, size: int, augment: bool = True) -> None:
        self.size = size
        self.augment = augment
        self._eval = ImagenetEvalTransform(size)

    def __call__(self, img: Image.Image, rng: random.Random) -> Image.Image:
        if not self.augment:
            return self._eval(img)
        w, h = img.size
        box = _random_resized_box(w, h, rng)
        img = img.resize((self.size, self.size), Image.Resampling.BILINEAR, box=box)
        if rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return img


class ImagenetEvalTransform:
    """Resize the short side to size/0.875, then centre crop (the usual ImageNet evaluation)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        short = round(self.size / 0.875)
        scale = short / min(w, h)
        nw, nh = max(self.size, round(w * scale)), max(self.size, round(h * scale))
        left, top = (nw - self.size) / 2, (nh - self.size) / 2
        box = (left / scale, top / scale, (left + self.size) / scale, (top + self.size) / scale)
        return img.resize((self.size, self.size), Image.Resampling.BILINEAR, box=box)


def _random_resized_box(w: int, h: int, rng: random.Random) -> tuple[float, float, float, float]:
    area = w * h
    log_lo, log_hi = math.log(3 / 4), math.log(4 / 3)
    for _ in range(10):
        target = area * rng.uniform(0.08, 1.0)
        ratio = math.exp(rng.uniform(log_lo, log_hi))
        cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
            return (left, top, left + cw, top + ch)
    side = min(w, h)  # fall back to a centre crop, as torchvision does
    return ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)


# --------------------------------------------------------------------------------------------
# datasets, sampler, collate


class BadSample:
    """Marker returned instead of a sample whose image could not be read."""

    __slots__ = ("name", "reason")

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (BadSample, (self.name, self.reason))


def _to_hwc_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img, dtype=np.uint8, copy=True))


class TrainView(Dataset):
    """Indexed by ``(position, sample_seed)`` pairs from ``EpochSampler``."""

    def __init__(self, images: ImageSet, transform: Callable[[Image.Image, random.Random], Image.Image]) -> None:
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int] | BadSample:
        i, sample_seed = key
        try:
            img = self.images.load(i)
        except Exception as exc:  # any decoder failure: skip the file, never crash the run
            return BadSample(self.images.name(i), f"{type(exc).__name__}: {exc}")
        return _to_hwc_tensor(self.transform(img, random.Random(sample_seed))), self.images.target(i)


class EvalView(Dataset):
    def __init__(self, images: ImageSet, transform: Callable[[Image.Image], Image.Image]) -> None:
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int] | BadSample:
        try:
            img = self.images.load(i)
        except Exception as exc:
            return BadSample(self.images.name(i), f"{type(exc).__name__}: {exc}")
        return _to_hwc_tensor(self.transform(img)), self.images.target(i)


class Batch(NamedTuple):
    """``images``: uint8 NCHW (None when every image of the batch was unreadable);
    ``bad``: ``(name, reason)`` of the unreadable ones."""

    images: torch.Tensor | None
    targets: torch.Tensor | None
    bad: tuple[tuple[str, str], ...]


def collate(samples: list[tuple[torch.Tensor, int] | BadSample]) -> Batch:
    good = [s for s in samples if not isinstance(s, BadSample)]
    bad = tuple((s.name, s.reason) for s in samples if isinstance(s, BadSample))
    if not good:
        return Batch(None, None, bad)
    images = torch.stack([s[0] for s in good]).permute(0, 3, 1, 2)  # one permute per batch, not per image
    targets = torch.tensor([s[1] for s in good], dtype=torch.int64)
    return Batch(images.contiguous(), targets, bad)


def epoch_seed(seed: int, epoch: int) -> int:
    """A generator seed for one epoch's order and augmentations (deterministic, well mixed)."""
    digest = hashlib.blake2b(f"ghnctl-epoch:{seed}:{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


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


class Normalizer:
    """uint8 NCHW batch -> normalised float batch, on whatever device the batch is on."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], device: torch.device | str = "cpu") -> None:
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        # (x / 255 - mean) / std folded into one multiply-add.
        self.scale = (1.0 / (255.0 * std_t)).to(device)
        self.shift = (-mean_t / std_t).to(device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, images.float(), self.scale)


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
    return DataLoader(
        EvalView(bundle.val, bundle.eval_transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )


# --------------------------------------------------------------------------------------------
# loading


def load_data(config: DataConfig, on_status: Callable[[str], None] | None = None) -> DataBundle:
    """Find (download, extract) and split the data named by ``config.source``.

    ``on_status`` hears about the slow, one-time steps: a download or an archive extraction.
    """
    status = on_status or (lambda message: None)
    source = str(config.source).strip()
    notes: list[str] = []
    if source.lower() in NAMED_SETS:
        name = source.lower()
        train, val, root, kind, val_source = _load_named(name, config, status, notes)
        mean, std = (CIFAR100_MEAN, CIFAR100_STD) if name == "cifar100" else (CIFAR10_MEAN, CIFAR10_STD)
        native = CIFAR_NATIVE_SIZE
    else:
        path = Path(source).expanduser().resolve()
        if not path.exists():
            raise DataError(
                f"data {source!r} is neither cifar10, cifar100 nor an existing path",
                hint="give cifar10, cifar100, an image folder with train/ or a .tar.gz of one",
            )
        kind = "folder"
        if path.is_file():
            if not source.lower().endswith(ARCHIVE_SUFFIXES):
                raise DataError(f"{source!r} is a file but not a .tar.gz/.tgz/.tar archive")
            path = extract_archive(path, config.resolved_data_dir() / "extracted", status)
            kind = "archive"
        train, val, root, val_source = _load_tree(path, notes)
        native = _native_size(train)
        mean, std = (CIFAR10_MEAN, CIFAR10_STD) if native == CIFAR_NATIVE_SIZE else (IMAGENET_MEAN, IMAGENET_STD)

    recipe = "cifar" if native == CIFAR_NATIVE_SIZE else "imagenet"
    if val is None:
        train, val = stratified_split(train, config.val_fraction, config.split_seed)
        if len(val) == 0:
            raise DataError(
                f"cannot hold out {config.val_fraction:g} of {len(train)} training images for validation",
                hint="add images, raise --val-fraction, or provide a val/ folder",
            )
    if config.n_shots is not None:
        train, short = few_shot(train, config.n_shots, config.split_seed)
        if short:
            notes.append(f"{len(short)} class(es) have fewer than {config.n_shots} images; all of theirs are used")
    if len(train) == 0:
        raise DataError(f"no training images in {root}", hint="the train/ folder has no readable image files")

    size = config.image_size or (CIFAR_NATIVE_SIZE if recipe == "cifar" else 224)
    if recipe == "cifar":
        train_tf: Any = CifarTrainTransform(size, config.augment)
        eval_tf: Any = CifarEvalTransform(size)
    else:
        train_tf, eval_tf = ImagenetTrainTransform(size, config.augment), ImagenetEvalTransform(size)
    info = DataInfo(
        source=source,
        kind=kind,
        root=str(root),
        classes=train.classes,
        n_train=len(train),
        n_val=len(val),
        val_source=val_source,
        val_fraction=config.val_fraction if val_source == "split" else None,
        split_seed=config.split_seed,
        n_shots=config.n_shots,
        image_size=size,
        recipe=recipe,
        mean=mean,
        std=std,
        notes=notes,
    )
    return DataBundle(train=train, val=val, train_transform=train_tf, eval_transform=eval_tf, info=info)


def stratified_split(images: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Hold out ``round(fraction * n_c)`` images of every class c (seeded); return (train, val)."""
    rng = np.random.default_rng(seed)
    targets = images.targets
    train_pos: list[np.ndarray] = []
    val_pos: list[np.ndarray] = []
    for c in range(len(images.classes)):
        members = np.flatnonzero(targets == c)
        if len(members) == 0:
            continue
        members = rng.permutation(members)
        k = round(fraction * len(members))
        # Keep at least one image of each class on both sides.
        k = min(max(k, 1), len(members) - 1) if len(members) >= 2 else 0
        val_pos.append(members[:k])
        train_pos.append(members[k:])
    return (
        images.subset(np.sort(np.concatenate(train_pos)) if train_pos else np.array([], np.int64)),
        images.subset(np.sort(np.concatenate(val_pos)) if val_pos else np.array([], np.int64)),
    )


def few_shot(images: ImageSet, k: int, seed: int) -> tuple[ImageSet, list[str]]:
    """``k`` images per class (seeded); also return the classes that have fewer than ``k``."""
    rng = np.random.default_rng(seed + 1)  # not the split's stream: the two choices stay independent
    targets = images.targets
    keep: list[np.ndarray] = []
    short: list[str] = []
    for c, name in enumerate(images.classes):
        members = np.flatnonzero(targets == c)
        if len(members) < k:
            short.append(name)
        keep.append(rng.permutation(members)[:k])
    picked = np.sort(np.concatenate(keep)) if keep else np.array([], np.int64)
    return images.subset(picked), short


def _native_size(images: ImageSet) -> int | None:
    """Side of the first readable training image when it is square, else None."""
    for i in range(min(len(images), 20)):
        try:
            w, h = images.load(i).size
        except Exception:
            continue
        return w if w == h else None
    return None


# --------------------------------------------------------------------------------------------
# ImageFolder trees


def find_tree_root(path: Path) -> Path | None:
    """``path`` if it holds ``train/``, or its only sub-folder when that one does."""
    if (path / "train").is_dir():
        return path
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subdirs) == 1 and (subdirs[0] / "train").is_dir():
        return subdirs[0]
    return None


def _load_tree(path: Path, notes: list[str]) -> tuple[ImageSet, ImageSet | None, Path, str]:
    root = find_tree_root(path)
    if root is None:
        raise DataError(
            f"{str(path)!r} has no train/ folder",
            hint="expected train/<class>/<image> (and optionally val/ or test/)",
        )
    classes = sorted(
        p.name for p in (root / "train").iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if not classes:
        raise DataError(f"{str(root / 'train')!r} has no class folders", hint="expected train/<class>/<image>")
    train = scan_folder(root / "train", classes)
    empty = [c for i, c in enumerate(classes) if not np.any(train.targets == i)]
    if len(train) == 0:
        raise DataError(f"no image files under {str(root / 'train')!r}", hint=f"extensions: {_ext_list()}")
    if empty:
        notes.append(f"class folder(s) without images: {', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}")
    for split in ("val", "test"):  # val/ first: a test/ split should stay untouched when both exist
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        val_classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        unknown = sorted(set(val_classes) - set(classes))
        if unknown:
            raise DataError(
                f"{split}/ has classes that train/ does not: {', '.join(unknown[:5])}",
                hint="the class folders of train/ and val/ (or test/) must match",
            )
        val = scan_folder(split_dir, classes)
        if len(val) == 0:
            raise DataError(
                f"no image files under {str(split_dir)!r}",
                hint=f"remove the empty {split}/ folder to hold out part of train/ instead",
            )
        return train, val, root, split
    return train, None, root, "split"


def scan_folder(directory: Path, classes: Sequence[str]) -> ImageSet:
    """Image files under ``directory/<class>/`` (recursively, sorted) labelled by class index."""
    paths: list[str] = []
    targets: list[int] = []
    for index, name in enumerate(classes):
        class_dir = directory / name
        if not class_dir.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if filename.startswith(".") or os.path.splitext(filename)[1].lower() not in IMAGE_EXTENSIONS:
                    continue
                paths.append(os.path.join(dirpath, filename))
                targets.append(index)
    return ImageSet(paths, targets, classes)


def _ext_list() -> str:
    return ", ".join(sorted(IMAGE_EXTENSIONS))


# --------------------------------------------------------------------------------------------
# archives


def extract_archive(archive: Path, cache_root: Path, status: Callable[[str], None] | None = None) -> Path:
    """Extract ``archive`` once into ``cache_root/<name>-<key>/`` and return that folder.

    The key changes when the archive's path, size or modification time does, so an edited archive
    is extracted again. Members with absolute paths, ``..``, links or device files are refused before
    anything is written. Extraction goes to a temporary folder renamed into place, so an interrupted
    extraction is never mistaken for a complete one.
    """
    archive = archive.resolve()
    stat = archive.stat()
    key = hashlib.sha1(f"{archive}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = archive.name
    for suffix in ARCHIVE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    dest = cache_root / f"{stem}-{key}"
    if (dest / _COMPLETE_MARKER).is_file():
        return dest
    try:
        cache_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {str(cache_root)!r}: {exc.strerror}", hint="set --data-dir") from exc
    if status is not None:
        status(f"extracting {archive.name} into {dest} (once) ...")
    tmp = cache_root / f".{stem}-{key}.{secrets.token_hex(4)}.tmp"
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                for member in members:
                    _check_member(member, archive)
                tar.extractall(tmp, members=members, filter="data")
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise DataError(f"cannot extract {str(archive)!r}: {exc}", hint="is it a complete .tar.gz?") from exc
        (tmp / _COMPLETE_MARKER).write_text(str(archive) + "\n")
        try:
            os.replace(tmp, dest)
        except OSError:
            # Another process finished the same extraction first (dest exists and is not empty).
            if not (dest / _COMPLETE_MARKER).is_file():
                shutil.rmtree(dest, ignore_errors=True)
                os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    name = member.name
    parts = Path(name).parts
    if name.startswith(("/", "\\")) or os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"refusing {archive.name}: member {name!r} has an absolute path")
    if ".." in parts:
        raise DataError(f"refusing {archive.name}: member {name!r} points outside the archive ('..')")
    if member.issym() or member.islnk():
        raise DataError(f"refusing {archive.name}: member {name!r} is a link")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"refusing {archive.name}: member {name!r} is not a regular file or folder")


# --------------------------------------------------------------------------------------------
# named data sets


def _load_named(
    name: str, config: DataConfig, status: Callable[[str], None], notes: list[str]
) -> tuple[ImageSet, ImageSet | None, Path, str, str]:
    data_dir = config.resolved_data_dir()
    tree = data_dir / name
    if (tree / "train").is_dir():
        train, val, root, val_source = _load_tree(tree, notes)
        return train, val, root, "folder", val_source

    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    pretty = "CIFAR-10" if name == "cifar10" else "CIFAR-100"
    how = (
        f"put torchvision's {pretty} files in {data_dir}, an ImageFolder tree in {tree}/{{train,test}}, "
        f"or pass --data PATH (folder or .tar.gz); --data-dir or GHNCTL_DATA_DIR choose the folder"
    )
    try:
        # torchvision prints progress to stdout; keep stdout clean for --json.
        with contextlib.redirect_stdout(sys.stderr):
            train_ds, test_ds = cls(str(data_dir), train=True), cls(str(data_dir), train=False)
    except RuntimeError:
        if settings.offline() or not config.download:
            reason = "offline mode is on" if settings.offline() else "downloads are disabled"
            raise DataError(f"{pretty} is not in {data_dir} and {reason}", hint=how) from None
        status(f"downloading {pretty} into {data_dir} ...")
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            with contextlib.redirect_stdout(sys.stderr):
                train_ds = cls(str(data_dir), train=True, download=True)
                test_ds = cls(str(data_dir), train=False, download=True)
        except Exception as exc:
            raise DataError(f"downloading {pretty} failed: {type(exc).__name__}: {exc}", hint=how) from exc
    classes = list(train_ds.classes)
    train = ImageSet(train_ds.data, train_ds.targets, classes)
    val = ImageSet(test_ds.data, test_ds.targets, classes)
    return train, val, data_dir, "torchvision", "test"
