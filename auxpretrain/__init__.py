"""auxpretrain: pretrain text encoders on an auxiliary good/bad sentence task (TF1 graph
mode) and transfer their layers into downstream models.

Importing this package does not import TensorFlow: the public names below that need it
are loaded on first use.
"""

from auxpretrain.config import CorruptionConfig, ModelConfig, PretrainConfig
from auxpretrain.errors import (AuxPretrainError, ConfigError, ExportError, InputError,
                                NotFittedError, RestoreError)
from auxpretrain.variables import TRANSFERABLE_VARIABLES

__version__ = "0.1.0"

# public name -> module that defines it; imported lazily (these modules import TensorFlow)
_LAZY = {
    "build_encoder": "auxpretrain.modeling",
    "build_classifier": "auxpretrain.modeling",
    "EncoderOutputs": "auxpretrain.modeling",
}

__all__ = [
    "AuxPretrainError", "ConfigError", "CorruptionConfig", "ExportError", "InputError",
    "ModelConfig", "NotFittedError", "PretrainConfig", "RestoreError", "TRANSFERABLE_VARIABLES",
    "__version__",
] + sorted(_LAZY)


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'auxpretrain' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
