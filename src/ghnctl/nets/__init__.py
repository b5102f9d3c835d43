"""A built-in, seeded generator of DeepNets-1M-style architectures (docs/deepnets.md).

>>> from ghnctl import nets
>>> net = nets.get("test", 17)          # genotype + macro args, nothing built (torch-free)
>>> net.describe()                      # one line
>>> model = net.build(image_size=32)    # an nn.Module (CIFAR variant, 10 classes)

Modules: ``genotype`` (cells), ``arch`` (genotype + macro args), ``plan`` (layout, parameter
count), ``stream`` (reproducible draws), ``sample`` (the generator), ``splits`` (train and held-out
splits), ``ops``/``network``/``predefined`` (the torch modules). Importing this package does not
import torch; ``build_network`` and ``DeepNet`` load it on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .arch import Arch, NetArgs
from .genotype import DARTS, PRIMITIVES, VIT, Genotype
from .plan import make_plan
from .sample import Rule, Sampled, TrainSize, eval_width, sample_arch, train_size
from .splits import (
    DEFAULT_IMAGE_SIZE,
    GENERATOR_VERSION,
    SPLITS,
    VIT_ARCH,
    SplitNet,
    check_image_size,
    default_num_classes,
    get,
    parse_spec,
    split_names,
)
from .stream import Stream

_LAZY = {"build_network": "ghnctl.nets.network", "DeepNet": "ghnctl.nets.network"}

__all__ = [
    "DARTS", "DEFAULT_IMAGE_SIZE", "GENERATOR_VERSION", "PRIMITIVES", "SPLITS", "VIT", "VIT_ARCH",
    "Arch", "DeepNet", "Genotype", "NetArgs", "Rule", "Sampled", "SplitNet", "Stream", "TrainSize",
    "build_network", "check_image_size", "default_num_classes", "eval_width", "get", "make_plan", "parse_spec",
    "sample_arch", "split_names", "train_size",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'ghnctl.nets' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
