"""Tables and records as text files: Markdown (for docs and reports) and CSV (for spreadsheets).

Pure functions returning strings; the CLI writes them (atomically, ``ghnctl.io``).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ghnctl.bench.table import Table


def to_markdown(tables: Table | Sequence[Table], command: str | None = None) -> str:
    """Tables as GitHub Markdown: the command that made them, then per table its title, its notes
    as a list and the table."""
    lines: list[str] = []
    if command:
        lines += ["```bash", command, "```", ""]
    for table in [tables] if isinstance(tables, Table) else tables:
        lines += [f"**{_cell(table.title)}**", ""]
        if table.notes:
            lines += [f"* {note}" for note in table.notes] + [""]
        lines.append("| " + " | ".join(_cell(h) for h in table.headers) + " |")
        lines.append("|" + "|".join("---:" if right else "---" for right in table.right) + "|")
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
        lines.append("")
    return "\n".join(lines)


def to_csv(columns: Sequence[str], records: Iterable[Mapping[str, Any]]) -> str:
    """One line per record, ``columns`` in order; None is an empty field, floats keep full precision."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([_field(record.get(c)) for c in columns])
    return out.getvalue()


def _cell(text: str) -> str:
    """Markdown cell text: pipes escaped, line breaks flattened."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _field(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, (list, tuple)):
        return ";".join(str(_field(v)) for v in value)
    return value
