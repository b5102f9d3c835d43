"""Bench results as tables (for people) and CSV records (for machines), with every number labelled.

The column names of ``bench init`` come from ``labels``: the epoch-0 column is "no fine-tuning",
the others "fine-tuned N epoch(s)" with their step count. ``bench ghn`` accuracies are zero-shot
(no fine-tuning) and say so in the header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ghnctl.bench.labels import ZERO_SHOT
from ghnctl.bench.stats import format_mean_std, format_number
from ghnctl.bench.table import Table

if TYPE_CHECKING:
    from ghnctl.bench.ghn_bench import GhnBenchResult
    from ghnctl.bench.init_bench import InitBenchResult, InitRow, PointSummary
    from ghnctl.bench.speed import SpeedResult

STD_NOTE = "± is the sample standard deviation over seeds (n - 1); \"±  -\" means one seed (no spread to show)"


# --------------------------------------------------------------------------------------------
# bench init


def column_header(point: PointSummary) -> str:
    """``no fine-tuning`` / ``fine-tuned 2 epochs (14 steps)``; a partial epoch's label has its steps."""
    if point.epoch == 0 or point.steps == 0 or "steps" in point.label:
        return point.label
    return f"{point.label} ({point.steps} steps)"


def init_table(result: InitBenchResult) -> Table:
    rows = result.rows
    columns = _epoch_columns(rows)
    headers = ("model", "init", "seeds", *(column_header(p) for p in columns.values()))
    body = []
    for row in rows:
        by_epoch = {p.epoch: p for p in row.points}
        cells = [format_mean_std(by_epoch[e].acc) if e in by_epoch else "-" for e in columns]
        body.append((row.model, row.init, str(len(row.seeds)), *cells))
    return Table(
        title="validation top-1 accuracy (%), mean ± std over seeds",
        headers=headers,
        rows=tuple(body),
        right=(False, False, True, *(True for _ in columns)),
        notes=tuple(init_notes(result, rows)),
    )


def init_notes(result: InitBenchResult, rows: list[InitRow]) -> list[str]:
    info = result.data
    notes = [f"data: {info.source}, {info.n_train:,} training images"
             + (f" ({info.n_shots} per class)" if info.n_shots else "")
             + f", {info.num_classes} classes, {info.image_size}x{info.image_size}",
             result.evaluated_on]
    lrs = {}
    for row in rows:
        lrs.setdefault(row.init, row.lr)
    if lrs:
        notes.append("peak lr: " + ", ".join(f"{init} {lr:g}" for init, lr in lrs.items()))
    notes.append(STD_NOTE)
    if result.stopped:
        notes.append(f"stopped early: {len(result.cells)} of {result.total} cells finished")
    return notes


def _epoch_columns(rows: list[InitRow]) -> dict[int, PointSummary]:
    """Epoch -> the point whose label heads the column (the first row that has that epoch)."""
    columns: dict[int, PointSummary] = {}
    for row in rows:
        for point in row.points:
            columns.setdefault(point.epoch, point)
    return dict(sorted(columns.items()))


INIT_CSV_COLUMNS = (
    "model", "arch", "init", "epoch", "label", "steps", "fine_tuned", "n_seeds", "seeds",
    "val_acc_mean", "val_acc_std", "val_acc_values", "val_loss_mean", "val_loss_std", "lr",
)


def init_csv_records(result: InitBenchResult) -> list[dict[str, Any]]:
    """One record per model x init x epoch, over the seeds."""
    out = []
    for row in result.rows:
        for p in row.points:
            out.append({
                "model": row.model, "arch": row.arch, "init": row.init, "epoch": p.epoch, "label": p.label,
                "steps": p.steps, "fine_tuned": p.epoch > 0 and p.steps > 0, "n_seeds": p.acc.n,
                "seeds": list(row.seeds), "val_acc_mean": p.acc.mean, "val_acc_std": p.acc.std,
                "val_acc_values": list(p.acc.values), "val_loss_mean": p.loss.mean, "val_loss_std": p.loss.std,
                "lr": row.lr,
            })
    return out


# --------------------------------------------------------------------------------------------
# bench ghn


