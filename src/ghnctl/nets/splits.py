"""The DeepNets splits: ``train``, the held-out ``val``, ``test``, ``wide``, ``deep``, ``dense``,
``bnfree``, and ``predefined`` (spec section 6). Torch-free until a network is built.

Net ``i`` of a split is a pure function of ``(GENERATOR_VERSION, split, seed, i)``: its candidates
come from the ``Stream`` named by those four values, never from a global RNG, so any net can be
made alone, in any order, on any machine.

Disjointness: every architecture has a canonical key (``Arch.key``); a hash of the key puts it in
one of ``BUCKETS`` buckets. Each held-out split owns one bucket and accepts only candidates in it;
the train split accepts only candidates in the remaining buckets. No architecture can therefore be
in two splits, whatever the seeds (the hash does not depend on them). Within an evaluation split,
net i also refuses the keys of nets 0..i-1; the train split is not deduplicated (a net there
depends on its index alone, and a repeat, about 1 in 2,000 nets, is harmless for training).
"""

from __future__ import annotations

import functools
import hashlib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UnknownModel, UsageError
from .arch import Arch, NetArgs
from .genotype import VIT
from .plan import IMAGE_SIZES, make_plan
from .sample import (
    BNFREE_RULE,
    DEEP_RULE,
    DENSE_RULE,
    EVAL_FC_DIM,
    TRAIN_RULE,
    Rule,
    eval_width,
    sample_arch,
)
from .stream import Stream

if TYPE_CHECKING:
    from torch import nn

GENERATOR_VERSION = "1"
DEFAULT_IMAGE_SIZE = 32
BUCKETS = 16
PREFIX = "deepnets:"


@dataclass(frozen=True)
class Split:
    """One split: its size, generator rule, bucket (held-out splits) and width convention.

    ``width_mult`` multiplies the stored width for (32x32, 224x224) builds (``wide``: 4 and 2).
    Evaluation splits store the ghnctl evaluation width (``eval_width``), train nets C=32.
    """

    name: str
    size: int
    rule: Rule | None
    bucket: int | None
    evaluation: bool
    about: str
    width_mult: tuple[int, int] = (1, 1)


SPLITS: dict[str, Split] = {s.name: s for s in (
    Split("train", 1_000_000, TRAIN_RULE, None, False, "training architectures (stored at C=32)"),
    Split("val", 500, TRAIN_RULE, 1, True, "in-distribution validation"),
    Split("test", 500, TRAIN_RULE, 0, True, "in-distribution test"),
    Split("wide", 100, TRAIN_RULE, 2, True, "test-like, built 4x wider at 32x32 and 2x at 224x224", (4, 2)),
    Split("deep", 100, DEEP_RULE, 3, True, "10-36 cells"),
    Split("dense", 100, DENSE_RULE, 4, True, "2-10 sum nodes per cell"),
    Split("bnfree", 100, BNFREE_RULE, 5, True, "no BatchNorm"),
    Split("predefined", 2, None, None, True, "0: ResNet-50 (torchvision), 1: the ViT genotype"),
)}
HELD_OUT_BUCKETS = frozenset(s.bucket for s in SPLITS.values() if s.bucket is not None)

# The predefined ViT: one transformer block per cell, C=128, 12 cells (spec 2.3).
VIT_ARCH = Arch(VIT, NetArgs(n_cells=12, C=128, C_mult=1, preproc=False, glob_avg=True, fc_layers=1))


