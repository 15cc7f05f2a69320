"""Pure graph builders (tf.compat.v1): the encoder whose layers transfer, and heads.

Builders create variables in the current default graph with `variable_scope` +
`get_variable`, add the encoder's variables to `TRANSFERABLE_VARIABLES`, and return
namedtuples. They never open a Session, read argv or touch files.

Scope names are part of the export format (`embedding/table`, `layer_i/kernel`,
`layer_i/bias`, `head/...`); renaming them bumps `export.FORMAT_VERSION`.
"""

from __future__ import annotations

import collections
from typing import Container, Optional

import tensorflow as tf

from auxpretrain.config import ModelConfig
from auxpretrain.errors import ConfigError
from auxpretrain.model.variables import EMBEDDING, HEAD, TRANSFERABLE_VARIABLES

tf1 = tf.compat.v1


def _register_collection_proto() -> None:
    """Serialises the transferable collection as VariableDefs in MetaGraphDefs, as TF does
    for its own variable collections, so `import_meta_graph` gives back Variables, not
    tensor names. TF has no public alias for this registry; if it moves, the collection
    degrades to names and everything else keeps working."""
    try:
        from tensorflow.core.framework import variable_pb2
        from tensorflow.python.framework import ops

        if ops.get_to_proto_function(TRANSFERABLE_VARIABLES) is None:
            key = tf1.GraphKeys.GLOBAL_VARIABLES
            ops.register_proto_function(
                TRANSFERABLE_VARIABLES, proto_type=variable_pb2.VariableDef,
                to_proto=ops.get_to_proto_function(key), from_proto=ops.get_from_proto_function(key))
    except (ImportError, AttributeError):  # pragma: no cover - depends on TF internals
        pass


_register_collection_proto()

EncoderOutputs = collections.namedtuple(
    "EncoderOutputs", ["embedded", "sequence", "pooled", "layers", "mask", "embedding_table"]
)
EncoderOutputs.__doc__ = """What `build_encoder` returns.

embedded: float32 [batch, time, embedding_size], word vectors (zero at padding).
sequence: float32 [batch, time, width], output of the top layer (zero at padding).
pooled: float32 [batch, config.pooled_size], the sentence vector.
layers: dict layer name -> float32 [batch, time, width] output of that layer, bottom first.
mask: float32 [batch, time], 1.0 at real tokens, 0.0 at padding.
embedding_table: the `embedding/table` variable, [vocab_size, embedding_size] (a
  PartitionedVariable when built with a partitioner).
"""

_ACTIVATIONS = {"tanh": tf.tanh, "relu": tf.nn.relu}


def _variable(name, shape, initializer, trainable, collections_extra=(), partitioner=None):
    var = tf1.get_variable(name, shape=shape, dtype=tf.float32, initializer=initializer,
                           trainable=trainable, partitioner=partitioner)
    # a partitioned variable goes into the collections as its parts (real Variables, which
    # MetaGraphDefs can serialise): embedding/table/part_0, part_1, ...
    for part in ([var] if partitioner is None else list(var)):
        for key in collections_extra:
            if part not in tf1.get_collection(key):
                tf1.add_to_collection(key, part)
    return var


def pool(sequence, mask, pooling: str):
    """Pools float32 [batch, time, width] over valid positions -> [batch, pooled width].

    Empty sentences (no valid position) pool to zeros rather than -inf or NaN.
    """
    mask3 = tf.expand_dims(mask, -1)
    count = tf.reduce_sum(mask3, axis=1)  # [batch, 1]
    mean = tf.reduce_sum(sequence * mask3, axis=1) / tf.maximum(count, 1.0)
    if pooling == "mean":
        return mean
    very_negative = tf.constant(-1e9, dtype=sequence.dtype)
    maxed = tf.reduce_max(tf.where(mask3 > 0, sequence, very_negative + 0 * sequence), axis=1)
    maxed = tf.where(count > 0, maxed, tf.zeros_like(maxed))
    if pooling == "max":
        return maxed
    return tf.concat([mean, maxed], axis=-1)


