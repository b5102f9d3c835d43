"""Published per-architecture numbers of the official GHN-3 checkpoints, for ``bench ghn``'s sanity check.

Source: ``ghn3_results.json`` published with the official GHN-3 code (SamsungSAILMontreal/ghn3,
MIT licence; the same file is on the HuggingFace repo ``SamsungSAILMontreal/ghn3``; the official
``get_metadata`` checks its md5 ``c9ffc3b9222e872af316eb1cb1ee1c08``). Only the two numbers
``bench ghn`` needs are kept: the total L2 norm of all parameters of the torchvision model (ImageNet,
1000 classes) after GHN-3-T (``ghn3-t-paramnorm``, checkpoint ``ghn3tm8``) and GHN-3-XL
(``ghn3-paramnorm``, checkpoint ``ghn3xlm16``) predicted them, as the official ``eval_ghn.py``
computes it: ``torch.norm(torch.stack([p.norm() for p in model.parameters()]), 2)``.

The official check passes when the norms differ by less than 1e-2 (``NORM_TOLERANCE``). A
mismatch can be fine when the model has parameters the GHN does not predict (they keep their
random initialisation), as the official code notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NORM_TOLERANCE = 1e-2  # absolute, as in the official eval_ghn.py and norm_check
PUBLISHED_CLASSES = 1000  # the published models are ImageNet classifiers
SOURCE = "ghn3_results.json of the official GHN-3 code (SamsungSAILMontreal/ghn3)"

# Official checkpoint name -> (the published key, position in the tuples below, nominal hid, layers).
OFFICIAL = {
    "ghn3tm8": ("ghn3-t-paramnorm", 0, 64, 3),
    "ghn3xlm16": ("ghn3-paramnorm", 1, 384, 24),
}

# torchvision name -> (ghn3-t-paramnorm, ghn3-paramnorm)
PARAM_NORMS: dict[str, tuple[float, float]] = {
    "alexnet": (59.5741, 72.4766),
    "squeezenet1_0": (67.9505, 72.1426),
    "squeezenet1_1": (69.3108, 71.4170),
    "shufflenet_v2_x0_5": (67.7882, 83.4845),
    "mobilenet_v3_small": (73.2573, 78.9871),
    "mnasnet0_5": (82.1230, 90.4963),
    "vgg11": (56.8507, 67.9854),
    "shufflenet_v2_x1_0": (62.3746, 85.5222),
    "resnet18": (54.9382, 73.9089),
    "googlenet": (80.6939, 98.2371),
    "vgg13": (57.6616, 59.8383),
    "vgg11_bn": (59.2845, 64.6145),
    "mnasnet0_75": (82.1427, 105.2033),
    "vgg13_bn": (59.9568, 66.5944),
    "vgg16": (57.2215, 62.9869),
    "mobilenet_v2": (78.2470, 110.2649),
    "vgg19": (57.8253, 64.5850),
    "regnet_x_400mf": (65.4033, 104.0136),
    "shufflenet_v2_x1_5": (73.5700, 84.9610),
    "resnet34": (51.8167, 75.9910),
    "vgg16_bn": (60.8125, 75.7611),
    "mnasnet1_0": (78.8487, 117.6446),
    "mobilenet_v3_large": (83.5840, 87.0672),
    "regnet_y_400mf": (114.1110, 109.9778),
    "vgg19_bn": (62.4320, 73.9692),
    "densenet121": (68.6535, 94.9793),
    "regnet_x_800mf": (74.3295, 99.1204),
    "densenet169": (92.4347, 99.6095),
    "vit_b_32": (87.3511, 358.9108),
    "resnet50": (78.6197, 108.4530),
    "shufflenet_v2_x2_0": (97.6986, 100.9075),
    "regnet_y_800mf": (125.5785, 127.5576),
    "mnasnet1_3": (87.7367, 114.1366),
    "densenet201": (98.4911, 103.1221),
    "vit_l_32": (120.1227, 512.3192),
    "regnet_x_1_6gf": (85.5743, 115.3575),
    "densenet161": (98.4571, 94.2412),
    "inception_v3": (120.0401, 118.0063),
    "resnet101": (94.8263, 117.2542),
    "resnext50_32x4d": (85.3697, 104.4848),
    "efficientnet_b0": (110.6215, 138.0075),
    "regnet_y_1_6gf": (145.5751, 124.4934),
    "resnet152": (103.8510, 123.9124),
    "regnet_x_3_2gf": (106.4458, 114.0166),
    "wide_resnet50_2": (82.6208, 108.5524),
    "efficientnet_b1": (121.7426, 150.3626),
    "wide_resnet101_2": (102.8062, 118.1640),
    "regnet_y_3_2gf": (138.4625, 146.1418),
    "resnext101_32x8d": (141.0246, 116.0500),
    "regnet_x_8gf": (115.9188, 114.9479),
    "vit_l_16": (120.1431, 511.7338),
    "regnet_y_8gf": (148.9196, 153.8898),
    "regnet_x_16gf": (118.9493, 122.6704),
    "regnet_y_16gf": (189.0088, 170.1522),
    "efficientnet_b2": (141.3771, 139.9369),
    "regnet_x_32gf": (129.4334, 125.5922),
    "regnet_y_32gf": (195.4779, 184.0326),
    "vit_b_16": (87.4414, 366.0770),
    "swin_t": (72.5913, 184.6902),
    "efficientnet_b3": (133.4612, 156.6411),
    "convnext_tiny": (77.5166, 219.8035),
    "swin_s": (87.2103, 189.2839),
    "resnext101_64x4d": (135.4844, 115.2008),
    "efficientnet_b4": (170.1403, 169.3882),
    "efficientnet_b5": (185.7785, 185.9708),
    "swin_b": (106.0562, 232.2770),
    "convnext_small": (84.3831, 286.9352),
    "efficientnet_b6": (236.2860, 203.3379),
    "convnext_base": (103.0898, 355.1909),
    "efficientnet_b7": (207.6548, 239.4354),
    "efficientnet_v2_s": (205.9876, 182.7833),
    "convnext_large": (121.2777, 399.8320),
    "efficientnet_v2_m": (268.4234, 220.8799),
    "efficientnet_v2_l": (281.7064, 278.3611),
}


@dataclass(frozen=True)
class NormCheck:
    """The predicted-parameter norm against the published one: ``ok`` within ``NORM_TOLERANCE``."""

    published: float
    measured: float
    key: str

    @property
    def difference(self) -> float:
        return self.measured - self.published

    @property
    def ok(self) -> bool:
        return abs(self.difference) < NORM_TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        return {"published": self.published, "measured": self.measured, "difference": self.difference,
                "ok": self.ok, "key": self.key, "source": SOURCE}


def official_name(name: str, hid: int, layers: int) -> str | None:
    """The official checkpoint a GHN is, by its registry name and nominal size; else None.

    The name alone is not enough (any file can be called ghn3tm8.pt): the size must match too.
    """
    entry = OFFICIAL.get(name.removesuffix(".pt"))
    if entry is None or (entry[2], entry[3]) != (hid, layers):
        return None
    return name.removesuffix(".pt")


def published_norm(ghn: str, arch: str) -> tuple[float, str] | None:
    """``(norm, key)`` published for the official ``ghn`` on the torchvision ``arch``, or None."""
    entry = OFFICIAL.get(ghn)
    norms = PARAM_NORMS.get(arch)
    if entry is None or norms is None:
        return None
    return norms[entry[1]], entry[0]


def check_norm(ghn: str, arch: str, measured: float) -> NormCheck | None:
    """Compare ``measured`` with the published norm of (``ghn``, ``arch``), when there is one."""
    found = published_norm(ghn, arch)
    if found is None:
        return None
    return NormCheck(published=found[0], measured=measured, key=found[1])
