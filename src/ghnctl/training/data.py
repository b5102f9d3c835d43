"""Image-classification data for ``finetune`` (and ``bench`` and ``train``): ``load_data(DataConfig)``.

``DataConfig.source`` names one of:

* ``cifar10`` / ``cifar100``: an ImageFolder tree ``<data-dir>/cifar10/{train,test}`` when one is
  there, else torchvision's files in ``<data-dir>`` (downloaded unless offline);
* a directory: an ImageFolder tree with ``train/`` and optionally ``val/`` or ``test/``
  (``train/<class>/<image>``); a single top-level folder around it is looked through;
* a ``.tar.gz`` / ``.tgz`` / ``.tar`` of such a tree: extracted safely, once, into
  ``<data-dir>/extracted/`` and reused (``archive``).

Without a ``val/`` or ``test/`` split a stratified, seeded share of ``train`` is held out for
validation (``val_fraction``, ``split_seed``) and ``DataInfo.describe_val`` says so. Loaders are in
``loaders``, transforms in ``transforms``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ghnctl import settings
from ghnctl.errors import UsageError
from ghnctl.training.archive import extract_archive, is_archive
from ghnctl.training.errors import DataError
from ghnctl.training.sources import NAMED_SETS, ImageSet, OnProgress, load_named, load_tree
from ghnctl.training.transforms import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    CIFAR_NATIVE_SIZE,
    IMAGENET_MEAN,
    IMAGENET_SIZE,
    IMAGENET_STD,
    EvalTransform,
    TrainTransform,
    recipe_transforms,
)

# Probe at most this many images for the data's native size (the first ones may be unreadable).
_SIZE_PROBES = 20


@dataclass(frozen=True)
class DataConfig:
    """What to load and how to split it. Validated on construction (UsageError, exit 2).

    ``image_size`` None keeps the recipe's default (32 for 32x32 data, else 224); ``split_seed``
    picks the held-out validation images and the ``n_shots`` subset, and is independent of the
    training seed so that runs with different seeds are scored on the same images.
    """

    # A resumed run may point at moved files; nothing else may change.
    RESUME_FREE: ClassVar[frozenset[str]] = frozenset({"source", "data_dir"})

    source: str
    data_dir: Path | None = None
    val_fraction: float = 0.1
    split_seed: int = 0
    n_shots: int | None = None
    image_size: int | None = None
    augment: bool = True

    def __post_init__(self) -> None:
        if self.source is None:
            raise UsageError("missing --data", hint="for example --data cifar10, or --resume CKPT to continue a run")
        if not str(self.source).strip():
            raise UsageError("--data is empty", hint="use cifar10, cifar100 or a path to an image folder")
        if not (0.0 < self.val_fraction < 1.0):
            raise UsageError(f"--val-fraction must be between 0 and 1 (exclusive), got {self.val_fraction}")
        if self.n_shots is not None and self.n_shots < 1:
            raise UsageError(f"--n-shots must be at least 1, got {self.n_shots}")
        if self.image_size is not None and self.image_size < 8:
            raise UsageError(f"--image-size must be at least 8, got {self.image_size}")
        object.__setattr__(self, "source", str(self.source).strip())
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser())

    def resolved_data_dir(self) -> Path:
        """``data_dir``, else ``GHNCTL_DATA_DIR``, else the platform's user data dir (read now)."""
        return self.data_dir if self.data_dir is not None else settings.data_dir()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["data_dir"] = str(self.data_dir) if self.data_dir is not None else None
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataConfig:
        return cls(**data)


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
        out = asdict(self)
        out["num_classes"] = self.num_classes
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out


@dataclass
class DataBundle:
    """Train and validation images with their transforms; build loaders with ``loaders``."""

    train: ImageSet
    val: ImageSet
    train_transform: TrainTransform
    eval_transform: EvalTransform
    info: DataInfo
    config: DataConfig

    @property
    def num_classes(self) -> int:
        return self.info.num_classes


