"""``ghnctl ghn list``, ``ghnctl pull``, ``ghnctl cache ...`` end to end against a local server.

The commands are mounted with ``register`` on an app with the project's error boundary, as the
main app does, so these tests do not depend on the main app's wiring.
"""

from __future__ import annotations

import io
import json
import re
import socket
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ghnctl.cli import hub as hub_cli
from ghnctl.cli.boundary import GhnctlGroup
from ghnctl.cli.output import Output
from ghnctl.hub import DownloadEvent, DownloadPolicy, lookup
from ghnctl.hub import download as download_module
from ghnctl.hub import store as store_module
from ghnctl.hub.registry import HF_REPO
from test_hub_server import Fault, HubServer, make_ghn_bytes


def make_app() -> typer.Typer:
    app = typer.Typer(cls=GhnctlGroup, pretty_exceptions_enable=False, no_args_is_help=True)

    @app.callback()
    def _main() -> None:
        """Test app."""

    hub_cli.register(app)
    return app


@pytest.fixture
def server():
    with HubServer() as s:
        yield s


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: HubServer):
    monkeypatch.setenv("GHNCTL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GHNCTL_HUB_URL", server.url)
    monkeypatch.setattr(store_module, "DEFAULT_POLICY", DownloadPolicy(retries=1, backoff=0.01))
    app = make_app()
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), prog_name="ghnctl")


@pytest.fixture(scope="module")
def payload() -> bytes:
    return make_ghn_bytes(seed=7)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def options_of(app: typer.Typer, command: str) -> set[str]:
    """Every option spelling (``--force``, ``-f``, ...) the command ``command`` of ``app`` accepts."""
    group = typer.main.get_command(app)
    return {opt for param in group.commands[command].params for opt in (*param.opts, *param.secondary_opts)}