def stateless_dropout(x, rate, seed_pair, site: int):
    """Dropout whose mask is a function of (the fed int64 [2] `seed_pair`, `site`): a resumed run
    draws the masks an uninterrupted one would (a stateful op restarts with its session)."""
    return tf.nn.experimental.stateless_dropout(
        x, rate=rate, seed=tf.random.experimental.stateless_fold_in(seed_pair, site))


def build_encoder(
    input_ids,
    config: ModelConfig,
    frozen: Container[str] = (),
    stop_gradient_at: Optional[str] = None,
    dropout=None,
    extra_collections=(TRANSFERABLE_VARIABLES,),
    seed: Optional[int] = None,
    partitioner=None,
    dropout_seed=None,
) -> EncoderOutputs:
    """Builds embedding -> `config.num_layers` convolutions -> pooled sentence vector.

    Args:
      input_ids: int32 Tensor [batch_size, seq_length]; 0 is padding (PAD), ids < vocab_size.
      config: the architecture.
      frozen: layer names ("embedding", "layer_0", ...) whose variables are created with
        `trainable=False` (the first of the freezing mechanisms, see model.freezing).
      stop_gradient_at: a layer name; no gradient flows below that layer's output
        (`stop_gradient` freezing: that layer and all below it stay fixed).
      dropout: optional float scalar Tensor, dropout rate applied to each layer's input
        above the embedding (0.0 at evaluation).
      extra_collections: collections for every encoder variable; by default the
        transferable collection. The head is never in it.
      seed: op-level seed for the initialisers (the graph seed also applies).
      partitioner: optional variable partitioner for `embedding/table` only, e.g.
        `tf1.fixed_size_partitioner(num_ps)` to shard it over parameter servers; the table
        is then a PartitionedVariable (its parts are in `extra_collections`). None: one
        variable, as always.
      dropout_seed: optional int64 Tensor [2]; with it, `dropout` is stateless
        (`stateless_dropout` at site 1 + i for layer i), else TF's stateful dropout.

    Returns:
      EncoderOutputs.
    """
    if config.vocab_size is None:
        raise ConfigError("build_encoder: config.vocab_size is None; set it to your vocabulary's size "
                          "(dataclasses.replace(config, vocab_size=len(vocab)))")
    names = config.layer_names()
    if stop_gradient_at is not None and stop_gradient_at not in names:
        raise ValueError(f"stop_gradient_at={stop_gradient_at!r}; choose from {names}")
    mask = tf.cast(tf.not_equal(input_ids, 0), tf.float32)
    with tf1.variable_scope(EMBEDDING):
        table = _variable(
            "table", [config.vocab_size, config.embedding_size],
            tf1.random_uniform_initializer(-0.05, 0.05, seed=_offset(seed, 0)),
            trainable=EMBEDDING not in frozen, collections_extra=extra_collections,
            partitioner=partitioner)
    embedded = tf.nn.embedding_lookup(table, input_ids) * tf.expand_dims(mask, -1)
    if stop_gradient_at == EMBEDDING:
        embedded = tf.stop_gradient(embedded)
    layers = {EMBEDDING: embedded}
    x = build_layers(embedded, mask, config, 0, frozen=frozen, stop_gradient_at=stop_gradient_at,
                     dropout=dropout, dropout_seed=dropout_seed, extra_collections=extra_collections,
                     seed=seed, outputs=layers)
    if config.pool_layers == "all":
        pooled = tf.concat([pool(layers[name], mask, config.pooling) for name in names], -1)
    else:
        pooled = pool(x, mask, config.pooling)
    return EncoderOutputs(embedded=embedded, sequence=x, pooled=pooled, layers=layers,
                          mask=mask, embedding_table=table)


