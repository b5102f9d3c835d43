"""Start-up: what ``ghnctl graph`` can refuse or answer before torch is imported (seconds saved).

Each case runs ``python -m ghnctl`` in a fresh interpreter through a wrapper that reports, on
exit, whether torch or torchvision were imported. Checking the imports rather than the time keeps
the tests meaningful on a slow or busy machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ghnctl import _tv_models, tv_names

# Runs ghnctl as `python -m ghnctl` does, then prints which heavy modules got imported.
WRAPPER = """
import runpy, sys
sys.argv = ["ghnctl", *sys.argv[1:]]
try:
    runpy.run_module("ghnctl", run_name="__main__", alter_sys=True)
finally:
    heavy = [m for m in ("torch", "torchvision") if m in sys.modules]
    sys.stderr.write("\\nheavy imports: " + (",".join(heavy) or "none") + "\\n")
"""

needs_stored_names = pytest.mark.skipif(
    tv_names.installed_version() != _tv_models.TORCHVISION_VERSION,
    reason="the stored torchvision names are not the installed torchvision's, so torch is needed to be sure",
)


def run(*args: object, cwd: Path) -> tuple[int, str, str]:
    """(exit code, error lines without the report, heavy modules imported) of ``ghnctl ARGS``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHNCTL_")}
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("heavy imports: "), proc.stderr
    return proc.returncode, "\n".join(lines[:-1]), lines[-1].removeprefix("heavy imports: ")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--out", "missing_dir/g.png"], 1, "directory 'missing_dir' does not exist"),
        (["--out", "taken.png"], 1, "'taken.png' already exists"),
        (["--render"], 1, "'resnet18.svg' already exists"),
        (["--out", "g.jpg"], 2, "cannot render a graph to '.jpg'"),
        (["--out", "g.svg", "--engine", "gimp"], 2, "unknown render engine 'gimp'"),
    ],
)
def test_bad_output_is_refused_before_torch(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    (tmp_path / "taken.png").write_text("keep me")
    (tmp_path / "resnet18.svg").write_text("keep me")
    exit_code, errors, heavy = run("graph", "resnet18", *args, cwd=tmp_path)
    assert (exit_code, heavy) == (code, "none"), errors
    assert message in errors
    assert (tmp_path / "taken.png").read_text() == "keep me"


@needs_stored_names
def test_misspelt_model_is_refused_before_torch(tmp_path: Path) -> None:
    exit_code, errors, heavy = run("graph", "resnt50", cwd=tmp_path)
    assert (exit_code, heavy) == (2, "none"), errors
    assert errors == "error: unknown model 'resnt50' (did you mean resnet50, resnet152, resnet101?)"


@needs_stored_names
def test_list_is_answered_before_torch(tmp_path: Path) -> None:
    exit_code, errors, heavy = run("graph", "--list", "efficientnet", cwd=tmp_path)
    assert (exit_code, heavy) == (0, "none"), errors
    assert "efficientnet_v2_s" in errors and "11 model(s)" in errors


def test_the_report_sees_torch_when_a_model_is_built(tmp_path: Path, tiny_model_file: Path) -> None:
    # The control: without it, "none" above could mean the wrapper sees nothing.
    exit_code, errors, heavy = run("graph", f"{tiny_model_file}:tiny_net", "--image-size", "8", cwd=tmp_path)
    assert exit_code == 0, errors
    assert "torch" in heavy.split(",")
