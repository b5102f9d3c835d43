"""Trace a model's autograd graph into raw nodes and edges, the way the official GHN code does.

The official code runs ``model(torch.randn(2, 3, H, W))`` on the real model, which updates
BatchNorm running statistics and consumes the global RNG. We run the same forward pass through
``torch.func.functional_call`` with substitute tensors, so the user's model is never touched:

* ``shape`` (tried first by ``build_graph``): parameters, buffers and input are ShapeTensors,
  tensors that carry sizes, strides and a device but no data. Autograd records the same graph as
  on real tensors of that device (a ShapeTensor reports the model's device, so device-dependent
  choices such as the scaled-dot-product-attention kernel are the real ones); output sizes come
  from PyTorch's meta kernels and are cached per op and input sizes, so an op costs a dictionary
  look-up once its sizes have been seen.
* ``fake``: the same with PyTorch's FakeTensors (slower per op, but covers what ShapeTensors
  refuse, e.g. in-place changes of sizes).
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


# ------------------------------------------------------------------------------------------------
# ShapeTensor: metadata-only tracing


class ShapeTensor(torch.Tensor):
    """A tensor with sizes, strides, dtype and device but no storage.

    Ops reach ``__torch_dispatch__`` below autograd, so autograd records exactly the graph it would
    record for real tensors of this device; the outputs' metadata comes from a cache keyed by the op
    and its inputs' metadata, filled by PyTorch's meta kernels on a miss. Anything that needs values
    (``.item()``, ``nonzero``, data-dependent shapes) raises, and the caller falls back to another
    tracing mode.
    """

    # the default __torch_function__ of subclasses costs a Python call per op; we need none
    __torch_function__ = torch._C._disabled_torch_function_impl

    @staticmethod
    def __new__(cls, size: Any, stride: Any, offset: int, dtype: torch.dtype, device: torch.device,
                requires_grad: bool = False) -> ShapeTensor:
        t = torch.Tensor._make_wrapper_subclass(  # type: ignore[attr-defined]
            cls, size, strides=stride, storage_offset=offset, dtype=dtype, device=device,
            requires_grad=requires_grad)
        t._key = (tuple(size), tuple(stride), offset, dtype, device, True)  # see _flatten
        return t

    @classmethod
    def __torch_dispatch__(cls, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        return _dispatch(func, args, kwargs or {})


def shape_like(t: torch.Tensor, requires_grad: bool = False) -> ShapeTensor:
    """A ShapeTensor with ``t``'s sizes, strides, dtype and device."""
    return ShapeTensor(t.shape, t.stride(), t.storage_offset(), t.dtype, t.device, requires_grad)


# (op, input metadata) -> output description; see _describe. Bounded: cleared when full.
_OP_CACHE: dict[Any, Any] = {}
_OP_CACHE_MAX = 100_000
# op -> positions and names of the arguments it writes into (in-place and out= ops)
_WRITTEN: dict[Any, tuple[tuple[int, str], ...]] = {}


def _flatten(x: Any, tensors: list[torch.Tensor]) -> Any:
    """A hashable description of an op argument (tensor metadata, or the value itself); the
    tensors met on the way are appended to ``tensors``, in order."""
    if type(x) is ShapeTensor:
        tensors.append(x)
        return x._key
    if isinstance(x, torch.Tensor):
        tensors.append(x)
        return (x.shape, x.stride(), x.storage_offset(), x.dtype, x.device, False)
    if isinstance(x, (list, tuple)):
        return (type(x), tuple([_flatten(v, tensors) for v in x]))
    return x


def _dispatch(func: Any, args: tuple, kwargs: dict) -> Any:
    inputs: list[torch.Tensor] = []
    key: Any = (func, _flatten(args, inputs), _flatten(tuple(kwargs.items()), inputs) if kwargs else None)
    written = _WRITTEN.get(func)
    if written is None:
        written = _WRITTEN[func] = _written_arguments(func)
    if written:
        _refuse_real_mutation(func, written, args, kwargs)
    try:
        desc = _OP_CACHE.get(key)
    except TypeError:  # an unhashable argument: compute without the cache
        key, desc = None, None
    if desc is None:
        desc = _run_meta(func, args, kwargs, inputs)
        if key is not None:
            if len(_OP_CACHE) >= _OP_CACHE_MAX:
                _OP_CACHE.clear()
            _OP_CACHE[key] = desc
    return _build_outputs(desc, inputs)


def _collect_tensors(x: Any, out: list[torch.Tensor]) -> None:
    for v in x:
        if isinstance(v, torch.Tensor):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            _collect_tensors(v, out)


def _written_arguments(func: Any) -> tuple[tuple[int, str], ...]:
    return tuple((i, arg.name) for i, arg in enumerate(func._schema.arguments)
                 if arg.alias_info is not None and arg.alias_info.is_write)


