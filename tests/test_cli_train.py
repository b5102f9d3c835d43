"""``ghnctl train`` from the command line: JSON records, the run directory, resume rules, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ghnctl.cli.train import _without_nproc
from test_train_ghn import workdir  # noqa: F401 - the shared synthetic data set fixture


def _args(workdir: Path, out: Path, *extra: str) -> list[str]:  # noqa: F811
    nets = workdir / "nets.py"
    return ["train", "--data", str(workdir / "data"), "--out", str(out), "--archs", f"{nets}:small,{nets}:wide",
            "--eval-archs", f"{nets}:wide", "--eval-n", "1", "--eval-every", "2", "--steps", "4", "--hid", "16",
            "--layers", "1", "--heads", "2", "--batch-size", "12", "--meta-batch", "2", *extra]


def test_json_records_and_run_directory(cli: Callable[..., object], workdir: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "run"
    result = cli(*_args(workdir, out, "--json"))
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    events = [r["event"] for r in records]
    assert events[0] == "start" and events[-1] == "end" and events.count("step") == 4
    assert events.count("zero_shot") == 2  # at steps 2 and 4
    assert {p.name for p in out.iterdir()} >= {"ghn.safetensors", "state.safetensors", "metrics.csv", "config.json"}
    assert records[-1]["steps"] == 4 and not records[-1]["stopped"]
    assert records[0]["eval_also_trained"] == [f"{workdir / 'nets.py'}:wide"]  # --eval-archs is in --archs


def test_evaluating_a_trained_architecture_is_not_called_zero_shot(
    cli: Callable[..., object], workdir: Path, tmp_path: Path  # noqa: F811
) -> None:
    nets = workdir / "nets.py"
    seen = cli(*_args(workdir, tmp_path / "seen", "--steps", "2"))
    assert seen.exit_code == 0, seen.stderr
    assert "--eval-archs overlaps --archs" in seen.stderr and "not zero-shot" in seen.stderr
    assert "never trained on" not in seen.stderr
    unseen = cli(*_args(workdir, tmp_path / "unseen", "--steps", "2", "--archs", f"{nets}:small"))
    assert unseen.exit_code == 0, unseen.stderr
    assert "overlaps" not in unseen.stderr and "zero-shot top-1 on 1 held-out architectures" in unseen.stderr


def test_an_existing_run_is_not_overwritten(cli: Callable[..., object], workdir: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "run"
    assert cli(*_args(workdir, out, "--steps", "2", "--eval-n", "0")).exit_code == 0
    before = (out / "ghn.safetensors").read_bytes()
    again = cli(*_args(workdir, out, "--steps", "2", "--eval-n", "0"))
    assert again.exit_code == 2 and "already holds a training run" in again.stderr and "--resume" in again.stderr
    assert (out / "ghn.safetensors").read_bytes() == before
    changed = cli("train", "--out", str(out), "--resume", "--lr", "0.1")
    assert changed.exit_code == 2 and "--lr" in changed.stderr and "differs" in changed.stderr
    same = cli("train", "--out", str(out), "--resume", "--json")  # nothing left to do: still fine
    assert same.exit_code == 0, same.stderr


@pytest.mark.parametrize(("argv", "message", "code"), [
    (["train", "--out", "x"], "missing --data", 2),
    (["train", "--out", "nowhere", "--resume"], "no training state", 1),
    (["train", "--data", "d", "--hid", "30", "--heads", "8"], "divisible", 2),
    (["train", "--data", "d", "--meta-batch", "0"], "--meta-batch must be a positive integer", 2),
    (["train", "--data", "d", "--archs", "deepnets:train,resnet18=many"], "'resnet18=many': the weight", 2),
])
def test_bad_input_is_one_line(cli: Callable[..., object], tmp_path: Path, argv: list[str], message: str, code: int,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli(*argv)
    assert result.exit_code == code and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_nproc_is_removed_before_relaunching() -> None:
    assert _without_nproc(["train", "--nproc", "2", "--data", "x", "--nproc=3", "--out", "o"]) == \
        ["train", "--data", "x", "--out", "o"]


def test_sigterm_saves_the_state_and_exits_130(workdir: Path, tmp_path: Path) -> None:  # noqa: F811
    """A background run told to stop (kill, timeout, a scheduler) keeps its steps."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "run"
    argv = _args(workdir, out, "--steps", "500", "--eval-n", "0", "--save-every", "1000", "--json")
    proc = subprocess.Popen([sys.executable, "-m", "ghnctl", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if json.loads(line)["event"] == "step":
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stdout.read()
    assert proc.wait(timeout=120) == 130, proc.stderr.read() if proc.stderr else ""
    end = json.loads(rest.strip().splitlines()[-1])
    assert end["event"] == "end" and end["stopped"] and 1 <= end["steps"] < 500
    from ghnctl.training.state import read_state

    position, _ = read_state(out / "state.safetensors", format="ghnctl-train-state/1")
    assert position.global_step == end["steps"]
