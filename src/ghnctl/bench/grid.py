"""The GHN x architecture grid that ``bench ghn`` and ``bench speed`` walk, architecture by architecture.

Each architecture is visited once: its cells already in the results file are read back, and the
others are handed to the bench in groups that share one model (GHNs with the same number of
classes), so the model and its graph are built once per architecture, not once per GHN.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ghnctl.bench.events import CellDone, Emit, Note
from ghnctl.bench.store import cell_key


class Row(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class GridCell:
    """One GHN on one architecture; ``key`` identifies it in the results file."""

    index: int
    arch: str
    ghn: str
    num_classes: int
    key: str

    @property
    def label(self) -> str:
        return f"{self.ghn} · {self.arch}"


def plan_grid(
    archs: Sequence[str], classes: Mapping[str, int], identity: Callable[[str, str, int], dict[str, Any]]
) -> list[GridCell]:
    """Cells in run order (architecture, then GHN); ``classes`` maps each GHN to its models' class
    count, ``identity(arch, ghn, classes)`` is what the key hashes."""
    cells = []
    for arch in archs:
        for ghn, n in classes.items():
            cells.append(GridCell(len(cells), arch, ghn, n, cell_key(identity(arch, ghn, n))))
    return cells


def walk_grid(
    cells: Sequence[GridCell],
    previous: Mapping[str, Mapping[str, Any]],
    read_back: Callable[[Mapping[str, Any]], Row],
    run_group: Callable[[str, list[GridCell], list[Any]], bool],
    emit: Emit,
    stop: Callable[[], bool] | None,
) -> tuple[list[Any], int, bool]:
    """Walk the grid; return ``(rows, reused, stopped)``.

    ``run_group(arch, cells, rows)`` computes cells of one architecture that share a model, appends
    their rows and returns True when ``stop()`` ended it early. A record that cannot be read back
    is computed again (and said so).
    """
    rows: list[Any] = []
    reused = 0
    for arch in dict.fromkeys(c.arch for c in cells):
        todo = []
        for cell in (c for c in cells if c.arch == arch):
            row = _read(previous.get(cell.key), read_back, emit)
            if row is None:
                todo.append(cell)
                continue
            rows.append(row)
            reused += 1
            emit(CellDone(cell.index, cell.label, row.to_dict(), reused=True))
        for classes in dict.fromkeys(c.num_classes for c in todo):
            if stop is not None and stop():
                return rows, reused, True
            if run_group(arch, [c for c in todo if c.num_classes == classes], rows):
                return rows, reused, True
    return rows, reused, False


def _read(record: Mapping[str, Any] | None, read_back: Callable[[Mapping[str, Any]], Row], emit: Emit) -> Row | None:
    if record is None:
        return None
    try:
        return read_back(record)
    except (KeyError, TypeError, ValueError) as exc:
        emit(Note(f"a record in the results file is incomplete ({type(exc).__name__}: {exc}); computing it again",
                  warning=True))
        return None
