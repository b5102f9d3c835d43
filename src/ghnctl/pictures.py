"""Which files a GHN graph can be drawn to (formats) and by what (engines).

Kept out of ``ghnctl.graph``, whose package import loads torch, so that ``ghnctl graph --out``
refuses a bad suffix or engine in a fraction of a second, before any model is built.
"""

from __future__ import annotations

from pathlib import Path

from ghnctl.errors import UsageError

FORMATS: tuple[str, ...] = ("svg", "png", "pdf", "dot")
ENGINES: tuple[str, ...] = ("auto", "dot", "python")


def resolve_format(out: Path, fmt: str | None) -> str:
    """The output format from ``fmt`` or the file suffix; UsageError when it is not supported."""
    raw = fmt if fmt is not None else out.suffix
    name = raw.lower().lstrip(".")
    if name not in FORMATS:
        shown = f"'{raw}'" if raw else "no suffix"
        raise UsageError(
            f"cannot render a graph to {shown} ({out.name})",
            hint="use one of " + ", ".join(f".{f}" for f in FORMATS),
        )
    return name


def check_engine(engine: str) -> str:
    """``engine`` itself when it is one of ``ENGINES``; UsageError otherwise."""
    if engine not in ENGINES:
        raise UsageError(f"unknown render engine {engine!r}", hint="use one of " + ", ".join(ENGINES))
    return engine
