"""GHN training speed: one ghnctl training step against one official GHN-3 training step.

Usage::

    python benchmarks/train_speed.py                          # tiny and ghn3tm8, 3 timed steps each, 2 threads
    python benchmarks/train_speed.py --ghn tiny --steps 5 --write train.md
    python benchmarks/train_speed.py --sides ghnctl --profile # ghnctl only, with a cProfile of its steps
    python benchmarks/train_speed.py --baseline HEAD~1        # also time train_ghn.py as it was at HEAD~1

The step is the one ``../shared/official/bench/train_step.py`` times: a GHN-3 with ``max_shape``
(64, 64, 11, 11) and 10 classes, either ``tiny`` (hid 32, 2 layers, 8 heads) or ``ghn3tm8`` (hid 64,
3 layers, 8 heads); a meta-batch of 4 DeepNets-1M nets from the official generator (``Network(C=32,
n_cells=6, fc_dim=64)`` with the DARTS, PDARTS and two sampled genotypes); one batch of 64 random
32x32 images; CE + 3e-5 * sum of the predicted tensors' Frobenius norms, averaged over the 4 nets;
backward, gradient clipping at 5, AdamW (lr 4e-4, weight decay 1e-2), no AMP.

* **official**: ``ghn3.Trainer.update(x, y, graphs)``, with fresh nets and graphs each step as the
  official loader makes them. Like ``bench/train_step.py``, the step time excludes making those
  nets and graphs; that cost is reported on its own ("official graphs") and in the "official step
  incl. graphs" row, since the official trainer pays it for every step (in its loader).
* **ghnctl**: ``ghnctl.training.train_ghn._Run.step`` itself (the code ``ghnctl train`` runs), on
  the same four architectures, built once as ``ghnctl train`` builds them (graphs and prediction
  plans in its ``ArchPool``). The official GHN's initial weights are copied into ghnctl's GHN.
* **ghnctl@REV** (``--baseline REV``): ``_Run.step`` from ``src/ghnctl/training/train_ghn.py`` as it
  was at git revision REV, loaded next to the current one: before/after of a change to that file.

All sides run in one process, warm (``--warmup`` untimed steps each), interleaved step by step
(A B A B ...), and the median of ``--steps`` is reported, because these shared 2-core machines vary
by 2-10x with load: read the ratio, not the absolute times. Each step is also timed in process CPU
seconds. Memory is measured in one more, untimed round: before each side's step freed heap memory
is handed back (``malloc_trim``) and the kernel's high-water mark reset (``/proc/self/clear_refs``);
after it the peak RSS is read, as is the step's own share (peak minus the resident size before it;
the process's imports and the other sides' live objects are in every side's peak). The timed rounds
do not trim: like a training loop, each step reuses the heap the previous steps left.
Architectures per second are the meta-batch (4 nets) per step; images per second are the batch
(64 images) per step, as ``bench/train_step.py`` counts them (each image goes through 4 nets).

The official code is imported at run time from ``<shared>/official`` (``$GHNCTL_SHARED`` or
``../shared`` next to the repository); ghnctl never imports it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import cProfile
import ctypes
import importlib.util
import io
import os
import platform
import pstats
import re
import statistics
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from ghnctl.ghn import GHN, GhnConfig  # noqa: E402
from ghnctl.ghn.checkpoint import to_ghnctl_layout  # noqa: E402
from ghnctl.ghn.decoding import decode_parameters, plan_prediction  # noqa: E402
from ghnctl.graph import build_graph  # noqa: E402
from ghnctl.training import train_ghn as current_train_ghn  # noqa: E402
from ghnctl.training.arch_pool import Arch, ArchPool  # noqa: E402
from ghnctl.training.loaders import Batch  # noqa: E402
from ghnctl.training.optim import build_scheduler  # noqa: E402
from ghnctl.training.train_config import TrainConfig  # noqa: E402
from ghnctl.training.transforms import Normalizer  # noqa: E402

GHNS = {"tiny": dict(hid=32, heads=8, layers=2), "ghn3tm8": dict(hid=64, heads=8, layers=3)}
MAX_SHAPE = (64, 64, 11, 11)
NUM_CLASSES, META_BATCH, BATCH, IMAGE = 10, 4, 64, 32
LR, WD, CLIP, PREDPARAM_WD = 4e-4, 1e-2, 5.0, 3e-5


def shared_dir() -> Path:
    env = os.environ.get("GHNCTL_SHARED")
    path = Path(env) if env else REPO.parent / "shared"
    if not (path / "official" / "ghn3").is_dir():
        sys.exit(f"no official code in {path / 'official'}: set GHNCTL_SHARED to the shared folder")
    return path


def import_official() -> types.SimpleNamespace:
    root = shared_dir() / "official"
    sys.path[:0] = [str(root / d) for d in ("ghn3", "ppuda", "stubs")]
    warnings.filterwarnings("ignore")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from ghn3 import GHN3, Graph, GraphBatch, Trainer
        from ghn3.ops import Network
        from ppuda.deepnets1m.genotypes import DARTS, PDARTS, sample_genotype
    return types.SimpleNamespace(GHN3=GHN3, Graph=Graph, GraphBatch=GraphBatch, Trainer=Trainer, Network=Network,
                                 DARTS=DARTS, PDARTS=PDARTS, sample_genotype=sample_genotype)


# --------------------------------------------------------------------------------------------------
# Memory: the resident high-water mark, reset per step

def reset_peak() -> float:
    """Hand freed heap memory back to the system (else the other sides' freed peaks stay resident), then
    reset the high-water mark; returns the resident size (MB) then. Only between the timed rounds: a
    step after it pays page faults for all its memory, which a training loop does not (it reuses it)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    with contextlib.suppress(OSError):
        match = re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text())
        if match:
            return int(match.group(1)) / 1024
    return 0.0


