"""Distributed training helpers for runs started with ``torchrun`` (one process per device).

``torchrun`` tells each process who it is through environment variables: ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE`` (plus ``MASTER_ADDR``/``MASTER_PORT``, read by ``init_process_group``). Without
them everything here is a single-process no-op: rank 0 of a world of 1, collectives return their
input, ``barrier`` returns at once. So a trainer is written once and runs both ways.

Backends: NCCL for CUDA devices, gloo otherwise (the CPU, and tests).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from ghnctl.training.errors import DistError
from ghnctl.training.seeding import derive_seed

T = TypeVar("T")
_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the run; the defaults are the single-process run."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    launched: bool = False  # started by torchrun (even with one process: the group is then real)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_present(environ: Mapping[str, str]) -> bool:
    return any(name in environ for name in _ENV)


def env_from_environ(environ: Mapping[str, str] | None = None) -> DistEnv:
    """Rank, local rank and world size from torchrun's variables; the single process without them."""
    environ = os.environ if environ is None else environ
    if not _env_present(environ):
        return DistEnv()
    missing = [name for name in _ENV if name not in environ]
    if missing:
        raise DistError(
            f"incomplete distributed environment: {', '.join(missing)} not set",
            hint="start distributed runs with torchrun, which sets RANK, LOCAL_RANK and WORLD_SIZE",
        )
    try:
        env = DistEnv(int(environ["RANK"]), int(environ["LOCAL_RANK"]), int(environ["WORLD_SIZE"]), launched=True)
    except ValueError as exc:
        raise DistError(
            f"bad distributed environment: {exc}", hint="RANK, LOCAL_RANK and WORLD_SIZE are integers"
        ) from None
    if not (0 <= env.rank < env.world_size):
        raise DistError(f"RANK={env.rank} is outside WORLD_SIZE={env.world_size}")
    return env


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def init_distributed(device: torch.device | str = "cpu") -> DistEnv:
    """Join the process group torchrun set up (no-op without torchrun's variables); return this process's env.

    On CUDA the process's device is ``cuda:LOCAL_RANK``; pass the device type (``cuda``) and use
    ``device_for(env)`` for the tensors.
    """
    device = torch.device(device)
    env = env_from_environ()
    if not env.launched or dist.is_initialized():
        return env
    if device.type == "cuda":
        torch.cuda.set_device(env.local_rank)
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise DistError(f"incomplete distributed environment: {', '.join(missing)} not set",
                        hint="start distributed runs with torchrun")
    try:
        dist.init_process_group(backend_for(device), rank=env.rank, world_size=env.world_size)
    except (RuntimeError, ValueError) as exc:
        raise DistError(f"cannot join the process group: {exc}", hint="check MASTER_ADDR/MASTER_PORT") from exc
    return env


def device_for(env: DistEnv, device_type: str) -> torch.device:
    """``cuda:LOCAL_RANK`` for CUDA runs, else the device type itself."""
    return torch.device("cuda", env.local_rank) if device_type == "cuda" else torch.device(device_type)


def shutdown() -> None:
    """Leave the process group (no-op when there is none)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """True on rank 0 (the process that writes files and reports)."""
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _collective_device() -> torch.device:
    # NCCL only reduces CUDA tensors; gloo CPU ones.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over all ranks (a new tensor on ``tensor``'s device; the input is unchanged)."""
    if not dist.is_initialized():
        return tensor.clone()
    out = tensor.detach().to(_collective_device(), copy=True)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return (out / dist.get_world_size()).to(tensor.device)


def all_reduce_scalars(values: Mapping[str, float]) -> dict[str, float]:
    """The mean over all ranks of each named number, in one collective (float64)."""
    names = sorted(values)
    packed = torch.tensor([float(values[n]) for n in names], dtype=torch.float64)
    mean = all_reduce_mean(packed)
    return {n: float(v) for n, v in zip(names, mean.tolist(), strict=True)}


def shard_indices(
    n: int, rank: int, world_size: int, *, seed: int = 0, epoch: int = 0, shuffle: bool = True,
    drop_last: bool = False,
) -> list[int]:
    """This rank's share of ``range(n)``.

    Every rank computes the same order (a permutation seeded by ``(seed, epoch)`` when
    ``shuffle``) and takes every ``world_size``-th item from position ``rank``, so the shares are
    disjoint and, together, cover all ``n`` items; sizes differ by at most one. ``drop_last`` drops
    the last ``n % world_size`` items of the order so every rank gets the same count (ranks that
    run one step per item must agree on the number of steps, or a collective waits forever).
    """
    if not (0 <= rank < world_size):
        raise ValueError(f"rank {rank} is outside world size {world_size}")
    if shuffle:
        g = torch.Generator().manual_seed(derive_seed("ghnctl-shard", seed, epoch))
        order = torch.randperm(n, generator=g).tolist()
    else:
        order = list(range(n))
    end = n - n % world_size if drop_last else n
    return order[rank:end:world_size]


def shard(
    items: Sequence[T], rank: int, world_size: int, *, seed: int = 0, epoch: int = 0, shuffle: bool = True,
    drop_last: bool = False,
) -> list[T]:
    """This rank's share of ``items`` (see ``shard_indices``)."""
    idx = shard_indices(len(items), rank, world_size, seed=seed, epoch=epoch, shuffle=shuffle, drop_last=drop_last)
    return [items[i] for i in idx]