def build_layers(x, mask, config: ModelConfig, first: int = 0, frozen: Container[str] = (),
                 stop_gradient_at: Optional[str] = None, dropout=None, dropout_seed=None,
                 extra_collections=(TRANSFERABLE_VARIABLES,), seed: Optional[int] = None,
                 outputs: Optional[dict] = None):
    """The convolutions layer_{first} .. layer_{num_layers - 1} on a sequence.

    Args:
      x: float32 [batch, time, width], the output of the layer below (the embedding's when
        `first` is 0), zero at padding.
      mask: float32 [batch, time], 1.0 at real tokens.
      config, frozen, stop_gradient_at, dropout, dropout_seed, extra_collections, seed: as in
        `build_encoder` (which calls this with first=0).
      outputs: optional dict that receives layer name -> its output.

    Returns:
      float32 [batch, time, hidden_size] (x itself when there is no layer to build).
    """
    activation = _ACTIVATIONS[config.activation]
    mask3 = tf.expand_dims(mask, -1)
    width = config.embedding_size if first == 0 else config.hidden_size
    for i in range(first, config.num_layers):
        name = f"layer_{i}"
        with tf1.variable_scope(name):
            kernel = _variable(
                "kernel", [config.kernel_width, width, config.hidden_size],
                tf1.glorot_uniform_initializer(seed=_offset(seed, i + 1)),
                trainable=name not in frozen, collections_extra=extra_collections)
            bias = _variable("bias", [config.hidden_size], tf1.zeros_initializer(),
                             trainable=name not in frozen, collections_extra=extra_collections)
            if dropout is None:
                inputs = x
            elif dropout_seed is not None:
                inputs = stateless_dropout(x, dropout, dropout_seed, 1 + i)
            else:
                inputs = tf.nn.dropout(x, rate=dropout, seed=_offset(seed, 100 + i))
            x = activation(tf.nn.conv1d(inputs, kernel, stride=1, padding="SAME") + bias) * mask3
        if stop_gradient_at == name:
            x = tf.stop_gradient(x)
        if outputs is not None:
            outputs[name] = x
        width = config.hidden_size
    return x


def _offset(seed: Optional[int], i: int) -> Optional[int]:
    """Op-level seed of the i-th random op of an encoder (None: the graph seed decides)."""
    return None if seed is None else seed + i


def dense(inputs, units: int, name: str, seed: Optional[int] = None, trainable: bool = True):
    """Fully connected layer: float32 [batch, in] -> [batch, units], variables name/kernel, name/bias."""
    with tf1.variable_scope(name):
        kernel = tf1.get_variable("kernel", [inputs.shape[-1], units], tf.float32,
                                  tf1.glorot_uniform_initializer(seed=seed), trainable=trainable)
        bias = tf1.get_variable("bias", [units], tf.float32, tf1.zeros_initializer(),
                                trainable=trainable)
        return tf.matmul(inputs, kernel) + bias


def build_classifier(pooled, num_classes: int, dropout=None, scope: str = HEAD,
                     seed: Optional[int] = None):
    """Head on the pooled sentence vector.

    Args:
      pooled: float32 [batch_size, width].
      num_classes: 1 for a single logit (sigmoid), >= 2 for softmax logits.
      dropout: optional float scalar Tensor, dropout rate on `pooled`.

    Returns:
      float32 logits [batch_size] when num_classes == 1, else [batch_size, num_classes].
    """
    x = pooled if dropout is None else tf.nn.dropout(pooled, rate=dropout, seed=seed)
    logits = dense(x, num_classes, scope, seed=seed)
    return logits[:, 0] if num_classes == 1 else logits


def build_token_head(sequence, scope: str = "token_head", seed: Optional[int] = None):
    """Per-position logit: float32 [batch, time, width] -> [batch, time] (replaced-token detection)."""
    with tf1.variable_scope(scope):
        kernel = tf1.get_variable("kernel", [sequence.shape[-1], 1], tf.float32,
                                  tf1.glorot_uniform_initializer(seed=seed))
        bias = tf1.get_variable("bias", [1], tf.float32, tf1.zeros_initializer())
    return tf.tensordot(sequence, kernel, axes=[[2], [0]])[:, :, 0] + bias[0]

