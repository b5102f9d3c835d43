"""Training-state checkpoints for exact resume: safetensors for the tensors, JSON for the rest.

One file holds the model, the optimizer, the scheduler, the GradScaler, the position (epoch, step
within it = the data position, global step), every RNG state, and whatever the trainer adds: JSON
``fields`` (its config, history, running sums, ...) and ``tensors`` (e.g. a GHN trainer's EMA
weights). No pickle: a checkpoint cannot run code when loaded.

The file is written through ``ghnctl.io``'s atomic helper (temporary file beside it, fsync,
rename), so a crash or SIGKILL while saving leaves the previous checkpoint intact.

Restoring loads the model, the optimizer, the scheduler and the scaler, then the RNG states last:
nothing may draw random numbers between a load and the first training step.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ghnctl import io
from ghnctl.training.errors import StateError
from ghnctl.training.seeding import RngState, capture_rng, restore_rng

# Tensor name prefixes; everything a trainer adds goes under ``extra.``.
_MODEL, _OPTIM, _RNG, _EXTRA = "model.", "optim.", "rng.", "extra."
_JSON_KEYS = ("position", "optimizer", "scheduler", "scaler", "rng", "fields")


@dataclass(frozen=True)
class Position:
    """Where a run is: the epoch being trained (1-based), the optimizer steps done in it (the
    data position to resume from) and in total."""

    epoch: int = 1
    step_in_epoch: int = 0
    global_step: int = 0


@dataclass
class TrainingParts:
    """The objects whose state a checkpoint holds. Pass the bare model, not a DDP wrapper."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    scaler: torch.amp.GradScaler | None = None


@dataclass
class LoadedState:
    position: Position
    fields: dict[str, Any]
    tensors: dict[str, torch.Tensor]  # the trainer's extra tensors, by the names it saved them under


def save_state(
    path: str | os.PathLike[str],
    parts: TrainingParts,
    position: Position,
    *,
    format: str,
    fields: Mapping[str, Any] | None = None,
    tensors: Mapping[str, torch.Tensor] | None = None,
    rng: RngState | None = None,
) -> Path:
    """Write the state atomically (replacing an older one); return the path.

    ``format`` names the trainer's layout (e.g. ``ghnctl-finetune-state/2``) and is checked on load.
    ``rng`` defaults to the RNG states right now.
    """
    rng = rng if rng is not None else capture_rng()
    out: dict[str, torch.Tensor] = {_MODEL + k: v for k, v in parts.model.state_dict().items()}
    optimizer_json = _split_optimizer(parts.optimizer.state_dict(), out)
    out.update({_RNG + k: v for k, v in rng.tensors().items()})
    out.update({_EXTRA + k: v for k, v in (tensors or {}).items()})
    metadata = {
        "format": format,
        "torch": torch.__version__,
        "position": asdict(position),
        "optimizer": optimizer_json,
        "scheduler": _json_safe(parts.scheduler.state_dict()) if parts.scheduler is not None else None,
        "scaler": _json_safe(parts.scaler.state_dict()) if parts.scaler is not None else None,
        "rng": rng.json(),
        "fields": _json_safe(dict(fields or {})),
    }
    return io.save_safetensors_atomic(out, path, metadata=metadata, force=True)


def read_state(path: str | os.PathLike[str], *, format: str) -> tuple[Position, dict[str, Any]]:
    """The position and the trainer's JSON fields, without loading any tensor (e.g. to plan a resume)."""
    meta = _read_metadata(Path(path), format)
    return Position(**meta["position"]), meta["fields"]


def load_state(
    path: str | os.PathLike[str], parts: TrainingParts, *, format: str, restore_rngs: bool = True
) -> LoadedState:
    """Load a state written by ``save_state`` into ``parts`` (and the RNGs); return the rest."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = _read_metadata(path, format)
    tensors = load_file(str(path))
    model_sd = {k[len(_MODEL) :]: v for k, v in tensors.items() if k.startswith(_MODEL)}
    try:
        parts.model.load_state_dict(model_sd, strict=True)
    except RuntimeError as exc:
        raise StateError(f"the checkpoint's weights do not fit the model: {str(exc).splitlines()[0]}") from exc
    try:
        parts.optimizer.load_state_dict(_join_optimizer(meta["optimizer"], tensors))
        if parts.scheduler is not None:
            parts.scheduler.load_state_dict(meta["scheduler"])
        if parts.scaler is not None and meta["scaler"]:
            parts.scaler.load_state_dict(meta["scaler"])
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise StateError(f"the checkpoint's optimizer state does not fit: {exc}") from exc
    if restore_rngs:
        rng_tensors = {k[len(_RNG) :]: v for k, v in tensors.items() if k.startswith(_RNG)}
        restore_rng(RngState.from_parts(rng_tensors, meta["rng"]))
    extra = {k[len(_EXTRA) :]: v for k, v in tensors.items() if k.startswith(_EXTRA)}
    return LoadedState(Position(**meta["position"]), meta["fields"], extra)


# --------------------------------------------------------------------------------------------


def _read_metadata(path: Path, format: str) -> dict[str, Any]:
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise StateError(f"checkpoint {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise StateError(f"cannot read {str(path)!r} as a training-state checkpoint: {exc}") from exc
    found = raw.get("format")
    if found != format:
        kind = format.split("/")[0]
        if found is not None and found.split("/")[0] == kind:
            raise StateError(
                f"{str(path)!r} is a {found} checkpoint; this ghnctl reads {format}",
                hint="finish that run with the ghnctl version that started it, or start a new run",
            )
        raise StateError(
            f"{str(path)!r} is not a ghnctl training-state checkpoint ({kind})",
            hint="--resume takes the file written by --checkpoint (model weights go to --init file:PATH)",
        )
    try:
        return {k: json.loads(raw[k]) for k in _JSON_KEYS}
    except (KeyError, json.JSONDecodeError) as exc:
        raise StateError(f"{str(path)!r} has damaged metadata: {exc}") from exc


def _split_optimizer(state: Mapping[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Tensors of the optimizer state into ``tensors`` (``optim.<param id>.<name>``); return the rest as JSON."""
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPTIM}{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = _json_safe(value)
    return {"param_groups": _json_safe(state["param_groups"]), "scalars": scalars}


def _join_optimizer(data: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(_OPTIM):
            pid, name = key[len(_OPTIM) :].split(".", 1)
            state.setdefault(int(pid), {})[name] = value
    for pid, scalars in data["scalars"].items():
        state.setdefault(int(pid), {}).update(scalars)
    return {"state": state, "param_groups": data["param_groups"]}


def _json_safe(value: Any) -> Any:
    """State values as JSON (tuples become lists); a tensor here is a bug in the caller's fields."""
    if isinstance(value, torch.Tensor):
        raise TypeError("a tensor in the JSON part of a training state: pass it in tensors=")
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
