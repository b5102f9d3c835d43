"""Steps that several commands share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ghnctl.cli.output import Output

if TYPE_CHECKING:
    from ghnctl.zoo import ModelSpec


def load_model(
    output: Output, spec: str, num_classes: int | None, image_size: int | None, seed: int | None = None
) -> ModelSpec:
    """Resolve ``spec`` with a spinner on stderr (importing torch and building take seconds).

    With ``seed`` the model's own init is as after ``torch.manual_seed(seed)``.
    """
    with output.status(f"building {spec} ..."):
        from ghnctl import zoo

        return zoo.resolve_model(spec, num_classes=num_classes, image_size=image_size, seed=seed)
