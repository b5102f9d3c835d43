"""The app as a whole: version, help, start-up cost, the error boundary and --debug."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ghnctl import __version__, zoo
from ghnctl.errors import GraphError

HEAVY_MODULES = ("torch", "torchvision", "numpy", "safetensors")


def test_version(cli, run_ghnctl) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"ghnctl {__version__}"
    proc = run_ghnctl("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"ghnctl {__version__}"


def test_help_lists_commands(cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    assert "graph" in result.stdout
    assert "--debug" in result.stdout
    assert "--version" in result.stdout
    assert "--install-completion" in result.stdout  # Typer's shell completion


def _command_paths(command, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command of the app, as argv prefixes."""
    paths = []
    for name, sub in getattr(command, "commands", {}).items():
        paths.append((*prefix, name))
        paths.extend(_command_paths(sub, (*prefix, name)))
    return paths


def test_every_command_has_help_with_an_example(cli) -> None:
    from typer.main import get_command

    from ghnctl.cli.app import app

    paths = _command_paths(get_command(app))
    assert ("graph",) in paths
    for path in paths:
        result = cli(*path, "--help")
        shown = " ".join(path)
        assert result.exit_code == 0, shown
        assert "Example" in result.stdout, f"`ghnctl {shown} --help` shows no example"
        assert f"ghnctl {path[0]}" in result.stdout, shown


def _imported_after(code: str) -> list[str]:
    """Heavy modules a fresh interpreter has loaded after running ``code``."""
    probe = f"import sys\n{code}\nprint('HEAVY=' + ','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    marker = proc.stdout.splitlines()[-1]
    assert marker.startswith("HEAVY="), proc.stdout
    return [m for m in marker.removeprefix("HEAVY=").split(",") if m]


@pytest.mark.parametrize("argv", [["--help"], ["graph", "--help"], ["--version"]])
def test_help_does_not_import_torch(argv: list[str]) -> None:
    code = (
        "from ghnctl.cli.app import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
    )
    assert _imported_after(code) == []


def test_import_ghnctl_is_cheap() -> None:
    assert _imported_after("import ghnctl; ghnctl.__version__") == []


def test_lazy_public_api() -> None:
    import ghnctl

    for name in ("build_graph", "load_ghn", "predict_parameters", "resolve_model"):
        assert name in dir(ghnctl)
        assert callable(getattr(ghnctl, name)), name
    with pytest.raises(AttributeError):
        ghnctl.no_such_thing  # noqa: B018


def test_console_script_installed() -> None:
    script = Path(sys.executable).with_name("ghnctl")
    if not script.exists():
        pytest.skip("ghnctl is not installed as a console script next to this Python")
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "graph" in proc.stdout


def _stderr_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_ghnctl_error_is_one_red_line(cli, monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise GraphError("no node type for FancyOp", hint="report it")

    monkeypatch.setattr(zoo, "resolve_model", fail)
    result = cli("graph", "resnet18")
    assert result.exit_code == 1
    assert _stderr_lines(result) == ["error: no node type for FancyOp (report it)"]
    assert result.stdout == ""


def test_unexpected_error_is_one_line_that_suggests_debug(cli, monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(zoo, "resolve_model", fail)
    result = cli("graph", "resnet18")
    assert result.exit_code == 1
    lines = _stderr_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: unexpected RuntimeError: boom")
    assert "--debug" in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "argv",
    [["--debug", "graph", "resnet18"], ["graph", "resnet18", "--debug"]],
    ids=["global", "per-command"],
)
def test_debug_shows_traceback(cli, monkeypatch, argv: list[str]) -> None:
    def fail(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(zoo, "resolve_model", fail)
    result = cli(*argv)
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "RuntimeError: boom" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("error: unexpected RuntimeError: boom")


def test_debug_from_environment(cli, monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise GraphError("bad graph")

    monkeypatch.setattr(zoo, "resolve_model", fail)
    monkeypatch.setenv("GHNCTL_DEBUG", "1")
    result = cli("graph", "resnet18")
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr


def test_ctrl_c_exits_130(cli, monkeypatch) -> None:
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(zoo, "resolve_model", interrupt)
    result = cli("graph", "resnet18")
    assert result.exit_code == 130
    assert _stderr_lines(result) == ["error: interrupted"]


def test_bad_flag_is_a_usage_error(cli) -> None:
    result = cli("graph", "resnet18", "--no-such-flag")
    assert result.exit_code == 2
    assert "--no-such-flag" in result.stderr


def test_python_dash_m_reports_errors_like_the_script(run_ghnctl) -> None:
    proc = run_ghnctl("graph", "resnt50")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "error: unknown model 'resnt50' (did you mean resnet50, resnet152, resnet101?)"
    ]


def test_a_closed_output_pipe_ends_quietly(tmp_path: Path) -> None:
    """``ghnctl ... --json | head -c 0``: no 'unexpected BrokenPipeError' line, exit 141."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "ghnctl", "graph", "resnet18", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader goes away before the graph is built and its JSON written
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, stderr
    assert "error" not in stderr and "Traceback" not in stderr
