"""An export in a Keras model (TensorFlow 2's Keras 3, eager execution).

    import auxpretrain.keras as apk

    to_ids = apk.TextToIds(export)                       # strings [batch] -> int32 ids [batch, time]
    encoder = apk.PretrainedEncoder(export, layers="default", freeze="embedding")
    texts = keras.Input(shape=(), dtype="string")
    probs = keras.layers.Dense(2, activation="softmax")(encoder(to_ids(texts)))
    print(encoder.report)                                # the same RestoreReport as restore_pretrained

- `TextToIds`: the export's own tokenizer and vocabulary (exactly `encode_texts`, run through
  `tf.py_function`), each batch padded to its longest text (0 = padding, 1 = unknown word).
- `PretrainedEncoder`: embedding -> convolutions -> pooling, the export's architecture and
  values (`layers` chooses what is restored, the rest starts random), `freeze` keeps layers
  fixed and `trainable=False` the whole encoder; its output is the pooled sentence vector
  (`output="sequence"`: the top layer's [batch, time, width]). Same numbers as `build_encoder`.
- `embedding_layer`: a plain `keras.layers.Embedding` initialised from the export's table.

TensorFlow and Keras are imported by this module only (`import auxpretrain` does not). The rest
of the package builds tf.compat.v1 graphs in their own `tf.Graph()` and never turns eager
execution off, so Keras and the graph-mode API work in one process; what Keras cannot work with is
`tf.compat.v1.disable_eager_execution()` (or a `with graph.as_default():` block around the
Keras code): the layers then raise ConfigError saying so.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from auxpretrain.config import TransferConfig
from auxpretrain.errors import ConfigError
from auxpretrain.export import Export, as_export
from auxpretrain.model.variables import EMBEDDING, parse_freeze
from auxpretrain.transfer.fine_tuning import task_config, transfer_layers
from auxpretrain.transfer.graph_api import encode_texts
from auxpretrain.transfer.report import RestoreReport
from auxpretrain.transfer.restore import remap_rows

__all__ = ["TextToIds", "PretrainedEncoder", "embedding_layer"]


def _check_eager(what: str) -> None:
    if not tf.executing_eagerly():
        raise ConfigError(f"{what}: Keras needs eager execution, which is off here (tf.compat.v1."
                          "disable_eager_execution() was called, or this runs inside a `with graph.as_default()` "
                          "block); build Keras models outside graph blocks, in a process that does not disable "
                          "eager execution (auxpretrain's graph-mode API never does)")


def _source(source, vocab):
    """(export, vocabulary the ids index): the export's own unless `vocab` is given."""
    export = as_export(source) if isinstance(source, (str, os.PathLike)) else source
    return export, (vocab if vocab is not None else export.vocab)


class _Encoding:
    """What `encode_texts` needs: the export's tokenizer and config, and the ids' vocabulary."""

    def __init__(self, export, vocab):
        self.tokenizer, self.config, self.vocab = export.tokenizer, export.config, vocab


class TextToIds(keras.layers.Layer):
    """Strings -> int32 token ids [batch, time] with the export's tokenizer and vocabulary.

    Args:
      source: an export directory (checksums verified), an Export, or a fitted TextClassifier.
      max_length: tokens kept per text (default: every token for an export, whose pretraining
        max_length does not limit a task; a fitted model's own length).
      vocab: the task Vocabulary when the embedding was remapped to it (`PretrainedEncoder(vocab=)`).

    The ids are exactly `ap.encode_texts(texts, source, max_length)`, each batch padded to its
    longest text. The tokenizer is Python (`tf.py_function`): save a model that starts from the
    ids, and keep this layer in front of it (or in the tf.data pipeline).
    """

    def __init__(self, source, max_length: Optional[int] = None, vocab=None, **kwargs):
        _check_eager("TextToIds")
        super().__init__(trainable=False, **kwargs)
        export, vocab = _source(source, vocab)
        self._encoding = _Encoding(export, vocab)
        if max_length is None and not isinstance(export, Export):
            max_length = export.config.max_length  # a fitted model: the length it was trained with
        self.max_length = max_length
        self._path = getattr(export, "path", None)

    def _encode(self, texts) -> np.ndarray:
        decoded = [t.decode("utf-8", "replace") for t in np.asarray(texts).reshape(-1).tolist()]
        ids, _ = encode_texts(decoded, self._encoding, self.max_length or 10 ** 9)
        return ids

    def call(self, texts):
        ids = tf.py_function(self._encode, [tf.reshape(texts, [-1])], tf.int32)
        ids.set_shape([None, None])
        return ids

    def compute_output_spec(self, texts):
        return keras.KerasTensor((texts.shape[0], None), dtype="int32")

    def get_config(self) -> Dict[str, Any]:
        return dict(super().get_config(), source=self._path, max_length=self.max_length)


