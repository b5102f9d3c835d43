"""ghnctl.training.state: exact resume from a checkpoint, atomic saves, format checks."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn

from ghnctl.training import state
from ghnctl.training.amp import autocast
from ghnctl.training.errors import StateError
from ghnctl.training.optim import build_optimizer, build_scheduler, optimizer_step
from ghnctl.training.seeding import seed_everything
from test_finetune_support import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")
FORMAT = "ghnctl-test-state/1"
TOTAL = 10


def _parts(optimizer: str, fp16: bool, init_seed: int) -> state.TrainingParts:
    generator_state = torch.get_rng_state()
    torch.manual_seed(init_seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    torch.set_rng_state(generator_state)
    opt = build_optimizer(model.parameters(), optimizer, lr=0.1 if optimizer == "sgd" else 1e-2, weight_decay=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8) if fp16 else None
    return state.TrainingParts(model, opt, build_scheduler(opt, TOTAL, warmup_steps=3), scaler)


def _step(parts: state.TrainingParts, fp16: bool) -> None:
    """One step whose data and dropout come from every global RNG, so a missed RNG breaks equality."""
    x = torch.randn(8, 6) * (1.0 + random.random()) + float(np.random.rand())
    y = torch.randint(0, 3, (8,))
    parts.optimizer.zero_grad(set_to_none=True)
    with autocast(torch.device("cpu"), torch.float16 if fp16 else None):
        loss = nn.functional.cross_entropy(parts.model(x).float(), y)
    optimizer_step(loss, parts.optimizer, parts.model.parameters(), max_norm=1.0, scaler=parts.scaler)
    parts.scheduler.step()


def _assert_identical(a: state.TrainingParts, b: state.TrainingParts) -> None:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    oa, ob = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    for pid in oa:
        for key, value in oa[pid].items():
            other = ob[pid][key]
            assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other
    assert a.scheduler.get_last_lr() == b.scheduler.get_last_lr()
    if a.scaler is not None:
        assert a.scaler.get_scale() == b.scaler.get_scale()


@pytest.mark.parametrize("optimizer, fp16", [("sgd", False), ("adamw", True)])
def test_k_steps_save_load_rest_equals_straight_run(tmp_path, optimizer, fp16) -> None:
    seed_everything(0)
    straight = _parts(optimizer, fp16, init_seed=0)
    for _ in range(TOTAL):
        _step(straight, fp16)

    seed_everything(0)
    first = _parts(optimizer, fp16, init_seed=0)
    k = 4
    for _ in range(k):
        _step(first, fp16)
    path = tmp_path / "run.state"
    state.save_state(path, first, state.Position(1, k, k), format=FORMAT, fields={"note": "four steps"})

    seed_everything(1234)  # another RNG state and other weights: all must come from the checkpoint
    resumed = _parts(optimizer, fp16, init_seed=99)
    loaded = state.load_state(path, resumed, format=FORMAT)
    assert loaded.position == state.Position(1, k, k) and loaded.fields == {"note": "four steps"}
    for _ in range(TOTAL - k):
        _step(resumed, fp16)
    _assert_identical(straight, resumed)


def test_extra_fields_and_tensors_round_trip_without_pickle(tmp_path) -> None:
    parts = _parts("sgd", False, init_seed=0)
    _step(parts, False)
    ema = {"ema.weight": torch.arange(6.0).view(2, 3)}
    fields = {"config": {"lr": 0.1, "betas": (0.9, 0.99)}, "history": [{"epoch": 1, "acc": None}]}
    path = state.save_state(tmp_path / "s.state", parts, state.Position(2, 0, 7), format=FORMAT, fields=fields,
                            tensors=ema)
    position, read = state.read_state(path, format=FORMAT)  # JSON only, no tensors loaded
    assert position == state.Position(2, 0, 7)
    assert read == {"config": {"lr": 0.1, "betas": [0.9, 0.99]}, "history": [{"epoch": 1, "acc": None}]}
    loaded = state.load_state(path, _parts("sgd", False, init_seed=5), format=FORMAT)
    assert loaded.tensors.keys() == ema.keys() and torch.equal(loaded.tensors["ema.weight"], ema["ema.weight"])
    with safe_open(str(path), framework="pt") as f:
        assert json.loads(f.metadata()["fields"])["config"]["lr"] == 0.1
        names = f.keys()  # safe_open is not iterable
        assert {k.split(".")[0] for k in names} == {"model", "optim", "rng", "extra"}
    with pytest.raises(TypeError, match="tensors="):
        state.save_state(tmp_path / "t.state", parts, state.Position(), format=FORMAT, fields={"w": torch.ones(1)})


def test_wrong_format_missing_file_and_misfit_model(tmp_path) -> None:
    parts = _parts("sgd", False, init_seed=0)
    path = state.save_state(tmp_path / "s.state", parts, state.Position(), format=FORMAT)
    with pytest.raises(StateError, match="ghnctl-test-state/1 checkpoint; this ghnctl reads ghnctl-test-state/2"):
        state.read_state(path, format="ghnctl-test-state/2")
    with pytest.raises(StateError, match="not a ghnctl training-state checkpoint"):
        state.read_state(path, format="ghnctl-other/1")
    with pytest.raises(StateError, match="does not exist"):
        state.read_state(tmp_path / "nope", format=FORMAT)
    (tmp_path / "junk").write_bytes(b"not safetensors")
    with pytest.raises(StateError, match="cannot read"):
        state.read_state(tmp_path / "junk", format=FORMAT)
    other = nn.Sequential(nn.Linear(6, 4))
    opt = torch.optim.SGD(other.parameters(), lr=0.1)
    with pytest.raises(StateError, match="do not fit the model"):
        state.load_state(path, state.TrainingParts(other, opt), format=FORMAT)


_CHILD = textwrap.dedent(
    """
    import os, sys, time
    import torch
    from ghnctl.training import state

    path, ready = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 64)
    parts = state.TrainingParts(model, torch.optim.SGD(model.parameters(), lr=0.1))
    state.save_state(path, parts, state.Position(1, 1, 1), format="{fmt}", fields={{"version": 1}})

    def stalled_fsync(fd):
        # The first fsync of the next save flushes the file just written: cut it in half and hang,
        # as a process killed in the middle of writing leaves it (whichever file the writer used).
        written = os.readlink(f"/proc/self/fd/{{fd}}")  # the fd may be read-only: truncate by name
        os.truncate(written, os.path.getsize(written) // 2)
        open(ready, "w").close()
        time.sleep(600)

    os.fsync = stalled_fsync
    with torch.no_grad():
        model.weight.add_(1.0)
    state.save_state(path, parts, state.Position(1, 2, 2), format="{fmt}", fields={{"version": 2}})
    """
).format(fmt=FORMAT)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the file being written in /proc")
def test_sigkill_during_save_leaves_the_previous_state_loadable(tmp_path) -> None:
    path, ready = tmp_path / "run.state", tmp_path / "ready"
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    child = subprocess.Popen([sys.executable, str(script), str(path), str(ready)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert child.poll() is None, child.stderr.read() if child.stderr else "child exited"
            assert time.monotonic() < deadline, "the child never reached the second save"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    torch.manual_seed(0)
    expected = nn.Linear(64, 64)  # the weights of the first save (the child seeded the same way)
    model = nn.Linear(64, 64)
    nn.init.zeros_(model.weight)
    loaded = state.load_state(path, state.TrainingParts(model, torch.optim.SGD(model.parameters(), lr=0.1)),
                              format=FORMAT)
    assert loaded.fields == {"version": 1} and loaded.position == state.Position(1, 1, 1)
    assert torch.equal(model.weight, expected.weight)