def bucket_of(key: str) -> int:
    """The partition bucket of a canonical arch key."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, person=b"ghnctl-split").digest()
    return int.from_bytes(digest, "little") % BUCKETS


def _accepts(split: Split, key: str) -> bool:
    bucket = bucket_of(key)
    return bucket == split.bucket if split.bucket is not None else bucket not in HELD_OUT_BUCKETS


@dataclass(frozen=True)
class SplitNet:
    """Net ``index`` of ``split``: the stored architecture (None for ResNet-50) and its facts.

    ``params_cifar10``/``params_imagenet`` are the counts at C=32 the generator filtered on
    (0 for predefined nets); ``attempts`` is how many candidates it took.
    """

    split: str
    index: int
    seed: int
    arch: Arch | None
    params_cifar10: int = 0
    params_imagenet: int = 0
    attempts: int = 0

    @property
    def spec(self) -> str:
        seed = f"@{self.seed}" if self.seed else ""
        return f"{PREFIX}{self.split}/{self.index}{seed}"

    def arch_for(self, image_size: int = 32) -> Arch | None:
        """The arch as built at ``image_size`` (the wide split's width multiplier applied)."""
        check_image_size(image_size)
        if self.arch is None:
            return None
        mult = SPLITS[self.split].width_mult[IMAGE_SIZES.index(image_size)]
        return self.arch if mult == 1 else self.arch.with_size(C=self.arch.args.C * mult)

    def num_params(self, image_size: int = 32, num_classes: int | None = None) -> int:
        """Parameters of the network ``build`` makes, computed without building it (ResNet-50: known)."""
        arch = self.arch_for(image_size)
        classes = default_num_classes(image_size) if num_classes is None else num_classes
        if arch is None:
            return _RESNET50_BODY[image_size] + 2049 * classes
        return make_plan(arch, image_size, classes).num_params()

    def describe(self, image_size: int = 32) -> str:
        """One line: the spec, parameters at this input size, and the architecture."""
        arch = self.arch_for(image_size)
        params = f"{self.num_params(image_size) / 1e6:.2f}M params at {image_size}x{image_size}"
        if arch is None:
            return f"{self.spec}: ResNet-50 (torchvision), {params}"
        return f"{self.spec}: {params}; {arch.describe()}"

    def to_dict(self) -> dict[str, Any]:
        """Metadata to store with anything made from this net (spec section 9.6)."""
        return {
            "spec": self.spec, "split": self.split, "index": self.index, "seed": self.seed,
            "generator_version": GENERATOR_VERSION,
            "arch": self.arch.to_dict() if self.arch is not None else "resnet50",
            "num_params": {"cifar10": self.params_cifar10, "imagenet": self.params_imagenet},
        }

    def build(self, image_size: int = 32, num_classes: int | None = None, *,
              track_running_stats: bool = False, device: Any = None) -> nn.Module:
        """The ``nn.Module``: 32x32 (CIFAR) or 224x224 (ImageNet) input, ``num_classes`` (default 10
        at 32, 1000 at 224). BatchNorm uses batch statistics unless ``track_running_stats``."""
        arch = self.arch_for(image_size)
        classes = default_num_classes(image_size) if num_classes is None else num_classes
        if arch is None:
            from .predefined import resnet50

            return resnet50(image_size, classes, track_running_stats=track_running_stats, device=device)
        from .network import build_network

        return build_network(arch, image_size, classes, track_running_stats=track_running_stats, device=device)


# ResNet-50 parameters without its classifier (fc: 2048 * classes + classes), per input size.
_RESNET50_BODY = {32: 23_500_352, 224: 23_508_032}


def default_num_classes(image_size: int) -> int:
    """10 classes for the CIFAR (32x32) variant, 1000 for the ImageNet (224x224) one."""
    return 10 if image_size == 32 else 1000


def check_image_size(image_size: int) -> None:
    if image_size not in IMAGE_SIZES:
        raise UsageError(f"DeepNets nets are built for 32x32 or 224x224 inputs, not {image_size}x{image_size}",
                           hint="pass --image-size 32 (CIFAR variant, the default) or 224 (ImageNet variant)")


def split_names() -> str:
    """``train 0..999999, val 0..499, ...``: the valid splits and index ranges, for messages."""
    return ", ".join(f"{s.name} 0..{s.size - 1}" for s in SPLITS.values())


def get(split: str, index: int, seed: int = 0) -> SplitNet:
    """Net ``index`` of ``split`` (``seed`` names another draw of the generated splits)."""
    info = SPLITS.get(split)
    if info is None:
        raise UnknownModel(f"unknown DeepNets split {split!r}", hint=f"use one of: {split_names()}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < info.size:
        raise UnknownModel(f"DeepNets split {split!r} has nets 0..{info.size - 1}, not {index!r}",
                           hint=f"splits: {split_names()}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UnknownModel(f"a DeepNets seed is a non-negative integer, got {seed!r}")
    if info.rule is None:
        return SplitNet(split, index, 0, None if index == 0 else VIT_ARCH)
    if info.evaluation:
        return _unique_split(split, seed).net(index)
    return _train_net(split, index, seed)


def _stream(split: str, seed: int, index: int) -> Stream:
    return Stream(f"ghnctl.deepnets/v{GENERATOR_VERSION}/{split}/{seed}/{index}")


@functools.lru_cache(maxsize=4096)
def _train_net(split: str, index: int, seed: int) -> SplitNet:
    """A training net depends on its index alone: any net of the million can be made directly."""
    info = SPLITS[split]
    sampled = sample_arch(info.rule, _stream(split, seed, index), accept=lambda key: _accepts(info, key))
    return SplitNet(split, index, seed, sampled.arch, sampled.params_cifar10, sampled.params_imagenet,
                    sampled.attempts)


class _UniqueSplit:
    """The nets of an evaluation split, made in index order: net i also refuses the keys of nets
    0..i-1, so a split never holds one architecture twice. Net i is still a pure function of
    (split, seed, i), whatever order nets are asked for in; asking for net i makes 0..i once."""

    def __init__(self, split: str, seed: int) -> None:
        self.info = SPLITS[split]
        self.seed = seed
        self.nets: list[SplitNet] = []
        self.keys: set[str] = set()
        self.lock = threading.Lock()

    def net(self, index: int) -> SplitNet:
        with self.lock:
            while len(self.nets) <= index:
                self._append()
        return self.nets[index]

    def _append(self) -> None:
        info, index = self.info, len(self.nets)
        accept = lambda key: key not in self.keys and _accepts(info, key)  # noqa: E731
        sampled = sample_arch(info.rule, _stream(info.name, self.seed, index), accept=accept)
        arch = sampled.arch
        self.keys.add(arch.key())
        arch = arch.with_size(C=eval_width(arch), fc_dim=EVAL_FC_DIM)
        self.nets.append(SplitNet(info.name, index, self.seed, arch, sampled.params_cifar10,
                                  sampled.params_imagenet, sampled.attempts))


_UNIQUE: dict[tuple[str, int], _UniqueSplit] = {}
_UNIQUE_LOCK = threading.Lock()


def _unique_split(split: str, seed: int) -> _UniqueSplit:
    with _UNIQUE_LOCK:
        return _UNIQUE.setdefault((split, seed), _UniqueSplit(split, seed))


def clear_cache() -> None:
    """Forget every net made so far (they are remade identically on demand)."""
    _train_net.cache_clear()
    with _UNIQUE_LOCK:
        _UNIQUE.clear()


def parse_spec(spec: str) -> tuple[str, int, int]:
    """``deepnets:SPLIT/INDEX[@SEED]`` (or without the prefix) -> (split, index, seed)."""
    text = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    body, _, seed_text = text.partition("@")
    split, sep, index_text = body.partition("/")
    form = "deepnets:SPLIT/INDEX, for example deepnets:test/17"
    if not sep or not split:
        raise UnknownModel(f"model spec {spec!r} names no DeepNets net", hint=f"use {form}; splits: {split_names()}")
    if split not in SPLITS:
        raise UnknownModel(f"unknown DeepNets split {split!r} in {spec!r}", hint=f"use one of: {split_names()}")
    if not index_text.isdigit():
        raise UnknownModel(f"the index in {spec!r} must be a number",
                           hint=f"use {form}; {split} has nets 0..{SPLITS[split].size - 1}")
    index = int(index_text)
    if index >= SPLITS[split].size:
        raise UnknownModel(f"DeepNets split {split!r} has nets 0..{SPLITS[split].size - 1}, not {index}",
                           hint=f"splits: {split_names()}")
    if seed_text and not seed_text.isdigit():
        raise UnknownModel(f"the seed in {spec!r} must be a number", hint="for example deepnets:train/3@1")
    return split, index, int(seed_text or 0)
