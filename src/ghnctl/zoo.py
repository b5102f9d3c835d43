"""Model specs -> ``nn.Module``: the one place every command turns a name into a model.

Accepted specs:

* a torchvision classification model name: ``resnet50``, ``vit_b_16``, ...
* ``pkg.module:factory``: a callable imported from an installed module (the current directory
  comes first on the path, as with ``python -m``),
* ``path/to/file.py:factory``: a callable from a Python file, imported with importlib,
* ``timm:NAME``: a timm model (needs ``pip install 'ghnctl[timm]'``),
* ``deepnets:SPLIT/INDEX``: net INDEX of a split of ghnctl's DeepNets generator (``ghnctl.nets``),
  built for 32x32 inputs and 10 classes by default (224 gives the ImageNet variant, 1000 classes).

Models are always built without pretrained weights. ``num_classes`` is passed to the factory when
given. inception_v3 and googlenet are built with ``aux_logits=False, init_weights=True``, the
convention of the official GHN code and of the golden files.

torch and torchvision are imported inside the functions, so importing this module is cheap; a
misspelt torchvision name and ``list_models`` are answered without them when the stored name list
matches the installed torchvision (see ``ghnctl.tv_names``).
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ghnctl import tv_names
from ghnctl.errors import MissingExtra, ModelBuildError, UnknownModel, UsageError

DEEPNETS_PREFIX = "deepnets:"

if TYPE_CHECKING:
    from torch import nn

DEFAULT_IMAGE_SIZE = 224
# Models whose default input is not 224x224 (torchvision's own transforms for them).
_IMAGE_SIZE = {"inception_v3": 299}
# Extra constructor arguments (the golden convention: no auxiliary heads, torchvision's init).
_EXTRA_KWARGS: dict[str, dict[str, Any]] = {
    "inception_v3": {"aux_logits": False, "init_weights": True},
    "googlenet": {"aux_logits": False, "init_weights": True},
}
# Class count when --num-classes is not given; a user factory's default is unknown (None).
_DEFAULT_NUM_CLASSES = {"torchvision": 1000, "timm": 1000}
TIMM_HINT = "install it with: pip install 'ghnctl[timm]'"


@dataclass
class ModelSpec:
    """A model built from a spec, with what the commands need to know about it.

    ``arch`` is a short name for titles and default file names (the torchvision or timm name, or
    the factory's name); ``source`` is ``torchvision``, ``module``, ``file`` or ``timm``;
    ``image_size`` is the side of the square input the model expects.
    """

    spec: str
    arch: str
    source: str
    model: nn.Module
    image_size: int
    num_classes: int | None


def spec_name(spec: str) -> str:
    """The short name of a spec without building anything (for default output file names)."""
    if spec.startswith(DEEPNETS_PREFIX):
        name = "deepnets_" + spec[len(DEEPNETS_PREFIX):].replace("/", "_")  # deepnets:test/17 -> deepnets_test_17
    else:
        name = spec.rsplit(":", 1)[-1] if ":" in spec else spec
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "model"


def resolve_model(
    spec: str,
    num_classes: int | None = None,
    image_size: int | None = None,
    seed: int | None = None,
) -> ModelSpec:
    """Build the model named by ``spec`` (see the module docstring for the accepted forms).

    ``image_size`` overrides the model's default input size (it is not passed to the factory).
    With ``seed``, the model is initialised as after ``torch.manual_seed(seed)`` (the golden
    convention) without touching the caller's global RNG.

    Raises UnknownModel (with a did-you-mean hint) for names that resolve to nothing,
    MissingExtra for ``timm:`` without timm, UsageError for bad arguments and ModelBuildError when
    the factory fails or returns something that is not an ``nn.Module``.
    """
    if num_classes is not None and num_classes < 1:
        raise UsageError(f"--num-classes must be at least 1, got {num_classes}")
    if image_size is not None and image_size < 1:
        raise UsageError(f"--image-size must be at least 1, got {image_size}")
    spec = spec.strip()
    if not spec:
        raise UnknownModel("empty model name", hint="give a torchvision name such as resnet50")
    if spec.startswith(DEEPNETS_PREFIX):
        return _resolve_deepnets(spec, num_classes, image_size, seed)

    arch, source, factory, kwargs, default_size = _find_factory(spec)
    if num_classes is not None:
        _check_accepts(factory, "num_classes", spec)
        kwargs["num_classes"] = num_classes
    model = _call_factory(factory, kwargs, spec, seed)
    return ModelSpec(
        spec=spec,
        arch=arch,
        source=source,
        model=model,
        image_size=image_size or default_size,
        num_classes=num_classes if num_classes is not None else _DEFAULT_NUM_CLASSES.get(source),
    )


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted torchvision classification model names, filtered by ``pattern``.

    A pattern with ``*``, ``?`` or ``[`` is a shell-style glob, anything else a substring; both are
    case-insensitive.
    """
    names = tv_names.names()
    if not pattern:
        return names
    pattern = pattern.lower()
    if any(c in pattern for c in "*?["):
        return [n for n in names if fnmatch.fnmatchcase(n.lower(), pattern)]
    return [n for n in names if pattern in n.lower()]


def did_you_mean(name: str, candidates: list[str], n: int = 3) -> str | None:
    """A ``did you mean a, b?`` hint, or None when nothing is close."""
    matches = difflib.get_close_matches(name, candidates, n=n, cutoff=0.6)
    return f"did you mean {', '.join(matches)}?" if matches else None


# --------------------------------------------------------------------------------------------
# spec forms


def _find_factory(spec: str) -> tuple[str, str, Callable[..., Any], dict[str, Any], int]:
    """Return (arch, source, factory, kwargs, default image size) for ``spec``."""
    if ":" in spec:
        prefix, _, name = spec.partition(":")
        if prefix == "timm":
            return _timm_factory(name, spec)
        # rpartition: the factory follows the last colon (a Windows path has one of its own).
        target, _, attr = spec.rpartition(":")
        if not target or not attr:
            raise UnknownModel(f"model spec {spec!r} is incomplete", hint="use module:factory or file.py:factory")
        if target.endswith(".py") or "/" in target or os.sep in target:
            module = _import_file(target, spec)
            source = "file"
        else:
            module = _import_module(target, spec)
            source = "module"
        return attr, source, _get_factory(module, attr, spec), {}, DEFAULT_IMAGE_SIZE
    return _torchvision_factory(spec)


def _torchvision_factory(name: str) -> tuple[str, str, Callable[..., Any], dict[str, Any], int]:
    stored = tv_names.static_names()
    if stored is not None and name not in stored:
        # The stored list is the installed torchvision's: the name is certainly wrong, and saying
        # so now spares the seconds of importing torch.
        raise _unknown_torchvision_name(name, list(stored))
    import torchvision

    names = tv_names.imported_names()
    if name not in names:
        raise _unknown_torchvision_name(name, names)
    kwargs: dict[str, Any] = {"weights": None, **_EXTRA_KWARGS.get(name, {})}
    factory = torchvision.models.get_model_builder(name)
    return name, "torchvision", factory, kwargs, _IMAGE_SIZE.get(name, DEFAULT_IMAGE_SIZE)


def _unknown_torchvision_name(name: str, names: list[str]) -> UnknownModel:
    hint = did_you_mean(name, names) or "run `ghnctl graph --list` to see the torchvision names"
    return UnknownModel(f"unknown model {name!r}", hint=hint)


def _timm_factory(name: str, spec: str) -> tuple[str, str, Callable[..., Any], dict[str, Any], int]:
    try:
        import timm
    except ImportError as exc:
        raise MissingExtra(f"{spec!r} needs timm, which is not installed", hint=TIMM_HINT) from exc
    if not name:
        raise UnknownModel("timm: needs a model name", hint="for example timm:resnet18")
    base = name.split(".", 1)[0]  # "resnet18.a1_in1k": the part after the dot is a weights tag
    if not timm.is_model(base):
        hint = did_you_mean(base, timm.list_models()) or "see timm.list_models() for the names"
        raise UnknownModel(f"unknown timm model {name!r}", hint=hint)

    def build(**kwargs: Any) -> nn.Module:
        return timm.create_model(name, pretrained=False, **kwargs)

    cfg = timm.get_pretrained_cfg(name)
    size = int(cfg.input_size[-1]) if cfg is not None and cfg.input_size else DEFAULT_IMAGE_SIZE
    return base, "timm", build, {}, size


@contextlib.contextmanager
def _path_first(directory: str) -> Iterator[None]:
    """Put ``directory`` first on ``sys.path`` while importing, so sibling modules are found."""
    sys.path.insert(0, directory)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(directory)


def _import_module(module_name: str, spec: str) -> Any:
    with _path_first(os.getcwd()):
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only "this module is missing" is an unknown model; a missing import inside it is a build error.
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                raise UnknownModel(
                    f"cannot import module {module_name!r} for model {spec!r}",
                    hint="check the spelling, or use path/to/file.py:factory for a file",
                ) from exc
            raise ModelBuildError(f"importing {module_name!r} failed: {exc}") from exc
        except Exception as exc:
            raise ModelBuildError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc


def _import_file(file_name: str, spec: str) -> Any:
    path = Path(file_name).expanduser().resolve()
    if not path.is_file():
        raise UnknownModel(f"model file {file_name!r} does not exist", hint=f"spec was {spec!r}")
    # A name unique per file, so two model files called models.py do not collide in sys.modules.
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    module_name = f"ghnctl_user_{path.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    import_spec = importlib.util.spec_from_file_location(module_name, path)
    if import_spec is None or import_spec.loader is None:
        raise UnknownModel(f"cannot import {file_name!r} as Python", hint="the file must end in .py")
    module = importlib.util.module_from_spec(import_spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up here
    try:
        with _path_first(str(path.parent)):
            import_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise ModelBuildError(f"importing {file_name!r} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _get_factory(module: Any, attr: str, spec: str) -> Callable[..., Any]:
    factory = getattr(module, attr, None)
    if factory is None:
        public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        hint = did_you_mean(attr, public) or f"it has: {', '.join(public[:10]) or 'no callables'}"
        raise UnknownModel(f"{spec!r}: {module.__name__} has no attribute {attr!r}", hint=hint)
    if not callable(factory):
        raise UnknownModel(f"{spec!r}: {attr!r} is not callable", hint="name a function or class")
    return factory


def _resolve_deepnets(spec: str, num_classes: int | None, image_size: int | None, seed: int | None) -> ModelSpec:
    """``deepnets:SPLIT/INDEX``: the split and index are checked before torch is imported."""
    from ghnctl import nets

    split, index, split_seed = nets.parse_spec(spec)
    net = nets.get(split, index, split_seed)
    size = image_size or nets.DEFAULT_IMAGE_SIZE
    nets.check_image_size(size)
    classes = num_classes if num_classes is not None else nets.default_num_classes(size)
    model = _call_factory(lambda: net.build(size, classes), {}, spec, seed)
    return ModelSpec(spec=spec, arch=net.spec, source="deepnets", model=model, image_size=size, num_classes=classes)


# --------------------------------------------------------------------------------------------
# building


def _check_accepts(factory: Callable[..., Any], arg: str, spec: str) -> None:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins and C extensions: let the call decide
        return
    if arg in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    flag = "--" + arg.replace("_", "-")
    raise UsageError(f"{spec!r} does not take {arg}", hint=f"drop {flag} or add a {arg} argument to the factory")


def _call_factory(factory: Callable[..., Any], kwargs: dict[str, Any], spec: str, seed: int | None) -> nn.Module:
    import torch
    from torch import nn

    try:
        if seed is None:
            model = factory(**kwargs)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = factory(**kwargs)
    except Exception as exc:
        raise ModelBuildError(
            f"building model {spec!r} failed: {type(exc).__name__}: {exc}",
            hint="check --num-classes and the factory's arguments",
        ) from exc
    if not isinstance(model, nn.Module):
        raise ModelBuildError(
            f"{spec!r} returned {type(model).__name__}, not a torch.nn.Module",
            hint="the factory must return the model",
        )
    return model
