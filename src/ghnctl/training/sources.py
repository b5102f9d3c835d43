"""Where the images come from: ImageFolder trees and torchvision's CIFAR files, as ``ImageSet``s."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ghnctl import settings
from ghnctl.training.errors import DataError

NAMED_SETS = ("cifar10", "cifar100")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


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
# ImageFolder trees


def find_tree_root(path: Path) -> Path | None:
    """``path`` if it holds ``train/``, or its only sub-folder when that one does."""
    if (path / "train").is_dir():
        return path
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subdirs) == 1 and (subdirs[0] / "train").is_dir():
        return subdirs[0]
    return None


def load_tree(path: Path, notes: list[str]) -> tuple[ImageSet, ImageSet | None, Path, str]:
    """``(train, val or None, root, val_source)`` of the tree at ``path``; ``val/`` wins over ``test/``."""
    root = find_tree_root(path)
    if root is None:
        raise DataError(
            f"{str(path)!r} has no train/ folder",
            hint="expected train/<class>/<image> (and optionally val/ or test/)",
        )
    classes = _class_folders(root / "train")
    if not classes:
        raise DataError(f"{str(root / 'train')!r} has no class folders", hint="expected train/<class>/<image>")
    train = scan_folder(root / "train", classes)
    if len(train) == 0:
        raise DataError(f"no image files under {str(root / 'train')!r}", hint=f"extensions: {_ext_list()}")
    empty = [c for i, c in enumerate(classes) if not np.any(train.targets == i)]
    if empty:
        notes.append(f"class folder(s) without images: {', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}")
    for split in ("val", "test"):  # val/ first: a test/ split should stay untouched when both exist
        split_dir = root / split
        if split_dir.is_dir():
            return train, _load_split(split_dir, split, classes), root, split
    return train, None, root, "split"


def _load_split(split_dir: Path, split: str, classes: list[str]) -> ImageSet:
    unknown = sorted(set(_class_folders(split_dir)) - set(classes))
    if unknown:
        raise DataError(
            f"{split}/ has classes that train/ does not: {', '.join(unknown[:5])}",
            hint="the class folders of train/ and val/ (or test/) must match",
        )
    images = scan_folder(split_dir, classes)
    if len(images) == 0:
        raise DataError(
            f"no image files under {str(split_dir)!r}",
            hint=f"remove the empty {split}/ folder to hold out part of train/ instead",
        )
    return images


def _class_folders(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


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
# named data sets


def load_named(
    name: str, data_dir: Path, offline: bool, status: Callable[[str], None], notes: list[str]
) -> tuple[ImageSet, ImageSet | None, Path, str, str]:
    """``cifar10``/``cifar100``: a tree in ``data_dir/<name>`` if there is one, else torchvision's
    files in ``data_dir``, downloaded unless ``offline`` (or ``GHNCTL_OFFLINE``).

    Returns ``(train, val, root, kind, val_source)``.
    """
    tree = data_dir / name
    if (tree / "train").is_dir():
        train, val, root, val_source = load_tree(tree, notes)
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
        if offline or settings.offline():
            raise DataError(f"{pretty} is not in {data_dir} and offline mode is on", hint=how) from None
        status(f"downloading {pretty} into {data_dir} ...")
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            with contextlib.redirect_stdout(sys.stderr):
                train_ds = cls(str(data_dir), train=True, download=True)
                test_ds = cls(str(data_dir), train=False, download=True)
        except Exception as exc:  # torchvision raises many kinds (URLError, RuntimeError, OSError, ...)
            raise DataError(f"downloading {pretty} failed: {type(exc).__name__}: {exc}", hint=how) from exc
    classes = list(train_ds.classes)
    train = ImageSet(train_ds.data, train_ds.targets, classes)
    val = ImageSet(test_ds.data, test_ds.targets, classes)
    return train, val, data_dir, "torchvision", "test"
