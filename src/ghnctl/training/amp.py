"""Mixed precision: the autocast dtype for a device, the autocast context and the GradScaler.

Default: on for CUDA only, bf16 where the GPU supports it, else fp16 with a GradScaler (fp16's
narrow range needs loss scaling; bf16 has fp32's range and does not). On MPS autocast uses fp16,
on the CPU bf16, when asked for.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

AMP_DTYPES = ("auto", "bf16", "fp16")
_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


def resolve_amp_dtype(device: torch.device, enabled: bool | None = None, dtype: str = "auto") -> torch.dtype | None:
    """The autocast dtype, or None for fp32. ``enabled`` None means on for CUDA only."""
    if not (device.type == "cuda" if enabled is None else enabled):
        return None
    if dtype == "bf16":
        return torch.bfloat16
    if dtype == "fp16":
        return torch.float16
    if dtype != "auto":
        raise ValueError(f"unknown AMP dtype {dtype!r} (use one of {', '.join(AMP_DTYPES)})")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if device.type == "mps" else torch.bfloat16


def amp_name(dtype: torch.dtype | None) -> str | None:
    """``bf16``, ``fp16`` or None (fp32), for reports."""
    return _NAMES.get(dtype) if dtype is not None else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for ``dtype``, or a no-op context for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def make_grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler | None:
    """A GradScaler for fp16, None otherwise (bf16 and fp32 need no loss scaling)."""
    return torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