def ghn_summary_table(result: GhnBenchResult) -> Table:
    acc = result.has_accuracy
    headers = ["GHN", "archs", "failed"]
    if acc:
        headers += ["top-1 % mean ± std", "median", "max"]
    headers += ["param norm (mean)", "norm check"]
    body = []
    for s in result.summaries:
        row = [s.ghn, str(s.n_ok), str(s.n_failed)]
        if acc:
            row += [format_mean_std(s.top1), format_number(s.top1.median), format_number(s.top1.max)]
        row += [format_number(s.norm.mean, 3), s.norm_check_text]
        body.append(tuple(row))
    right = [False, True, True] + ([True, True, True] if acc else []) + [True, False]
    notes = [result.evaluated_on] if acc else ["no --data: predicted-parameter norms only (no accuracy)"]
    notes.append("± over architectures is the sample standard deviation (n - 1)")
    title = f"GHNs on {result.arch_set}: " + (f"top-1 accuracy, {ZERO_SHOT}" if acc else "predicted parameters")
    return Table(title=title, headers=tuple(headers), rows=tuple(body), right=tuple(right),
                 notes=tuple(notes + result.notes))


def ghn_rows_table(result: GhnBenchResult) -> Table:
    acc = result.has_accuracy
    headers = ["GHN", "architecture", "params"]
    if acc:
        headers += ["top-1 %", "loss"]
    headers += ["param norm", "published", "check", "predict s"]
    body = []
    for r in result.rows:
        if r.error is not None:
            blank = ["-"] * (len(headers) - 5)  # params, accuracy columns, norm, published
            body.append(tuple([r.ghn, r.arch, *blank, "-", f"failed: {r.error}", "-"]))
            continue
        check = r.norm_check
        row = [r.ghn, r.arch, f"{r.n_params:,}"]
        if acc:
            row += [format_number(r.top1), format_number(r.loss, 4)]
        row += [format_number(r.norm, 3),
                format_number(check.published, 4) if check else "-",
                ("ok" if check.ok else f"differs by {check.difference:+.4f}") if check else "-",
                format_number(r.predict_s, 3)]
        body.append(tuple(row))
    right = [False, False, True] + ([True, True] if acc else []) + [True, True, False, True]
    title = f"per architecture: top-1 accuracy, {ZERO_SHOT}" if acc else "per architecture"
    return Table(title=title, headers=tuple(headers), rows=tuple(body), right=tuple(right))


GHN_CSV_COLUMNS = (
    "ghn", "arch", "spec", "n_params", "num_classes", "image_size", "top1", "loss", "images", "split", "norm",
    "published_norm", "norm_ok", "graph_s", "predict_s", "eval_s", "error",
)


def ghn_csv_records(result: GhnBenchResult) -> list[dict[str, Any]]:
    out = []
    for r in result.rows:
        check = r.norm_check
        out.append({
            "ghn": r.ghn, "arch": r.arch, "spec": r.spec, "n_params": r.n_params, "num_classes": r.num_classes,
            "image_size": r.image_size, "top1": r.top1, "loss": r.loss, "images": r.images,
            "split": result.split if result.has_accuracy else None, "norm": r.norm,
            "published_norm": check.published if check else None, "norm_ok": check.ok if check else None,
            "graph_s": r.graph_s, "predict_s": r.predict_s, "eval_s": r.eval_s, "error": r.error,
        })
    return out


# --------------------------------------------------------------------------------------------
# bench speed


def speed_table(result: SpeedResult) -> Table:
    headers = ("GHN", "architecture", "nodes", "graph s", "predict s", "forward s", "assign s",
               "peak RSS MB", "RSS +MB")  # memory: while predicting
    if result.cuda:
        headers += ("peak CUDA MB",)
    body = []
    for r in result.rows:
        if r.error is not None:
            body.append((r.ghn, r.arch, *(["-"] * (len(headers) - 3)), f"failed: {r.error}"))
            continue
        row = (r.ghn, r.arch, str(r.nodes), f"{r.graph_s:.4f}", f"{r.predict_s:.4f}", f"{r.forward_s:.4f}",
               f"{r.assign_s:.4f}", format_number(r.peak_rss_mb, 1), format_number(r.rss_increase_mb, 1))
        if result.cuda:
            row += (format_number(r.peak_cuda_mb, 1),)
        body.append(row)
    notes = (
        f"median of {result.config.repeats} repeats after {result.config.warmup} warm-up run(s); "
        f"graph = ghnctl.build_graph, predict = ghnctl.predict_parameters with the graph given",
        f"memory: {result.memory_method}",
        f"device {result.device}, {result.threads} torch thread(s)",
    )
    return Table(title="graph and prediction time per architecture", headers=headers, rows=tuple(body),
                 right=(False, False, *(True for _ in headers[2:])), notes=notes)


SPEED_CSV_COLUMNS = (
    "ghn", "arch", "spec", "nodes", "graph_s", "predict_s", "forward_s", "assign_s", "graph_runs_s",
    "predict_runs_s", "peak_rss_mb", "rss_increase_mb", "peak_cuda_mb", "error",
)


def speed_csv_records(result: SpeedResult) -> list[dict[str, Any]]:
    return [r.to_dict() for r in result.rows]
