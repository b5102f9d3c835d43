"""Initialisation strategies for fine-tuning: ``random``, ``ghn`` and ``file:PATH.safetensors``.

* ``random``: the model keeps the initialisation its constructor gave it (torchvision's own).
* ``ghn``: a GHN predicts the parameters (spec section 6: BN running statistics tracked, no
  gradients kept, full graph), then a little noise breaks the symmetry of tiled predictions:
  ``W += beta * std(corrcoef(W2d)) * N(0, 1)`` for every module with a >=2-D weight except the last
  one (the classifier); BN weights and all biases are left alone. ``--orth`` additionally replaces
  each of those weights by the orthogonal factor of its QR decomposition, as the official
  ``ppuda.utils.init(orth=True)`` does (not part of the published fine-tuning recipe).
  When the GHN was trained for a different number of classes than the data has, the classifier is
  not predicted and keeps its random initialisation (the official ``predict_class_layers=False``).
* ``file:PATH``: parameters loaded strictly from a safetensors file (e.g. ``ghnctl predict`` output):
  every parameter must be present with its shape and nothing unknown may be in the file; buffers
  (BN running statistics) are loaded when present.
The noise and orthogonalisation are ``ghnctl.perturb``'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ghnctl.errors import GhnctlError, UsageError, excerpt
from ghnctl.perturb import DEFAULT_NOISE, classifier_module, perturb_

DEFAULT_GHN = "auto"  # the hub's choice: best cached official GHN-3, else ghn3xlm16
INIT_KINDS = ("ghn", "random", "file")

# A predictor takes the model and whether to predict the classifier, and either writes the
# predicted parameters into the model or returns them (a state_dict or a new model).
Predictor = Callable[[nn.Module, bool], "Mapping[str, torch.Tensor] | nn.Module | None"]


class InitError(GhnctlError):
    """The initialisation could not be applied (file mismatch, GHN engine missing, ...)."""


@dataclass(frozen=True)
class InitSpec:
    """A parsed ``--init`` value with its options. Validated on construction (UsageError)."""

    kind: str
    path: Path | None = None
    ghn: str = DEFAULT_GHN
    noise: float = DEFAULT_NOISE
    orth: bool = False

    def __post_init__(self) -> None:
        if self.kind not in INIT_KINDS:
            raise UsageError(f"unknown --init {self.kind!r}", hint="use ghn, random or file:PATH.safetensors")
        if self.kind == "file" and self.path is None:
            raise UsageError("--init file: needs a path", hint="for example --init file:resnet18.safetensors")
        if not (self.noise >= 0 and math.isfinite(self.noise)):
            raise UsageError(f"--noise must be a finite number >= 0, got {self.noise}")
        if self.kind == "ghn" and not self.ghn.strip():
            raise UsageError("--ghn is empty", hint=f"for example --ghn {DEFAULT_GHN}")

    @classmethod
    def parse(cls, text: str, ghn: str = DEFAULT_GHN, noise: float = DEFAULT_NOISE, orth: bool = False) -> InitSpec:
        """Parse ``ghn``, ``random`` or ``file:PATH``."""
        text = text.strip()
        if text.startswith("file:"):
            raw = text[len("file:") :]
            if not raw:
                raise UsageError("--init file: needs a path", hint="for example --init file:resnet18.safetensors")
            return cls("file", path=Path(raw).expanduser(), ghn=ghn, noise=noise, orth=orth)
        return cls(text.lower(), ghn=ghn, noise=noise, orth=orth)

    @property
    def label(self) -> str:
        if self.kind == "file":
            return f"file:{self.path}"
        if self.kind == "ghn":
            return f"ghn:{self.ghn}"
        return self.kind

    @property
    def pretrained(self) -> bool:
        """True when the parameters come from elsewhere (GHN or file): the lr default is lower."""
        return self.kind != "random"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "label": self.label}
        if self.kind == "file":
            out["path"] = str(self.path)
        if self.kind == "ghn":
            out.update(ghn=self.ghn, noise=self.noise, orth=self.orth)
        return out


@dataclass
class InitReport:
    """What an initialisation did, for the report and the saved metadata."""

    init: dict[str, Any]
    classifier: str | None = None
    classifier_predicted: bool | None = None
    ghn_num_classes: int | None = None
    predicted: int | None = None
    unpredicted: list[str] = field(default_factory=list)
    noised: int = 0
    orthogonalized: int = 0
    loaded: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "init": self.init,
            "classifier": self.classifier,
            "classifier_predicted": self.classifier_predicted,
            "ghn_num_classes": self.ghn_num_classes,
            "predicted_tensors": self.predicted,
            "unpredicted": self.unpredicted,
            "noised_layers": self.noised,
            "orthogonalized_layers": self.orthogonalized,
            "loaded_tensors": self.loaded,
            "notes": self.notes,
        }


def apply_init(
    model: nn.Module,
    spec: InitSpec,
    num_classes: int,
    seed: int = 0,
    predictor: Predictor | None = None,
    ghn_num_classes: int | None = None,
    ghn_path: Path | None = None,
    image_size: int | None = None,
) -> InitReport:
    """Initialise ``model`` (on the CPU) in place according to ``spec``.

    The GHN path is ``ghnctl.predict.init_model`` on the GHN ``spec.ghn`` (or ``ghn_path``, already
    resolved, e.g. by the CLI with download feedback), loaded with ``ghnctl.load_ghn``.
    ``predictor``/``ghn_num_classes`` replace the GHN engine (tests): it runs under a forked,
    seeded global RNG, then the same perturbations are applied. Either way the result is
    reproducible from ``seed`` and the caller's RNG is untouched. ``image_size`` (the data's) adds
    a note when the GHN was trained on another size.
    """
    report = InitReport(init=spec.to_dict())
    if spec.kind == "random":
        return report
    if spec.kind == "file":
        assert spec.path is not None
        report.loaded = load_file_init(model, spec.path)
        return report

    ghn = None
    if predictor is None:
        from ghnctl.loader import load_ghn, load_resolved

        ghn = load_resolved(spec.ghn, ghn_path) if ghn_path is not None else load_ghn(spec.ghn)
        ghn_num_classes = ghn.config.num_classes
    predict_classifier = ghn_num_classes is None or ghn_num_classes == num_classes
    report.ghn_num_classes = ghn_num_classes
    report.classifier_predicted = predict_classifier
    name, _ = classifier_module(model)
    report.classifier = name
    if not predict_classifier:
        report.notes.append(
            f"the GHN predicts {ghn_num_classes} classes and the data has {num_classes}: "
            f"classifier {name!r} keeps its random initialisation"
        )
    if ghn is not None:
        from ghnctl.predict import init_model

        result = init_model(ghn, model, seed=seed, noise=spec.noise, orth=spec.orth,
                            predict_class_layers=predict_classifier)
        report.predicted = len(result.report.predicted)
        report.unpredicted = [p.name for p in result.report.unpredicted]
        report.notes.extend(result.report.warnings)
        from ghnctl.fit import fit_notes

        report.notes.extend(fit_notes(ghn.source.name, ghn.config.num_classes, ghn.source.trained_image_size,
                                      type(model).__name__, None, image_size))
        report.noised, report.orthogonalized = result.noised, result.orthogonalized
        return report
    predict_into(model, predictor, predict_classifier, seed)
    report.noised, report.orthogonalized = perturb_(model, noise=spec.noise, orth=spec.orth, seed=seed)
    return report


def predict_into(model: nn.Module, predictor: Predictor, predict_classifier: bool, seed: int) -> None:
    """Run ``predictor`` and make sure its result is in ``model``.

    The classifier's tensors are restored afterwards when ``predict_classifier`` is false, whether
    or not the predictor honoured the flag.
    """
    _, head = classifier_module(model)
    saved = {k: v.detach().clone() for k, v in head.named_parameters(recurse=False)} if head is not None else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # graph construction draws a dummy input from the global RNG
        result = predictor(model, predict_classifier)
    if isinstance(result, nn.Module) and result is not model:
        result = result.state_dict()
    if isinstance(result, Mapping):
        own = model.state_dict()
        unknown = [k for k in result if k not in own]
        if unknown:
            raise InitError(f"the GHN returned tensors the model does not have: {', '.join(unknown[:5])}")
        with torch.no_grad():
            for key, value in result.items():
                if own[key].shape != value.shape:
                    raise InitError(
                        f"the GHN predicted {key!r} with shape {tuple(value.shape)}, "
                        f"the model has {tuple(own[key].shape)}"
                    )
                own[key].copy_(value)
    if not predict_classifier and head is not None:
        with torch.no_grad():
            for key, value in head.named_parameters(recurse=False):
                value.copy_(saved[key])


# --------------------------------------------------------------------------------------------
# file:PATH


def load_file_init(model: nn.Module, path: Path) -> int:
    """Load parameters (and buffers present in the file) strictly; return the tensor count."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise InitError(f"init file {str(path)!r} does not exist")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InitError(f"cannot read {str(path)!r} as safetensors: {exc}") from exc
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    missing = [k for k in params if k not in tensors]
    unknown = [k for k in tensors if k not in params and k not in buffers]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unknown:
            parts.append(f"{len(unknown)} unexpected (e.g. {', '.join(excerpt(k) for k in unknown[:3])})")
        raise InitError(
            f"{path.name} does not match the model: " + "; ".join(parts),
            hint="was it made for this model (and number of classes)?",
        )
    own = {**buffers, **params}
    for key, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise InitError(f"{path.name}: {excerpt(key)} holds NaN or infinite values",
                            hint="the file is broken; predict or train it again")
        if own[key].shape != value.shape:
            raise InitError(
                f"{path.name}: {excerpt(key)} has shape {tuple(value.shape)}, the model has {tuple(own[key].shape)}",
                hint="was it made for this model (and number of classes)?",
            )
    with torch.no_grad():
        for key, value in tensors.items():
            own[key].copy_(value)
    return len(tensors)
