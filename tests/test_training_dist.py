"""ghnctl.training.dist: torchrun's environment, single-process no-ops, two real gloo processes, sharding."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ghnctl.training import dist
from ghnctl.training.errors import DistError

# ---------------------------------------------------------------------------------------------
# sharding


@pytest.mark.parametrize("n", [0, 1, 7, 10, 11])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_are_disjoint_and_cover_everything(n, world) -> None:
    items = [f"arch{i}" for i in range(n)]
    parts = [dist.shard(items, r, world, seed=4, epoch=2) for r in range(world)]
    flat = [x for p in parts for x in p]
    assert sorted(flat) == sorted(items) and len(flat) == len(set(flat))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_shards_are_deterministic_per_epoch_and_drop_last_evens_them() -> None:
    a = dist.shard_indices(10, 1, 3, seed=0, epoch=1)
    assert a == dist.shard_indices(10, 1, 3, seed=0, epoch=1)
    assert a != dist.shard_indices(10, 1, 3, seed=0, epoch=2)
    assert dist.shard_indices(10, 1, 3, shuffle=False) == [1, 4, 7]
    even = [dist.shard_indices(10, r, 3, seed=0, epoch=1, drop_last=True) for r in range(3)]
    assert [len(p) for p in even] == [3, 3, 3] and len({i for p in even for i in p}) == 9
    with pytest.raises(ValueError, match="outside world size"):
        dist.shard_indices(10, 3, 3)


# ---------------------------------------------------------------------------------------------
# environment


def test_environment_from_torchrun_variables() -> None:
    assert dist.env_from_environ({}) == dist.DistEnv()
    assert not dist.DistEnv().launched and dist.DistEnv().is_main
    env = dist.env_from_environ({"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"})
    assert (env.rank, env.local_rank, env.world_size, env.launched, env.is_main) == (1, 1, 2, True, False)
    with pytest.raises(DistError, match="LOCAL_RANK, WORLD_SIZE not set"):
        dist.env_from_environ({"RANK": "0"})
    with pytest.raises(DistError, match="outside WORLD_SIZE"):
        dist.env_from_environ({"RANK": "2", "LOCAL_RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(DistError, match="integers"):
        dist.env_from_environ({"RANK": "x", "LOCAL_RANK": "0", "WORLD_SIZE": "2"})
    assert dist.device_for(env, "cuda") == torch.device("cuda", 1) and dist.device_for(env, "cpu").type == "cpu"


def test_single_process_is_a_no_op(monkeypatch) -> None:
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert dist.init_distributed("cpu") == dist.DistEnv()
    assert not torch.distributed.is_initialized()
    t = torch.tensor([1.0, 2.0])
    mean = dist.all_reduce_mean(t)
    assert torch.equal(mean, t) and mean is not t
    assert dist.all_reduce_scalars({"loss": 0.5}) == {"loss": 0.5}
    assert dist.is_main() and dist.rank() == 0 and dist.world_size() == 1
    dist.barrier()
    dist.shutdown()


# ---------------------------------------------------------------------------------------------
# two processes

_WORKER = textwrap.dedent(
    """
    import json, sys
    import torch
    from ghnctl.training import dist

    env = dist.init_distributed("cpu")
    r = env.rank
    t = torch.tensor([float(r + 1), 10.0 * r])
    mean = dist.all_reduce_mean(t)
    scalars = dist.all_reduce_scalars({"loss": 2.0 * r, "acc": 50.0 + r})
    part = dist.shard(list(range(11)), env.rank, env.world_size, seed=3, epoch=2)
    dist.barrier()
    result = {
        "rank": r, "world": dist.world_size(), "main": dist.is_main(), "mean": mean.tolist(),
        "input": t.tolist(), "scalars": scalars, "part": part,
    }
    dist.shutdown()
    with open(sys.argv[1] + f".{r}", "w") as f:
        json.dump(result, f)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_reduce_and_shard(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    out = tmp_path / "result"
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
               "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(script), str(out)], env=env, stderr=subprocess.PIPE,
                                      text=True))
    try:
        errors = [p.communicate(timeout=180)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], errors
    results = [json.loads(Path(f"{out}.{r}").read_text()) for r in range(2)]
    for r, res in enumerate(results):
        assert res["rank"] == r and res["world"] == 2 and res["main"] == (r == 0)
        assert res["mean"] == [1.5, 5.0]  # mean of (1, 0) and (2, 10)
        assert res["input"] == [float(r + 1), 10.0 * r]  # the input tensor is not changed
        assert res["scalars"] == {"loss": 1.0, "acc": 50.5}
        assert res["part"] == dist.shard(list(range(11)), r, 2, seed=3, epoch=2)
    assert sorted(results[0]["part"] + results[1]["part"]) == list(range(11))
