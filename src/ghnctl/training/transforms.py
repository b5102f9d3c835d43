"""The two transform recipes (CIFAR transfer, ImageNet) and the on-device ``Normalizer``.

Train transforms take a PIL image and a per-sample ``random.Random`` (seeded by the sampler from
``(seed, epoch, position)``) and return a PIL image; eval transforms take only the image. The pixel
work is torchvision's ``transforms.v2.functional``; the random parameters are drawn here, from the
per-sample generator, instead of by the ``v2.Random*`` classes, for two measured reasons
(``benchmarks/finetune_speed.py``, docs/finetune.md):

* the classes draw from torch's global RNG, so worker-count independence would need that RNG
  re-seeded per sample, and per-sample results would still depend on how many draws each class makes;
* their per-call dispatch costs ~6x the image work at 32x32 (about 300 us against 50 us per image).

Normalisation is not a per-sample transform: samples stay uint8 (4x fewer bytes through the loader
and to the device) and ``Normalizer`` folds ``/255``, ``-mean`` and ``/std`` into one multiply-add
on the whole batch, on the training device.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as VF

# Per-channel statistics of the training images (the values the official GHN code uses for CIFAR).
CIFAR10_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR10_STD = (0.24703233, 0.24348505, 0.26158768)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# 32x32 images (CIFAR-like) get the CIFAR transfer recipe; anything else the ImageNet one.
CIFAR_NATIVE_SIZE = 32
IMAGENET_SIZE = 224
# ImageNet evaluation: resize the short side to size / 0.875 (256 for 224), then centre crop.
_EVAL_CROP_FRACTION = 0.875

TrainTransform = Callable[[Image.Image, random.Random], Image.Image]
EvalTransform = Callable[[Image.Image], Image.Image]


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
            img = VF.resize(img, [s, s])
        if not self.augment:
            return img
        top, left = rng.randint(-self.pad, self.pad), rng.randint(-self.pad, self.pad)
        if top or left:
            img = VF.crop(img, top, left, s, s)  # outside the image is zero: the padded crop
        if rng.random() < 0.5:
            img = VF.horizontal_flip(img)
        return img


class CifarEvalTransform:
    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, img: Image.Image) -> Image.Image:
        s = self.size
        return img if img.size == (s, s) else VF.resize(img, [s, s])


class ImagenetTrainTransform:
    """Random resized crop (scale 0.08-1, ratio 3/4-4/3) and horizontal flip, for non-32x32 data."""

    def __init__(self, size: int, augment: bool = True) -> None:
        self.size = size
        self.augment = augment
        self._eval = ImagenetEvalTransform(size)

    def __call__(self, img: Image.Image, rng: random.Random) -> Image.Image:
        if not self.augment:
            return self._eval(img)
        top, left, height, width = random_resized_box(img.size[0], img.size[1], rng)
        img = VF.resized_crop(img, top, left, height, width, [self.size, self.size])
        if rng.random() < 0.5:
            img = VF.horizontal_flip(img)
        return img


class ImagenetEvalTransform:
    """Resize the short side to size/0.875, then centre crop (the usual ImageNet evaluation)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.short = round(size / _EVAL_CROP_FRACTION)

    def __call__(self, img: Image.Image) -> Image.Image:
        return VF.center_crop(VF.resize(img, [self.short]), [self.size, self.size])


def random_resized_box(w: int, h: int, rng: random.Random) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of a random crop, by the algorithm of torchvision's
    ``RandomResizedCrop`` (10 tries, then a centre crop of the whole short side)."""
    area = w * h
    log_lo, log_hi = math.log(3 / 4), math.log(4 / 3)
    for _ in range(10):
        target = area * rng.uniform(0.08, 1.0)
        ratio = math.exp(rng.uniform(log_lo, log_hi))
        cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            return rng.randint(0, h - ch), rng.randint(0, w - cw), ch, cw
    side = min(w, h)
    return (h - side) // 2, (w - side) // 2, side, side


def recipe_transforms(recipe: str, size: int, augment: bool = True) -> tuple[TrainTransform, EvalTransform]:
    """``(train, eval)`` transforms of ``recipe`` (``cifar`` or ``imagenet``) at ``size``."""
    if recipe == "cifar":
        return CifarTrainTransform(size, augment), CifarEvalTransform(size)
    if recipe == "imagenet":
        return ImagenetTrainTransform(size, augment), ImagenetEvalTransform(size)
    raise ValueError(f"unknown transform recipe {recipe!r}")


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
