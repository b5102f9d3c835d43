"""Finished cells survive interruptions: an append-only JSON Lines file, one finished cell a line.

A cell is the smallest unit of a bench that is worth keeping (one model x init x seed fine-tuning,
one GHN x architecture evaluation, ...). Each line is written, flushed and fsynced as soon as the
cell finishes, so a crash, a SIGKILL or Ctrl-C keeps every finished row; at worst the line being
written is torn, and the next reader drops it (and says so). ``--resume`` reads the file and
skips the cells whose key is in it.

A key is a hash of everything that determines a cell's numbers (``cell_key``): the same model,
init and seed with another learning rate or data split is another cell.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ghnctl.errors import GhnctlError, UsageError, excerpt

FORMAT = "ghnctl-bench/1"


class ResultsError(GhnctlError):
    """The results file cannot be read or written."""


def cell_key(identity: Mapping[str, Any]) -> str:
    """A short, stable hash of a cell's identity (what determines its numbers), as JSON."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Loaded:
    """What a results file held: finished cells by key, and what was dropped while reading."""

    cells: dict[str, dict[str, Any]] = field(default_factory=dict)
    torn_tail: bool = False  # the last line was cut short (the writer died): dropped
    bad_lines: int = 0  # lines that were not a cell of this bench


class ResultStore:
    """The results file of one bench kind (``init``, ``ghn`` or ``speed``)."""

    def __init__(self, path: str | os.PathLike[str], bench: str) -> None:
        self.path = Path(path)
        self.bench = bench

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> Loaded:
        """Read the finished cells. A torn last line is cut off the file, so appends start clean."""
        loaded = Loaded()
        if not self.path.exists():
            return loaded
        if self.path.is_dir():
            raise ResultsError(f"results file {str(self.path)!r} is a directory", hint="give a file name")
        data = self._read_bytes()
        keep = len(data)
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            loaded.torn_tail = True
        for raw in data[:keep].splitlines():
            record = _parse(raw)
            if record is None:
                loaded.bad_lines += bool(raw.strip())
                continue
            if record.get("bench") != self.bench:
                raise UsageError(
                    f"{str(self.path)!r} holds results of `bench {excerpt(record.get('bench'))}`, "
                    f"not of `bench {self.bench}`",
                    hint="give another --results file",
                )
            loaded.cells[str(record["key"])] = record
        if loaded.torn_tail:
            self._truncate(keep)
        return loaded

    def start_over(self) -> None:
        """Empty the file (``--force`` without ``--resume``)."""
        self._truncate(0)

    def append(self, record: Mapping[str, Any]) -> None:
        """Add one finished cell; on disk (fsynced) when this returns."""
        line = json.dumps({"format": FORMAT, "bench": self.bench, **record}, default=_json_default)
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise ResultsError(f"cannot append to {str(self.path)!r}: {exc.strerror or exc}") from exc

    def _read_bytes(self) -> bytes:
        try:
            return self.path.read_bytes()
        except OSError as exc:
            raise ResultsError(f"cannot read {str(self.path)!r}: {exc.strerror or exc}") from exc

    def _truncate(self, size: int) -> None:
        try:
            with open(self.path, "r+b" if self.path.exists() else "wb") as f:
                f.truncate(size)
        except OSError as exc:
            raise ResultsError(f"cannot write {str(self.path)!r}: {exc.strerror or exc}") from exc


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT or "key" not in record:
        return None
    return record


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
