"""A literal transcription of the official decoding, as an oracle and a speed baseline.

``reference_predict`` follows the official ``GHN3.forward`` step by step: nodes grouped by the
official shape key, the conv decoder run on the whole S x S grid and all C0 x C1 channel pairs of
the group's key, then the official slice/tile rules (``_tile_params``) per tensor. It is slow on
purpose (it does the arithmetic the official code does); ``ghnctl.predict`` must agree with it to
float32 round-off. Not for production use: kernels larger than S are resized node by node here
(the official code asserts a single node per such group).
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import nn

from ..graph.model import GhnGraph
from .assign import layered_targets, match_nodes, normalize
from .model import GHN


def reference_predict(ghn: GHN, model: nn.Module, graph: GhnGraph) -> nn.Module:
    """Predict ``model``'s parameters the way the official code does (single model, defaults)."""
    config = ghn.config
    targets = layered_targets(model)
    assignments, _ = match_nodes([(n.index, n.param) for n in graph.nodes], targets, config)
    shapes = [n.shape for n in graph.nodes]
    for a in assignments:
        shapes[a.node] = a.writes[0].target.shape
    with torch.no_grad():
        x = ghn.embed_nodes(graph, shapes)
        groups: dict[tuple[int, ...], list] = defaultdict(list)
        for a in assignments:
            groups[a.key].append(a)
        for key, members in groups.items():
            rows = x[[a.node for a in members]]
            if len(key) == 2 and key[1] > 0:
                w = _decode_full(ghn, rows, (key[0], key[1], 1, 1), class_pred=True)
            elif len(key) == 3:
                w = ghn.decoder_1d(rows).view(len(members), -1, 1, 1)
            elif len(key) == 2:
                w = ghn.decoder_1d(rows).view(len(members), 2, -1)
                if key[1] < 0:
                    w = ghn.bias_class(w)
            else:
                w = _decode_full(ghn, rows, key, class_pred=False)
            for i, a in enumerate(members):
                for write in a.writes:
                    pred = w[i][write.row] if len(write.target.shape) == 1 else w[i]
                    value = _tile_official(pred, write.target.shape, centre=not config.is_ghn2)
                    value = normalize(value, write.target.shape, write.as_weight)
                    param = write.target.parameter()
                    if param is not None:
                        param.copy_(value.reshape(param.shape))
    return model


def _decode_full(ghn: GHN, x: torch.Tensor, request: tuple[int, ...], class_pred: bool) -> torch.Tensor:
    """The official ConvDecoder3.forward: full grid, all channel pairs, then slicing."""
    decoder = ghn.decoder
    c0, c1, s, _ = ghn.config.max_shape
    n = len(x)
    grid = decoder.fc(x).view(n, -1, s, s)
    if ghn.config.is_ghn2:
        grid = grid[:, :, : request[2], : request[3]]
    else:
        mid = s // 2
        grid = grid[:, :, max(0, mid - request[2] // 2): mid + math.ceil(request[2] / 2),
                    max(0, mid - request[3] // 2): mid + math.ceil(request[3] / 2)]
    h, w = min(s, request[2]), min(s, request[3])
    out = decoder.conv(grid.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    out = out.reshape(n, c0, c1, h, w)[:, :, : request[1]]
    if min(request[2:]) > min(h, w):
        out = torch.stack([F.interpolate(o, size=request[2:], mode="bilinear", align_corners=False)
                           for o in out])
    if class_pred:
        centre = out[:, :, :, out.shape[-2] // 2, out.shape[-1] // 2]
        return decoder.class_layer_predictor(centre.permute(0, 2, 1)).permute(0, 2, 1)
    return out[:, : request[0]]


def _centre(size: int, keep: int) -> slice:
    mid = size // 2
    return slice(mid - keep // 2, mid + math.ceil(keep / 2))


def _tile_official(w: torch.Tensor, target: tuple[int, ...], centre: bool) -> torch.Tensor:
    """The official ``_tile_params``: slice the prediction, tile channels, chop to the target."""
    t, s = target, w.shape
    if len(t) == 1:
        w = w[: min(t[0], s[0])] if len(s) == 1 else w[: min(t[0], s[0]), 0]
    elif len(t) == 2:
        w = w[: min(t[0], s[0]), : min(t[1], s[1])]
        if len(s) > 2:
            w = w[:, :, s[-2] // 2, s[-1] // 2]
    elif len(t) == 3:  # positional embedding (1, T, D) from a (1, C, s, s) prediction
        w = w.reshape(*s[:2], -1).permute(0, 2, 1)
        w = w[: min(t[0], w.shape[0]), : min(t[1], w.shape[1]), : min(t[2], w.shape[2])]
        token = torch.normal(mean=0.0, std=0.02, size=(1, 1, w.shape[2]), device=w.device)
        w = torch.cat((token, w), dim=1)
    elif len(s) > 2:
        k2, k3 = min(t[2], s[2]), min(t[3], s[3])
        rows, cols = (_centre(s[2], k2), _centre(s[3], k3)) if centre else (slice(0, k2), slice(0, k3))
        w = w[: min(t[0], s[0]), : min(t[1], s[1]), rows, cols]
    else:
        w = w[: min(t[0], s[0]), : min(t[1], s[1])][:, :, None, None]
    reps = [math.ceil(a / b) for a, b in zip(t, w.shape)]
    w = w.repeat(reps)
    if len(t) == 4 and centre:
        return w[: t[0], : t[1], _centre(w.shape[2], t[2]), _centre(w.shape[3], t[3])]
    return w[tuple(slice(0, n) for n in t)]
