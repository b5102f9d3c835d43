"""Shared fixtures: the shared reference folder, the CLI runner, a subprocess runner, model files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Run torch on one intra-op thread in the test process (``GHNCTL_TEST_THREADS`` overrides).

    The suite is many small tensor operations. With one OpenMP thread per core, every parallel
    operation waits at a barrier for all threads; when other processes hold a core (the shared
    2-core machines), that wait is a scheduler time slice per operation. Measured under load: the
    golden predictions of ghn2 x {vit_b_16, densenet121, resnet50} 47.9 s with 2 threads, 14.3 s
    with 1; building the graphs of 11 torchvision models 15.7 s vs 2.1 s. Subprocesses are not affected.
    """
    import torch

    torch.set_num_threads(int(os.environ.get("GHNCTL_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _clean_ghnctl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must not see the developer's GHNCTL_* or HF offline settings."""
    for name in list(os.environ):
        if name.startswith("GHNCTL_") and name != "GHNCTL_SHARED":
            monkeypatch.delenv(name)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only shared references (goldens, docs): ``$GHNCTL_SHARED`` or ``<repo>/../shared``."""
    env = os.environ.get("GHNCTL_SHARED")
    path = Path(env) if env else REPO.parent / "shared"
    if not (path / "golden").is_dir():
        where = f"GHNCTL_SHARED={env}" if env else str(path)
        pytest.skip(f"shared reference folder not found at {where} (set GHNCTL_SHARED to its path)")
    return path


@pytest.fixture
def cli() -> Callable[..., object]:
    """Run ``ghnctl ARGS`` in-process with Typer's CliRunner; stdout and stderr stay apart."""
    from typer.testing import CliRunner

    from ghnctl.cli.app import app

    runner = CliRunner()

    def invoke(*args: str, **kwargs: object):
        return runner.invoke(app, [str(a) for a in args], prog_name="ghnctl", **kwargs)

    return invoke


@pytest.fixture
def run_ghnctl() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m ghnctl ARGS`` in a fresh interpreter (for start-up and import checks)."""

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300):
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "ghnctl", *map(str, args)],
            capture_output=True,
            text=True,
            env=full_env,
            cwd=cwd,
            timeout=timeout,
        )

    return run


TINY_NET = textwrap.dedent(
    """
    from torch import nn


    def tiny_net(num_classes: int = 10) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, num_classes),
        )
    """
)


@pytest.fixture
def tiny_model_file(tmp_path: Path) -> Path:
    """A model file with ``tiny_net(num_classes=10)``: a conv, a BN and a classifier."""
    path = tmp_path / "mynets.py"
    path.write_text(TINY_NET)
    return path


@pytest.fixture
def tiny_model_package(tmp_path: Path) -> Iterator[Path]:
    """A package ``tinypkg.nets`` with ``tiny_net`` in ``tmp_path/pkgroot`` (not on sys.path)."""
    root = tmp_path / "pkgroot"
    (root / "tinypkg").mkdir(parents=True)
    (root / "tinypkg" / "__init__.py").write_text("")
    (root / "tinypkg" / "nets.py").write_text(TINY_NET)
    yield root
    # Each test gets its own copy: do not let the next one import this one from the module cache.
    for name in ("tinypkg", "tinypkg.nets"):
        sys.modules.pop(name, None)
