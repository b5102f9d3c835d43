"""ResNet-50 of the predefined split (spec section 6): torchvision's, with a CIFAR stem at 32x32."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn


def resnet50(image_size: int, num_classes: int, *, track_running_stats: bool = False, device: Any = None) -> nn.Module:
    """torchvision ResNet-50; for 32x32 inputs the first conv is 3x3 stride 1 and the stem max-pool
    is removed. Without ``track_running_stats`` its BatchNorms use batch statistics, like every
    DeepNets net."""
    import torchvision

    with torch.device(device) if device is not None else contextlib.nullcontext():
        model = torchvision.models.resnet50(weights=None, num_classes=num_classes)
        if image_size == 32:
            model.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
            nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
            model.maxpool = nn.Identity()
    if not track_running_stats:
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                # as if built with track_running_stats=False: no statistics buffers at all
                module.track_running_stats = False
                module.running_mean = module.running_var = module.num_batches_tracked = None
    model.expected_input_sz = image_size  # the graph builder's default input size
    return model
