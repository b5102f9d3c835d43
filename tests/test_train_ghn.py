"""Training a GHN (ghnctl.training.train_ghn): the loop, the run directory, exact resume, two
processes, a non-finite loss. Tiny GHNs, tiny nets, synthetic images: seconds per test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ghnctl.training.data import DataConfig, load_data
from ghnctl.training.train_config import TrainConfig
from ghnctl.training.train_ghn import (
    GHN_FILE,
    METRICS_FILE,
    STATE_FILE,
    StepDone,
    TrainingError,
    saved_config,
    train_ghn,
)

NETS = '''
from torch import nn

def small(num_classes=10, width=8):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

def wide(num_classes=10):
    return small(num_classes, 16)

class Flaky(nn.Module):
    """Fine for a few forward passes (graph tracing is one), then NaN: a run that diverges."""
    def __init__(self, num_classes=10):
        super().__init__()
        self.net = small(num_classes)
        self.calls = 0
    def forward(self, x):
        self.calls += 1
        out = self.net(x)
        return out * float("nan") if self.calls > 3 else out

def flaky(num_classes=10):
    return Flaky(num_classes)
'''


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train")
    (root / "nets.py").write_text(NETS)
    rng = np.random.default_rng(0)
    for split, count in (("train", 24), ("val", 6)):
        for c in range(4):
            folder = root / "data" / split / f"c{c}"
            folder.mkdir(parents=True)
            for i in range(count):  # class c: a colour cast + noise, learnable in a few steps
                img = np.zeros((32, 32, 3), np.int64)
                img[..., c % 3] = 50 * (c + 1)
                img = np.clip(img + rng.integers(0, 60, img.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{i}.png")
    return root


def _config(workdir: Path, **overrides: object) -> TrainConfig:
    nets = workdir / "nets.py"
    values: dict[str, object] = dict(hid=16, layers=1, heads=2, archs=(f"{nets}:small", f"{nets}:wide"),
                                     meta_batch=2, batch_size=12, steps=6, eval_archs=f"{nets}:wide", eval_n=1,
                                     eval_every=3, save_every=3, lr=3e-3, seed=0)
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def _bundle(workdir: Path):  # noqa: ANN202
    return load_data(DataConfig(str(workdir / "data")))


def test_a_run_writes_a_usable_ghn_metrics_and_state(workdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    steps: list[StepDone] = []
    result = train_ghn(_config(workdir), _bundle(workdir), out, device=torch.device("cpu"),
                       on_event=lambda e: steps.append(e) if isinstance(e, StepDone) else None)
    assert result.steps == 6 and not result.stopped and len(steps) == 6
    rows = (out / METRICS_FILE).read_text().splitlines()
    assert rows[0].startswith("step,epoch,loss") and len(rows) == 7
    assert steps[2].metrics["zero_shot_mean"] >= 0 and "zero_shot_mean" not in steps[0].metrics
    # The GHN file is a ghnctl GHN: it predicts a model it never saw.
    from ghnctl.ghn import load_ghn
    from ghnctl.predict import predict_parameters

    ghn = load_ghn(out / GHN_FILE)
    assert ghn.config.num_classes == 4 and ghn.config.max_shape == (16, 16, 11, 11)
    _, report = predict_parameters(ghn, torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.AdaptiveAvgPool2d(1),
                                                            torch.nn.Flatten(), torch.nn.Linear(5, 4)),
                                   return_report=True)
    assert len(report.predicted) == 4
    config, data = saved_config(out)
    assert config == _config(workdir) and data["source"].endswith("data")


def test_training_lowers_the_loss(workdir: Path, tmp_path: Path) -> None:
    losses: list[float] = []
    train_ghn(_config(workdir, steps=16, eval_n=0, save_every=100, batch_size=24), _bundle(workdir), tmp_path / "r",
              device=torch.device("cpu"),
              on_event=lambda e: losses.append(e.metrics["ce"]) if isinstance(e, StepDone) else None)
    assert np.mean(losses[-4:]) < 0.9 * np.mean(losses[:4]), losses


def test_resume_is_exact(workdir: Path, tmp_path: Path) -> None:
    bundle, config = _bundle(workdir), _config(workdir)
    straight = tmp_path / "straight"
    train_ghn(config, bundle, straight, device=torch.device("cpu"))
    resumed = tmp_path / "resumed"
    done: list[int] = []
    first = train_ghn(config, bundle, resumed, device=torch.device("cpu"),
                      on_event=lambda e: done.append(e.step) if isinstance(e, StepDone) else None,
                      should_stop=lambda: len(done) == 2)  # stops (and saves) between two saves
    assert first.stopped and first.steps == 2
    second = train_ghn(config, bundle, resumed, device=torch.device("cpu"), resume=True)
    assert second.steps == 6
    a, b = load_file(straight / GHN_FILE), load_file(resumed / GHN_FILE)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len((resumed / METRICS_FILE).read_text().splitlines()) == 7  # no duplicated rows


def test_a_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(workdir: Path, tmp_path: Path) -> None:
    nets = workdir / "nets.py"
    out = tmp_path / "nan"
    config = _config(workdir, archs=(f"{nets}:flaky",), meta_batch=1, save_every=1, eval_n=0, steps=5)
    with pytest.raises(TrainingError, match=r"at step \d+") as exc:
        train_ghn(config, _bundle(workdir), out, device=torch.device("cpu"))
    assert "\n" not in str(exc.value)
    failed = int(str(exc.value).split("at step ")[1].split(";")[0])
    assert failed >= 2  # at least one good step was saved before
    from ghnctl.training.state import read_state

    position, _ = read_state(out / STATE_FILE, format="ghnctl-train-state/1")
    assert position.global_step == failed - 1
    assert all(torch.isfinite(t).all() for t in load_file(out / GHN_FILE).values())


WORKER = """
import sys, torch
import torch.distributed as td
from pathlib import Path
from safetensors.torch import save_file
from ghnctl.training import dist
from ghnctl.training.data import DataConfig, load_data
from ghnctl.training.train_config import TrainConfig
from ghnctl.training.train_ghn import train_ghn

