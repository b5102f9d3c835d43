"""Seeds and RNG states: seed everything, derive independent seeds, capture and restore every RNG.

An exact resume needs every generator a run draws from back in the state it had: torch's CPU
generator (dropout, ``randperm``), each CUDA device's generator, Python's ``random`` and NumPy's
global generator (libraries use them). ``RngState`` holds all four and splits into tensors and
JSON for ``ghnctl.training.state``.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

_SEED_BITS = 63


def seed_everything(seed: int) -> None:
    """torch (CPU and every CUDA device), Python's ``random`` and NumPy's global RNG."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % (1 << 32))


def derive_seed(tag: str, *parts: int) -> int:
    """A well-mixed 63-bit seed from a tag and integers (e.g. one per ``(seed, epoch)``).

    Distinct tags give unrelated streams, so two uses of the same run seed do not correlate.
    """
    text = ":".join([tag, *(str(int(p)) for p in parts)])
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << _SEED_BITS) - 1)


@dataclass
class RngState:
    """Every RNG state of the process; ``cuda`` is empty when CUDA was not in use."""

    torch_cpu: torch.Tensor
    cuda: tuple[torch.Tensor, ...]
    python: tuple[Any, ...]
    numpy: tuple[Any, ...]

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"torch": self.torch_cpu}
        out.update({f"cuda.{i}": state for i, state in enumerate(self.cuda)})
        return out

    def json(self) -> dict[str, Any]:
        version, internal, gauss = self.python
        name, keys, pos, has_gauss, cached = self.numpy
        return {
            "python": [version, list(internal), gauss],
            "numpy": [name, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)],
        }

    @classmethod
    def from_parts(cls, tensors: Mapping[str, torch.Tensor], data: Mapping[str, Any]) -> RngState:
        """The inverse of ``tensors()`` + ``json()``."""
        cuda = []
        while f"cuda.{len(cuda)}" in tensors:
            cuda.append(tensors[f"cuda.{len(cuda)}"])
        version, internal, gauss = data["python"]
        name, keys, pos, has_gauss, cached = data["numpy"]
        return cls(
            torch_cpu=tensors["torch"],
            cuda=tuple(cuda),
            python=(version, tuple(internal), gauss),
            numpy=(name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached),
        )


def capture_rng() -> RngState:
    """The current state of every RNG (CUDA's only when CUDA is initialised: capturing must not
    start CUDA in a CPU run)."""
    cuda = tuple(torch.cuda.get_rng_state_all()) if torch.cuda.is_initialized() else ()
    return RngState(torch.get_rng_state(), cuda, random.getstate(), np.random.get_state())


def restore_rng(state: RngState) -> None:
    """Put every RNG back to ``state``.

    CUDA states are restored device by device for the devices that exist here; a state captured
    on a GPU machine restored on a CPU one leaves CUDA alone (that run cannot repeat bit for bit
    anyway: its kernels differ).
    """
    torch.set_rng_state(state.torch_cpu)
    if state.cuda and torch.cuda.is_available():
        for index, cuda_state in enumerate(state.cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)
    random.setstate(state.python)
    np.random.set_state(state.numpy)


def eval_subset(total: int, n: int, split_seed: int) -> list[int]:
    """``n`` of ``total`` validation indices, drawn uniformly with the data's split seed, in a mixed order.

    Not the first ``n``: a stratified split (and any ``val/`` folder) stores its images class by
    class, so the first 500 of CIFAR-10's validation images are nearly all one class. The order is
    the draw's, not sorted, for the same reason as ``eval_order``. ``bench`` and ``train``'s
    zero-shot evaluations score on the same images for the same data (in batches of their own size).
    """
    import numpy as np

    rng = np.random.default_rng(derive_seed("ghnctl-bench-eval", split_seed))
    return rng.permutation(total)[: min(n, total)].tolist()


def eval_order(total: int, split_seed: int) -> list[int]:
    """All ``total`` validation indices in a seeded order that mixes the classes.

    Predicted parameters are scored with BatchNorm batch statistics (they come without running
    statistics), and a batch of one class normalises away what tells the classes apart: scored
    class by class, a GHN-predicted ResNet-18 measured 22.5% where mixed batches gave 43.6%.
    """
    return eval_subset(total, total, split_seed)