def peak_mb() -> float:
    with contextlib.suppress(OSError):
        match = re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())
        if match:
            return int(match.group(1)) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------------------------------
# The sides

class Side:
    name: str
    extra: dict[str, list[float]]

    def step(self, i: int) -> tuple[float, float, float]:  # wall seconds, CPU seconds, loss
        raise NotImplementedError


class Official(Side):
    def __init__(self, off: types.SimpleNamespace, ghn_kind: str, genotypes: list[Any], x: torch.Tensor,
                 y: torch.Tensor) -> None:
        self.name, self.off, self.genotypes, self.x, self.y = "official", off, genotypes, x, y
        self.ghn = off.GHN3(max_shape=MAX_SHAPE, num_classes=NUM_CLASSES, weight_norm=True, ve=True, layernorm=True,
                            **GHNS[ghn_kind])
        with contextlib.redirect_stdout(io.StringIO()):
            self.trainer = off.Trainer(self.ghn, opt="adamw", opt_args={"lr": LR, "weight_decay": WD},
                                       scheduler="cosine-warmup", scheduler_args={}, n_batches=100, device="cpu",
                                       predparam_wd=PREDPARAM_WD, amp=False, epochs=1, log_interval=10**9,
                                       grad_clip=CLIP)
        self.extra = {"graphs_s": []}
        self.n_nodes: list[int] = []

    def make_batch(self) -> Any:
        """Fresh nets and graphs, as the official DeepNets1MDDP loader makes them for every step."""
        nets = [self.off.Network(C=32, num_classes=NUM_CLASSES, genotype=g, n_cells=6, is_imagenet_input=False,
                                 fc_dim=64) for g in self.genotypes]
        graphs = []
        for net in nets:
            graph = self.off.Graph(net, ve_cutoff=50, dense=self.ghn.is_dense())
            graph.net = net
            graphs.append(graph)
        return self.off.GraphBatch(graphs, dense=self.ghn.is_dense())

    def step(self, i: int) -> tuple[float, float, float]:
        t = time.perf_counter()
        graphs = self.make_batch()
        self.extra["graphs_s"].append(time.perf_counter() - t)
        self.n_nodes = [int(n) for n in graphs.n_nodes]
        meter = self.trainer.metrics["loss"]
        before = (float(meter.sum), meter.cnt)
        c, t = time.process_time(), time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            self.trainer.update(self.x, self.y, graphs=graphs)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        return wall, cpu, (float(meter.sum) - before[0]) / max(1, meter.cnt - before[1])