dist.init_distributed("cpu")
nets, data, out, shards = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
config = TrainConfig(hid=16, layers=1, heads=2, archs=(nets + ":small", nets + ":wide"), meta_batch=4, batch_size=6,
                     steps=3, eval_n=0, save_every=100, lr=3e-3, shards=shards)
torch.set_num_threads(1)
result = train_ghn(config, load_data(DataConfig(data)), out, device=torch.device("cpu"))
rank = td.get_rank() if td.is_initialized() else 0
save_file({k: v.contiguous() for k, v in result.ghn.state_dict().items()}, str(out / f"rank{rank}.safetensors"))
"""


@pytest.mark.slow
def test_two_processes_equal_one_process_with_the_same_global_meta_batch(workdir: Path, tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    nets, data = str(workdir / "nets.py"), str(workdir / "data")
    one = subprocess.run([sys.executable, str(script), nets, data, str(tmp_path / "one"), "2"],
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script), nets, data, str(tmp_path / "two"), "2"],
                         capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    rank0, rank1 = load_file(tmp_path / "two" / "rank0.safetensors"), load_file(tmp_path / "two" / "rank1.safetensors")
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # the ranks never drift apart
    single = load_file(tmp_path / "one" / "rank0.safetensors")
    # Same arithmetic, another summation order (two partial gradients summed by all-reduce). AdamW
    # divides by sqrt(v): a gradient that is nearly zero can move a weight by up to lr per step
    # whatever its rounding, so each value may differ by steps x lr; the bulk must agree closely.
    lr, steps = 3e-3, 3
    diff = torch.sqrt(sum((single[k] - rank0[k]).square().sum() for k in single))
    norm = torch.sqrt(sum(single[k].square().sum() for k in single))
    assert diff <= 1e-3 * norm, (float(diff), float(norm))
    for key in single:
        assert torch.allclose(single[key], rank0[key], rtol=0, atol=steps * lr), key
    assert load_file(tmp_path / "two" / GHN_FILE).keys() == single.keys()  # rank 0 wrote the run


KILLED_WORKER = """
import sys, time, torch
from pathlib import Path
import ghnctl.io as io
from ghnctl.training.data import DataConfig, load_data
from ghnctl.training.train_config import TrainConfig
from ghnctl.training.train_ghn import train_ghn

nets, data, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
real = io.write_safetensors
saves = []
def slow_second_state_save(f, tensors, metadata):
    if "position" in metadata:
        saves.append(1)
        if len(saves) == 2:  # the state save at step 2: write half, then hang until killed
            f.write(b"partial"); f.flush(); print("saving", flush=True); time.sleep(600)
    real(f, tensors, metadata)
io.write_safetensors = slow_second_state_save
torch.set_num_threads(1)  # the same summation order as the test process's runs
config = TrainConfig(hid=16, layers=1, heads=2, archs=(nets + ":small", nets + ":wide"), meta_batch=2,
                     batch_size=12, steps=4, eval_n=0, save_every=1, lr=3e-3)
train_ghn(config, load_data(DataConfig(data)), out, device=torch.device("cpu"))
"""


def test_sigkill_while_saving_leaves_the_previous_checkpoint_resumable(workdir: Path, tmp_path: Path) -> None:
    import signal

    from ghnctl.training.state import read_state

    script = tmp_path / "killed.py"
    script.write_text(KILLED_WORKER)
    out = tmp_path / "run"
    child = subprocess.Popen([sys.executable, str(script), str(workdir / "nets.py"), str(workdir / "data"), str(out)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "saving"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    position, _ = read_state(out / STATE_FILE, format="ghnctl-train-state/1")
    assert position.global_step == 1  # the step-1 state is intact; the step-2 write never replaced it
    nets = workdir / "nets.py"
    config = TrainConfig(hid=16, layers=1, heads=2, archs=(f"{nets}:small", f"{nets}:wide"), meta_batch=2,
                         batch_size=12, steps=4, eval_n=0, save_every=1, lr=3e-3)
    bundle = _bundle(workdir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resumed = train_ghn(config, bundle, out, device=torch.device("cpu"), resume=True)
        straight = train_ghn(config, bundle, tmp_path / "straight", device=torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    assert resumed.steps == straight.steps == 4
    a, b = load_file(out / GHN_FILE), load_file(tmp_path / "straight" / GHN_FILE)
    assert all(torch.equal(a[k], b[k]) for k in a)
