"""``--plot``: accuracy against fine-tuning epochs, one panel per model, one line per init.

The line is the mean over seeds, the band ±1 sample standard deviation (no band with one seed).
The x axis starts at 0, labelled "no fine-tuning". matplotlib is an optional extra
(``pip install 'ghnctl[plot]'``); ``require_matplotlib`` is called before any work starts so a
missing extra costs a one-line error, not a finished bench without its plot. Only matplotlib's
object API is used (no pyplot), so nothing global (backend, figures) is touched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ghnctl.bench.labels import NO_FINE_TUNING
from ghnctl.errors import MissingExtra, UsageError
from ghnctl.io import atomic_path

if TYPE_CHECKING:
    from ghnctl.bench.init_bench import InitRow

PLOT_HINT = "install it with: pip install 'ghnctl[plot]'"
FORMATS = (".png", ".svg", ".pdf")


def require_matplotlib() -> None:
    """MissingExtra (exit 2, one line) when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError as exc:
        raise MissingExtra("--plot needs matplotlib, which is not installed", hint=PLOT_HINT) from exc


def check_plot_path(path: Path) -> None:
    """UsageError unless ``path`` names a format the plot can be written in."""
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"--plot {str(path)!r}: unknown format", hint=f"end the name with {', '.join(FORMATS)}")


def plot_init_curves(rows: Sequence[InitRow], path: Path, title: str = "", force: bool = False) -> Path:
    """Draw ``rows`` (``init_bench.aggregate``) into ``path`` (.png, .svg or .pdf; written atomically,
    an existing file only with ``force``); return the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    models = list(dict.fromkeys(r.model for r in rows))
    inits = list(dict.fromkeys(r.init for r in rows))
    cols = min(len(models), 3) or 1
    lines = math.ceil(len(models) / cols) or 1
    figure = Figure(figsize=(4.6 * cols, 3.6 * lines + 0.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(lines, cols, squeeze=False)
    colours = {init: f"C{i % 10}" for i, init in enumerate(inits)}
    for ax, model in zip(axes.flat, models):
        epochs: set[int] = set()
        for row in (r for r in rows if r.model == model):
            points = [p for p in row.points if p.acc.mean is not None]
            x = [p.epoch for p in points]
            mean = [p.acc.mean for p in points]
            epochs.update(x)
            n = len(row.seeds)
            ax.plot(x, mean, marker="o", color=colours[row.init], label=f"{row.init} (n={n})")
            if all(p.acc.std is not None for p in points):
                low = [m - p.acc.std for m, p in zip(mean, points)]
                high = [m + p.acc.std for m, p in zip(mean, points)]
                ax.fill_between(x, low, high, color=colours[row.init], alpha=0.2, linewidth=0)
        ticks = sorted(epochs)
        ax.set_xticks(ticks, [NO_FINE_TUNING if e == 0 else str(e) for e in ticks])
        ax.set_title(model)
        ax.set_xlabel("fine-tuning epochs")
        ax.set_ylabel("validation top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(models):]:
        ax.set_visible(False)
    figure.suptitle(title or "accuracy vs fine-tuning epochs (mean ± std over seeds)", fontsize="medium")
    with atomic_path(path, force) as tmp:
        figure.savefig(tmp, format=path.suffix.lower().lstrip("."), dpi=120)
    return path
