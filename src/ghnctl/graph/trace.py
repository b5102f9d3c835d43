"""Trace a model's autograd graph into raw nodes and edges, the way the official GHN code does.

The official code runs ``model(torch.randn(2, 3, H, W))`` on the real model, which updates
BatchNorm running statistics and consumes the global RNG. We run the same forward pass through
``torch.func.functional_call`` with substitute tensors, so the user's model is never touched:

* ``fake`` (default): parameters, buffers and input are FakeTensors on the model's device. Autograd
  records the same graph (FakeTensors dispatch like real CPU/CUDA tensors, e.g. the same
  scaled-dot-product-attention kernel), but no arithmetic is done, so tracing ViT-H costs nothing.
* ``real``: real parameters, cloned buffers, a forked RNG. For models whose forward needs real
  values (data-dependent control flow).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ModelBuildError


@dataclass
class RawNode:
    """A node of the unfiltered graph: a parameter leaf or an autograd function."""

    name: str  # parameter name ("<module path>.<param>") or autograd class name
    module: nn.Module | None = None
    module_path: str | None = None
    size: tuple[int, ...] | None = None  # parameter size
    kernel_size: str | None = None  # str() of the autograd node's saved kernel_size, if any
    is_param: bool = False


@dataclass
class RawGraph:
    nodes: list[RawNode]
    edges: list[tuple[int, int]]  # (src, dst) in creation order, may contain duplicates


def parameter_names(model: nn.Module) -> dict[int, tuple[str, nn.Module, str]]:
    """Map ``id(parameter)`` to (``"<module path>.<param name>"``, owning module, module path).

    Iterates every module's own parameters like the official code; a tied parameter keeps the
    name it was last seen under (the official dict comprehension overwrites).
    """
    names: dict[int, tuple[str, nn.Module, str]] = {}
    for path, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            if p is not None:
                names[id(p)] = (f"{path}.{pname}", module, path)
    return names


def _device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    raise ModelBuildError("the model has no parameters", "a GHN predicts parameters; nothing to do")


@contextlib.contextmanager
def _fake_mode() -> Iterator[Any]:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=False) as mode:
        yield mode


def _fake_like(t: torch.Tensor) -> torch.Tensor:
    # Inside FakeTensorMode a factory call makes a FakeTensor; this is cheaper than from_tensor(),
    # which also records the real tensor's metadata history we do not need.
    return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device)


def _forward(model: nn.Module, input_size: tuple[int, ...], mode: str) -> tuple[Any, dict[int, int]]:
    """Run the dummy forward pass; return the output and a map id(substitute) -> id(original param)."""
    device = _device_of(model)
    named_params = dict(model.named_parameters())
    named_buffers = dict(model.named_buffers())
    subst: dict[int, int] = {}
    if mode == "fake":
        ctx: contextlib.AbstractContextManager[Any] = _fake_mode()
    else:
        devices = [device] if device.type == "cuda" else []
        ctx = torch.random.fork_rng(devices=devices)
    with ctx, torch.enable_grad():
        tensors: dict[str, torch.Tensor] = {}
        for name, p in named_params.items():
            if mode == "fake":
                t = _fake_like(p).requires_grad_(p.requires_grad)
            else:
                t = p.detach().requires_grad_(p.requires_grad)
            subst[id(t)] = id(p)
            tensors[name] = t
        for name, b in named_buffers.items():
            tensors[name] = _fake_like(b) if mode == "fake" else b.clone()
        # batch 2 and torch.randn like the official code (batch size affects e.g. BN in train mode)
        x = torch.randn(2, *input_size, device=device)
        out = torch.func.functional_call(model, tensors, (x,), strict=False, tie_weights=True)
    return out, subst


def _outputs(out: Any) -> list[torch.Tensor]:
    if isinstance(out, dict):
        out = list(out.values())
    if not isinstance(out, (tuple, list)):
        out = [out]
    return [v for v in out if v is not None]


def trace(model: nn.Module, input_size: tuple[int, ...], mode: str = "fake") -> RawGraph:
    """Trace ``model`` on a (2, *input_size) input and collect the raw graph (official order)."""
    if mode not in ("fake", "real"):
        raise ValueError(f"unknown trace mode {mode!r}")
    out, subst = _forward(model, input_size, mode)
    originals = parameter_names(model)
    params = {sid: originals[oid] for sid, oid in subst.items() if oid in originals}
    return _walk(_outputs(out), params)


def _saved_kernel_size(fn: Any) -> str | None:
    # Only pooling nodes use a saved attribute (kernel_size); reading every _saved_* attribute
    # of every node, as the official code does, is slow and unnecessary.
    try:
        val = fn._saved_kernel_size
    except AttributeError:
        return None
    return str(val)


def _walk(outputs: list[torch.Tensor], params: dict[int, tuple[str, nn.Module, str]]) -> RawGraph:
    """Depth-first walk over autograd nodes, reproducing the official node and edge order.

    Iterative (explicit stack) so deep models need no recursion-limit change. For each autograd
    function: its parameter leaves (AccumulateGrad children) become nodes, or the function itself
    when it has none; the function "links" to consumers through its last leaf; children are
    walked in ``next_functions`` order and connected ``child -> first leaf`` (``first leaf ->
    child`` when the child is a bias leaf).
    """
    nodes: list[RawNode] = []
    node_of: dict[Any, int] = {}  # leaf object (AccumulateGrad or function) -> node index
    seen: dict[Any, tuple[int | None, str]] = {}
    edges: list[tuple[int, int]] = []

    def open_frame(fn: Any) -> list[Any]:
        fn_name = type(fn).__name__
        link: int | None = None
        start: int | None = None
        if "AccumulateGrad" not in fn_name:
            leaves: list[tuple[Any, RawNode]] = []
            for child, _ in fn.next_functions:
                if child is not None and hasattr(child, "variable"):
                    var = child.variable
                    try:
                        name, module, path = params[id(var)]
                    except KeyError:
                        raise ModelBuildError(
                            f"a tensor that requires grad but is not a registered parameter "
                            f"(shape {tuple(var.shape)}) reaches the output",
                            "register it with nn.Parameter or detach it",
                        ) from None
                    leaves.append((child, RawNode(name, module, path, tuple(var.shape), is_param=True)))
            if not leaves:
                leaves.append((fn, RawNode(fn_name, kernel_size=_saved_kernel_size(fn))))
            for obj, raw in leaves:
                idx = node_of.get(obj)
                if idx is None:
                    idx = len(nodes)
                    node_of[obj] = idx
                    nodes.append(raw)
                else:  # the official dict keeps the first position and takes the newest record
                    nodes[idx] = raw
                link = idx
                if start is None:
                    start = idx
                seen[obj] = (idx, raw.name)
        seen[fn] = (link, fn_name)
        children = [c for c, _ in fn.next_functions if c is not None] if hasattr(fn, "next_functions") else []
        return [fn, start, link, fn_name, children, 0]

    for out in outputs:
        if out.grad_fn is None:
            continue
        root = out.grad_fn
        if root in seen:
            continue
        stack = [open_frame(root)]
        while stack:
            frame = stack[-1]
            _, start, _, _, children, pos = frame
            if pos == len(children):
                stack.pop()
                continue
            child = children[pos]
            if child not in seen:
                # walk the child first; this position is handled when its frame is done
                stack.append(open_frame(child))
                continue
            frame[5] = pos + 1
            child_link, child_name = seen[child]
            if child_link is not None and child_link != start:
                edges.append((start, child_link) if "bias" in child_name else (child_link, start))
    return RawGraph(nodes, edges)
