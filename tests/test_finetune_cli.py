"""``ghnctl finetune``: help, JSON lines, the table, output-file safety, resume, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from safetensors.torch import load_file
from typer.testing import CliRunner

from ghnctl.cli import finetune as cli_finetune
from ghnctl.cli.boundary import GhnctlGroup
from ghnctl.cli.options import Debug
from test_finetune_support import TINY_NET_SOURCE, make_tree, one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def _app() -> typer.Typer:
    """The app with the finetune command, whether or not cli/app.py registers it yet."""
    from ghnctl.cli import app as app_module

    commands = {c.name for c in app_module.app.registered_commands}
    if "finetune" in commands:
        return app_module.app
    app = typer.Typer(cls=GhnctlGroup, pretty_exceptions_enable=False)

    @app.callback()
    def _root(debug: Debug = False) -> None:
        """ghnctl"""

    cli_finetune.register(app)
    return app


@pytest.fixture
def run():
    app = _app()
    runner = CliRunner()

    def invoke(*args: object):
        return runner.invoke(app, ["finetune", *map(str, args)], prog_name="ghnctl")

    return invoke


@pytest.fixture
def setup(tmp_path, monkeypatch) -> dict[str, Path]:
    """A tiny tree, a tiny model file, and the working directory in tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GHNCTL_DATA_DIR", str(tmp_path / "data-dir"))
    tree = make_tree(tmp_path / "tree", per_class=10)
    model_file = tmp_path / "nets.py"
    model_file.write_text(TINY_NET_SOURCE)
    return {"tree": tree, "model": model_file}


def _base(setup: dict[str, Path], *extra: object) -> list[object]:
    return [f"{setup['model']}:tiny", "--data", setup["tree"], "--init", "random", "-b", "8", "--device", "cpu",
            *extra]


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# --------------------------------------------------------------------------------------------


def test_help_has_examples_and_states_the_rules(run) -> None:
    result = run("--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "ghnctl finetune --data cifar10 --init ghn" in text
    assert "Example" in text
    assert "classifier is not predicted" in text and "keeps its random init" in text
    assert "ImageNet architecture" in text and "--val-fraction" in text


def test_json_lines_one_record_per_epoch(run, setup) -> None:
    result = run(*_base(setup, "--epochs", "2", "--json"))
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["type"] for r in records] == ["epoch", "epoch", "epoch", "summary"]
    assert records[0]["epoch"] == 0 and records[0]["label"] == "not fine-tuned" and records[0]["train_loss"] is None
    assert records[2]["epoch"] == 2 and records[2]["val_acc"] is not None
    summary = records[-1]
    assert summary["data"]["val_source"] == "split" and summary["data"]["n_val"] == 3
    assert summary["init"]["kind"] == "random" and summary["total_steps"] == 8


