"""The evaluation images of a bench: the data's validation split, optionally a seeded subset of it,
with one line that names what was used (a number without its split is not a result)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ghnctl.errors import UsageError
from ghnctl.training.data import DataBundle
from ghnctl.training.seeding import eval_subset


def limit_eval_images(bundle: DataBundle, n: int | None) -> tuple[DataBundle, str]:
    """``bundle`` scored on at most ``n`` of its validation images, and a line saying which.

    The subset is drawn with the data's split seed (not the training seed), so every cell of a
    bench, and every rerun, is scored on the same images.
    """
    info = bundle.info
    if n is None or n >= len(bundle.val):
        return bundle, info.describe_val()
    if n < 1:
        raise UsageError(f"--eval-images must be at least 1, got {n}")
    picked = np.asarray(eval_subset(len(bundle.val), n, info.split_seed))
    line = f"{info.describe_val()}; scored on {n:,} of them, drawn with split seed {info.split_seed}"
    return replace(bundle, val=bundle.val.subset(picked), info=replace(info, n_val=n)), line


def data_identity(bundle: DataBundle, eval_images: int | None) -> dict[str, Any]:
    """What about the data determines a cell's numbers (files may move: ``data_dir`` is left out)."""
    config = bundle.config.to_dict()
    config.pop("data_dir", None)
    return {"config": config, "fingerprint": bundle.info.fingerprint(), "eval_images": eval_images}
