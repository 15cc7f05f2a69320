"""auxpretrain: pretrain text encoders on an auxiliary good/bad sentence task (TF1 graph
mode) and transfer their layers into downstream models.

Importing this package does not import TensorFlow: the public names below that need it
are loaded on first use (`auxpretrain.TextClassifier` imports TensorFlow, `import
auxpretrain` does not).

Graph level (your own tf.compat.v1 graph and session):
  build_encoder, build_classifier, TRANSFERABLE_VARIABLES, restore_pretrained (report + the
  variables to train), assign_from_export_fn (tf-slim style init_fn), trainable_var_list,
  remove_from_trainable, build_train_ops, transfer_between_sessions / load_values (in memory),
  import_encoder (import_meta_graph + named tensors), build_shared_models (variable_scope reuse).
Model level: TextClassifier (from_pretrained, fit, partial_fit, predict, predict_proba,
  evaluate, save, load, get_layer_params, set_layer_params, copy_layers_from),
  partial_fit_shared, fine_tune, load_model.
"""

from auxpretrain.config import CorruptionConfig, ModelConfig, PretrainConfig
from auxpretrain.errors import (AuxPretrainError, ConfigError, ExportError, InputError,
                                NotFittedError, RestoreError)
from auxpretrain.variables import TRANSFERABLE_VARIABLES, parse_freeze, select_layers

__version__ = "0.1.0"

# public name -> module that defines it; imported on first use (most of them import TensorFlow)
_LAZY = {
    # graph builders
    "build_encoder": "auxpretrain.modeling",
    "build_classifier": "auxpretrain.modeling",
    "dense": "auxpretrain.modeling",
    "pool": "auxpretrain.modeling",
    "EncoderOutputs": "auxpretrain.modeling",
    # restoring into your own graph
    "restore_pretrained": "auxpretrain.api",
    "Restored": "auxpretrain.api",
    "assign_from_export_fn": "auxpretrain.api",
    "RestoreReport": "auxpretrain.restore",
    "Assigner": "auxpretrain.restore",
    "remap_rows": "auxpretrain.restore",
    # in-memory transfer between graphs (no disk)
    "values_from_session": "auxpretrain.restore",
    "load_values": "auxpretrain.api",
    "transfer_between_sessions": "auxpretrain.api",
    # import_meta_graph of an export
    "import_encoder": "auxpretrain.api",
    "ImportedEncoder": "auxpretrain.api",
    # shared lower layers
    "build_shared_models": "auxpretrain.api",
    "SharedModels": "auxpretrain.api",
    "encode_texts": "auxpretrain.api",
    # freezing
    "trainable_var_list": "auxpretrain.freezing",
    "remove_from_trainable": "auxpretrain.freezing",
    "variables_of_layers": "auxpretrain.freezing",
    "build_train_ops": "auxpretrain.freezing",
    "TrainOps": "auxpretrain.freezing",
    "layer_groups": "auxpretrain.freezing",
    "discriminative_factors": "auxpretrain.freezing",
    "gradual_stages": "auxpretrain.freezing",
    "slanted_triangular": "auxpretrain.freezing",
    # the model-level API
    "TextClassifier": "auxpretrain.model",
    "copy_layers": "auxpretrain.model",
    "partial_fit_shared": "auxpretrain.model",
    "fine_tune": "auxpretrain.transfer",
    "TransferConfig": "auxpretrain.transfer",
    "TransferResult": "auxpretrain.transfer",
    "TaskModel": "auxpretrain.transfer",
    "load_model": "auxpretrain.transfer",
    "save_model": "auxpretrain.transfer",
    # exports and pretraining
    "Export": "auxpretrain.export",
    "load_export": "auxpretrain.export",
    "write_export": "auxpretrain.export",
    "pretrain": "auxpretrain.training",
    # text, vocabulary, corruption and task data (no TensorFlow)
    "Tokenizer": "auxpretrain.text",
    "SentenceSplitter": "auxpretrain.text",
    "Vocabulary": "auxpretrain.vocab",
    "Corruptor": "auxpretrain.corruption",
    "TaskData": "auxpretrain.tasks",
    "Split": "auxpretrain.tasks",
    "load_sentiment": "auxpretrain.tasks",
    "load_task_files": "auxpretrain.tasks",
    "stratified_subsample": "auxpretrain.tasks",
}

__all__ = sorted([
    "AuxPretrainError", "ConfigError", "CorruptionConfig", "ExportError", "InputError",
    "ModelConfig", "NotFittedError", "PretrainConfig", "RestoreError", "TRANSFERABLE_VARIABLES",
    "parse_freeze", "select_layers", "__version__",
] + list(_LAZY))


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