def _refuse_real_mutation(func: Any, written: tuple[tuple[int, str], ...], args: tuple, kwargs: dict) -> None:
    # Writing computed (absent) values into a real tensor would leave it stale, and the model could
    # read it later: let the caller trace such a model another way.
    for i, name in written:
        value = args[i] if i < len(args) else kwargs.get(name)
        targets = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(t, torch.Tensor) and type(t) is not ShapeTensor for t in targets):
            raise NotImplementedError(f"{func} writes into a real tensor during shape tracing")


def _to_meta(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        numel = 1 + sum((s - 1) * st for s, st in zip(x.shape, x.stride())) if x.numel() else 0
        base = torch.empty(x.storage_offset() + numel, dtype=x.dtype, device="meta")
        return base.as_strided(x.shape, x.stride(), x.storage_offset())
    if isinstance(x, torch.device):
        return torch.device("meta")
    if isinstance(x, (list, tuple)):
        return type(x)(_to_meta(v) for v in x)
    return x


def _run_meta(func: Any, args: tuple, kwargs: dict, inputs: list[torch.Tensor]) -> Any:
    """Run ``func`` on meta copies of its inputs and describe its outputs (see _describe)."""
    if func is torch.ops.aten.native_batch_norm.default:
        desc = _batch_norm_outputs(*args, **kwargs)
        if desc is not None:
            return desc
    meta_args = _to_meta(args)
    meta_kwargs = {k: _to_meta(v) for k, v in kwargs.items()}
    meta_inputs: list[torch.Tensor] = []
    _collect_tensors(meta_args, meta_inputs)
    _collect_tensors(tuple(meta_kwargs.values()), meta_inputs)
    out = func(*meta_args, **meta_kwargs)
    device = kwargs.get("device") or next((t.device for t in inputs if type(t) is ShapeTensor), None)
    return _describe(out, {id(m): i for i, m in enumerate(meta_inputs)}, inputs, device)


def _batch_norm_outputs(x: torch.Tensor, *stats: Any, **_: Any) -> Any:
    """Outputs of ``native_batch_norm`` on a dense float input, as its meta kernel gives them.

    That meta kernel is a Python decomposition costing milliseconds per call, most of a cold
    trace of a CNN; the result is simple: the input's sizes and strides, and (C,) statistics.
    Anything unusual (other dtypes, strided inputs, mismatched parameters) takes the meta kernel.
    """
    memory_format = torch.channels_last if x.dim() == 4 else torch.contiguous_format
    dense = x.is_contiguous() or x.is_contiguous(memory_format=memory_format)
    if x.dtype not in (torch.float32, torch.float64) or x.dim() < 2 or not dense or x.storage_offset():
        return None
    channels = x.shape[1]
    if any(isinstance(t, torch.Tensor) and t.shape != (channels,) for t in stats[:4]):
        return None
    stat = ("new", torch.Size([channels]), (1,), 0, x.dtype, x.device)
    return ("seq", tuple, (("new", x.shape, x.stride(), 0, x.dtype, x.device), stat, stat))


def _describe(out: Any, input_index: dict[int, int], inputs: list[torch.Tensor], device: Any) -> Any:
    """Outputs as data: ("alias", i) for input i returned as is (in-place ops), ("new", metadata)
    for a new tensor, ("seq", type, items) for lists and tuples, ("value", v) otherwise."""
    if isinstance(out, torch.Tensor):
        i = input_index.get(id(out))
        if i is not None:
            meta = (out.shape, out.stride(), out.storage_offset())
            src = inputs[i]
            if meta == (src.shape, src.stride(), src.storage_offset()):
                return ("alias", i, None)
            if type(src) is not ShapeTensor:
                raise NotImplementedError("an in-place op changes the sizes of a real tensor")
            return ("alias", i, meta)  # e.g. as_strided_ (a channels-last adaptive_avg_pool2d)
        return ("new", out.shape, out.stride(), out.storage_offset(), out.dtype, torch.device(device))
    if isinstance(out, (list, tuple)):
        return ("seq", type(out), tuple(_describe(o, input_index, inputs, device) for o in out))
    return ("value", out)


# Keys to skip so that an op on a ShapeTensor runs the backend kernel instead of __torch_dispatch__.
_PYTHON_KEYS = (torch._C.DispatchKeySet(torch._C.DispatchKey.Python)
                | torch._C.DispatchKeySet(torch._C.DispatchKey.PythonTLSSnapshot))


def _restride(t: torch.Tensor, size: Any, stride: Any, offset: int) -> None:
    """Set a ShapeTensor's sizes and strides in place (what an in-place view op does)."""
    # The backend's as_strided_ only rewrites the tensor's metadata (its storage has no data).
    with torch._C._ExcludeDispatchKeyGuard(_PYTHON_KEYS):
        torch.ops.aten.as_strided_.default(t, size, stride, offset)
    t._key = (tuple(size), tuple(stride), offset, t.dtype, t.device, True)  # type: ignore[attr-defined]


def _build_outputs(desc: Any, inputs: list[torch.Tensor]) -> Any:
    kind = desc[0]
    if kind == "new":
        return ShapeTensor(*desc[1:])
    if kind == "alias":
        t = inputs[desc[1]]
        if desc[2] is not None:
            _restride(t, *desc[2])
        return t
    if kind == "seq":
        return desc[1](_build_outputs(d, inputs) for d in desc[2])
    return desc[1]



def _substitute(p: torch.Tensor, mode: str, is_param: bool) -> torch.Tensor:
    """The tensor that stands in for parameter or buffer ``p`` during the traced forward pass."""
    if mode == "shape":
        return shape_like(p, requires_grad=is_param and p.requires_grad)
    if mode == "fake":
        t = _fake_like(p)
        return t.requires_grad_(p.requires_grad) if is_param else t
    return p.detach().requires_grad_(p.requires_grad) if is_param else p.clone()


def _input(input_size: tuple[int, ...], device: torch.device, mode: str) -> torch.Tensor:
    # batch 2 like the official code (batch size affects e.g. BN in train mode); the values of a
    # real input come from the (forked) global RNG, a shape tensor has none
    if mode == "shape":
        return ShapeTensor((2, *input_size), _contiguous_strides((2, *input_size)), 0, torch.float32, device)
    return torch.randn(2, *input_size, device=device)


def _contiguous_strides(size: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for s in reversed(size):
        strides.append(acc)
        acc *= max(s, 1)
    return tuple(reversed(strides))


def _mode_context(mode: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if mode == "fake":
        return _fake_mode()
    # a real forward (or a factory call in a shape-traced forward, e.g. stochastic depth) draws from
    # the global RNG: fork it so the caller's stream is untouched
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


@contextlib.contextmanager
def _substituted(model: nn.Module, mode: str) -> Iterator[dict[int, tuple[str, nn.Module, str]]]:
    """Put substitutes in place of every parameter and buffer of ``model`` for the duration.

    Yields ``id(substitute parameter) -> (official name, owning module, module path)``. Like
    ``torch.func.functional_call`` (which costs several traversals of the module tree), it swaps
    the entries of each module's ``_parameters`` and ``_buffers``; a tensor shared by several
    modules gets one substitute, so tied weights stay tied. Everything is put back on exit.
    """
    names: dict[int, tuple[str, nn.Module, str]] = {}
    substitutes: dict[int, torch.Tensor] = {}
    restore: list[tuple[dict[str, Any], str, torch.Tensor]] = []
    try:
        for path, module in model.named_modules():
            named_here: set[int] = set()
            for store, is_param in ((module._parameters, True), (module._buffers, False)):
                for name, tensor in list(store.items()):
                    if tensor is None:
                        continue
                    if is_param and id(tensor) not in named_here:
                        # the official naming: module path + the first name in the module; the
                        # last module that holds the tensor wins
                        named_here.add(id(tensor))
                        names[id(tensor)] = (f"{path}.{name}", module, path)
                    sub = substitutes.get(id(tensor))
                    if sub is None:
                        sub = substitutes[id(tensor)] = _substitute(tensor, mode, is_param)
                    restore.append((store, name, tensor))
                    store[name] = sub
        yield {id(sub): names[oid] for oid, sub in substitutes.items() if oid in names}
    finally:
        for store, name, tensor in reversed(restore):
            store[name] = tensor


def _forward(model: nn.Module, input_size: tuple[int, ...], mode: str) -> tuple[Any, dict[int, Any]]:
    """Run the dummy forward pass; return the output and ``id(substitute) -> parameter name``."""
    device = _device_of(model)
    with _mode_context(mode, device), torch.enable_grad(), _substituted(model, mode) as params:
        out = model(_input(input_size, device, mode))
    return out, params


def _outputs(out: Any) -> list[torch.Tensor]:
    if isinstance(out, dict):
        out = list(out.values())
    if not isinstance(out, (tuple, list)):
        out = [out]
    return [v for v in out if v is not None]


def trace(model: nn.Module, input_size: tuple[int, ...], mode: str = "shape") -> RawGraph:
    """Trace ``model`` on a (2, *input_size) input and collect the raw graph (official order)."""
    if mode not in ("shape", "fake", "real"):
        raise ValueError(f"unknown trace mode {mode!r}")
    out, params = _forward(model, input_size, mode)
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
