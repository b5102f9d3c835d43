"""``--device`` for every command: ``auto`` picks cuda, then mps, then cpu; others must exist."""

from __future__ import annotations

import torch

from .errors import UsageError

DEVICE_CHOICES = ("cpu", "cuda", "mps", "auto")
_HINT = "use auto, cpu, cuda, cuda:N or mps"


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def check_device_name(name: str) -> str:
    """``name`` lower-cased when it names a device kind ghnctl knows (UsageError otherwise);
    whether the device exists is ``resolve_device``'s question, asked when the run starts."""
    text = str(name).strip().lower()
    kind, _, index = text.partition(":")
    if kind not in DEVICE_CHOICES or (index and (kind in ("cpu", "auto") or not index.isdigit())):
        raise UsageError(f"unknown --device {name!r}", hint=_HINT)
    return text


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; an explicit device must exist (UsageError)."""
    name = check_device_name(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name} but CUDA is not available", hint="use --device cpu or auto")
    if name.startswith("mps") and not mps_available():
        raise UsageError(f"--device {name} but MPS is not available", hint="use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise UsageError(f"invalid device {name!r}: {exc}", hint=_HINT) from None