class Ghnctl(Side):
    """``_Run.step`` of a train_ghn module, on a run put together without a data set."""

    def __init__(self, name: str, module: types.ModuleType, ghn_kind: str, nets: list[torch.nn.Module],
                 init_state: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, steps: int,
                 bf16: bool = False) -> None:
        self.name, self.extra = name, {}
        spec = GHNS[ghn_kind]
        config = TrainConfig(hid=spec["hid"], layers=spec["layers"], heads=spec["heads"], max_channels=MAX_SHAPE[0],
                             max_kernel=MAX_SHAPE[2], archs=("bench",), meta_batch=META_BATCH, batch_size=BATCH,
                             steps=steps, lr=LR, weight_decay=WD, warmup_steps=0, grad_clip=CLIP,
                             predparam_wd=PREDPARAM_WD, amp=bf16, amp_dtype="bf16" if bf16 else "auto", eval_n=0,
                             seed=0, shards=1)
        ghn_config = GhnConfig(max_shape=MAX_SHAPE, num_classes=NUM_CLASSES, hid=spec["hid"], layers=spec["layers"],
                               heads=spec["heads"], is_ghn2=False, weight_norm=True, ve=True, layernorm=True)
        run = module._Run.__new__(module._Run)  # what _Run.__init__ sets up, minus the data set
        run.config, run.device, run.rank, run.world = config, torch.device("cpu"), 0, 1
        run.shards, run.local_shards, run.ghn_config = 1, [0], ghn_config
        run.ghn = GHN.from_config(ghn_config).train()
        run.ghn.load_state_dict(to_ghnctl_layout(init_state, ghn_config), strict=True)
        run.ghn.requires_grad_(True)
        run.optimizer = torch.optim.AdamW(run.ghn.parameters(), lr=LR, weight_decay=WD)
        run.scheduler = build_scheduler(run.optimizer, 10**6, 0)
        run.amp_dtype, run.scaler = (torch.bfloat16 if bf16 else None), None  # bf16 needs no GradScaler
        # The images are already floats: mean 0, std 1/255 makes the normaliser the identity.
        run.normalizer = Normalizer((0.0, 0.0, 0.0), (1 / 255,) * 3)
        pool = ArchPool([f"deepnet{i}" for i in range(len(nets))], num_classes=NUM_CLASSES, image_size=IMAGE,
                        ghn_config=ghn_config, device=run.device, seed=0)
        t = time.perf_counter()
        for i, net in enumerate(nets):  # what ArchPool.get does for a spec: graph and plan, once
            net.train()
            graph = build_graph(net, arch=f"deepnet{i}", image_size=IMAGE)
            pool._graphs[i] = graph
            pool._models[i] = Arch(f"deepnet{i}", net, plan_prediction(ghn_config, net, graph))
        self.setup_s = time.perf_counter() - t
        self.n_nodes = [pool._models[i].plan.graph.num_nodes for i in range(len(nets))]
        run.pool = pool
        self.run = run
        self.batch = Batch(x, y, ())

    def step(self, i: int) -> tuple[float, float, float]:
        c, t = time.process_time(), time.perf_counter()
        metrics = self.run.step(i, [self.batch])
        return time.perf_counter() - t, time.process_time() - c, float(metrics["loss"])


