"""What ``ghnctl bench`` shows while it runs and when it ends: a progress bar over the cells with the
time left, one line per finished cell, and the tables (all on stderr)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ghnctl.cli.output import Output


class BenchProgress:
    """Turns the bench's events into a rich progress bar (cells done, time left, the current cell).

    ``describe(record)`` turns a finished cell's record into the text of its one-line report.
    Cells read back from the results file start the bar where they leave it and do not count
    towards the speed, so the time left is that of the cells still to run.
    """

    def __init__(self, output: Output, describe: Callable[[dict[str, Any]], str]) -> None:
        self.output = output
        self.describe = describe
        self.progress: Any = None
        self.task: Any = None
        self.finished = 0  # cells finished in this run or read back

    def __enter__(self) -> BenchProgress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[done]}/{task.total:.0f} cells"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[detail]}"),
            console=self.output.console,
            transient=True,
        )
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_event(self, event: Any) -> None:
        from ghnctl.bench import events as ev

        p = self.progress
        if isinstance(event, ev.BenchStarted):
            self.finished = event.reused
            self.task = p.add_task(f"bench {event.bench}", total=max(event.total, 1), completed=event.reused,
                                   done=event.reused, detail="")
            if event.reused:
                self.output.note(f"{event.reused} of {event.total} cells already finished (read from the results file)")
        elif isinstance(event, ev.CellStarted):
            p.update(self.task, description=event.label, detail="")
        elif isinstance(event, ev.CellProgress):
            p.update(self.task, completed=self.finished + min(max(event.fraction, 0.0), 1.0), detail=event.detail)
        elif isinstance(event, ev.CellDone) and not event.reused:
            self.finished += 1
            p.update(self.task, completed=self.finished, done=self.finished, detail="")
            self.output.console.print(f"[green]done[/] {_escape(event.label)}: {_escape(self.describe(event.record))}",
                                      highlight=False, soft_wrap=True)
        elif isinstance(event, ev.CellFailed):
            self.finished += 1
            p.update(self.task, completed=self.finished, done=self.finished, detail="")
            self.output.warn(f"{event.label} failed: {event.error}")
        elif isinstance(event, ev.Note):
            (self.output.warn if event.warning else self.output.note)(event.message)


def print_table(output: Output, table: Any) -> None:
    """A ``ghnctl.bench.table.Table`` as a rich table, its notes dim below it."""
    from rich.table import Table

    view = Table(title=table.title, title_justify="left", show_edge=False)
    for i, (header, right) in enumerate(zip(table.headers, table.right)):
        # A number never breaks ("41.20 ± 1.35" stays one piece): its column is at least that wide,
        # and the header folds instead. Names fold too.
        widest = max((len(row[i]) for row in table.rows), default=0) if right else None
        view.add_column(header, justify="right" if right else "left", min_width=widest, overflow="fold")
    for row in table.rows:
        view.add_row(*(_escape(c) for c in row))
    output.console.print(view)
    for note in table.notes:
        output.note(note)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))
