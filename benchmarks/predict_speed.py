"""Prediction speed, side by side with the official GHN-3 code, graph construction included.

For each GHN size, one child process builds a random-weight GHN-3 with the official class
(``ghn3.GHN3``, imported at run time from ``<shared>/official``, seeded), hands the same weights to
ghnctl (``ghn_from_state_dict``: no copy), and for every model times the official ``ghn(model)``
(under ``torch.no_grad()``, official defaults: it builds the graph itself) and ghnctl's
``predict_parameters(ghn, model)`` (which builds the graph too), interleaved after one warm-up call
of each, on two copies of the same seeded torchvision model. It reports the medians, their ratio
and the largest per-tensor relative difference between the two sets of predicted parameters.
Nothing stored from another run enters a ratio.

GHN sizes (``--ghn``): ``tiny`` hid 32, 2 layers, 8 heads, max_shape (64,64,11,11) (the golden
GHN's shapes); ``t`` hid 64, 3 layers, 8 heads, (64,64,11,11) (GHN-3-T with the spatial size of
perf-anchors.md); ``xl`` hid 384, 24 layers, 16 heads, (384,384,16,16) (GHN-3-XL/m16, 654M
parameters: ~2.6 GB of weights, shared by both sides, and several GB of official activations).

    python benchmarks/predict_speed.py                         # tiny, t, xl x 7 models, 2 threads
    python benchmarks/predict_speed.py --ghn t --archs resnet50 --runs 3 --write /tmp/predict.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graph_speed import (  # noqa: E402 - the sibling script holds the side-by-side helpers
    DEFAULT_ARCHS,
    header,
    import_official,
    interleaved,
    load_average,
    quiet,
    write_or_print,
)

GHN_SHAPES: dict[str, dict[str, Any]] = {
    "tiny": dict(hid=32, layers=2, heads=8, max_shape=(64, 64, 11, 11)),
    "t": dict(hid=64, layers=3, heads=8, max_shape=(64, 64, 11, 11)),
    "xl": dict(hid=384, layers=24, heads=16, max_shape=(384, 384, 16, 16)),
}


def make_ghns(ghn3: Any, kind: str) -> tuple[Any, Any]:
    """The official GHN3 with seeded random weights, and ghnctl's GHN on the very same tensors."""
    import torch

    from ghnctl.ghn.checkpoint import to_ghnctl_layout
    from ghnctl.ghn.config import GhnConfig
    from ghnctl.ghn.model import ghn_from_state_dict

    shape = GHN_SHAPES[kind]
    torch.manual_seed(0)
    with quiet():
        official = ghn3.GHN3(num_classes=1000, weight_norm=True, ve=True, layernorm=True, pretrained=False,
                             **shape).eval()
    config = GhnConfig(num_classes=1000, layernorm=True, **shape)
    ours = ghn_from_state_dict(to_ghnctl_layout(official.state_dict(), config), config)
    return official, ours


def max_relative_difference(a: Any, b: Any) -> float:
    """Largest per-tensor relative L2 difference between two models' parameters (ViT's random
    class-token row of the positional embedding excluded)."""
    import torch

    worst = 0.0
    theirs = dict(b.named_parameters())
    with torch.no_grad():
        for name, p in a.named_parameters():
            q = theirs[name]
            if name.endswith("pos_embedding"):
                p, q = p[:, 1:], q[:, 1:]
            worst = max(worst, float((p - q).norm() / q.norm().clamp_min(1e-12)))
    return worst


def time_predict(ghn3: Any, official_ghn: Any, ghn: Any, arch: str, runs: int) -> dict[str, Any]:
    import torch

    from ghnctl import zoo
    from ghnctl.predict import predict_parameters

    theirs = zoo.resolve_model(arch, num_classes=1000, seed=0).model
    ours = zoo.resolve_model(arch, num_classes=1000, seed=0).model

    def official() -> None:
        torch.manual_seed(0)  # the ViT class-token row is drawn from the global RNG, on both sides
        with quiet(), torch.no_grad():
            official_ghn(theirs)

    def ghnctl() -> None:
        torch.manual_seed(0)
        with quiet():
            predict_parameters(ghn, ours)

    first = {}
    for name, call in (("official", official), ("ghnctl", ghnctl)):
        start = time.perf_counter()
        call()
        first[name] = time.perf_counter() - start
    times = interleaved({"official": official, "ghnctl": ghnctl}, runs)
    med = {name: statistics.median(values) for name, values in times.items()}
    return {"arch": arch, "first_s": first, "median_s": med, "times_s": times,
            "speedup": med["official"] / med["ghnctl"], "max_rel_diff": max_relative_difference(ours, theirs)}


def child(kind: str, archs: list[str], runs: int, threads: int) -> None:
    """One GHN size in this process: one JSON line per model on stdout."""
    import torch

    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # the official code's autocast calls
    ghn3 = import_official()
    official_ghn, ghn = make_ghns(ghn3, kind)
    for arch in archs:
        row = time_predict(ghn3, official_ghn, ghn, arch, runs)
        row.update(ghn=kind, threads=threads)
        print(json.dumps(row), flush=True)


def run_size(kind: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    cmd = [sys.executable, __file__, "--child", "--ghn", kind, "--archs", *args.archs, "--runs", str(args.runs),
           "--threads", str(args.threads)]
    rows = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            row = json.loads(line)
            rows.append(row)
            med = row["median_s"]
            print(f"{kind} {row['arch']}: official {med['official']:.3f} s, ghnctl {med['ghnctl']:.3f} s, "
                  f"{row['speedup']:.1f}x", file=sys.stderr, flush=True)
    if proc.returncode != 0:
        done = {r["arch"] for r in rows}
        rows += [{"ghn": kind, "arch": a, "error": f"child exited with {proc.returncode}"}
                 for a in args.archs if a not in done]
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = ["GHN", "model", "official (s)", "ghnctl (s)", "speed-up", "first call: official / ghnctl (s)",
            "max rel. diff"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['ghn']} | {r['arch']} | error: {r['error']} | | | | |")
            continue
        med, first = r["median_s"], r["first_s"]
        cells = [r["ghn"], r["arch"], f"{med['official']:.3f}", f"{med['ghnctl']:.3f}", f"**{r['speedup']:.1f}x**",
                 f"{first['official']:.3f} / {first['ghnctl']:.3f}", f"{r['max_rel_diff']:.1e}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ghn", nargs="+", choices=list(GHN_SHAPES), default=list(GHN_SHAPES), help="GHN sizes")
    parser.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS), help="torchvision model names")
    parser.add_argument("--runs", type=int, default=5, help="timed warm calls per side and model (median)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--json", action="store_true", help="also print one JSON object per row")
    parser.add_argument("--write", type=Path, help="write the markdown to this file")
    parser.add_argument("--force", action="store_true", help="with --write: overwrite the file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.ghn[0], args.archs, args.runs, args.threads)
        return 0
    if args.write is not None:
        from ghnctl import io as ghn_io

        ghn_io.check_output_path(args.write, args.force)
    load_start = load_average()
    rows = [row for kind in args.ghn for row in run_size(kind, args)]
    if args.json:
        for row in rows:
            print(json.dumps(row))
    command = "python benchmarks/predict_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = header(command.strip(), [args.threads], args.runs, load_start)
    lines += ["Max rel. diff: largest per-tensor relative L2 difference between the two predictions.", "",
              table(rows)]
    write_or_print("\n".join(lines), args.write, args.force)
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
