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

# ``on_progress(phase, done, total)``: how far a slow one-time phase of loading the data has got.
OnProgress = Callable[[str, int, int], None]
# The phases and what they count (``done`` of ``total``): the bytes of an archive read while its
# members are checked, the archive members written, the class folders scanned (train/, then val/).
PHASE_READ = "read"
PHASE_EXTRACT = "extract"
PHASE_SCAN = "scan"


class Progress:
    """Reports one phase to an ``OnProgress`` callback, at most about ``updates`` times.

    A phase can count a hundred thousand items; a callback per item would cost more than the work
    when it redraws a progress bar, so calls are thinned out. The first call says ``(0, total)``
    and the last one ``(total, total)``; ``done`` never decreases.
    """

    def __init__(self, callback: OnProgress | None, phase: str, total: int, updates: int = 200) -> None:
        self.callback = callback
        self.phase = phase
        self.total = total
        self.step = max(1, -(-total // updates))  # ceil: at most `updates` steps
        self.next = 0
        self.done = 0
        self.reported: int | None = None
        self.advance(0)

    def advance(self, done: int) -> None:
        """``done`` items so far: reported when it reached the next step, or the total."""
        self.done = done
        if done >= self.next or done == self.total:
            if self.callback is not None and done != self.reported:
                self.callback(self.phase, done, self.total)
                self.reported = done
            self.next = (done // self.step + 1) * self.step

    def finish(self) -> None:
        """Report the end of the phase (nothing new when the last ``advance`` already did)."""
        self.advance(self.total)


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


def load_tree(
    path: Path, notes: list[str], on_progress: OnProgress | None = None
) -> tuple[ImageSet, ImageSet | None, Path, str]:
    """``(train, val or None, root, val_source)`` of the tree at ``path``; ``val/`` wins over ``test/``.

    ``on_progress`` hears ``(PHASE_SCAN, class folders scanned, class folders to scan)``, counting
    the class folders of train/ and then of the validation folder.
    """
    root = find_tree_root(path)
    if root is None:
        raise DataError(
            f"{str(path)!r} has no train/ folder",
            hint="expected train/<class>/<image> (and optionally val/ or test/)",
        )
    classes = _class_folders(root / "train")
    if not classes:
        raise DataError(f"{str(root / 'train')!r} has no class folders", hint="expected train/<class>/<image>")
    # val/ first: a test/ split should stay untouched when both exist.
    split = next((name for name in ("val", "test") if (root / name).is_dir()), None)
    progress = Progress(on_progress, PHASE_SCAN, len(classes) * (2 if split else 1))
    train = scan_folder(root / "train", classes, progress)
    if len(train) == 0:
        raise DataError(f"no image files under {str(root / 'train')!r}", hint=f"extensions: {_ext_list()}")
    # One count per class in one pass: a comparison per class would cost files x classes.
    counts = np.bincount(train.targets, minlength=len(classes))
    empty = [c for c, count in zip(classes, counts) if count == 0]
    if empty:
        notes.append(f"class folder(s) without images: {', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}")
    if split is None:
        progress.finish()
        return train, None, root, "split"
    val = _load_split(root / split, split, classes, progress)
    progress.finish()
    return train, val, root, split


def _load_split(split_dir: Path, split: str, classes: list[str], progress: Progress | None = None) -> ImageSet:
    unknown = sorted(set(_class_folders(split_dir)) - set(classes))
    if unknown:
        raise DataError(
            f"{split}/ has classes that train/ does not: {', '.join(unknown[:5])}",
            hint="the class folders of train/ and val/ (or test/) must match",
        )
    images = scan_folder(split_dir, classes, progress)
    if len(images) == 0:
        raise DataError(
            f"no image files under {str(split_dir)!r}",
            hint=f"remove the empty {split}/ folder to hold out part of train/ instead",
        )
    return images


def _class_folders(directory: Path) -> list[str]:
    # scandir's entries know their type from the listing itself: no stat call per class folder.
    with os.scandir(directory) as entries:
        return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())


def scan_folder(directory: Path, classes: Sequence[str], progress: Progress | None = None) -> ImageSet:
    """Image files under ``directory/<class>/`` (recursively, sorted) labelled by class index.

    ``progress`` is advanced by one per class folder (whether it exists or not).
    """
    paths: list[str] = []
    targets: list[int] = []
    start = progress.done if progress is not None else 0
    for index, name in enumerate(classes):
        if progress is not None:
            progress.advance(start + index)
        class_dir = os.path.join(directory, name)
        if not os.path.isdir(class_dir):
            continue
        for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if filename.startswith(".") or os.path.splitext(filename)[1].lower() not in IMAGE_EXTENSIONS:
                    continue
                paths.append(os.path.join(dirpath, filename))
                targets.append(index)
    if progress is not None:
        progress.advance(start + len(classes))
    return ImageSet(paths, targets, classes)


def _ext_list() -> str:
    return ", ".join(sorted(IMAGE_EXTENSIONS))


# --------------------------------------------------------------------------------------------
# named data sets


def load_named(
    name: str,
    data_dir: Path,
    offline: bool,
    status: Callable[[str], None],
    notes: list[str],
    on_progress: OnProgress | None = None,
) -> tuple[ImageSet, ImageSet | None, Path, str, str]:
    """``cifar10``/``cifar100``: a tree in ``data_dir/<name>`` if there is one, else torchvision's
    files in ``data_dir``, downloaded unless ``offline`` (or ``GHNCTL_OFFLINE``).

    Returns ``(train, val, root, kind, val_source)``. ``on_progress`` hears the scan of a tree.
    """
    tree = data_dir / name
    if (tree / "train").is_dir():
        train, val, root, val_source = load_tree(tree, notes, on_progress)
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
