"""Graph construction speed, side by side with the official GHN code; start-up; supported models.

Usage::

    python benchmarks/graph_speed.py                              # 7 models, 2 threads, median of 5
    python benchmarks/graph_speed.py --runs 7 --threads 1 2 --write /tmp/graph.md
    python benchmarks/graph_speed.py --all --write docs/supported-models.md

For every model, one process builds the model once and times the official ``Graph(model,
ve_cutoff=50)`` (imported at run time from ``<shared>/official``) and ``ghnctl.build_graph(model)``
on it, interleaved (official, ghnctl, ghnctl, official, ...) after one warm-up call of each, and
reports the medians and their ratio. Nothing stored from another run enters a ratio. It also
checks that both built the same graph (node names and the whole distance matrix). ``<shared>`` is
``$GHNCTL_SHARED`` or ``../shared`` next to the repository.

``--all`` builds the graph of every torchvision classification model, each in its own process (a
model that runs out of memory cannot take the others down), and writes the supported-models page.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ARCHS = (
    "resnet50",
    "vit_b_16",
    "convnext_tiny",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "swin_t",
    "densenet121",
)
PROBE_TIMEOUT_S = 900


# ------------------------------------------------------------------------------------------------
# shared with predict_speed.py: the official code, the machine, timing


def shared_dir() -> Path | None:
    env = os.environ.get("GHNCTL_SHARED")
    path = Path(env) if env else REPO.parent / "shared"
    return path if path.is_dir() else None


def import_official() -> Any:
    """The official ``ghn3`` package (``../shared/official``), for side-by-side timing only."""
    shared = shared_dir()
    official = shared / "official" if shared else None
    if official is None or not (official / "ghn3").is_dir():
        raise SystemExit("the official code is needed for a side-by-side ratio: put shared/ next to the "
                         "repository or set GHNCTL_SHARED")
    for sub in ("stubs", "ppuda", "ghn3"):  # inserted in reverse: ghn3, ppuda, stubs first on sys.path
        sys.path.insert(0, str(official / sub))
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        import ghn3  # type: ignore[import-not-found]
    return ghn3


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow stdout (the official code prints its warnings); used around both sides alike."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def interleaved(calls: dict[str, Callable[[], Any]], runs: int) -> dict[str, list[float]]:
    """Time each call ``runs`` times, alternating the order every round (AB BA AB ...)."""
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(runs):
        for name in names if r % 2 == 0 else reversed(names):
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    return times


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "src", "benchmarks")
    return commit + (" + uncommitted changes" if dirty else "")


def machine_line() -> str:
    import torch

    return (f"{cpu_model()}, {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def load_average() -> str:
    try:
        return "/".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def header(command: str, threads: list[int], runs: int, load_start: str) -> list[str]:
    """The lines that say how, where and on what a table was measured."""
    return [
        f"Command: `{command}`",
        f"Machine: {machine_line()}; torch threads {', '.join(map(str, threads))}.",
        f"Commit: `{git_commit()}`, {time.strftime('%Y-%m-%d %H:%M')}. Load average (1/5/15 min) "
        f"{load_start} at the start, {load_average()} at the end (the machine is shared).",
        f"Each time is the median of {runs} warm calls, official and ghnctl interleaved in one process; "
        "speed-up = official / ghnctl.",
    ]


def write_or_print(text: str, path: Path | None, force: bool) -> None:
    if path is None:
        print(text)
        return
    from ghnctl import io as ghn_io

    ghn_io.atomic_write_text(path, text + "\n", force=force)
    print(f"wrote {path}", file=sys.stderr)


# ------------------------------------------------------------------------------------------------
# graph construction, side by side


def same_graph(official: Any, graph: Any) -> bool:
    """Whether the official Graph and ours have the same nodes (names, order) and distances."""
    import torch

    names = [n["param_name"] for n in official._nodes]
    if names != [n.name for n in graph.nodes]:
        return False
    return torch.equal(torch.as_tensor(official._Adj).long(), graph.dist)


def time_graph(ghn3: Any, arch: str, runs: int, threads: int) -> dict[str, Any]:
    """Median warm times of the official Graph and ghnctl's build_graph on one model."""
    import torch

    from ghnctl import zoo
    from ghnctl.graph import build_graph

    torch.set_num_threads(threads)
    spec = zoo.resolve_model(arch, num_classes=1000, seed=0)
    model = spec.model

    def official() -> Any:
        with quiet():
            return ghn3.Graph(model, ve_cutoff=50)

    def ours() -> Any:
        with quiet():
            return build_graph(model, arch=arch, image_size=spec.image_size)

    first = {}
    start = time.perf_counter()
    reference = official()
    first["official"] = time.perf_counter() - start
    start = time.perf_counter()
    graph = ours()
    first["ghnctl"] = time.perf_counter() - start
    times = interleaved({"official": official, "ghnctl": ours}, runs)
    med = {name: statistics.median(values) for name, values in times.items()}
    return {
        "arch": arch, "threads": threads, "runs": runs, "nodes": graph.num_nodes,
        "same_graph": same_graph(reference, graph), "first_s": first, "median_s": med,
        "times_s": times, "speedup": med["official"] / med["ghnctl"],
    }


