"""The downstream task graph and how it is fed.

A task graph is the export's encoder (same variable names: `embedding/`, `layer_i/`) + dropout +
a softmax head (`head/`), in its own tf.Graph. It starts from token ids, or, when the bottom
layers are frozen and their outputs cached, from a cached sequence (the layers above the
cache boundary) or a cached pooled vector (the head only): the variable names stay the same,
so a saved model does not depend on where the cache was. Dropout is stateless, its masks a
function of the fed (seed, step), so a resumed run draws the masks an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from auxpretrain.config import ModelConfig
from auxpretrain.errors import ConfigError
from auxpretrain.model.encoder import build_classifier, build_encoder, build_layers, pool, stateless_dropout
from auxpretrain.model.variables import HEAD

tf1 = tf.compat.v1

IDS, SEQUENCE, POOLED = "ids", "sequence", "pooled"  # what a task graph starts from


@dataclasses.dataclass
class EncodedSplit:
    """A split as token ids: ids int32 [n, max_length] (0-padded), lengths int32 [n], labels int32 [n];
    `cut`: how many texts had more than max_length tokens (their tail is dropped)."""

    ids: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    cut: int = 0

    def __len__(self):
        return len(self.labels)


def encode_split(texts: Sequence[str], labels, tokenizer, vocab, max_length: int) -> EncodedSplit:
    """Tokenizes and encodes `texts` (cut at `max_length` tokens) with their int labels."""
    tokens = [tokenizer.tokenize(t) for t in texts]
    ids, lengths = vocab.encode_batch(tokens, max_length, pad_to_max_length=True)
    return EncodedSplit(ids=np.asarray(ids, np.int32).reshape(len(tokens), max_length),
                        lengths=np.asarray(lengths, np.int32),
                        labels=np.asarray(labels, dtype=np.int32), cut=sum(len(t) > max_length for t in tokens))


def batch_width(lengths: np.ndarray) -> int:
    """Padded width of a batch: its longest length (at least 1)."""
    return max(int(lengths.max()) if len(lengths) else 1, 1)


def length_batches(lengths: np.ndarray, size: int) -> List[np.ndarray]:
    """Indices in batches of `size`, sorted by length (evaluation: little padding)."""
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + size] for i in range(0, len(order), size)]


@dataclasses.dataclass
class TaskGraph:
    """Handles of one task graph (from ids, from a cached sequence or from a cached pooled vector)."""

    graph: Any
    kind: str  # IDS | SEQUENCE | POOLED
    inputs: Dict[str, Any]
    labels: Any
    dropout: Any
    layer_dropout: Any
    learning_rate: Any
    logits: Any
    probs: Any
    loss: Any
    layer_names: List[str]  # transferable layers present in this graph, bottom first
    dropout_seed: Any = None  # int64 [2]: (seed, step) of the training step's dropout masks
    encoder: Any = None  # EncoderOutputs when the graph starts from token ids


def build_task_graph(config: ModelConfig, num_classes: int, seed: int, kind: str = IDS,
                     first_layer: int = 0, frozen=(), layer_dropout: bool = False) -> TaskGraph:
    """A task graph: inputs -> (remaining) encoder layers -> dropout -> softmax head.

    Args:
      config: the encoder's architecture.
      num_classes: softmax outputs (>= 2).
      seed: graph seed and op seed of the initialisers.
      kind: IDS (token ids), SEQUENCE (the cached output of layer_{first_layer - 1}, or of the
        embedding when first_layer is 0) or POOLED (the cached sentence vector: head only).
      frozen: layer names created with trainable=False.
      layer_dropout: dropout on each convolution's input (rate fed to `layer_dropout`).
    """
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(seed)
        dropout = tf1.placeholder_with_default(0.0, [], name="dropout")
        layer_rate = tf1.placeholder_with_default(0.0, [], name="layer_dropout")
        labels = tf1.placeholder(tf.int32, [None], name="labels")
        learning_rate = tf1.placeholder(tf.float32, [], name="learning_rate")
        dropout_seed = tf1.placeholder_with_default(tf.constant([0, 0], tf.int64), [2], name="dropout_seed")
        rate = layer_rate if layer_dropout else None
        enc = None
        if kind == IDS:
            ids = tf1.placeholder(tf.int32, [None, None], name="input_ids")
            enc = build_encoder(ids, config, frozen=frozen, seed=seed, dropout=rate, dropout_seed=dropout_seed)
            pooled = enc.pooled
            inputs, present = {"ids": ids}, config.layer_names()
        elif kind == SEQUENCE:
            if config.pool_layers == "all":
                raise ConfigError("a cached sequence cannot feed pool_layers all (it pools the layers below "
                                  "the cache too): build the task graph from ids")
            width = config.embedding_size if first_layer == 0 else config.hidden_size
            seq = tf1.placeholder(tf.float32, [None, None, width], name="cached_sequence")
            lengths = tf1.placeholder(tf.int32, [None], name="lengths")
            mask = tf.sequence_mask(lengths, tf.shape(seq)[1], dtype=tf.float32)
            top = build_layers(seq, mask, config, first_layer, frozen=frozen, dropout=rate,
                               dropout_seed=dropout_seed, seed=seed)
            pooled = pool(top, mask, config.pooling)
            inputs = {"sequence": seq, "lengths": lengths}
            present = [f"layer_{i}" for i in range(first_layer, config.num_layers)]
        else:
            pooled = tf1.placeholder(tf.float32, [None, config.pooled_size], name="cached_pooled")
            inputs, present = {"pooled": pooled}, []
        logits = build_classifier(stateless_dropout(pooled, dropout, dropout_seed, 0), num_classes,
                                  scope=HEAD, seed=seed)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        probs = tf.nn.softmax(logits)
    return TaskGraph(graph=graph, kind=kind, inputs=inputs, labels=labels, dropout=dropout,
                     layer_dropout=layer_rate, learning_rate=learning_rate, logits=logits, probs=probs,
                     loss=loss, layer_names=present, dropout_seed=dropout_seed, encoder=enc)


class Feeder:
    """Feeds one split to a task graph: token ids, a cached sequence [n, T, W] or cached pooled [n, P]."""

    def __init__(self, kind: str, data: EncodedSplit, cache: Optional[np.ndarray] = None):
        self.kind, self.data, self.cache = kind, data, cache

    def feed(self, model: TaskGraph, idx: np.ndarray) -> Dict[Any, Any]:
        lengths = self.data.lengths[idx]
        if self.kind == IDS:
            return {model.inputs["ids"]: self.data.ids[idx, :batch_width(lengths)]}
        if self.kind == SEQUENCE:
            return {model.inputs["sequence"]: self.cache[idx, :batch_width(lengths)],
                    model.inputs["lengths"]: lengths}
        return {model.inputs["pooled"]: self.cache[idx]}


def predict_probs(sess, model: TaskGraph, feeder: Feeder, batch_size: int) -> np.ndarray:
    """Class probabilities [n, C], in the split's order (batches sorted by length)."""
    n = len(feeder.data)
    out = np.zeros((n, int(model.probs.shape[-1])), np.float32)
    for idx in length_batches(feeder.data.lengths, batch_size):
        out[idx] = sess.run(model.probs, feed_dict=feeder.feed(model, idx))
    return out


def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Share of predictions equal to the labels (NaN for no example)."""
    return float(np.mean(np.asarray(labels) == np.asarray(predictions))) if len(labels) else float("nan")


def macro_f1(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in labels or predictions."""
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    scores = []
    for c in range(num_classes):
        tp = int(np.sum((predictions == c) & (labels == c)))
        fp = int(np.sum((predictions == c) & (labels != c)))
        fn = int(np.sum((predictions != c) & (labels == c)))
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0
