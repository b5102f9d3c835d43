"""Peak memory of a block of work, measured the best way this machine allows, and named.

* CPU, Linux: the process's peak resident set size (``VmHWM`` in ``/proc/self/status``), reset
  before the block by writing ``5`` to ``/proc/self/clear_refs``: the peak of this block alone.
* CPU elsewhere (or when the reset is refused): ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the
  peak of the whole process so far; it never goes down, so a block that needs less than an earlier
  one shows the earlier peak. The method's name says which one was used.
* CUDA, in addition: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.

tracemalloc is not used: it sees Python's allocations only, not tensor storage.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import TracebackType

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
VMHWM = "peak RSS of each measurement (Linux VmHWM, reset before it through /proc/self/clear_refs)"
GETRUSAGE = "peak RSS of the whole process so far (resource.getrusage ru_maxrss; it never goes down)"
_MB = 1024 * 1024


def _status_kb(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _getrusage_mb() -> float | None:
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / _MB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, kB on Linux


def current_rss_mb() -> float | None:
    kb = _status_kb("VmRSS")
    return kb / 1024 if kb is not None else None


def method() -> str:
    """The method ``PeakMemory`` uses on this machine (probed once, without measuring)."""
    return VMHWM if _status_kb("VmHWM") is not None and _reset_peak() else GETRUSAGE


class PeakMemory:
    """``with PeakMemory(device) as m: ...`` then ``m.peak_rss_mb``, ``m.rss_increase_mb``, ``m.peak_cuda_mb``."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.method = GETRUSAGE
        self.start_rss_mb: float | None = None
        self.peak_rss_mb: float | None = None
        self.peak_cuda_mb: float | None = None

    @property
    def rss_increase_mb(self) -> float | None:
        """Peak minus the resident size at the start: what the block added at its worst."""
        if self.peak_rss_mb is None or self.start_rss_mb is None:
            return None
        return max(0.0, self.peak_rss_mb - self.start_rss_mb)

    def __enter__(self) -> PeakMemory:
        self.start_rss_mb = current_rss_mb()
        if _status_kb("VmHWM") is not None and _reset_peak():
            self.method = VMHWM
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.method == VMHWM:
            kb = _status_kb("VmHWM")
            self.peak_rss_mb = kb / 1024 if kb is not None else None
        else:
            self.peak_rss_mb = _getrusage_mb()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_cuda_mb = torch.cuda.max_memory_allocated(self.device) / _MB
