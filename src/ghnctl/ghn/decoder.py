"""The GHN decoders and the economical decoding of only the parts of their output that are used.

The official conv decoder turns a node embedding into a (C0, C1, S, S) block: ``fc`` maps it to
(4h, S, S), a per-position MLP (``conv``) maps each position to C0*C1 channel pairs, and the caller
then crops the kernel, slices the channels and tiles them over the target. Every step is either
per-position or per-channel, so cropping before the MLP and computing only the kept channel pairs
gives the same numbers for a fraction of the arithmetic (spec 3.5-3.7). ``DecodeSpec`` names what
one node needs; ``ConvDecoder.hidden`` and ``ConvDecoder.channels`` compute exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Crop:
    """Rows [r0, r1) and columns [c0, c1) of the decoder's S x S grid."""

    r0: int
    r1: int
    c0: int
    c1: int

    @property
    def size(self) -> tuple[int, int]:
        return (self.r1 - self.r0, self.c1 - self.c0)

    @property
    def positions(self) -> int:
        return (self.r1 - self.r0) * (self.c1 - self.c0)


def kernel_crop(kh: int, kw: int, spatial: int, centre: bool) -> Crop:
    """The grid region a (kh, kw) kernel takes: centred (GHN-3) or top-left (GHN-2), clipped to S."""
    if not centre:
        return Crop(0, min(kh, spatial), 0, min(kw, spatial))
    mid = spatial // 2

    def span(k: int) -> tuple[int, int]:
        return max(0, mid - k // 2), min(spatial, mid + (k + 1) // 2)

    (r0, r1), (c0, c1) = span(kh), span(kw)
    return Crop(r0, r1, c0, c1)


@dataclass(frozen=True)
class DecodeSpec:
    """What the conv decoder must produce for one node.

    ``out_ch`` x ``in_ch`` leading channel pairs at the ``crop`` positions; ``resize`` (kh, kw)
    when the kernel is larger than the grid (bilinear, as the official code); ``classifier`` to
    run the class-layer head on the centre position (then ``out_ch`` is all C0 channels).
    """

    crop: Crop
    out_ch: int
    in_ch: int
    resize: tuple[int, int] | None = None
    classifier: bool = False


class ConvDecoder(nn.Module):
    """Official ``ConvDecoder3`` parameters: ``fc.0``, ``conv.0``, ``conv.2``, ``class_layer_predictor.1``."""

    def __init__(self, hid: int, max_shape: tuple[int, int, int, int], num_classes: int) -> None:
        super().__init__()
        c0, c1, s, s2 = max_shape
        self.max_shape = max_shape
        self.width = hid * 4
        self.fc = nn.Sequential(nn.Linear(hid, self.width * s * s2), nn.ReLU())
        self.conv = nn.Sequential(nn.Linear(hid * 4, hid * 8), nn.ReLU(), nn.Linear(hid * 8, c0 * c1),
                                  nn.Identity())
        self.class_layer_predictor = nn.Sequential(nn.ReLU(), nn.Linear(c0, num_classes))

    def hidden(self, x: torch.Tensor, crop: Crop) -> torch.Tensor:
        """(n, h) node rows -> (n, P, 8h) per-position hidden features at the crop's P positions.

        A small crop gathers its rows of ``fc`` (a copy of P/S^2 of the weight); a crop covering a
        good part of the grid reads the weight in place and drops the other positions' outputs.
        """
        s = self.max_shape[2]
        fc = self.fc[0]
        rows, cols = slice(crop.r0, crop.r1), slice(crop.c0, crop.c1)
        if crop.positions * 4 >= s * s:
            feats = F.relu(fc(x)).view(len(x), self.width, s, s)[:, :, rows, cols]
        else:
            weight = fc.weight.view(self.width, s, s, -1)[:, rows, cols].reshape(-1, fc.weight.shape[-1])
            bias = fc.bias.view(self.width, s, s)[:, rows, cols].reshape(-1)
            feats = F.relu(F.linear(x, weight, bias))
        feats = feats.reshape(len(x), self.width, crop.positions).transpose(1, 2)
        return F.relu(self.conv[0](feats))

    def channels(self, hidden: torch.Tensor, out_ch: int, in_ch: int) -> torch.Tensor:
        """(M, 8h) hidden rows -> (M, out_ch, in_ch): the leading channel pairs only.

        The last layer's rows for (o, i) sit at ``o * C1 + i``; for each o the in_ch needed rows are
        contiguous, so a batched matmul over o reads them in place without copying the weight.
        """
        c0, c1 = self.max_shape[:2]
        last = self.conv[2]
        weight = last.weight.view(c0, c1, -1)[:out_ch, :in_ch]  # (o, i, 8h), strided view
        bias = last.bias.view(c0, c1)[:out_ch, :in_ch]
        out = torch.matmul(hidden.unsqueeze(0), weight.transpose(1, 2))  # (o, M, i)
        return out.permute(1, 0, 2) + bias

    def classify(self, centre: torch.Tensor) -> torch.Tensor:
        """(n, C0, in) centre-position channels -> (n, K, in) classifier weights."""
        return self.class_layer_predictor(centre.transpose(1, 2)).transpose(1, 2)


def resize_kernel(block: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (align_corners False, no antialias) of the last two dims of (..., h, w)."""
    lead = block.shape[:-2]
    flat = block.reshape(-1, 1, *block.shape[-2:])
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return out.reshape(*lead, *size)