def _restored_values(export, vocab, chosen: Sequence[str]):
    """Export values of the chosen layers, the embedding rows remapped to `vocab` by token."""
    values = {n: v for n, v in export.values().items() if n.split("/")[0] in set(chosen)}
    report_rows = (None, None)
    table = "embedding/table"
    if table in values and list(vocab.tokens) != list(export.vocab.tokens):
        values[table], copied, new = remap_rows(values[table], export.vocab.tokens, vocab.tokens)
        report_rows = (copied, new)
    elif table in values:
        report_rows = (len(vocab), 0) if vocab is not export.vocab else (None, None)
    return values, report_rows


class PretrainedEncoder(keras.layers.Layer):
    """The export's encoder as one Keras layer: ids int [batch, time] (0 = padding) -> the pooled
    sentence vector float32 [batch, pooled_size] (or, with output="sequence", the top layer's
    [batch, time, width], zero at padding).

    Args:
      source: an export directory (checksums verified) or an Export.
      layers: export layers whose values are restored: None or "all" (every layer), "default"
        (the export's default_layers when freeze is none or embedding, as `fit` does), n (the first
        n, embedding first), a regex or names; the others start from build_encoder's initialisers.
      freeze: none | all (every restored layer) | embedding | N (bottom N layers): those weights
        are created with trainable=False. `trainable=False` freezes the whole encoder.
      vocab: your task's Vocabulary when it differs from the export's: embedding rows are copied
        by token, new words start at the mean pretrained row (feed ids of this vocabulary:
        `TextToIds(export, vocab=vocab)`).
      output: "pooled" or "sequence".
      pool_layers: "top" | "all" | "auto", what the pooled vector pools, as `TransferConfig.pool_layers`
        ("auto", the default: every layer's output when every layer is frozen, else the top's).
      seed: seed of the initialisers of the layers that are not restored.

    `report` is a RestoreReport (restored, frozen, trainable, vocabulary remapping) of the
    weights as they are now (`trainable` changes are reflected).
    """

    def __init__(self, source, layers="default", freeze="none", vocab=None, output: str = "pooled",
                 seed: Optional[int] = None, pool_layers: str = "auto", **kwargs):
        _check_eager("PretrainedEncoder")
        super().__init__(**kwargs)
        if output not in ("pooled", "sequence"):
            raise ConfigError(f"output={output!r}: use 'pooled' or 'sequence'")
        export, vocab = _source(source, vocab)
        self.export_path = str(export.path)
        self.config = export.config
        self.output_kind = output
        names = self.config.layer_names()
        settings = TransferConfig(layers=layers, freeze=freeze, pool_layers=pool_layers)
        self.restored_layers = transfer_layers(settings, export)
        self.frozen_layers = parse_freeze(settings.freeze, names, restored=self.restored_layers)
        if self.frozen_layers is None:
            raise ConfigError("freeze='auto' needs TextClassifier.fit or ap.fine_tune; name the layers to freeze")
        self.config = task_config(self.config, settings, self.frozen_layers)
        not_restored = [n for n in self.frozen_layers if n not in self.restored_layers]
        if not_restored:
            raise ConfigError(f"freeze={freeze!r} would freeze {', '.join(not_restored)}, which layers={layers!r} "
                              "does not restore (it would stay random); freeze fewer layers or restore more")
        values, (self._rows_copied, self._rows_new) = _restored_values(export, vocab, self.restored_layers)
        cfg = self.config
        shapes = {"embedding/table": (len(vocab), cfg.embedding_size)}
        width = cfg.embedding_size
        for i in range(cfg.num_layers):
            shapes[f"layer_{i}/kernel"] = (cfg.kernel_width, width, cfg.hidden_size)
            shapes[f"layer_{i}/bias"] = (cfg.hidden_size,)
            width = cfg.hidden_size
        self._weights_by_name: Dict[str, Any] = {}
        for k, (name, shape) in enumerate(shapes.items()):
            if name in values:
                init = keras.initializers.Constant(np.asarray(values[name], np.float32))
            elif name == "embedding/table":
                init = keras.initializers.RandomUniform(-0.05, 0.05, seed=seed)
            elif name.endswith("/kernel"):
                init = keras.initializers.GlorotUniform(seed=None if seed is None else seed + k)
            else:
                init = keras.initializers.Zeros()
            self._weights_by_name[name] = self.add_weight(
                name=name.replace("/", "_"), shape=shape, initializer=init, dtype="float32",
                trainable=name.split("/")[0] not in self.frozen_layers)

    def call(self, ids):
        ids = keras.ops.cast(ids, "int32")
        mask = keras.ops.cast(keras.ops.not_equal(ids, 0), "float32")[:, :, None]
        x = keras.ops.take(self._weights_by_name["embedding/table"], ids, axis=0) * mask
        activation = keras.ops.tanh if self.config.activation == "tanh" else keras.ops.relu
        outputs = [x]
        for i in range(self.config.num_layers):
            kernel, bias = self._weights_by_name[f"layer_{i}/kernel"], self._weights_by_name[f"layer_{i}/bias"]
            x = activation(keras.ops.conv(x, kernel, strides=1, padding="same") + bias) * mask
            outputs.append(x)
        if self.output_kind == "sequence":
            return x
        if self.config.pool_layers == "all":
            return keras.ops.concatenate([self._pool(o, mask) for o in outputs], axis=-1)
        return self._pool(x, mask)

    def _pool(self, x, mask):
        count = keras.ops.sum(mask, axis=1)
        mean = keras.ops.sum(x * mask, axis=1) / keras.ops.maximum(count, 1.0)
        if self.config.pooling == "mean":
            return mean
        maxed = keras.ops.max(keras.ops.where(mask > 0, x, -1e9), axis=1)
        maxed = keras.ops.where(count > 0, maxed, keras.ops.zeros_like(maxed))
        return maxed if self.config.pooling == "max" else keras.ops.concatenate([mean, maxed], axis=-1)

    def compute_output_shape(self, input_shape):
        cfg = self.config
        if self.output_kind == "sequence":
            return (input_shape[0], input_shape[1], cfg.hidden_size if cfg.num_layers else cfg.embedding_size)
        return (input_shape[0], cfg.pooled_size)

    def weight_of(self, name: str):
        """The Keras weight of an export variable name ("embedding/table", "layer_0/kernel", ...)."""
        if name not in self._weights_by_name:
            raise ConfigError(f"no weight {name!r}; the encoder has {', '.join(self._weights_by_name)}")
        return self._weights_by_name[name]

    @property
    def report(self) -> RestoreReport:
        """What was restored and what trains, as `restore_pretrained` reports it."""
        report = RestoreReport(source=self.export_path, verified=True, method="keras initialiser")
        report.layers = list(self.restored_layers)
        for name, weight in self._weights_by_name.items():
            if name.split("/")[0] not in self.restored_layers:
                report.not_selected.append(name)  # from its initialiser, as restore_pretrained lists it
                continue
            target = weight.path
            report.shapes[target] = tuple(weight.shape)
            report.restored.append(target)
            report.mapping[name] = target
            (report.trainable if self.trainable and weight.trainable else report.frozen).append(target)
        report.vocab_rows_copied, report.vocab_rows_new = self._rows_copied, self._rows_new
        return report

    def get_config(self) -> Dict[str, Any]:
        return dict(super().get_config(), source=self.export_path, layers=list(self.restored_layers),
                    freeze=list(self.frozen_layers), output=self.output_kind)


