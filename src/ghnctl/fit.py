"""What a GHN's training means for a model it predicts: one plain sentence per mismatch.

A GHN learns a classifier for the classes it was trained on and parameters for the image size it
saw. Predicting a model with another number of classes or another input size works, but the user
should know what they get (``ghnctl predict`` and ``ghnctl finetune`` show these as warnings).
"""

from __future__ import annotations


def fit_notes(ghn_name: str, ghn_classes: int, ghn_image_size: int | None, model_name: str,
              model_classes: int | None, model_image_size: int | None) -> list[str]:
    """Sentences for each way ``model`` differs from what ``ghn`` was trained on (empty: none).

    ``ghn_image_size`` None means unknown (an official file carries no image size): not reported.
    """
    notes = []
    if model_classes is not None and model_classes != ghn_classes:
        how = (f"cyclically repeated to {model_classes} rows" if model_classes > ghn_classes
               else f"cut to its first {model_classes} rows")
        notes.append(f"{ghn_name} predicts {ghn_classes}-class classifiers and {model_name} has "
                     f"{model_classes} classes: its predicted classifier is the GHN's {ghn_classes} class "
                     f"rows {how}, which mean nothing for this model's classes; fine-tune before using its "
                     f"outputs (the other layers are predicted as usual)")
    if ghn_image_size is not None and model_image_size is not None and model_image_size != ghn_image_size:
        notes.append(f"{ghn_name} was trained on {ghn_image_size}x{ghn_image_size} images and {model_name} "
                     f"is set up for {model_image_size}x{model_image_size}: the predicted parameters are "
                     f"those for {ghn_image_size}x{ghn_image_size} inputs, so expect lower accuracy before "
                     f"fine-tuning")
    return notes
