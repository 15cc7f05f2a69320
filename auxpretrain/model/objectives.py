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
  word2vec trains (plain SGD on the weighted sum of per-pair losses, `context_windows`),
  because Adam on a mean loss barely moves rare rows; the train op builds those sums.
context_table: the context objective's output vectors `context/output_table` [vocab, dim]
  (a PartitionedVariable when built with a partitioner), or None.
"""

# name -> (dtype, shape) of every input of a pretraining batch
INPUT_SPECS = collections.OrderedDict([
    ("good", (tf.int32, [None, None])),  # [batch, time] good sentences, 0-padded
    ("bad", (tf.int32, [None, None])),  # [batch, time] their corruptions, same padding
    ("changed", (tf.bool, [None, None])),  # [batch, time] positions edited in bad
    # context objective: per pass (an SGD update each), the kept words of a batch of sentences
    ("ctx_ids", (tf.int32, [None, None, None])),  # [passes, sentences, T] word ids, 0-padded
    ("ctx_reach", (tf.int32, [None, None, None])),  # [passes, sentences, T] window reach, 0 at padding
    ("ctx_negatives", (tf.int32, [None, None, None])),  # [passes, sentences, pool] noise words
])


def build_pretrain_model(inputs: Mapping[str, tf.Tensor], config: ModelConfig,
                         objectives: Mapping[str, float], embedding_from_context_only: bool,
                         seed: int = 0, partitioner=None, negatives: int = 5) -> PretrainModel:
    """Builds encoder, heads and the weighted sum of the objectives' losses.

    Args:
      inputs: tensors named as INPUT_SPECS.
      config: the encoder architecture.
      objectives: objective name -> loss weight.
      embedding_from_context_only: when the context objective is on, stop the other
        objectives' gradients at the embedding (they train the layers above it).
      partitioner: optional partitioner of the two [vocab, dim] tables (`embedding/table`,
        `context/output_table`), e.g. to shard them over parameter servers; None: unsharded.
      negatives: noise words per real pair of the context objective (`context_windows`).

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
        windows = context_windows(encoder.embedding_table, context_table, *(
            _merge_passes(inputs[name]) for name in ("ctx_ids", "ctx_reach", "ctx_negatives")),
                                  negatives_per_pair=negatives)
        # a batch may yield no pair (all words subsampled away): loss 0, not NaN
        losses["context"] = windows.loss / tf.maximum(windows.pairs, 1.0)
        context_weight = float(objectives["context"])
    others = [objectives[name] * value for name, value in sorted(losses.items()) if name != "context"]
    loss = tf.add_n(others) if others else tf.constant(0.0)
    return PretrainModel(inputs=inputs, loss=loss, losses=losses, sentence_logits=sentence_logits,
                         token_logits=token_logits, encoder=encoder, context_weight=context_weight,
                         context_table=context_table)


def _merge_passes(tensor):
    """[passes, sentences, ...] -> [passes * sentences, ...] (the loss need not tell passes apart)."""
    shape = tf.shape(tensor)
    return tf.reshape(tensor, tf.concat([[shape[0] * shape[1]], shape[2:]], axis=0))


ContextWindows = collections.namedtuple(
    "ContextWindows", ["inputs", "outputs", "output_ids", "scores", "weights", "loss", "pairs"])
ContextWindows.__doc__ = """What `context_windows` returns (B sentences of T words, a pool of P noise words each).

inputs: [B, T, dim] the words' input vectors (the embedding); output_ids: int32 [B, P + T] the
noise words then the words; outputs: [B, P + T, dim] their output vectors; scores: [B, T, P + T]
input i . output j; weights: [B, T, P + T] the weight of each score in the summed loss, as
noise (j < P: the pairs i is the input of x negatives / P) or as a real pair (j >= P: 1 or 0);
loss: float32 scalar, the summed pair losses; pairs: their number (float32).
"""


def context_windows(table, output, ids, reach, negatives, negatives_per_pair: int) -> ContextWindows:
    """word2vec's skip-gram with negative sampling over the windows of a batch of sentences.

    ids int32 [B, T]: the kept words of B sentences (0-padded); reach int32 [B, T]: the window
    of target j is the words i != j with |i - j| <= reach[b, j] (0 at padding); negatives int32
    [B, P]: a pool of noise words per sentence. Pair (i, j) scores input vector i (from
    `table`, the encoder's embedding) against output vector j (from `output`): softplus(-score)
    plus, for noise, `negatives_per_pair` / P times the sum over the pool of softplus(input i .
    noise), which is the expectation of drawing `negatives_per_pair` noise words per pair from the
    pool. Sharing noise words (HogBatch, Ji et al. 2016, shares them within a window) makes all
    scores of a sentence one matrix product ([T, dim] x [dim, P + T]) and gathers rows once per
    word, not once per pair. Either table may be partitioned."""
    output_ids, weights, labels, pairs = context_targets(ids, reach, negatives, negatives_per_pair)
    inputs = tf.nn.embedding_lookup(table, ids)  # [B, T, d]
    outputs = tf.nn.embedding_lookup(output, output_ids)  # [B, P + T, d]
    scores = tf.matmul(inputs, outputs, transpose_b=True)  # [B, i, P + T]
    # a real pair's loss is softplus(-score), a noise pair's softplus(score)
    loss = tf.reduce_sum(tf.nn.softplus(scores * (1.0 - 2.0 * labels)) * weights)
    return ContextWindows(inputs, outputs, output_ids, scores, weights, loss, pairs)


def context_targets(ids, reach, negatives, negatives_per_pair: int):
    """What `context_windows` scores, from the inputs alone (no variable): (output_ids int32
    [..., P + T], weights float32 [..., T, P + T], labels float32 [..., 1, P + T] (0.0 for the
    noise, 1.0 for the words), pairs float32 scalar). Any leading dimensions; the first
    columns are the noise words', so the words' first w positions are [..., :w, :P + w]."""
    output_ids = tf.concat([negatives, ids], axis=-1)
    width = tf.shape(ids)[-1]
    pool = tf.shape(negatives)[-1]
    position = tf.range(width)
    distance = tf.abs(position[:, None] - position[None, :])  # [T, T]: |i - j|
    pair = tf.logical_and(distance <= reach[..., None, :], distance > 0)  # [..., i, j]
    real = tf.cast(tf.logical_and(pair, (ids > 0)[..., :, None]), tf.float32)
    uses = tf.reduce_sum(real, axis=-1, keepdims=True)  # [..., i, 1]: pairs i is the input of
    noise_weight = uses * (float(negatives_per_pair) / tf.cast(tf.maximum(pool, 1), tf.float32))
    weights = tf.concat([noise_weight * tf.ones_like(negatives[..., None, :], tf.float32), real], axis=-1)
    labels = tf.concat([tf.zeros_like(negatives, tf.float32), tf.ones_like(ids, tf.float32)], axis=-1)
    return output_ids, weights, labels[..., None, :], tf.reduce_sum(uses)
