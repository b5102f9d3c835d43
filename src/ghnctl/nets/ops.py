"""The edge primitives and cell input adapters of DeepNets networks as modules (spec section 2.1).

Convolutions have no bias and use DARTS pre-activation order (ReLU first). The norm layer is a
BatchNorm2d (by default without running statistics: DeepNets nets normalise with batch statistics
also at evaluation) or nothing. Parameters are registered in the order of the reference modules,
so parameter lists line up with theirs one for one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .genotype import op_info


def norm_layer(norm: str, channels: int, track_running_stats: bool) -> nn.Module:
    if norm == "none":
        return nn.Identity()
    return nn.BatchNorm2d(channels, track_running_stats=track_running_stats)


class Skipped(nn.Module):
    """A part that computes nothing into the output: a ``none`` edge, an edge into a node nothing
    reads, an unused input adapter or cell. It holds no parameters and is never called; it keeps
    module indices in step with the genotype (``cells.3.edges.5`` is edge 5 of cell 3)."""

    def forward(self, *args: object) -> torch.Tensor:  # pragma: no cover - never called
        raise RuntimeError("a skipped part of a DeepNets network was called")


class Subsample(nn.Module):
    """Every other pixel: how ops without a strided layer reduce resolution."""

    def __init__(self, stride: int = 2) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :: self.stride, :: self.stride]


class ReLUConvNorm(nn.Sequential):
    """ReLU -> k x k conv -> norm (``conv_KxK`` edges and the 1x1 cell input adapters)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, norm: str, track: bool) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            norm_layer(norm, c_out, track),
        )


class FactorizedConv(nn.Sequential):
    """``conv_7x1_1x7``: ReLU -> (1 x k) conv keeping C_in -> (k x 1) conv to C_out -> norm."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, norm: str, track: bool) -> None:
        pad = kernel // 2
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, (1, kernel), stride=(1, stride), padding=(0, pad), bias=False),
            nn.Conv2d(c_in, c_out, (kernel, 1), stride=(stride, 1), padding=(pad, 0), bias=False),
            norm_layer(norm, c_out, track),
        )


class SepConv(nn.Sequential):
    """``sep_conv_KxK``: the DARTS separable block twice (depthwise k x k, pointwise, norm)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, norm: str, track: bool) -> None:
        pad = kernel // 2
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=pad, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, bias=False),
            norm_layer(norm, c_in, track),
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, kernel, stride=1, padding=pad, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            norm_layer(norm, c_out, track),
        )


class DilConv(nn.Sequential):
    """``dil_conv_KxK``: ReLU -> depthwise k x k with dilation 2 -> pointwise -> norm."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, norm: str, track: bool) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=kernel - kernel % 2, dilation=2,
                      groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            norm_layer(norm, c_out, track),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution keeping every pixel's information: two stride-2 1x1 convs, the second
    on the input shifted by one pixel, concatenated (stride-2 skips, adapters after a reduction)."""

    def __init__(self, c_in: int, c_out: int, norm: str, track: bool) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"a factorized reduce needs an even output width, got {c_out}")
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.norm = norm_layer(norm, c_out, track)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return self.norm(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class Attention(nn.Module):
    """``msa``: one pre-norm transformer block over the H*W tokens of the feature map.

    Multi-head self-attention (8 heads, fused q/k/v without bias, output projection with bias) and
    an MLP with hidden size ``c_out`` (GELU), each with a residual. The softmax is explicit: it is
    the node GHN graphs type as ``msa``.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, heads: int = 8) -> None:
        super().__init__()
        if c_in != c_out or c_in % heads:
            raise ValueError(f"msa needs C_in == C_out divisible by {heads}, got {c_in} -> {c_out}")
        self.heads = heads
        self.stride = stride
        self.scale = (c_in // heads) ** -0.5
        self.to_qkv = nn.Linear(c_in, 3 * c_in, bias=False)
        self.to_out = nn.Linear(c_in, c_out)
        self.ln1 = nn.LayerNorm(c_in)
        self.ln2 = nn.LayerNorm(c_in)
        self.ff = nn.Sequential(nn.Linear(c_in, c_out), nn.GELU(), nn.Linear(c_out, c_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (b, h*w, c)
        q, k, v = self.to_qkv(self.ln1(tokens)).reshape(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, h * w, c)
        out = self.to_out(out) + tokens
        out = self.ff(self.ln2(out)) + out
        out = out.transpose(1, 2).reshape(b, c, h, w)
        return out[:, :, :: self.stride, :: self.stride] if self.stride > 1 else out


class ChannelSE(nn.Module):
    """``cse``: squeeze-excitation with a hard-swish gate (as the reference, not a sigmoid)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        if c_in != c_out:
            raise ValueError(f"cse needs C_in == C_out, got {c_in} -> {c_out}")
        self.stride = stride
        self.fc1 = nn.Linear(c_in, c_in // 2)
        self.fc2 = nn.Linear(c_in // 2, c_in)
        self.gate = nn.Hardswish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        squeezed = x.reshape(b, c, -1).mean(dim=2)
        weights = self.gate(self.fc2(F.relu(self.fc1(squeezed))))
        out = torch.mul(x, weights.view(b, c, 1, 1))
        return out[:, :, :: self.stride, :: self.stride] if self.stride > 1 else out


class PosEnc(nn.Module):
    """A learned positional embedding added to the patch grid of attention networks."""

    def __init__(self, channels: int, grid: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1, channels, grid, grid))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight


def edge_module(op: str, c_in: int, c_out: int, stride: int, norm: str, track: bool) -> nn.Module:
    """The module of one cell edge."""
    info = op_info(op)
    kind, k = info.kind, info.kernel
    if kind == "none":
        return Skipped()
    if kind == "skip":
        return nn.Identity() if stride == 1 else FactorizedReduce(c_in, c_out, norm, track)
    if kind == "max_pool":
        return nn.MaxPool2d(k, stride=stride, padding=k // 2)
    if kind == "avg_pool":
        return nn.AvgPool2d(k, stride=stride, padding=k // 2, count_include_pad=False)
    if kind == "conv":
        return ReLUConvNorm(c_in, c_out, k, stride, norm, track)
    if kind == "conv2":
        return FactorizedConv(c_in, c_out, k, stride, norm, track)
    if kind == "sep_conv":
        return SepConv(c_in, c_out, k, stride, norm, track)
    if kind == "dil_conv":
        return DilConv(c_in, c_out, k, stride, norm, track)
    if kind == "msa":
        return Attention(c_in, c_out, stride)
    if kind == "cse":
        return ChannelSE(c_in, c_out, stride)
    raise ValueError(f"no module for edge op {op!r}")  # pragma: no cover - PRIMITIVES are all above


def adapter_module(kind: str, c_in: int, c_out: int, norm: str, track: bool) -> nn.Module:
    """A cell input adapter (plan kinds: reduce, conv, stride, identity, unused)."""
    if kind == "unused":
        return Skipped()
    if kind == "reduce":
        return FactorizedReduce(c_in, c_out, norm, track)
    if kind == "conv":
        return ReLUConvNorm(c_in, c_out, 1, 1, norm, track)
    if kind == "stride":
        return Subsample(2)
    return nn.Identity()
