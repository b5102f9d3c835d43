"""Fine-tuning speed: the ``ghnctl.training.finetune`` engine against a minimal plain PyTorch loop,
and data-loading throughput from a JPEG ImageFolder tree.

Usage::

    python benchmarks/finetune_speed.py                         # resnet18, 32x32, batch 64, 2 threads
    python benchmarks/finetune_speed.py --steps 30 --repeats 3 --batch-size 128
    python benchmarks/finetune_speed.py --data path/to/tree     # your own train/<class>/*.jpg tree

Both training loops run the same model (same initial weights), the same data (JPEG files decoded
per step, random crop with 4-pixel padding + flip, CIFAR normalisation), SGD with Nesterov momentum
and weight decay, a per-step LambdaLR schedule and gradient clipping at 5 (the engine's default),
with the same number of loader workers. The plain loop is torchvision's ImageFolder + transforms
and a textbook ``for x, y in loader`` loop. Training images/s is measured over the steps after
``--warmup`` steps, loops alternate (engine, plain, engine, ...) and the median of ``--repeats`` is
reported, because these shared 2-core machines vary by 2-10x with load: read the ratio, not the
absolute numbers. Each loop is also timed in process CPU seconds; with ``--threads 1`` and
``--workers 0`` that counts the work done and hardly depends on other jobs, so its ratio is the one
to trust on a busy machine.

The data-loading table adds the alternative ghnctl does not use: torchvision's ``v2.RandomCrop`` /
``v2.RandomHorizontalFlip`` classes, made worker-count independent by seeding torch's global CPU
generator per sample (and restoring it), to show what that would cost.

Without ``--data``, ``--images`` images (evenly over the classes) are extracted from
``<shared>/data/cifar10-train-jpg.tar.gz`` into a temporary folder (``<shared>`` is
``$GHNCTL_SHARED`` or ``../shared`` next to the repository).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import torch
import torchvision
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from ghnctl.training import data as D  # noqa: E402
from ghnctl.training import events as E  # noqa: E402
from ghnctl.training import finetune as F  # noqa: E402
from ghnctl.training import loaders as L  # noqa: E402
from ghnctl.training.optim import warmup_cosine  # noqa: E402
from ghnctl.training.transforms import CIFAR10_MEAN, CIFAR10_STD  # noqa: E402


def shared_dir() -> Path | None:
    env = os.environ.get("GHNCTL_SHARED")
    path = Path(env) if env else REPO.parent / "shared"
    return path if (path / "data").is_dir() else None


def extract_subset(dest: Path, images: int) -> Path:
    shared = shared_dir()
    if shared is None:
        sys.exit("no shared folder: pass --data PATH or set GHNCTL_SHARED")
    per_class = max(1, images // 10)
    counts: dict[str, int] = {}
    with tarfile.open(shared / "data" / "cifar10-train-jpg.tar.gz", "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) != 3 or counts.get(parts[1], 0) >= per_class:
                continue
            out = dest / "train" / parts[1] / parts[2]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
            counts[parts[1]] = counts.get(parts[1], 0) + 1
    return dest


def build_model(arch: str, num_classes: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)


# --------------------------------------------------------------------------------------------
# the two training loops


class Rate(NamedTuple):
    """Images per second of wall time, and per second of this process's CPU time: with one torch
    thread and no loader workers the second is the work done, much less sensitive than the first
    to other jobs on a shared machine."""

    wall: float
    cpu: float


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _rate(images: int, start: tuple[float, float], end: tuple[float, float]) -> Rate:
    return Rate(images / (end[0] - start[0]), images / (end[1] - start[1]))


def engine_rate(model: nn.Module, bundle: D.DataBundle, args: argparse.Namespace) -> Rate:
    """Images/s of the finetune engine over the steps after the warmup (epoch-0 evaluation excluded)."""
    marks: dict[int, tuple[float, float]] = {}

    def on_event(event: object) -> None:
        if isinstance(event, E.StepDone) and event.global_step in (args.warmup, args.warmup + args.steps):
            marks[event.global_step] = _clock()

    config = F.FinetuneConfig(
        max_steps=args.warmup + args.steps, batch_size=args.batch_size, lr=0.1, device="cpu",
        workers=args.workers, log_every=10**9, eval_batch_size=512,
    )
    F.finetune(model, bundle, config, on_event=on_event)
    return _rate(args.steps * args.batch_size, marks[args.warmup], marks[args.warmup + args.steps])


def plain_rate(model: nn.Module, root: Path, args: argparse.Namespace) -> Rate:
    """Images/s of a textbook loop on torchvision's ImageFolder with the same work per step."""
    from torchvision import transforms as T

    tf = T.Compose([
        T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
        T.Normalize(CIFAR10_MEAN, CIFAR10_STD),
    ])
    dataset = torchvision.datasets.ImageFolder(str(root / "train"), transform=tf)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, drop_last=True,
        persistent_workers=args.workers > 0,
    )
    total = args.warmup + args.steps
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, 0))
    criterion = nn.CrossEntropyLoss()
    model.train()
    step, start = 0, _clock()
    while step < total:
        for x, y in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(x), y)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            scheduler.step()
            step += 1
            if step == args.warmup:
                start = _clock()
            if step == total:
                break
    return _rate(args.steps * args.batch_size, start, _clock())


