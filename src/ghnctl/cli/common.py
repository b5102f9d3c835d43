"""Steps that several commands share."""

from __future__ import annotations

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
