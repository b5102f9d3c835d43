"""Aggregates over seeds (or architectures): mean, sample standard deviation, median, max.

The standard deviation is the sample one (n - 1 in the denominator): seeds are a sample of the
possible runs. With one value it is undefined, and ``Summary.std`` is None rather than 0, so a
table shows "±  -" instead of pretending the spread is zero.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MISSING_STD = " -"  # what "± std" shows when std is undefined (one value): never "0.00"


@dataclass(frozen=True)
class Summary:
    """``n`` values, their mean and sample std (None when n < 2); ``values`` in input order."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) >= 2 else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def max(self) -> float | None:
        return max(self.values) if self.values else None

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "std": self.std, "values": list(self.values)}


def summarize(values: Iterable[float | None]) -> Summary:
    """The finite values of ``values`` (None and NaN are left out: a failed evaluation is no number)."""
    return Summary(tuple(float(v) for v in values if v is not None and math.isfinite(v)))


def format_mean_std(summary: Summary, digits: int = 2) -> str:
    """``"41.20 ± 1.35"``; one value: ``"41.20 ±  -"``; none: ``"-"``."""
    if summary.mean is None:
        return "-"
    std = MISSING_STD if summary.std is None else f"{summary.std:.{digits}f}"
    return f"{summary.mean:.{digits}f} ± {std}"


def format_number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def median_of(values: Sequence[float]) -> float:
    """The median of a non-empty sequence (for timings over repeats)."""
    return statistics.median(values)
