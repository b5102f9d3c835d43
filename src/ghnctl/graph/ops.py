"""Which modules and autograd ops become GHN graph nodes, and their node types.

The official code looks node types up by the *exact* module class (a subclass of a supported
module passes its isinstance filter and then crashes with a KeyError). We accept subclasses,
resolving them through the class hierarchy, and record a warning instead.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

# Autograd op names (text before "Backward") that are kept as nodes, and their node types.
OP_TYPES: dict[str, str] = {
    "input": "input",
    "Mean": "glob_avg",
    "AdaptiveAvgPool2D": "glob_avg",
    "MaxPool2DWithIndices": "max_pool",
    "AvgPool2D": "avg_pool",
    "Softmax": "msa",
    "Mul": "cse",
    "Add": "sum",
    "Cat": "concat",
    "skip_connect": "sum",
}


def _conv_type(module: nn.Module, param_name: str) -> str:
    if "bias" in param_name:
        return "bias"
    if isinstance(module, nn.Conv2d) and module.groups > 1:
        return "dil_conv" if min(module.dilation) > 1 else "sep_conv"
    return "conv"


def _const(op: str) -> Callable[[nn.Module, str], str]:
    return lambda module, param_name: op


def _module_types() -> dict[type, Callable[[nn.Module, str], str]]:
    import torchvision.models as tvm

    table: dict[type, Callable[[nn.Module, str], str]] = {
        nn.Conv2d: _conv_type,
        nn.Linear: _conv_type,
        nn.modules.linear.NonDynamicallyQuantizableLinear: _conv_type,
        nn.MultiheadAttention: _conv_type,
        nn.BatchNorm2d: _const("bn"),
        nn.LayerNorm: _const("ln"),
        tvm.convnext.LayerNorm2d: _const("ln"),
        nn.Embedding: _const("pos_enc"),
        tvm.vision_transformer.Encoder: _const("pos_enc"),
    }
    return table


_TABLE: dict[type, Callable[[nn.Module, str], str]] | None = None
# Extra module classes registered by other parts of ghnctl (e.g. the DeepNets generator's PosEnc).
_EXTRA: dict[type, Callable[[nn.Module, str], str]] = {}


def register_module_type(cls: type, op: str | Callable[[nn.Module, str], str]) -> None:
    """Make modules of class ``cls`` graph nodes of type ``op`` (a node type or a function)."""
    _EXTRA[cls] = _const(op) if isinstance(op, str) else op


def module_table() -> dict[type, Callable[[nn.Module, str], str]]:
    global _TABLE
    if _TABLE is None:
        _TABLE = _module_types()
    return {**_TABLE, **_EXTRA}


def _is_hf_conv1d(module: nn.Module) -> bool:
    # HuggingFace GPT-2 Conv1D is supported by the official code; match it by name so that
    # transformers never has to be imported.
    return any(
        c.__name__ == "Conv1D" and c.__module__.startswith("transformers") for c in type(module).__mro__
    )


def is_supported_module(module: nn.Module | None) -> bool:
    if module is None:
        return False
    return isinstance(module, tuple(module_table())) or _is_hf_conv1d(module)


def module_node_type(module: nn.Module, param_name: str) -> tuple[str, bool]:
    """Node type of a parameter node; second item is True when the class matched only as a subclass."""
    table = module_table()
    fn = table.get(type(module))
    if fn is not None:
        return fn(module, param_name), False
    if _is_hf_conv1d(module):
        return _conv_type(module, param_name), False
    for cls in type(module).__mro__:
        if cls in table:
            return table[cls](module, param_name), True
    raise KeyError(type(module).__name__)


def op_name(name: str) -> str:
    """The op part of a node name: the text before ``Backward`` (or the whole name)."""
    i = name.find("Backward")
    return name if i < 0 else name[:i]


# Models whose positional encoding gets a "sum" node after it (torchvision ViT is built in), and
# the modules that hold such encodings; the DeepNets generator registers its own classes here.
POS_ENC_MODELS: list[type] = []
POS_ENC_MODULES: list[type] = []


def register_pos_enc(model_cls: type, module_cls: type) -> None:
    """Treat ``module_cls`` inside ``model_cls`` models as a positional encoding (node type pos_enc)."""
    POS_ENC_MODELS.append(model_cls)
    POS_ENC_MODULES.append(module_cls)
    register_module_type(module_cls, "pos_enc")
