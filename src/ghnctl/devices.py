"""``--device`` for every command: ``auto`` picks cuda, then mps, then cpu; others must exist."""

from __future__ import annotations

import torch

from .errors import UsageError

DEVICE_CHOICES = ("cpu", "cuda", "mps", "auto")


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; an explicit device must exist (UsageError)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if name.split(":")[0] not in DEVICE_CHOICES:
        raise UsageError(f"unknown device {name!r}", hint="use cpu, cuda, cuda:N, mps or auto")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name} but CUDA is not available", hint="use --device cpu or auto")
    if name.startswith("mps") and not mps_available():
        raise UsageError(f"--device {name} but MPS is not available", hint="use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise UsageError(f"invalid device {name!r}: {exc}", hint="use cpu, cuda, cuda:N, mps or auto") from None