# --------------------------------------------------------------------------------------------
# data loading alone


def loader_rate(make_loader, images: int) -> float:
    """Images/s after the first batch (worker start-up and the first fetch are not timed)."""
    batches = iter(make_loader())
    next(batches)
    start = time.perf_counter()
    seen = 0
    for batch in batches:
        seen += len(batch[1] if isinstance(batch, (tuple, list)) else batch.targets)
        if seen >= images:
            break
    return seen / (time.perf_counter() - start)


class SeededV2Classes:
    """The rejected design: v2's random transform classes, re-seeding torch's global CPU generator per
    sample (restoring it afterwards) so that results would not depend on the number of workers."""

    def __init__(self) -> None:
        from torchvision.transforms import v2

        self.tf = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()])

    def __call__(self, img: object, rng: object) -> object:
        generator = torch.default_generator
        saved = generator.get_state()
        generator.manual_seed(rng.getrandbits(63))  # type: ignore[attr-defined]
        try:
            return self.tf(img)
        finally:
            generator.set_state(saved)


def data_rows(bundle: D.DataBundle, root: Path, args: argparse.Namespace) -> list[tuple[str, int, float]]:
    from torchvision import transforms as T

    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.PILToTensor()])
    v2_bundle = D.DataBundle(bundle.train, bundle.val, SeededV2Classes(), bundle.eval_transform, bundle.info,
                             bundle.config)
    rows = []
    for workers in sorted({0, 1, 2, args.workers}):
        def ghnctl_loader(w: int = workers, b: D.DataBundle = bundle) -> object:
            return L.train_loader(b, batch_size=args.batch_size, seed=0, workers=w)[0]

        def v2_loader(w: int = workers) -> object:
            return ghnctl_loader(w, v2_bundle)

        def tv_loader(w: int = workers) -> object:
            ds = torchvision.datasets.ImageFolder(str(root / "train"), transform=tf)
            return torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=w)

        n = min(args.data_images, len(bundle.train))
        for name, make in (
            ("ghnctl.training (v2.functional, per-sample random.Random)", ghnctl_loader),
            ("same loader, v2 Random* classes seeded per sample", v2_loader),
            ("torchvision ImageFolder + v1 transforms (uint8)", tv_loader),
        ):
            rows.append((name, workers, statistics.median(loader_rate(make, n) for _ in range(args.repeats))))
    return rows


# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="an ImageFolder tree with train/ (default: shared CIFAR-10 subset)")
    parser.add_argument("--images", type=int, default=2000, help="images extracted from the shared archive")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-images", type=int, default=1500, help="images per data-loading measurement")
    parser.add_argument("--skip-train", action="store_true", help="only measure data loading")
    parser.add_argument("--skip-data", action="store_true", help="only measure the training loops")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data if args.data is not None else extract_subset(Path(tmp), args.images)
        bundle = D.load_data(D.DataConfig(str(root), val_fraction=0.05))
        # The plain loop trains on all of train/; both see more images than the timed steps use.
        print(f"# finetune speed: {args.model}, {bundle.info.image_size}x{bundle.info.image_size}, "
              f"batch {args.batch_size}, {args.threads} thread(s), {args.workers} worker(s), torch "
              f"{torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, data {root}\n")
        if not args.skip_train:
            engine, plain = [], []
            for _ in range(args.repeats):
                engine.append(engine_rate(build_model(args.model, bundle.num_classes, 0), bundle, args))
                plain.append(plain_rate(build_model(args.model, bundle.num_classes, 0), root, args))
            print("| training loop | images/s wall (median) | images per CPU-s (median) | runs (wall / CPU) |")
            print("|---|---:|---:|---|")
            for label, rates in (("ghnctl.training.finetune engine", engine), ("plain PyTorch loop", plain)):
                runs = ", ".join(f"{r.wall:.0f}/{r.cpu:.0f}" for r in rates)
                print(f"| {label} | {statistics.median(r.wall for r in rates):.1f} | "
                      f"{statistics.median(r.cpu for r in rates):.1f} | {runs} |")
            wall = statistics.median(e.wall / p.wall for e, p in zip(engine, plain))
            cpu = statistics.median(e.cpu / p.cpu for e, p in zip(engine, plain))
            print(f"| **ratio engine / plain** (median of the {args.repeats} alternating pairs) | **{wall:.3f}** | "
                  f"**{cpu:.3f}** | target >= 0.95 |\n")
        if args.skip_data:
            return
        print("| data loading (decode + crop/flip, no model) | workers | images/s (median) |")
        print("|---|---:|---:|")
        for name, workers, rate in data_rows(bundle, root, args):
            print(f"| {name} | {workers} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
