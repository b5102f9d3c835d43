"""A table as data: title, headers, formatted cells, notes. The CLI draws it with rich; ``export``
writes it as Markdown. Numbers for machines go to JSON and CSV instead, unformatted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Table:
    """``right[i]`` is True for columns of numbers (right-aligned)."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    right: tuple[bool, ...]
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.right) != len(self.headers) or any(len(r) != len(self.headers) for r in self.rows):
            raise ValueError("every row and the alignment must have one entry per header")

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "headers": list(self.headers), "rows": [list(r) for r in self.rows],
                "notes": list(self.notes)}
