"""Typed configs from option values, and the merge of a saved config with a resumed run's options.

A command passes the values of all its options, by parameter name, and each config dataclass takes
the ones named like its fields: an option and a config field share one name, and nothing keeps a
map between them. On resume the saved config is the base and the options the user typed are
applied on top; those that would change the numbers of the run are refused.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

from ghnctl.errors import UsageError

C = TypeVar("C")


def field_names(cls: type) -> frozenset[str]:
    """The constructor fields of the dataclass ``cls``."""
    if not is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    return frozenset(f.name for f in fields(cls) if f.init)


def config_from_fields(cls: type[C], values: Mapping[str, Any], **explicit: Any) -> C:
    """``cls(**the values named like its fields, **explicit)``; other values are ignored (they
    belong to other configs), ``explicit`` wins. The class validates itself."""
    names = field_names(cls)
    unknown = set(explicit) - names
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    picked = {k: v for k, v in values.items() if k in names}
    return cls(**{**picked, **explicit})


def changed_fields(saved: Any, current: Any, free: Collection[str] = ()) -> list[str]:
    """Names of the fields (outside ``free``) whose values differ between two configs of one class."""
    return [
        name for name in sorted(field_names(type(saved)))
        if name not in free and getattr(saved, name) != getattr(current, name)
    ]


def resume_fields(cls: type[C], saved: Mapping[str, Any], overrides: Mapping[str, Any], free: Collection[str]) -> C:
    """The saved config with ``overrides`` (the options given explicitly, by name) applied.

    Overrides of fields in ``free`` apply; an override of any other field must not change its
    value (compared after validation, so ``--optimizer SGD`` equals a saved ``sgd``), else
    UsageError naming the option, both values and what to do.
    """
    base = cls(**saved)
    names = field_names(cls)
    merged = cls(**{**saved, **{k: v for k, v in overrides.items() if k in names}})
    changed = changed_fields(base, merged, free)
    if changed:
        name = changed[0]
        raise UsageError(
            f"--{name.replace('_', '-')} {getattr(merged, name)} differs from the checkpoint's {getattr(base, name)}",
            hint="a resumed run keeps its settings; drop the option or start a new run",
        )
    return merged
