"""What the columns of a bench are called: the honest names of "before" and "after" fine-tuning.

Readers of GHN papers could not always tell which numbers were fine-tuned. Here the label of an
accuracy is a function of the number of training steps behind it and nothing else: epoch 0 (no
optimizer step) is always ``NO_FINE_TUNING``, whatever else is true of the run.
"""

from __future__ import annotations

NO_FINE_TUNING = "no fine-tuning"
ZERO_SHOT = "zero-shot (no fine-tuning)"


def epoch_label(epoch: int, steps: int, partial: bool = False) -> str:
    """``"no fine-tuning"`` for epoch 0, ``"fine-tuned 1 epoch"``, ``"fine-tuned 3 epochs (partial, 5 steps)"``.

    ``steps`` is the number of optimizer steps taken when the accuracy was measured; an epoch
    cut short by ``--max-steps`` says so.
    """
    if epoch <= 0 or steps <= 0:
        return NO_FINE_TUNING
    unit = "epoch" if epoch == 1 else "epochs"
    extra = f" (partial, {steps} steps)" if partial else ""
    return f"fine-tuned {epoch} {unit}{extra}"


def is_fine_tuned_label(label: str) -> bool:
    return label.startswith("fine-tuned")
