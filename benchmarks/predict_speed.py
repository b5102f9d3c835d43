"""Prediction speed and peak memory of ghnctl's GHN engine, one subprocess per case.

For every (GHN, architecture) case a fresh Python process builds the torchvision model, builds its
graph, predicts its parameters (first call, then the median of ``--repeat`` calls) and reports its
peak RSS. With ``--baseline`` the same process also times ``ghnctl.ghn.reference.reference_predict``,
a literal transcription of the official decoding (whole S x S grid, all C0 x C1 channel pairs per
shape group), interleaved with ghnctl's calls, so the speed-up is a ratio measured under the same
load. Prints a markdown table (and ``--json`` rows).

GHNs: ``tiny`` = the golden ghn3-tiny-c1000 file (hid 32, 2 layers); ``t`` = random weights with
ghn3tm8 shapes (hid 64, 3 layers, 8 heads, max_shape (64,64,16,16)); ``xl`` = random weights with
ghn3xlm16 shapes (hid 384, 24 layers, 16 heads, (384,384,16,16), 654M parameters).

    python benchmarks/predict_speed.py                       # all archs x tiny, t, xl
    python benchmarks/predict_speed.py --ghn xl --arch resnet50 --baseline --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ARCHS = ("resnet18", "resnet50", "mobilenet_v3_small", "vit_b_16", "convnext_tiny", "densenet121",
         "squeezenet1_0", "efficientnet_b0")
GHNS = ("tiny", "t", "xl")
GOLDEN = Path(os.environ.get("GHNCTL_SHARED") or Path(__file__).resolve().parents[2] / "shared") / "golden"


def _make_ghn(kind: str):
    import torch

    from ghnctl.ghn import GHN, GhnConfig, load_ghn

    if kind == "tiny":
        return load_ghn(GOLDEN / "ghn3-tiny-c1000.pt")
    shapes = {"t": dict(hid=64, layers=3, heads=8, max_shape=(64, 64, 16, 16)),
              "xl": dict(hid=384, layers=24, heads=16, max_shape=(384, 384, 16, 16))}[kind]
    ghn = GHN.from_config(GhnConfig(num_classes=1000, **shapes), device="meta").to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in ghn.parameters():
            p.normal_(0.0, 0.02, generator=generator)
    return ghn.eval()


def _child(ghn_kind: str, arch: str, repeat: int, baseline: bool, threads: int) -> dict:
    import copy
    import resource

    import torch
    import torchvision

    from ghnctl.graph import build_graph
    from ghnctl.predict import predict_parameters

    torch.set_num_threads(threads)
    ghn = _make_ghn(ghn_kind)
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(num_classes=1000)
    start = time.perf_counter()
    graph = build_graph(model, arch=arch)
    graph_s = time.perf_counter() - start

    times, ref_times = [], []
    for _ in range(repeat):
        torch.manual_seed(0)  # the ViT class-token row is drawn from the global RNG
        start = time.perf_counter()
        _, report = predict_parameters(ghn, model, graph, return_report=True)
        times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if baseline:
        from ghnctl.ghn.reference import reference_predict

        reference_model = copy.deepcopy(model)
        for _ in range(repeat):  # interleaved with ghnctl's calls: both see the same load
            torch.manual_seed(0)
            start = time.perf_counter()
            reference_predict(ghn, reference_model, graph)
            ref_times.append(time.perf_counter() - start)
            torch.manual_seed(0)
            start = time.perf_counter()
            predict_parameters(ghn, model, graph)
            times.append(time.perf_counter() - start)
    row = {
        "ghn": ghn_kind, "arch": arch, "threads": threads, "nodes": graph.num_nodes,
        "graph_s": graph_s, "first_predict_s": times[0], "predict_s": statistics.median(times[1:] or times),
        "forward_s": report.timings["forward"], "assign_s": report.timings["assign"],
        "end_to_end_s": graph_s + times[0], "peak_rss_mb": peak_mb,
        "n_predicted": len(report.predicted), "n_params": len(report.params),
    }
    if baseline:
        row["baseline_s"] = statistics.median(ref_times)
        row["speedup"] = row["baseline_s"] / statistics.median(times[repeat:])
        row["max_rel_diff"] = max(
            float(((p - q).abs().max() / q.abs().max().clamp_min(1e-12)).detach())
            for p, q in zip(model.parameters(), reference_model.parameters()))
    return row


def _run_case(ghn_kind: str, arch: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", "--ghn", ghn_kind, "--arch", arch, "--repeat", str(args.repeat),
           "--threads", str(args.threads)] + (["--baseline"] if args.baseline else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"ghn": ghn_kind, "arch": arch, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _table(rows: list[dict], baseline: bool) -> str:
    head = ["GHN", "arch", "nodes", "graph (s)", "first predict (s)", "predict (s, median)", "end-to-end (s)",
            "peak RSS (MB)"]
    if baseline:
        head += ["official-equivalent (s)", "speed-up", "max rel. diff"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['ghn']} | {r['arch']} | error: {r['error']} |")
            continue
        cells = [r["ghn"], r["arch"], str(r["nodes"]), f"{r['graph_s']:.3f}", f"{r['first_predict_s']:.3f}",
                 f"{r['predict_s']:.3f}", f"{r['end_to_end_s']:.3f}", f"{r['peak_rss_mb']:.0f}"]
        if baseline:
            cells += [f"{r['baseline_s']:.3f}", f"{r['speedup']:.1f}x", f"{r['max_rel_diff']:.1e}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ghn", action="append", choices=GHNS, help="GHN size(s) (default: all)")
    parser.add_argument("--arch", action="append", help="torchvision architecture(s) (default: the golden set)")
    parser.add_argument("--repeat", type=int, default=3, help="predict calls per case (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--baseline", action="store_true",
                        help="also time the official-equivalent full decoding in the same process")
    parser.add_argument("--json", action="store_true", help="print one JSON object per case too")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.ghn[0], args.arch[0], args.repeat, args.baseline, args.threads)))
        return
    rows = []
    for ghn_kind in args.ghn or GHNS:
        for arch in args.arch or ARCHS:
            row = _run_case(ghn_kind, arch, args)
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    print(_table(rows, args.baseline))


if __name__ == "__main__":
    main()
