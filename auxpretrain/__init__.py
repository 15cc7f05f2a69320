"""auxpretrain: pretrain text encoders on an auxiliary good/bad sentence task (TF1 graph
mode) and transfer their layers into downstream models.

Importing this package does not import TensorFlow: the public names below that need it
are loaded on first use (`auxpretrain.TextClassifier` imports TensorFlow, `import
auxpretrain` does not).

Graph level (your own tf.compat.v1 graph and session):
  build_encoder, build_classifier, TRANSFERABLE_VARIABLES, restore_pretrained (report + the
  variables to train), assign_from_export_fn (tf-slim style init_fn), trainable_var_list,
  remove_from_trainable, build_train_ops, transfer_between_sessions / load_values (in memory),
  import_encoder (import_meta_graph + named tensors), build_shared_models (variable_scope reuse),
  encode_texts, fit_loop / run_batched (your own training loop, the frozen-output cache).
Model level: TextClassifier (from_pretrained, fit, partial_fit, predict, predict_proba,
  evaluate, save, load, get_layer_params, set_layer_params, copy_layers_from),
  partial_fit_shared, fine_tune, load_model.
Keras (TF 2's eager Keras): `import auxpretrain.keras` (TextToIds, PretrainedEncoder, ...).
The modules and how data flows through them: docs/architecture.md.
"""

from auxpretrain.config import (CorpusConfig, CorruptionConfig, ModelConfig, PretrainConfig,
                                TransferConfig, task_max_length)
from auxpretrain.errors import (AuxPretrainError, ConfigError, ExportError, InputError,
                                NotFittedError, RestoreError)
from auxpretrain.model.variables import TRANSFERABLE_VARIABLES, parse_freeze, select_layers

__version__ = "0.1.0"

# public name -> module that defines it; imported on first use (most of them import TensorFlow)
_LAZY = {
    # graph builders
    "build_encoder": "auxpretrain.model.encoder",
    "build_layers": "auxpretrain.model.encoder",
    "build_classifier": "auxpretrain.model.encoder",
    "dense": "auxpretrain.model.encoder",
    "pool": "auxpretrain.model.encoder",
    "EncoderOutputs": "auxpretrain.model.encoder",
    # restoring into your own graph
    "restore_pretrained": "auxpretrain.transfer.graph_api",
    "Restored": "auxpretrain.transfer.graph_api",
    "assign_from_export_fn": "auxpretrain.transfer.graph_api",
    "RestoreReport": "auxpretrain.transfer.report",
    "Assigner": "auxpretrain.transfer.restore",
    "remap_rows": "auxpretrain.transfer.restore",
    # in-memory transfer between graphs (no disk)
    "values_from_session": "auxpretrain.transfer.restore",
    "load_values": "auxpretrain.transfer.graph_api",
    "transfer_between_sessions": "auxpretrain.transfer.graph_api",
    # import_meta_graph of an export
    "import_encoder": "auxpretrain.transfer.imported",
    "ImportedEncoder": "auxpretrain.transfer.imported",
    # shared lower layers
    "build_shared_models": "auxpretrain.transfer.graph_api",
    "SharedModels": "auxpretrain.transfer.graph_api",
    "encode_texts": "auxpretrain.transfer.graph_api",
    # your own training loop: minibatches, early stopping, the frozen-output cache
    "fit_loop": "auxpretrain.transfer.loop",
    "FitHistory": "auxpretrain.transfer.loop",
    "run_batched": "auxpretrain.transfer.loop",
    # freezing and learning-rate schedules
    "trainable_var_list": "auxpretrain.model.freezing",
    "remove_from_trainable": "auxpretrain.model.freezing",
    "variables_of_layers": "auxpretrain.model.freezing",
    "build_train_ops": "auxpretrain.model.freezing",
    "TrainOps": "auxpretrain.model.freezing",
    "layer_groups": "auxpretrain.model.freezing",
    "discriminative_factors": "auxpretrain.model.schedules",
    "gradual_stages": "auxpretrain.model.schedules",
    "slanted_triangular": "auxpretrain.model.schedules",
    # the model-level API
    "TextClassifier": "auxpretrain.transfer.classifier",
    "copy_layers": "auxpretrain.transfer.shared",
    "partial_fit_shared": "auxpretrain.transfer.shared",
    "fine_tune": "auxpretrain.transfer.fine_tuning",
    "TransferResult": "auxpretrain.transfer.fine_tuning",
    "TaskModel": "auxpretrain.transfer.saved",
    "load_model": "auxpretrain.transfer.saved",
    "save_model": "auxpretrain.transfer.saved",
    # exports and pretraining
    "Export": "auxpretrain.export",
    "load_export": "auxpretrain.export",
    "write_export": "auxpretrain.export",
    "pretrain": "auxpretrain.pretraining.run",
    # text, vocabulary, corruption and task data (no TensorFlow)
    "Tokenizer": "auxpretrain.data.text",
    "SentenceSplitter": "auxpretrain.data.text",
    "Vocabulary": "auxpretrain.data.vocab",
    "Corruptor": "auxpretrain.data.corruption",
    "write_pairs": "auxpretrain.data.pairs",
    "TaskData": "auxpretrain.data.tasks",
    "Split": "auxpretrain.data.tasks",
    "load_sentiment": "auxpretrain.data.tasks",
    "load_task_files": "auxpretrain.data.task_files",
    "stratified_subsample": "auxpretrain.data.tasks",
    # a look at an export's embedding (no TensorFlow)
    "nearest_neighbors": "auxpretrain.inspection",
    "write_projector": "auxpretrain.inspection",
}

__all__ = sorted([
    "AuxPretrainError", "ConfigError", "CorpusConfig", "CorruptionConfig", "ExportError", "InputError",
    "ModelConfig", "NotFittedError", "PretrainConfig", "RestoreError", "TransferConfig", "TRANSFERABLE_VARIABLES",
    "parse_freeze", "select_layers", "task_max_length", "__version__",
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