def load_data(
    config: DataConfig,
    on_status: Callable[[str], None] | None = None,
    *,
    offline: bool = False,
    on_progress: OnProgress | None = None,
) -> DataBundle:
    """Find (download, extract) and split the data named by ``config.source``.

    ``on_status`` hears about the slow, one-time steps: a download or an archive extraction.
    ``on_progress(phase, done, total)`` hears how far they have got, for a progress bar: an
    archive's ``"read"`` (bytes) and ``"extract"`` (members) phases, then the ``"scan"`` of the
    tree's class folders (``sources.PHASE_*``). Everything after the scan is linear in the number
    of files and takes well under a second for 100,000 of them.
    ``offline`` forbids downloads, as ``GHNCTL_OFFLINE`` does (it can only add to that setting);
    it is not part of the config because it describes this machine, not the data.
    """
    status = on_status or (lambda message: None)
    notes: list[str] = []
    train, val, root, kind, val_source, native, stats = _find(config, offline, status, notes, on_progress)
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

    size = config.image_size or (CIFAR_NATIVE_SIZE if recipe == "cifar" else IMAGENET_SIZE)
    train_tf, eval_tf = recipe_transforms(recipe, size, config.augment)
    info = DataInfo(
        source=config.source,
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
        mean=stats[0],
        std=stats[1],
        notes=notes,
    )
    return DataBundle(train=train, val=val, train_transform=train_tf, eval_transform=eval_tf, info=info,
                      config=config)


def _find(
    config: DataConfig,
    offline: bool,
    status: Callable[[str], None],
    notes: list[str],
    on_progress: OnProgress | None = None,
) -> tuple[ImageSet, ImageSet | None, Path, str, str, int | None, tuple[tuple[float, ...], tuple[float, ...]]]:
    """``(train, val, root, kind, val_source, native size, (mean, std))`` of ``config.source``."""
    source = config.source
    if source.lower() in NAMED_SETS:
        name = source.lower()
        train, val, root, kind, val_source = load_named(
            name, config.resolved_data_dir(), offline, status, notes, on_progress
        )
        stats = (CIFAR100_MEAN, CIFAR100_STD) if name == "cifar100" else (CIFAR10_MEAN, CIFAR10_STD)
        return train, val, root, kind, val_source, CIFAR_NATIVE_SIZE, stats
    path = Path(source).expanduser().resolve()
    if not path.exists():
        raise DataError(
            f"data {source!r} is neither cifar10, cifar100 nor an existing path",
            hint="give cifar10, cifar100, an image folder with train/ or a .tar.gz of one",
        )
    kind = "folder"
    if path.is_file():
        if not is_archive(source):
            raise DataError(f"{source!r} is a file but not a .tar.gz/.tgz/.tar archive")
        path = extract_archive(path, config.resolved_data_dir() / "extracted", status, on_progress=on_progress)
        kind = "archive"
    train, val, root, val_source = load_tree(path, notes, on_progress)
    native = native_size(train)
    stats = (CIFAR10_MEAN, CIFAR10_STD) if native == CIFAR_NATIVE_SIZE else (IMAGENET_MEAN, IMAGENET_STD)
    return train, val, root, kind, val_source, native, stats


def stratified_split(images: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Hold out ``round(fraction * n_c)`` images of every class c (seeded); return (train, val)."""
    rng = np.random.default_rng(seed)
    train_pos: list[np.ndarray] = []
    val_pos: list[np.ndarray] = []
    for members in class_positions(images):
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


def class_positions(images: ImageSet) -> list[np.ndarray]:
    """The positions of every class's images, in ascending order, one array per class index.

    Each array equals ``np.flatnonzero(images.targets == c)``, which the split and the few-shot
    choice used to compute class by class: a pass over all files per class, so files x classes
    work (100,000 files in 10,000 classes: 10^9 comparisons each). A stable sort by class keeps
    the positions of a class in their order, so one sort gives the same arrays for all classes.
    """
    targets = images.targets
    order = np.argsort(targets, kind="stable")
    counts = np.bincount(targets, minlength=len(images.classes))[: len(images.classes)]
    ends = np.cumsum(counts)
    return [order[end - count : end] for count, end in zip(counts, ends)]


def few_shot(images: ImageSet, k: int, seed: int) -> tuple[ImageSet, list[str]]:
    """``k`` images per class (seeded); also return the classes that have fewer than ``k``."""
    rng = np.random.default_rng(seed + 1)  # not the split's stream: the two choices stay independent
    keep: list[np.ndarray] = []
    short: list[str] = []
    for name, members in zip(images.classes, class_positions(images)):
        if len(members) < k:
            short.append(name)
        keep.append(rng.permutation(members)[:k])
    picked = np.sort(np.concatenate(keep)) if keep else np.array([], np.int64)
    return images.subset(picked), short


def native_size(images: ImageSet) -> int | None:
    """Side of the first readable training image when it is square, else None."""
    for i in range(min(len(images), _SIZE_PROBES)):
        try:
            w, h = images.load(i).size
        except Exception:  # unreadable files are reported when training reaches them
            continue
        return w if w == h else None
    return None