def test_table_and_split_report_on_stderr(run, setup) -> None:
    result = run(*_base(setup, "--epochs", "1"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    err = result.stderr
    assert "0 (not fine-tuned)" in err and "train loss" in err and "val acc" in err
    assert "held out from train (10%, stratified, split seed 0)" in err


def test_save_resume_and_file_init(run, setup, monkeypatch) -> None:
    # Uninterrupted reference run.
    full = run(*_base(setup, "--max-steps", "7", "--out", "full.safetensors"))
    assert full.exit_code == 0, full.stderr

    # Same run stopped after 3 steps as a first Ctrl-C would (checkpoint written, exit 130) ...
    calls = {"n": 0}

    def fake_stop(self) -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    real_stop = cli_finetune.StopFlag.__call__
    monkeypatch.setattr(cli_finetune.StopFlag, "__call__", fake_stop)
    stopped = run(*_base(setup, "--max-steps", "7", "--checkpoint", "run.state", "--out", "part.safetensors"))
    assert stopped.exit_code == 130, stopped.stderr
    assert "ghnctl finetune --resume run.state" in " ".join(stopped.stderr.split())
    assert not Path("part.safetensors").exists()
    monkeypatch.setattr(cli_finetune.StopFlag, "__call__", real_stop)

    # ... and resumed with only --resume (model, data and settings come from the checkpoint).
    resumed = run("--resume", "run.state", "-o", "resumed.safetensors", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    a, b = load_file("full.safetensors"), load_file("resumed.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)

    # Conflicting settings on resume are refused; the saved weights are a valid --init file:.
    conflict = run("--resume", "run.state", "--lr", "0.5")
    assert conflict.exit_code == 2 and "--lr 0.5 differs from the checkpoint's" in _one_error_line(conflict)
    conflict = run("--resume", "run.state", "--val-fraction", "0.3")
    assert conflict.exit_code == 2 and "--val-fraction 0.3 differs" in _one_error_line(conflict)
    useless = run("--resume", "run.state", "--noise", "0")
    assert useless.exit_code == 2 and "--noise has no effect with --resume" in _one_error_line(useless)
    again = run(*_base(setup, "--max-steps", "1")[:3], "--init", "file:full.safetensors", "-b", "8",
                "--max-steps", "1", "--device", "cpu", "--json")
    assert again.exit_code == 0, again.stderr
    summary = json.loads(again.stdout.splitlines()[-1])
    assert summary["init"]["kind"] == "file" and summary["init_report"]["loaded_tensors"] == len(a)


def test_old_save_flag_is_a_hidden_alias_of_out(run, setup) -> None:
    result = run(*_base(setup, "--max-steps", "1", "--save", "old.safetensors"))
    assert result.exit_code == 0, result.stderr
    assert Path("old.safetensors").is_file() and "--save is now --out" in result.stderr
    both = run(*_base(setup, "--save", "a.safetensors", "-o", "b.safetensors"))
    assert both.exit_code == 2 and "--save is the old name of --out" in _one_error_line(both)
    help_text = run("--help").stdout
    assert "--out" in help_text and "--save" not in help_text


def test_option_defaults_are_the_configs_defaults() -> None:
    # The command hands its option values to the configs by name: a default written differently
    # in the two places would change what a run does depending on whether the option was typed.
    import dataclasses
    import inspect

    from ghnctl.inits import DEFAULT_NOISE
    from ghnctl.training.data import DataConfig
    from ghnctl.training.finetune import FinetuneConfig

    params = inspect.signature(cli_finetune.finetune).parameters
    checked = 0
    for cls in (FinetuneConfig, DataConfig):
        for f in dataclasses.fields(cls):
            if f.name in params and f.default is not dataclasses.MISSING:
                assert params[f.name].default == f.default, (cls.__name__, f.name)
                checked += 1
    assert checked >= 18
    assert params["noise"].default == DEFAULT_NOISE


def test_offline_flag_keeps_cifar_off_the_network(run, setup) -> None:
    result = run("--data", "cifar10", "--init", "random", "--offline")
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "CIFAR-10 is not in" in line and "offline mode is on" in line


def test_existing_output_is_refused_before_any_work(run, setup, monkeypatch) -> None:
    Path("out.safetensors").write_bytes(b"keep")

    def refuse(*args, **kwargs):
        raise AssertionError("data loaded before the output path was checked")

    from ghnctl.training import data

    monkeypatch.setattr(data, "load_data", refuse)
    result = run(*_base(setup, "--out", "out.safetensors"))
    assert result.exit_code == 1
    assert "already exists" in _one_error_line(result) and "--force" in result.stderr
    assert Path("out.safetensors").read_bytes() == b"keep"


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--epochs", "0"], "--epochs"),
        (["--optimizer", "lamb"], "--optimizer"),
        (["--val-fraction", "1.5"], "--val-fraction"),
        (["--init", "imagenet"], "unknown --init"),
        (["--noise", "0.1"], "--noise only applies to --init ghn"),
        (["--lr", "-1"], "--lr"),
        (["--amp-dtype", "fp8"], "--amp-dtype"),
        (["--n-shots", "0"], "--n-shots"),
        (["--image-size", "2"], "--image-size"),
        (["--batch-size", "1"], "--batch-size"),
    ],
)
def test_bad_flags_exit_2_with_one_line(run, setup, args, needle) -> None:
    result = run(*_base(setup, *args))
    assert result.exit_code == 2, result.stderr
    assert needle in _one_error_line(result)
    assert result.stdout == ""


def test_missing_data_and_missing_path(run, setup) -> None:
    result = run("--init", "random")
    assert result.exit_code == 2 and "missing --data" in _one_error_line(result)
    result = run(*_base(setup)[:1], "--data", "no/such/dir", "--init", "random")
    assert result.exit_code == 1 and "neither cifar10, cifar100 nor an existing path" in _one_error_line(result)


def test_cifar10_offline_without_data_is_one_line(run, setup, monkeypatch) -> None:
    monkeypatch.setenv("GHNCTL_OFFLINE", "1")
    result = run("--data", "cifar10", "--init", "random")
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "CIFAR-10 is not in" in line and "offline" in line and "--data PATH" in line


def test_no_cuda_is_a_usage_error(run, setup) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    result = run(*_base(setup)[:-2], "--device", "cuda")
    assert result.exit_code == 2 and "CUDA is not available" in _one_error_line(result)


def test_ghn_init_end_to_end_with_the_golden_ghn(run, setup, shared_dir) -> None:
    # The golden GHN has random weights: this checks the plumbing, not what a GHN is worth.
    ghn = shared_dir / "golden" / "ghn3-tiny-c1000.pt"
    result = run(*_base(setup, "--max-steps", "2", "--json")[:3], "--init", "ghn", "--ghn", ghn, "-b", "8",
                 "--max-steps", "2", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    report = summary["init_report"]
    assert report["ghn_num_classes"] == 1000 and report["classifier_predicted"] is False
    assert report["noised_layers"] == 1 and report["init"]["ghn_file"] == str(ghn)
    assert summary["lr"] == pytest.approx(0.025 * 8 / 128)  # the lower default for predicted parameters