class OfficialGhnOnly(Side):
    """The official GHN's share of a step: predict with gradients (``keep_grads``) and back-propagate
    d(sum of all predicted values); no target net runs."""

    def __init__(self, official: Official) -> None:
        self.name, self.official, self.extra = "official GHN only", official, {}

    def step(self, i: int) -> tuple[float, float, float]:
        ghn = self.official.ghn
        graphs = self.official.make_batch()
        ghn.zero_grad(set_to_none=True)
        c, t = time.process_time(), time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            models = ghn(graphs.nets, graphs.to_device("cpu"), bn_track_running_stats=True, keep_grads=True,
                         reduce_graph=True)
        total = torch.stack([p.sum() for m in models for p in m.parameters()]).sum()
        total.backward()
        return time.perf_counter() - t, time.process_time() - c, float(total)


class GhnctlGhnOnly(Side):
    """ghnctl's GHN share of a step: ``decode_parameters`` with gradients for the shard's plans and the
    backward of d(sum of all predicted values); no target net runs."""

    def __init__(self, side: Ghnctl) -> None:
        self.name, self.side, self.extra = "ghnctl GHN only", side, {}

    def step(self, i: int) -> tuple[float, float, float]:
        run = self.side.run
        run.ghn.zero_grad(set_to_none=True)
        plans = [run.pool.get(j).plan for j in range(len(run.pool))]
        c, t = time.process_time(), time.perf_counter()
        predicted = decode_parameters(run.ghn, plans)
        total = torch.stack([v.sum() for tensors in predicted for v in tensors.values()]).sum()
        total.backward()
        return time.perf_counter() - t, time.process_time() - c, float(total)


def load_train_ghn_at(rev: str) -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{rev}:src/ghnctl/training/train_ghn.py"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader(f"train_ghn_at_{re.sub(r'[^0-9A-Za-z]', '_', rev)}", loader=None)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"<train_ghn.py at {rev}>", "exec"), module.__dict__)
    return module


# --------------------------------------------------------------------------------------------------

def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "src/ghnctl", "benchmarks/train_speed.py"], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": str(os.cpu_count()), "torch": torch.__version__,
            "python": platform.python_version(), "commit": commit + (" + uncommitted changes" if dirty else "")}


