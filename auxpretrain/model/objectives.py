"""Pretraining objectives as pure graph builders, all from the corruptor's good/bad labels.

- sentence: the good-vs-bad sentence classifier (sigmoid cross-entropy).
- ranking:  Collobert & Weston's pairwise margin: a good sentence must score 1 above its
            own corruption.
- token:    ELECTRA's replaced-token detection: each position of the bad sentence is
            original or replaced (sigmoid cross-entropy over positions).
- window:   C&W's window task per position: at each changed position, the window of the
            good sentence must score 1 above the window of the bad one.
- context:  the same idea at the word level, word2vec's negative sampling: a real
            (word, neighbour) pair is good, the pair with the neighbour swapped for a
            unigram^0.75 draw is bad. Trains the embedding table directly.
"""

from __future__ import annotations

import collections
from typing import Mapping

import tensorflow as tf

from auxpretrain.config import ModelConfig
from auxpretrain.model.encoder import build_classifier, build_encoder, build_token_head

tf1 = tf.compat.v1

PretrainModel = collections.namedtuple(
    "PretrainModel", ["inputs", "loss", "losses", "sentence_logits", "token_logits", "encoder",
                      "context_weight", "context_table"])
PretrainModel.__doc__ = """What `build_pretrain_model` returns.

loss: weighted sum of the objectives other than `context` (trained with Adam).
losses: objective name -> scalar mean loss (for reporting).
context_weight: the context objective's weight, or None when it is off. It is trained as
  word2vec trains (plain SGD on the weighted sum of per-pair losses, `context_pair_loss`),
  because Adam on a mean loss barely moves rare rows; the train op builds those sums.
context_table: the context objective's output vectors `context/output_table` [vocab, dim]
  (a PartitionedVariable when built with a partitioner), or None.
"""

# name -> (dtype, shape) of every input of a pretraining batch
INPUT_SPECS = collections.OrderedDict([
    ("good", (tf.int32, [None, None])),  # [batch, time] good sentences, 0-padded
    ("bad", (tf.int32, [None, None])),  # [batch, time] their corruptions, same padding
    ("changed", (tf.bool, [None, None])),  # [batch, time] positions edited in bad
    ("center", (tf.int32, [None])),  # [pairs] context objective: word ids
    ("context", (tf.int32, [None])),  # [pairs] their real neighbours
    ("negatives", (tf.int32, [None, None])),  # [pairs, k] noise neighbours
    ("pass_pairs", (tf.int32, [None])),  # [passes] pairs of each context pass, in order
])


def build_pretrain_model(inputs: Mapping[str, tf.Tensor], config: ModelConfig,
                         objectives: Mapping[str, float], embedding_from_context_only: bool,
                         seed: int = 0, partitioner=None) -> PretrainModel:
    """Builds encoder, heads and the weighted sum of the objectives' losses.

    Args:
      inputs: tensors named as INPUT_SPECS.
      config: the encoder architecture.
      objectives: objective name -> loss weight.
      embedding_from_context_only: when the context objective is on, stop the other
        objectives' gradients at the embedding (they train the layers above it).
      partitioner: optional partitioner of the two [vocab, dim] tables (`embedding/table`,
        `context/output_table`), e.g. to shard them over parameter servers; None: unsharded.

    Returns:
      PretrainModel; losses maps objective name -> scalar loss (unweighted).
    """
    good, bad = inputs["good"], inputs["bad"]
    batch = tf.shape(good)[0]
    stop = "embedding" if (embedding_from_context_only and "context" in objectives) else None
    both = tf.concat([good, bad], axis=0)  # [2*batch, time]
    encoder = build_encoder(both, config, stop_gradient_at=stop, seed=seed, partitioner=partitioner)
    losses = {}
    sentence_logits = token_logits = None
    if "sentence" in objectives or "ranking" in objectives:
        sentence_logits = build_classifier(encoder.pooled, 1, scope="head", seed=seed)
        good_logits, bad_logits = sentence_logits[:batch], sentence_logits[batch:]
        if "sentence" in objectives:
            labels = tf.concat([tf.ones([batch]), tf.zeros([batch])], axis=0)
            losses["sentence"] = tf.reduce_mean(
                tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=sentence_logits))
        if "ranking" in objectives:
            losses["ranking"] = tf.reduce_mean(tf.nn.relu(1.0 - good_logits + bad_logits))
    if "token" in objectives or "window" in objectives:
        token_logits = build_token_head(encoder.sequence, scope="token_head", seed=seed)
        good_tok, bad_tok = token_logits[:batch], token_logits[batch:]
        changed = tf.cast(inputs["changed"], tf.float32)
        bad_mask = encoder.mask[batch:]
        if "token" in objectives:
            per_position = tf.nn.sigmoid_cross_entropy_with_logits(labels=changed, logits=bad_tok)
            losses["token"] = tf.reduce_sum(per_position * bad_mask) / tf.maximum(tf.reduce_sum(bad_mask), 1.0)
        if "window" in objectives:
            # token logits read as "this window is original"; rank good over bad where edited
            hinge = tf.nn.relu(1.0 - good_tok + bad_tok) * changed
            losses["window"] = tf.reduce_sum(hinge) / tf.maximum(tf.reduce_sum(changed), 1.0)
    context_weight = context_table = None
    if "context" in objectives:
        with tf1.variable_scope("context"):
            # output vectors (word2vec's syn1neg); zero-initialised as word2vec does; not transferable
            context_table = tf1.get_variable("output_table", [config.vocab_size, config.embedding_size],
                                             tf.float32, tf1.zeros_initializer(), partitioner=partitioner)
        per_pair = context_pair_loss(encoder.embedding_table, context_table, inputs["center"],
                                     inputs["context"], inputs["negatives"])
        # a batch may yield no pair (all words subsampled away): loss 0, not NaN
        losses["context"] = tf.reduce_sum(per_pair) / tf.maximum(tf.cast(tf.size(per_pair), tf.float32), 1.0)
        context_weight = float(objectives["context"])
    others = [objectives[name] * value for name, value in sorted(losses.items()) if name != "context"]
    loss = tf.add_n(others) if others else tf.constant(0.0)
    return PretrainModel(inputs=inputs, loss=loss, losses=losses, sentence_logits=sentence_logits,
                         token_logits=token_logits, encoder=encoder, context_weight=context_weight,
                         context_table=context_table)


def context_pair_loss(table, output, center, context, negatives):
    """word2vec's negative-sampling loss per pair, float32 [pairs]: input vectors from `table`
    (the encoder's embedding), output vectors from `output` (either may be partitioned)."""
    center = tf.nn.embedding_lookup(table, center)  # [pairs, dim]
    real = tf.nn.embedding_lookup(output, context)  # [pairs, dim]
    noise = tf.nn.embedding_lookup(output, negatives)  # [pairs, k, dim]
    pos = tf.reduce_sum(center * real, axis=-1)
    neg = tf.einsum("pd,pkd->pk", center, noise)
    return tf.nn.softplus(-pos) + tf.reduce_sum(tf.nn.softplus(neg), axis=-1)