def options_named(line: str) -> set[str]:
    """The options an error line names (``--ghn``, ``--force``, ...)."""
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", line))


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names under ``.invalid`` (RFC 6761) fail to resolve here, without asking any resolver."""
    real = socket.getaddrinfo
    seen: list[str] = []

    def getaddrinfo(host, *args, **kwargs):
        seen.append(host)
        if str(host).endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return seen


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(download_module, "_sleep", recorded.append)
    return recorded


@pytest.mark.parametrize("command", ["ghn", "pull", "cache", "ghn list", "cache list", "cache path", "cache clear"])
def test_help_has_examples(cli, command: str) -> None:
    result = cli(*command.split(), "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout and f"ghnctl {command.split()[0]}" in result.stdout


def test_ghn_list(cli, server, payload) -> None:
    result = cli("ghn", "list", "--json")
    assert result.exit_code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["ghns"]}
    assert set(rows) >= {"ghn3tm8", "ghn3xlm16", "ghn2_cifar10"}
    assert rows["ghn3xlm16"]["params"] == 654_365_184 and rows["ghn3xlm16"]["licence"] == "MIT"
    assert not any(row["cached"] for row in rows.values() if not row["builtin"])  # built-in: always there

    server.add_hf(HF_REPO, "ghn3tm8.pt", payload)
    assert cli("pull", "ghn3tm8").exit_code == 0
    rows = {row["name"]: row for row in json.loads(cli("ghn", "list", "--json").stdout)["ghns"]}
    assert rows["ghn3tm8"]["cached"] and not rows["ghn3sm8"]["cached"]

    table = cli("ghn", "list")
    assert table.exit_code == 0 and table.stdout == ""
    assert "ghn3xlm16" in table.stderr and "654.4M" in table.stderr and "~2.6 GB" in table.stderr


def test_pull_then_pull_again(cli, server, payload) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", payload)
    result = cli("pull", "ghn3tm8")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "downloading ghn3tm8" in result.stderr and "downloaded ghn3tm8" in result.stderr

    requests_before = len(server.log)
    again = cli("pull", "ghn3tm8.pt", "--json")
    assert again.exit_code == 0
    data = json.loads(again.stdout)
    assert data["downloaded"] is False and data["name"] == "ghn3tm8"
    assert data["path"] == str(lookup("ghn3tm8").path) and len(data["sha256"]) == 64
    assert len(server.log) == requests_before

    forced = cli("pull", "ghn3tm8", "--force", "--json")
    assert forced.exit_code == 0 and json.loads(forced.stdout)["downloaded"] is True


def test_pull_errors_are_one_line(cli, server, payload) -> None:
    unknown = cli("pull", "ghn3tm9")
    assert unknown.exit_code == 2
    assert lines(unknown.stderr) == [
        "error: unknown GHN 'ghn3tm9': not a registered name, an existing file "
        "or an http(s) URL (did you mean ghn3tm8, ghn3sm8, ghn3lm8?)"
    ]

    missing = cli("pull", "ghn3tm8")
    assert missing.exit_code == 1
    announced, line = lines(missing.stderr)
    assert announced.startswith("downloading ghn3tm8 (~27.6 MB) from http://127.0.0.1:")
    assert line.startswith("error: ghn3tm8 at http://127.0.0.1:") and "not found (HTTP 404)" in line

    server.add_hf(HF_REPO, "ghn3tm8.pt", payload, fault=Fault(corrupt=True))
    corrupt = cli("pull", "ghn3tm8")
    assert corrupt.exit_code == 1
    assert lines(corrupt.stderr)[-1].startswith("error: ghn3tm8: sha256 of the download is")

    offline = cli("pull", "ghn3sm8", "--offline")
    assert offline.exit_code == 1
    [line] = lines(offline.stderr)
    assert "offline mode is on" in line and "ghnctl pull ghn3sm8" in line and "`ghnctl cache path`" in line


def test_pull_too_slow_is_one_line_and_keeps_the_part(cli, server, payload, monkeypatch) -> None:
    monkeypatch.setenv("GHNCTL_MIN_RATE", "1000")
    monkeypatch.setenv("GHNCTL_MIN_RATE_WINDOW", "0.5")
    server.add_hf(HF_REPO, "ghn3tm8.pt", payload, fault=Fault(drip=0.1))
    started = time.monotonic()
    result = cli("pull", "ghn3tm8")
    assert result.exit_code == 1 and time.monotonic() - started < 6.0
    announce, retry, resume, line = lines(result.stderr)
    assert announce.startswith("downloading ghn3tm8")
    assert retry.startswith("warning: ghn3tm8: too slow: ") and "retrying in" in retry  # one new connection
    assert resume.startswith("resuming ghn3tm8 at ")
    assert line.startswith("error: cannot download ghn3tm8 from http://127.0.0.1:") and "too slow: " in line
    assert "under the minimum of 1.0 kB/s over 0.5 s" in line
    assert line.endswith(
        "(try again later: `ghnctl pull ghn3tm8` resumes where this stopped; "
        "GHNCTL_MIN_RATE (bytes/s) and GHNCTL_MIN_RATE_WINDOW (seconds) set the limit)"
    )
    assert "unfinished download of ghn3tm8" in cli("cache", "list").stderr


@pytest.mark.parametrize(("name", "value"), [("GHNCTL_MIN_RATE", "10k"), ("GHNCTL_MIN_RATE_WINDOW", "-1")])
def test_pull_with_a_bad_limit_variable_is_a_usage_error(cli, server, payload, monkeypatch, name, value) -> None:
    server.add_hf(HF_REPO, "ghn3tm8.pt", payload)
    monkeypatch.setenv(name, value)
    result = cli("pull", "ghn3tm8")
    assert result.exit_code == 2
    line = lines(result.stderr)[-1]
    assert line.startswith(f"error: {name}='{value}' is not a valid number of ") and "(use a number" in line
    assert server.data_requests() == []
    assert len(lines(result.stderr)) == 1  # refused before "downloading ..." is announced


@pytest.mark.parametrize("case", ["offline", "no network", "not found", "access refused"])
def test_pull_hints_name_only_options_of_pull(cli, server, monkeypatch, no_dns, sleeps, case: str) -> None:
    """`pull` takes no GHN file: its hints must not send the user to --ghn PATH (another command's option)."""
    args = ["pull", "ghn3tm8"]
    if case == "offline":
        args.append("--offline")
    elif case == "no network":
        monkeypatch.setenv("GHNCTL_HUB_URL", "http://ghnctl-test.invalid")
    elif case == "access refused":
        server.add("/private.pt", b"", fault=Fault(status=403))
        args = ["pull", server.url + "/private.pt"]
    result = cli(*args)
    assert result.exit_code == 1
    line = lines(result.stderr)[-1]
    assert line.startswith("error: ") and "checkpoint file" not in line
    assert options_named(line) <= options_of(make_app(), "pull"), line
    if case in ("offline", "no network"):
        assert "ghnctl pull ghn3tm8` on a machine with network" in line and "`ghnctl cache path`" in line


def test_pull_without_network_fails_at_once(cli, monkeypatch, no_dns, sleeps) -> None:
    monkeypatch.setenv("GHNCTL_HUB_URL", "http://ghnctl-test.invalid")
    started = time.monotonic()
    result = cli("pull", "ghn3tm8")
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    announced, line = lines(result.stderr)  # no "retrying" warnings in between
    assert announced.startswith("downloading ghn3tm8")
    assert line.startswith("error: cannot download ghn3tm8 from http://ghnctl-test.invalid/")
    assert ": cannot resolve host ghnctl-test.invalid (check the network and GHNCTL_HUB_URL, or work offline" in line
    assert no_dns == ["ghnctl-test.invalid"] and sleeps == []
    assert elapsed < 1.0


# ------------------------------------------------------------------------------------------------
# A command with --ghn (predict, through the main app) offers --ghn PATH in the same situations


@pytest.fixture
def main_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from ghnctl.cli.app import app

    monkeypatch.setenv("GHNCTL_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args], prog_name="ghnctl")


@pytest.mark.parametrize("case", ["offline", "no network"])
def test_predict_ghn_auto_falls_back_to_the_builtin_ghn(main_cli, tmp_path, monkeypatch, no_dns, sleeps,
                                                         case) -> None:
    """No official GHN cached and none to be had: `auto` predicts with the shipped GHN and says so in
    one line naming why and how to get an official GHN (with options predict really has)."""
    from safetensors.torch import load_file
    from torchvision.models import resnet18

    from ghnctl.cli.app import app

    out = tmp_path / "r18.safetensors"
    args = ["predict", "resnet18", "--ghn", "auto", "--num-classes", "10", "--image-size", "32", "--out", out]
    if case == "offline":
        args.append("--offline")
    else:
        monkeypatch.setenv("GHNCTL_HUB_URL", "http://ghnctl-test.invalid")
    result = main_cli(*args)
    assert result.exit_code == 0, result.stderr
    [line] = [x for x in lines(result.stderr) if "built-in" in x]
    why = "offline mode is on" if case == "offline" else "the GHN hub cannot be reached (cannot resolve host"
    assert line.startswith(f"warning: no official GHN-3 is cached and {why}")
    assert "using the built-in ghnctl-c10" in line and "run `ghnctl pull ghn3xlm16`" in line
    assert options_named(line) <= options_of(app, "predict"), line
    assert sleeps == []
    model = resnet18(num_classes=10)
    model.load_state_dict(load_file(out))  # a complete, loadable state_dict
    assert "GHN ghnctl-c10" in result.stderr


def test_cache_commands(cli, server, payload, tmp_path: Path) -> None:
    root = tmp_path / "cache"
    empty = cli("cache", "list")
    assert empty.exit_code == 0 and "the GHN cache is empty" in empty.stderr
    assert cli("cache", "path").stdout.strip() == str(root)
    assert json.loads(cli("cache", "path", "--json").stdout)["path"] == str(root)

    server.add_hf(HF_REPO, "ghn3tm8.pt", payload)
    assert cli("pull", "ghn3tm8").exit_code == 0
    listed = json.loads(cli("cache", "list", "--json").stdout)
    assert [g["name"] for g in listed["ghns"]] == ["ghn3tm8"] and listed["partial"] == []
    table = cli("cache", "list")
    assert "ghn3tm8" in table.stderr and table.stdout == ""
    assert cli("cache", "path", "ghn3tm8").stdout.strip() == str(lookup("ghn3tm8").path)

    not_cached = cli("cache", "path", "ghn3sm8")
    assert not_cached.exit_code == 2 and "ghnctl pull ghn3sm8" in not_cached.stderr

    refused = cli("cache", "clear", "ghn3tm8")
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert lookup("ghn3tm8") is not None

    cleared = cli("cache", "clear", "ghn3tm8", "--yes", "--json")
    assert cleared.exit_code == 0 and json.loads(cleared.stdout)["removed"] == ["ghn3tm8"]
    assert lookup("ghn3tm8") is None
    assert "nothing to delete" in cli("cache", "clear", "--yes").stderr
    assert cli("cache", "clear", "../x", "--yes").exit_code == 2


def test_progress_bar_on_a_terminal() -> None:
    from rich.console import Console

    output = Output()
    buffer = io.StringIO()
    output._console = Console(file=buffer, force_terminal=True, width=100, highlight=False)
    with hub_cli.DownloadProgress(output) as progress:
        for event in (
            DownloadEvent("start", "ghn3tm8", "http://x", 0, 2_000_000),
            DownloadEvent("progress", "ghn3tm8", "http://x", 1_000_000, 2_000_000),
            DownloadEvent("retry", "ghn3tm8", "http://x", 1_000_000, None, "connection reset; retrying in 1.0 s"),
            DownloadEvent("start", "ghn3tm8", "http://x", 1_000_000, 2_000_000),
            DownloadEvent("progress", "ghn3tm8", "http://x", 2_000_000, 2_000_000),
            DownloadEvent("verify", "ghn3tm8", "http://x", 2_000_000, 2_000_000),
            DownloadEvent("done", "ghn3tm8", "http://x", 2_000_000, 2_000_000),
        ):
            progress(event)
    text = buffer.getvalue()
    assert "ghn3tm8" in text and "2.0 MB" in text and "retrying in 1.0 s" in text


def test_resolve_ghn_cli_announces_auto_download(cli, server, payload, capsys) -> None:
    server.add_hf(HF_REPO, "ghn3xlm16.pt", payload)
    path = hub_cli.resolve_ghn_cli(Output(), "auto")
    assert path == lookup("ghn3xlm16").path
    err = capsys.readouterr().err
    assert "no GHN-3 in the cache: downloading ghn3xlm16 (~2.6 GB)" in err
