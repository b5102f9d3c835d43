"""Graph construction speed against the official GHN code, ``ghnctl --help`` start-up, supported models.

Usage::

    python benchmarks/graph_speed.py                      # markdown table, 1 and 2 threads
    python benchmarks/graph_speed.py --runs 5 --threads 1 --json
    python benchmarks/graph_speed.py --all --write docs/supported-models.md

The official times come from ``<shared>/golden/graph__<arch>__c1000.json`` (``graph_construction_s``,
median of 3, 1 thread) and ``<shared>/docs/perf-anchors.md`` (ResNet-50, 2 threads). They were
measured on another day on a shared machine: compare ratios within one run of this script with care.
``<shared>`` is ``$GHNCTL_SHARED`` or ``../shared`` next to the repository.

``--all`` builds the graph of every torchvision classification model, each in its own process (a
model that runs out of memory cannot take the others down), and writes the supported-models page.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ARCHS = (
    "resnet50",
    "vit_b_16",
    "convnext_tiny",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "densenet121",
)
# perf-anchors.md, "Official code on these machines": ResNet-50 graph construction, 2 threads,
# tiny golden GHN row (the other rows, 0.23-0.29 s, are the same graph measured again).
ANCHOR_GRAPH_S_2THREADS = {"resnet50": 0.27}
PROBE_TIMEOUT_S = 900


def shared_dir() -> Path | None:
    env = os.environ.get("GHNCTL_SHARED")
    path = Path(env) if env else REPO.parent / "shared"
    return path if (path / "golden").is_dir() else None


def official_graph(shared: Path | None, arch: str) -> dict[str, Any] | None:
    if shared is None:
        return None
    path = shared / "golden" / f"graph__{arch}__c1000.json"
    return json.loads(path.read_text()) if path.is_file() else None


# ------------------------------------------------------------------------------------------------
# graph construction


def time_graph(arch: str, runs: int, threads: int) -> dict[str, Any]:
    """Median wall time of ``build_graph`` for ``arch`` (1000 classes) after one warm-up run."""
    import torch

    from ghnctl import zoo
    from ghnctl.graph import build_graph

    torch.set_num_threads(threads)
    spec = zoo.resolve_model(arch, num_classes=1000, seed=0)
    graph = build_graph(spec.model, arch=arch, image_size=spec.image_size)  # warm-up: lazy inits, caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        build_graph(spec.model, arch=arch, image_size=spec.image_size)
        times.append(time.perf_counter() - start)
    return {
        "arch": arch,
        "threads": threads,
        "runs": runs,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "num_nodes": graph.num_nodes,
        "num_edges": graph.num_edges,
    }


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
# report


def _fmt(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:.3f}"


def markdown(results: dict[str, Any]) -> str:
    threads = results["threads"]
    head = ["model", "nodes", "official nodes"]
    head += [f"ghnctl {t} thr (s)" for t in threads]
    head += ["official 1 thr (s)", "ratio 1 thr"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in results["graphs"]:
        official = row["official_s"]
        by_threads = row["median_s"]
        one = by_threads.get("1")
        ratio = f"{one / official:.2f}x" if one is not None and official else "n/a"
        cells = [row["arch"], str(row["num_nodes"]), str(row["official_nodes"] or "n/a")]
        cells += [_fmt(by_threads.get(str(t))) for t in threads]
        cells += [_fmt(official), ratio]
        lines.append("| " + " | ".join(cells) + " |")
    for arch, anchor in ANCHOR_GRAPH_S_2THREADS.items():
        row = next((r for r in results["graphs"] if r["arch"] == arch), None)
        ours = row["median_s"].get("2") if row else None
        if ours is not None:
            lines.append(f"\n{arch}, 2 threads: ghnctl {ours:.3f} s vs official {anchor:.2f} s (perf-anchors.md).")
    s = results["startup"]
    if s:
        lines.append(
            f"\n`{s['command']}`: median {s['median_s']:.3f} s over {s['runs']} runs "
            f"(bare `python -c pass`: {s['python_baseline_s']:.3f} s)."
        )
    lines.append(f"\nMachine: {results['machine']}. Ratio = ghnctl / official (golden files, 1 thread).")
    return "\n".join(lines)


def machine() -> str:
    import torch

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}"
    )


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
    page = supported_models_page(rows, f"{machine()}, {time.strftime('%Y-%m-%d')}")
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
    parser.add_argument("--runs", type=int, default=3, help="timed runs per model (median reported)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts")
    parser.add_argument("--startup-runs", type=int, default=10, help="runs of `ghnctl --help` (0: skip)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a markdown table")
    parser.add_argument("--all", action="store_true", help="check every torchvision model (supported-models page)")
    parser.add_argument("--write", type=Path, help="with --all: write the page here instead of stdout")
    parser.add_argument("--force", action="store_true", help="with --write: overwrite the file")
    parser.add_argument("--probe", metavar="ARCH", help=argparse.SUPPRESS)  # child process of --all
    args = parser.parse_args(argv)

    if args.probe:
        print(json.dumps(probe(args.probe)))
        return 0
    if args.all:
        return run_all(args.write, args.force)

    shared = shared_dir()
    graphs = []
    for arch in args.archs:
        official = official_graph(shared, arch)
        row: dict[str, Any] = {
            "arch": arch,
            "median_s": {},
            "official_s": official.get("graph_construction_s") if official else None,
            "official_nodes": official.get("n_nodes") if official else None,
        }
        for threads in args.threads:
            result = time_graph(arch, args.runs, threads)
            row["median_s"][str(threads)] = result["median_s"]
            row["num_nodes"] = result["num_nodes"]
            print(f"{arch} ({threads} thr): {result['median_s']:.3f} s", file=sys.stderr, flush=True)
        graphs.append(row)
    results = {
        "machine": machine(),
        "threads": args.threads,
        "runs": args.runs,
        "shared": str(shared) if shared else None,
        "graphs": graphs,
        "startup": startup(args.startup_runs) if args.startup_runs > 0 else None,
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
