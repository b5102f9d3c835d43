"""Plot a `ghnctl train` run's learning curve (metrics.csv): training loss and accuracy, zero-shot top-1.

Usage::

    python tools/plot_run.py runs/c10/metrics.csv docs/img/builtin-ghn-curve.png [--title TEXT]

Needs matplotlib (the `plot` extra).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--title", default="ghnctl train")
    parser.add_argument("--smooth", type=int, default=25, help="moving-average window of the training curves")
    parser.add_argument("--skip-logged-zero-shot", action="store_true",
                        help="leave out the zero-shot columns of metrics.csv (e.g. logged before a fix)")
    parser.add_argument("--point", action="append", default=[], metavar="STEP:TOP1",
                        help="a zero-shot mean measured separately (ghnctl bench ghn), drawn as a point")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(args.metrics.open()))
    eval_label = _eval_label(args.metrics.parent / "config.json")
    steps = [int(r["step"]) for r in rows]

    def smooth(values: list[float]) -> list[float]:
        out, window = [], []
        for v in values:
            window.append(v)
            if len(window) > args.smooth:
                window.pop(0)
            out.append(sum(window) / len(window))
        return out

    zs = [] if args.skip_logged_zero_shot else [
        (int(r["step"]), float(r["zero_shot_mean"]), float(r["zero_shot_max"])) for r in rows if r["zero_shot_mean"]]
    points = [tuple(float(v) for v in p.split(":")) for p in args.point]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot(steps, smooth([float(r["ce"]) for r in rows]), label=f"training CE ({args.smooth}-step mean)")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.legend()
    ax_acc.plot(steps, smooth([float(r["acc"]) for r in rows]), alpha=0.7,
                label=f"training top-1 ({args.smooth}-step mean, augmented batches)")
    if zs:
        ax_acc.plot([z[0] for z in zs], [z[1] for z in zs], "o-", label=eval_label)
        if any(z[2] != z[1] for z in zs):  # one evaluation net: the max is the mean
            ax_acc.plot([z[0] for z in zs], [z[2] for z in zs], "x:", label="max over the evaluation nets")
    if points:
        ax_acc.plot([p[0] for p in points], [p[1] for p in points], "s", color="C3", ms=8,
                    label="zero-shot mean, ghnctl bench ghn")
    ax_acc.axhline(10, color="grey", lw=0.8, ls="--", label="chance")
    ax_acc.set_xlabel("step")
    ax_acc.set_ylabel("top-1 (%)")
    ax_acc.legend(fontsize=8)
    fig.suptitle(args.title)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


def _eval_label(config_path: Path) -> str:
    """What the logged evaluation measured: zero-shot, unless the run also trained on those nets.

    The overlap is worked out as ``train`` works it out: both spec lists expanded, then compared.
    """
    if not config_path.exists():
        return "zero-shot mean, held-out nets"
    from ghnctl.training.arch_specs import expand_specs, expand_weighted_specs

    train = json.loads(config_path.read_text())["train"]
    trained = set(expand_weighted_specs(train["archs"], train["pool"])[0])
    evaluated = expand_specs([train["eval_archs"]], train["eval_n"]) if train.get("eval_n") else []
    seen = [spec for spec in evaluated if spec in trained]
    if seen:
        return f"validation top-1 of predicted {train['eval_archs']} (also trained on: not zero-shot)"
    return f"zero-shot mean, held-out nets ({train['eval_archs']})"

if __name__ == "__main__":
    main()