def graph_table(rows: list[dict[str, Any]]) -> str:
    head = ["model", "nodes", "same graph", "threads", "official (s)", "ghnctl (s)", "speed-up",
            "first call: official / ghnctl (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        med, first = r["median_s"], r["first_s"]
        cells = [r["arch"], str(r["nodes"]), "yes" if r["same_graph"] else "**no**", str(r["threads"]),
                 f"{med['official']:.3f}", f"{med['ghnctl']:.3f}", f"**{r['speedup']:.1f}x**",
                 f"{first['official']:.3f} / {first['ghnctl']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# start-up


def help_command() -> list[str]:
    """The installed console script when there is one (what users run), else ``python -m ghnctl``."""
    script = Path(sys.executable).with_name("ghnctl")
    if script.exists():
        return [str(script), "--help"]
    found = shutil.which("ghnctl")
    return [found, "--help"] if found else [sys.executable, "-m", "ghnctl", "--help"]


def time_command(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def startup(runs: int) -> dict[str, Any]:
    argv = help_command()
    return {
        "command": " ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv)),
        "runs": runs,
        "median_s": time_command(argv, runs),
        "python_baseline_s": time_command([sys.executable, "-c", "pass"], runs),
    }


# ------------------------------------------------------------------------------------------------
# --all: supported models


def probe(arch: str) -> dict[str, Any]:
    """Build one model's graph; the result of a ``--probe`` child process."""
    import torch

    from ghnctl import zoo
    from ghnctl.errors import GhnctlError
    from ghnctl.graph import build_graph

    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        spec = zoo.resolve_model(arch, seed=0)
        graph = build_graph(spec.model, arch=arch, image_size=spec.image_size)
    except GhnctlError as exc:
        return {"arch": arch, "ok": False, "error": str(exc)}
    except Exception as exc:  # a crash is a result here: the page lists it
        return {"arch": arch, "ok": False, "error": f"unexpected {type(exc).__name__}: {exc}"}
    return {
        "arch": arch,
        "ok": True,
        "image_size": spec.image_size,
        "num_nodes": graph.num_nodes,
        "num_edges": graph.num_edges,
        "uncovered": len(graph.uncovered),
        "warnings": list(graph.warnings),
        "seconds": time.perf_counter() - start,
    }


def probe_in_child(arch: str) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--probe", arch]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"arch": arch, "ok": False, "error": f"timed out after {PROBE_TIMEOUT_S} s"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        killed = " (killed: out of memory?)" if proc.returncode < 0 else ""
        return {"arch": arch, "ok": False, "error": f"{tail}{killed}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def supported_models_page(rows: list[dict[str, Any]], about: str) -> str:
    ok = sum(r["ok"] for r in rows)
    lines = [
        "# Supported models",
        "",
        "Every torchvision classification model",
        "(`torchvision.models.list_models(module=torchvision.models)`) and whether `ghnctl graph MODEL`",
        "builds its GHN graph (default input size, 1000 classes).",
        '"not in graph" counts trainable tensors with no graph node: a GHN leaves them at the model\'s',
        "own initialisation.",
        "",
        f"Generated by `python benchmarks/graph_speed.py --all --write docs/supported-models.md` on {about}.",
        f"**{ok} of {len(rows)} build.**",
        "",
        "| model | graph | input | nodes | edges | not in graph | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["ok"]:
            notes = "; ".join(r["warnings"]).replace("|", "\\|")
            lines.append(
                f"| {r['arch']} | yes | {r['image_size']} | {r['num_nodes']} | {r['num_edges']} "
                f"| {r['uncovered']} | {notes} |"
            )
        else:
            error = r["error"].replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {r['arch']} | **no** | | | | | {error} |")
    return "\n".join(lines) + "\n"


def run_all(write: Path | None, force: bool) -> int:
    from ghnctl import io, zoo

    if write is not None:
        io.check_output_path(write, force)
    rows = []
    for arch in zoo.list_models():
        row = probe_in_child(arch)
        status = "ok" if row["ok"] else f"FAILED: {row['error']}"
        print(f"{arch}: {status}", file=sys.stderr, flush=True)
        rows.append(row)
    page = supported_models_page(rows, f"{machine_line()}, {time.strftime('%Y-%m-%d')}")
    if write is None:
        sys.stdout.write(page)
    else:
        io.atomic_write_text(write, page, force=force)
        print(f"wrote {write}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS), help="torchvision model names")
    parser.add_argument("--runs", type=int, default=5, help="timed warm calls per side and model (median)")
    parser.add_argument("--threads", type=int, nargs="+", default=[2], help="torch thread counts")
    parser.add_argument("--startup-runs", type=int, default=10, help="runs of `ghnctl --help` (0: skip)")
    parser.add_argument("--json", action="store_true", help="also print one JSON object per row")
    parser.add_argument("--all", action="store_true", help="check every torchvision model (supported-models page)")
    parser.add_argument("--write", type=Path, help="write the markdown (table, or the --all page) to this file")
    parser.add_argument("--force", action="store_true", help="with --write: overwrite the file")
    parser.add_argument("--probe", metavar="ARCH", help=argparse.SUPPRESS)  # child process of --all
    args = parser.parse_args(argv)

    if args.probe:
        print(json.dumps(probe(args.probe)))
        return 0
    if args.all:
        return run_all(args.write, args.force)
    if args.write is not None:
        from ghnctl import io as ghn_io

        ghn_io.check_output_path(args.write, args.force)

    load_start = load_average()
    ghn3 = import_official()
    rows = []
    for threads in args.threads:
        for arch in args.archs:
            row = time_graph(ghn3, arch, args.runs, threads)
            rows.append(row)
            print(f"{arch} ({threads} thr): official {row['median_s']['official']:.3f} s, ghnctl "
                  f"{row['median_s']['ghnctl']:.3f} s, {row['speedup']:.1f}x, same graph: {row['same_graph']}",
                  file=sys.stderr, flush=True)
            if args.json:
                print(json.dumps(row), flush=True)
    command = "python benchmarks/graph_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = header(command.strip(), args.threads, args.runs, load_start) + ["", graph_table(rows)]
    if args.startup_runs > 0:
        s = startup(args.startup_runs)
        lines.append(f"\n`{s['command']}`: median {s['median_s']:.3f} s over {s['runs']} runs "
                     f"(bare `python -c pass`: {s['python_baseline_s']:.3f} s).")
    write_or_print("\n".join(lines), args.write, args.force)
    return 0 if all(r["same_graph"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
