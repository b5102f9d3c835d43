"""Start-up cost of ``finetune`` data loading against the number of files, phase by phase.

Usage::

    python benchmarks/data_scale.py                          # 5,000, 20,000 and 100,000 files, 10 classes
    python benchmarks/data_scale.py --files 20000 --classes 2000
    python benchmarks/data_scale.py --files 100000 --per-class 10   # classes grow with the files
    python benchmarks/data_scale.py --first-batch --eval-batches 5  # also time the loaders

For each N a ``.tar.gz`` of an ImageFolder tree ``data/train/<class>/<i>.png`` with N tiny (8x8)
PNG files is written (16 distinct images, so writing it is cheap), then the phases ``load_data``
goes through are timed one by one, exactly as it runs them: extraction (``archive``), scanning the
tree (``sources.load_tree``), the stratified validation split, an ``--n-shots`` subset, native-size
detection; then the whole ``load_data`` on the already extracted archive (the cost of every later
start). ``--first-batch`` adds building the training loader and its first batch, and
``--eval-batches`` times that many evaluation batches of resnet18 at ``--image-size`` (to show
what the epoch-0 evaluation of the held-out images costs per image; it is not start-up).

Each phase is printed in seconds and in microseconds per file: near-linear start-up shows as a
flat us/file column across N. Phases that report progress are counted (``progress calls``).
Everything is written under ``--work`` (default: a temporary folder, removed afterwards).
"""

from __future__ import annotations

import argparse
import inspect
import io
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from ghnctl.training import archive as A  # noqa: E402
from ghnctl.training import data as D  # noqa: E402
from ghnctl.training import sources as S  # noqa: E402


def tiny_pngs(count: int = 16, side: int = 8) -> list[bytes]:
    """``count`` distinct ``side`` x ``side`` RGB PNGs (a few are enough: the files only need to be many)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(count):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, "PNG")
        blobs.append(buf.getvalue())
    return blobs


def write_archive(path: Path, files: int, classes: int) -> None:
    """A gzip tar (level 1: the benchmark measures reading it, not writing it) of ``files`` PNGs
    spread round-robin over ``classes`` class folders, directory entries first as ``tar`` writes them."""
    blobs = tiny_pngs()
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name in ["data", "data/train", *(f"data/train/c{c:05d}" for c in range(classes))]:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for i in range(files):
            payload = blobs[i % len(blobs)]
            info = tarfile.TarInfo(f"data/train/c{i % classes:05d}/{i:07d}.png")
            info.size, info.mode = len(payload), 0o644
            tar.addfile(info, io.BytesIO(payload))


class Phases:
    """Times named phases and prints one row per phase."""

    def __init__(self, files: int) -> None:
        self.files = files
        self.rows: list[tuple[str, float, str]] = []

    def time(self, name: str, fn: Callable[[], Any], note: str = "") -> Any:
        tick = time.perf_counter()
        result = fn()
        self.rows.append((name, time.perf_counter() - tick, note))
        return result

    def note(self, text: str) -> None:
        name, seconds, _ = self.rows[-1]
        self.rows[-1] = (name, seconds, text)

    def print(self, header: str) -> None:
        print(f"\n{header}")
        print(f"  {'phase':<26} {'seconds':>9} {'us/file':>9}")
        for name, seconds, note in self.rows:
            print(f"  {name:<26} {seconds:>9.3f} {seconds / self.files * 1e6:>9.1f}  {note}")


def run_one(work: Path, files: int, classes: int, args: argparse.Namespace) -> list[Path]:
    """Time the phases for ``files`` files; return what it wrote (to delete later)."""
    archive = work / f"tiny-{files}-{classes}.tar.gz"
    tick = time.perf_counter()
    write_archive(archive, files, classes)
    print(
        f"\n{files:,} files in {classes:,} classes: archive written in {time.perf_counter() - tick:.1f}s "
        f"({archive.stat().st_size / 1e6:.1f} MB)"
    )
    data_dir = work / f"data-{files}-{classes}"
    phases = Phases(files)
    calls: list[tuple[str, int, int]] = []

    def on_progress(phase: str, done: int, total: int) -> None:
        calls.append((phase, done, total))

    def progress(fn: Callable[..., Any]) -> dict[str, Any]:
        # Passed only where it is accepted, so that the same script times a ghnctl without progress.
        return {"on_progress": on_progress} if "on_progress" in inspect.signature(fn).parameters else {}

    def counted(phase: str) -> str:
        return f"progress calls: {sum(1 for c in calls if c[0] == phase)}"

    root = phases.time(
        "extract", lambda: A.extract_archive(archive, data_dir / "extracted", None, **progress(A.extract_archive))
    )
    phases.note(counted("extract"))
    notes: list[str] = []
    train, _val, _root, _source = phases.time(
        "scan (load_tree)", lambda: S.load_tree(root, notes, **progress(S.load_tree))
    )
    phases.note(counted("scan"))
    tr, va = phases.time("stratified split", lambda: D.stratified_split(train, 0.1, 0))
    shots = max(1, files // classes // 2)
    phases.time(f"few-shot ({shots}/class)", lambda: D.few_shot(tr, shots, 0))
    phases.time("native size", lambda: D.native_size(tr))
    config = D.DataConfig(str(archive), data_dir=data_dir, image_size=args.image_size)
    bundle = phases.time("load_data (extracted)", lambda: D.load_data(config))
    if args.first_batch or args.eval_batches:
        from ghnctl.training import loaders as L

        loader, sampler = phases.time("train loader", lambda: L.train_loader(bundle, args.batch_size, 0))
        sampler.set_epoch(1)
        phases.time("first train batch", lambda: next(iter(loader)))
    if args.eval_batches:
        eval_batches(phases, bundle, args)
    phases.print(f"{files:,} files, {classes:,} classes ({len(tr):,} train / {len(va):,} held out)")
    # Deleted at the very end, not here: deleting 100,000 files keeps the disk busy for a while
    # and would slow down the extraction measured next.
    return [archive, data_dir]


def eval_batches(phases: Phases, bundle: D.DataBundle, args: argparse.Namespace) -> None:
    """A few resnet18 evaluation batches, to put the per-image cost of evaluation next to start-up."""
    import itertools

    import torch
    import torchvision

    from ghnctl.training import loaders as L
    from ghnctl.training.transforms import Normalizer

    model = torchvision.models.resnet18(num_classes=bundle.num_classes).eval()
    norm = Normalizer(bundle.info.mean, bundle.info.std)
    loader = L.eval_loader(bundle, args.batch_size)

    def run() -> int:
        seen = 0
        with torch.no_grad():
            for batch in itertools.islice(loader, args.eval_batches):
                model(norm(batch.images))
                seen += len(batch.images)
        return seen

    seen = phases.time(f"eval {args.eval_batches} batches", run)
    per_image = phases.rows[-1][1] / seen
    phases.note(
        f"{per_image * 1e3:.1f} ms/image at {bundle.info.image_size}px: the whole held-out set "
        f"({len(bundle.val):,}) would take ~{per_image * len(bundle.val):,.0f}s per evaluation"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, nargs="+", default=[5_000, 20_000, 100_000])
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=None, help="classes = files / per-class (overrides --classes)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--first-batch", action="store_true")
    parser.add_argument("--eval-batches", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the archives and extracted trees")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ghnctl-data-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for files in args.files:
            classes = max(1, files // args.per_class) if args.per_class else args.classes
            written += run_one(work, files, classes, args)
    finally:
        if not args.keep:
            for path in written:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            if args.work is None:
                shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