def run_ghn(kind: str, args: argparse.Namespace, off: types.SimpleNamespace | None) -> dict[str, Any]:
    torch.manual_seed(0)
    if off is None:
        off = import_official()
    genotypes = [off.DARTS, off.PDARTS, off.sample_genotype(steps=2), off.sample_genotype(steps=3)]
    x = torch.randn(BATCH, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, NUM_CLASSES, (BATCH,), generator=torch.Generator().manual_seed(2))
    official = Official(off, kind, genotypes, x, y)
    init_state = {k: v.detach().clone() for k, v in official.ghn.state_dict().items()}
    nets = [off.Network(C=32, num_classes=NUM_CLASSES, genotype=g, n_cells=6, is_imagenet_input=False, fc_dim=64)
            for g in genotypes]
    total = args.warmup + args.steps
    sides: list[Side] = []
    if "ghnctl" in args.sides:
        sides.append(Ghnctl("ghnctl", current_train_ghn, kind, nets, init_state, x, y, total))
    if args.bf16:
        sides.append(Ghnctl("ghnctl --amp bf16", current_train_ghn, kind, copy.deepcopy(nets), init_state, x, y, total,
                            bf16=True))
    if args.baseline:
        sides.append(Ghnctl(f"ghnctl@{args.baseline}", load_train_ghn_at(args.baseline), kind, copy.deepcopy(nets),
                            init_state, x, y, total))
    if "official" in args.sides:
        sides.append(official)
    if args.ghn_part:  # after the full steps, whose GHN they reuse (its weights stay those of the optimiser)
        sides += [GhnctlGhnOnly(s) for s in sides if s.name == "ghnctl"]
        if "official" in args.sides:
            sides.append(OfficialGhnOnly(official))
    times: dict[str, list[tuple[float, float, float]]] = {s.name: [] for s in sides}
    memory: dict[str, list[tuple[float, float]]] = {s.name: [] for s in sides}  # (peak, peak - resident before)
    profiler = cProfile.Profile() if args.profile else None
    for i in range(total + 1):  # the last round, untimed, measures memory
        for side in (sides if i % 2 == 0 else sides[::-1]):  # A B B A: drifting load hits every side alike
            before = reset_peak() if i == total else 0.0
            prof = profiler if (profiler is not None and side.name == "ghnctl" and args.warmup <= i < total) else None
            if prof is not None:
                prof.enable()
            result = side.step(i)
            if prof is not None:
                prof.disable()
            if i == total:
                peak = peak_mb()
                memory[side.name].append((peak, peak - before))
                print(f"  {kind} memory round {side.name}: peak RSS {peak:.0f} MB, {peak - before:.0f} MB above the "
                      f"resident size before the step", file=sys.stderr, flush=True)
                continue
            times[side.name].append(result)
            print(f"  {kind} step {i + 1}/{total} {side.name}: {result[0]:.3f} s (cpu {result[1]:.2f} s), "
                  f"loss {result[2]:.4f}", file=sys.stderr, flush=True)
    out: dict[str, Any] = {"ghn": kind, "ghn_params": sum(p.numel() for p in official.ghn.parameters()),
                           "sides": {}, "nodes": {}}
    ours = [s for s in sides if isinstance(s, Ghnctl) and s.run.amp_dtype is None]
    if len(ours) == 2:  # the current step and the one at --baseline: the same GHN after the same steps?
        a, b = (dict(s.run.ghn.state_dict()) for s in ours)
        out["identical"] = all(torch.equal(a[k], b[k]) for k in a)
        out["identical_sides"] = [s.name for s in ours]
        out["max_abs_diff"] = max(float((a[k] - b[k]).abs().max()) for k in a)
    for side in sides:
        timed = times[side.name][args.warmup:]
        wall = statistics.median(t[0] for t in timed)
        row: dict[str, Any] = {
            "step_s": wall, "cpu_s": statistics.median(t[1] for t in timed), "all_s": [t[0] for t in times[side.name]],
            "images_per_s": BATCH / wall, "archs_per_s": META_BATCH / wall,
            "peak_mb": max(m[0] for m in memory[side.name]), "step_mb": max(m[1] for m in memory[side.name]),
            "first_loss": times[side.name][0][2]}
        reference = "official GHN only" if side.name.endswith("GHN only") else "official"
        if reference in times and not side.name.startswith("official"):
            pairs = list(zip(times[reference][args.warmup:], timed))  # per round: adjacent in time
            row["ratio_wall"] = statistics.median(r[0] / t[0] for r, t in pairs)
            row["ratio_cpu"] = statistics.median(r[1] / t[1] for r, t in pairs)
        out["sides"][side.name] = row
        if hasattr(side, "n_nodes"):
            out["nodes"][side.name] = list(side.n_nodes)
        if isinstance(side, Official):
            graphs = side.extra["graphs_s"][args.warmup:]
            row["graphs_s"] = statistics.median(graphs)
            row["step_with_graphs_s"] = statistics.median(t[0] + g for t, g in zip(timed, graphs))
            for other in sides:
                if isinstance(other, Ghnctl):
                    mine = times[other.name][args.warmup:]
                    out.setdefault("with_graphs", {})[other.name] = statistics.median(
                        (t[0] + g) / m[0] for t, g, m in zip(timed, graphs, mine))
        if isinstance(side, Ghnctl):
            row["setup_s"] = side.setup_s
    if profiler is not None:
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream)
        stats.sort_stats("cumulative").print_stats(args.profile_lines)
        stats.sort_stats("tottime").print_stats(args.profile_lines)
        out["profile"] = stream.getvalue()
    return out


