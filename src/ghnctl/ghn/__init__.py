"""GHN-3 / GHN-2 networks: configuration, safe checkpoint reading, the network, loading.

Predicting a model's parameters with a loaded GHN is ``ghnctl.predict.predict_parameters`` (or
``GHN.predict``).
"""

from .checkpoint import Checkpoint, convert, detect_format, read_checkpoint, save_ghn
from .config import GhnConfig, infer_config
from .model import GHN, ghn_from_state_dict, load_ghn

__all__ = [
    "GHN",
    "Checkpoint",
    "GhnConfig",
    "convert",
    "detect_format",
    "ghn_from_state_dict",
    "infer_config",
    "load_ghn",
    "read_checkpoint",
    "save_ghn",
]
