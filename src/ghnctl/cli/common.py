"""Steps that several commands share."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import typer

from ghnctl.cli.output import Output

if TYPE_CHECKING:
    from ghnctl.zoo import ModelSpec

# Where a value the user gave comes from (click's ParameterSource names): not a default.
_GIVEN_SOURCES = frozenset({"COMMANDLINE", "ENVIRONMENT"})


def load_model(
    output: Output, spec: str, num_classes: int | None, image_size: int | None, seed: int | None = None
) -> ModelSpec:
    """Resolve ``spec`` with a spinner on stderr (importing torch and building take seconds).

    With ``seed`` the model's own init is as after ``torch.manual_seed(seed)``.
    """
    with output.status(f"building {spec} ..."):
        from ghnctl import zoo

        return zoo.resolve_model(spec, num_classes=num_classes, image_size=image_size, seed=seed)


def option_values(ctx: typer.Context) -> tuple[dict[str, Any], frozenset[str]]:
    """The command's parameter values by Python name, and the names the user gave (on the
    command line or in the environment) rather than left at their defaults.

    Engine configs take the values named like their fields (``ghnctl.training.configs``); a
    resumed run needs to know which settings were given explicitly.
    """
    values = dict(ctx.params)
    given = frozenset(
        name for name in values
        if (source := ctx.get_parameter_source(name)) is not None and source.name in _GIVEN_SOURCES
    )
    return values, given


_PHASES = {"read": "reading the archive (bytes)", "extract": "extracting images", "scan": "scanning class folders"}


@contextlib.contextmanager
def data_progress(output: Output, message: str) -> Iterator[Callable[[str, int, int], None]]:
    """A progress display for ``load_data(on_progress=...)``: one bar per slow phase (archive read,
    extraction, folder scan), on stderr, gone when loading ends."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn(message + " {task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=output.console, transient=True)
    tasks: dict[str, Any] = {}

    def on_progress(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = progress.add_task(_PHASES.get(phase, phase), total=total)
        progress.update(tasks[phase], completed=done, total=total)

    with progress:
        yield on_progress