def fmt(v: float) -> str:
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def report(results: list[dict[str, Any]], info: dict[str, str], command: str, loads: tuple[str, str],
           threads: int, steps: int) -> str:
    lines = [f"Command: `{command}`", "",
             f"Machine: {info['cpu']}, {info['cores']} cores, load average {loads[0]} at the start and "
             f"{loads[1]} at the end; torch {info['torch']}, Python {info['python']}, {threads} thread(s); "
             f"commit `{info['commit']}`.", "",
             "| GHN | side | s/step (median) | CPU s/step | images/s | archs/s | peak RSS (MB) | step's own (MB) | "
             "all steps (s, first = warm-up) | speed-up vs official: wall | CPU |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for name, s in r["sides"].items():
            ratio = (f"{s['ratio_wall']:.2f}x | {s['ratio_cpu']:.2f}x" if "ratio_wall" in s else " | ")
            rates = ("| | |" if name.endswith("GHN only") else
                     f"| {s['images_per_s']:.1f} | {s['archs_per_s']:.2f} |")
            lines.append(f"| {r['ghn']} | {name} | {fmt(s['step_s'])} | {fmt(s['cpu_s'])} {rates} {s['peak_mb']:.0f} | "
                         f"{s['step_mb']:.0f} | {', '.join(fmt(v) for v in s['all_s'])} | {ratio} |")
            if name == "official":
                wg = s["step_with_graphs_s"]
                ratios = ", ".join(f"{n} {v:.2f}x" for n, v in r.get("with_graphs", {}).items())
                lines.append(f"| {r['ghn']} | official incl. fresh nets + graphs ({fmt(s['graphs_s'])} s) | "
                             f"{fmt(wg)} | | {BATCH / wg:.1f} | {META_BATCH / wg:.2f} | | | | {ratios} | |")
    lines += ["", "Speed-ups are medians over the timed rounds of (official time / this side's time) within each "
              "round; \"step's own\" is the peak RSS minus the resident size just before the step."]
    for r in results:
        if "identical" in r:
            lines.append(f"{r['ghn']}: GHN weights after {steps} steps of {' and '.join(r['identical_sides'])}: "
                         + ("bit-identical." if r["identical"] else f"differ (max abs diff {r['max_abs_diff']:.2e})."))
        lines.append(f"{r['ghn']} ({r['ghn_params']:,} GHN parameters): nodes per net " +
                     "; ".join(f"{n} {v}" for n, v in r["nodes"].items()) +
                     "; ghnctl's one-off graph + plan set-up " +
                     ", ".join(f"{n} {s['setup_s']:.2f} s" for n, s in r["sides"].items() if "setup_s" in s) + ".")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ghn", nargs="+", choices=sorted(GHNS), default=["tiny", "ghn3tm8"])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per side first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sides", nargs="+", choices=("ghnctl", "official"), default=["ghnctl", "official"])
    parser.add_argument("--baseline", metavar="REV", help="also time train_ghn.py as it was at git revision REV")
    parser.add_argument("--bf16", action="store_true",
                        help="also time ghnctl with --amp --amp-dtype bf16 (opt-in; not the fp32 results)")
    parser.add_argument("--ghn-part", action="store_true",
                        help="also time each GHN's own share of a step: predict with gradients + backward, no nets")
    parser.add_argument("--profile", action="store_true", help="cProfile ghnctl's timed steps")
    parser.add_argument("--profile-lines", type=int, default=30)
    parser.add_argument("--write", metavar="FILE", help="write the markdown table to FILE")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python benchmarks/train_speed.py " + " ".join(sys.argv[1:] if argv is None else argv)
    info = machine()
    load0 = " ".join(f"{v:.1f}" for v in os.getloadavg())
    off = import_official()
    results = []
    for kind in args.ghn:
        result = run_ghn(kind, args, off)
        results.append(result)
        if "profile" in result:
            print(result["profile"])
    load1 = " ".join(f"{v:.1f}" for v in os.getloadavg())
    text = report(results, info, command, (load0, load1), args.threads, args.warmup + args.steps + 1)
    print(text)
    if args.write:
        Path(args.write).write_text(text)


if __name__ == "__main__":
    main()