def embedding_layer(source, trainable: bool = True, vocab=None, **kwargs) -> keras.layers.Embedding:
    """A `keras.layers.Embedding` whose table is the export's (rows remapped to `vocab` when
    given). `trainable=False` freezes it. `kwargs` go to Embedding (e.g. mask_zero=True, name=).
    `layer.report` is its RestoreReport."""
    _check_eager("embedding_layer")
    export, vocab = _source(source, vocab)
    values, (copied, new) = _restored_values(export, vocab, [EMBEDDING])
    table = np.asarray(values["embedding/table"], np.float32)
    layer = keras.layers.Embedding(table.shape[0], table.shape[1], trainable=trainable,
                                   embeddings_initializer=keras.initializers.Constant(table), **kwargs)
    report = RestoreReport(source=str(export.path), verified=True, method="keras initialiser")
    report.layers = [EMBEDDING]
    report.restored = [f"{layer.name}/embeddings"]
    report.mapping = {"embedding/table": report.restored[0]}
    report.shapes = {report.restored[0]: table.shape}
    (report.trainable if trainable else report.frozen).append(report.restored[0])
    report.not_selected = [n for n in export.variables if not n.startswith(EMBEDDING + "/")]
    report.vocab_rows_copied, report.vocab_rows_new = copied, new
    layer.report = report
    return layer

