"""The pretraining graph: the batch iterator, the model, the learning-rate schedules and the
train op (Adam on the sentence-level objectives, word2vec's SGD on the context pairs)."""

from __future__ import annotations

import collections
import ctypes
import sys
from typing import Optional

import numpy as np
import tensorflow as tf

from auxpretrain.config import ModelConfig, PretrainConfig
from auxpretrain.model.objectives import INPUT_SPECS, build_pretrain_model, context_targets
from auxpretrain.pretraining import context_op, kernels
from auxpretrain.pretraining.batches import BatchMaker

tf1 = tf.compat.v1


def build_train_op(model, lr, context_lr, clip_norm: float, global_step, negatives: int = 5,
                   deterministic: bool = False, shared_tables: bool = False):
    """Adam (clipped) on the non-context objectives; word2vec's SGD on the context windows.

    The context objective's passes (`inputs["ctx_*"]`, [passes, sentences, ...]) are SGD
    updates in turn, inside one `tf.while_loop`: each reads the rows the previous one wrote, as
    word2vec's sequential updates do (one summed update over several passes' pairs diverges:
    frequent words' rows get too many at once). The updates add each pair's gradient to its
    rows directly (no optimizer, no tf.gradients): the two batched products of
    `context_windows` give every row's gradient. `deterministic`: each row's deltas are summed
    before they are added (TensorFlow's scatter adds a row's repeats in parallel, in no fixed
    order), so that runs are bit-identical; steps are ~25% slower. That is the TensorFlow loop
    (`_context_loop`), the fallback.

    The usual case is the compiled kernel: in one TensorFlow op on the tables' own memory
    (`_context_in_place`, built at first use by `context_op`), else in one call on the rows
    the step touches, gathered and written back by TensorFlow (`_context_kernel`; also when
    `shared_tables`: other processes update the tables at the same time, workers of a cluster,
    so the rows' changes are added, not the rows overwritten). Both give the same bits, and
    are deterministic at no cost.

    -> (train op, the context loss per pair over the step as each update saw it before
    applying, or None without the context objective)."""
    with tf1.name_scope("train"):
        sentence_ops, sentence_grads, adam_vars = [], [], []
        if model.loss.op.type != "Const":
            variables = tf1.trainable_variables()
            grads = tf.gradients(model.loss, variables)
            pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
            clipped, _ = tf.clip_by_global_norm([g for g, _ in pairs], clip_norm)
            adam_vars = [v for _, v in pairs]
            sentence_grads = [g.values if isinstance(g, tf.IndexedSlices) else g for g in clipped]
            # every gradient is computed before any variable changes: without this an update
            # of embedding/table races the sentence branch's reads of it (runs not reproducible)
            with tf.control_dependencies(sentence_grads):
                sentence_ops.append(tf1.train.AdamOptimizer(lr).apply_gradients(list(zip(clipped, adam_vars))))
        context_loss = None
        context_ops = []
        if model.context_weight is not None:
            tables = table_parts(model.encoder.embedding_table) + table_parts(model.context_table)
            # the loop starts once the sentence branch has read the embedding, and after its
            # update when that update writes a table too (embedding_from_context_only off)
            writes_table = any(v is t for v in adam_vars for t in tables)
            after = sentence_ops if writes_table else sentence_grads
            with tf.control_dependencies(after):
                op = None if shared_tables else _in_place_op(model)
                if op is not None:
                    loop, context_loss = _context_in_place(op, model, context_lr, negatives)
                elif kernels.compiled is not None:
                    loop, context_loss = _context_kernel(model, context_lr, negatives, not shared_tables)
                else:
                    loop, context_loss = _context_loop(model, context_lr, negatives, deterministic)
            context_ops.append(loop)
        with tf.control_dependencies(sentence_ops + context_ops):
            return tf1.assign_add(global_step, 1), context_loss


def _context_loop(model, context_lr, negatives: int, deterministic: bool):
    """The context objective's sequential SGD updates (see `build_train_op`) as one while loop
    over the passes. -> (loop op, loss per pair)."""
    inputs = model.inputs
    ids, reach, noise = (inputs[name] for name in ("ctx_ids", "ctx_reach", "ctx_negatives"))
    # what does not depend on the tables, for every pass at once (fewer ops in the loop)
    output_ids, weights, labels, pairs = context_targets(ids, reach, noise, negatives)
    scale = -context_lr * model.context_weight
    embedding, output = model.encoder.embedding_table, model.context_table

    pool = tf.shape(noise)[-1]
    # each pass's width: its longest sentence (kept words are left-aligned)
    widths = tf.reduce_max(tf.reduce_sum(tf.cast(ids > 0, tf.int32), axis=-1), axis=-1)

    def body(i, loss):
        w = widths[i]
        ids_i = ids[i, :, :w]
        output_ids_i = output_ids[i, :, :pool + w]
        weights_i, labels_i = weights[i, :, :w, :pool + w], labels[i, :, :, :pool + w]
        inputs_i = tf.nn.embedding_lookup(embedding, ids_i)  # [B, w, d]
        outputs_i = tf.nn.embedding_lookup(output, output_ids_i)  # [B, P + w, d]
        probability = tf.sigmoid(tf.matmul(inputs_i, outputs_i, transpose_b=True))  # [B, i, P + w]
        # d loss / d score: probability for noise, probability - 1 for a real pair; times -lr
        step = (weights_i * scale) * (probability - labels_i)
        d_in = tf.matmul(step, outputs_i)  # [B, i, d]: each word's input-vector update
        d_out = tf.matmul(step, inputs_i, transpose_a=True)  # [B, P + w, d]: output vectors'
        # the rows of words, not of padding (a scatter costs per row, zeros included)
        update = _write_rows([(table, tf.boolean_mask(rows, rows > 0), tf.boolean_mask(delta, rows > 0))
                              for table, rows, delta in ((embedding, ids_i, d_in), (output, output_ids_i, d_out))],
                             deterministic=deterministic)
        # the pairs' loss as the update saw it: -log of the probability of the right label
        right = tf.abs(probability - 1.0 + labels_i)
        with tf.control_dependencies([update]):  # the next pass reads what this one wrote
            return i + 1, loss - tf.reduce_sum(weights_i * tf.math.log(tf.maximum(right, 1e-30)))

    _, loss = tf.while_loop(lambda i, _: i < tf.shape(ids)[0], body, [tf.constant(0), tf.constant(0.0)],
                            parallel_iterations=1, name="context_updates")
    return loss.op, loss / tf.maximum(pairs, 1.0)


def _in_place_op(model):
    """The op updating the tables in place (`context_op.load`), or None: not built, a table in
    parts (the op works on one buffer a table), or the compiled kernel off (`kernels.compiled`
    None: one switch for all the compiled context code)."""
    if kernels.compiled is None or len(table_parts(model.encoder.embedding_table)) > 1 \
            or len(table_parts(model.context_table)) > 1:
        return None
    return context_op.load()[0]


def _context_in_place(op_module, model, context_lr, negatives: int, threads: Optional[int] = None):
    """The same updates as `_context_loop`, by the compiled kernel inside one TensorFlow op on
    the tables' own memory (auxpretrain/pretraining/context_op.cc): no gather, no scatter, no
    Python in the step; deterministic. -> (update op, loss per pair)."""
    inputs = model.inputs
    loss, pairs = op_module.auxpretrain_context_passes(
        model.encoder.embedding_table.handle, model.context_table.handle, inputs["ctx_ids"], inputs["ctx_reach"],
        inputs["ctx_negatives"], tf.cast(-context_lr * model.context_weight, tf.float32), negatives=negatives,
        threads=threads or kernels.default_threads(), name="context_passes")
    return loss.op, loss / tf.maximum(pairs, 1.0)


def _context_kernel(model, context_lr, negatives: int, exclusive: bool, threads: Optional[int] = None):
    """The same updates as `_context_loop`, by the compiled kernel (`kernels.sgd_passes`): the
    rows the step touches are gathered once, updated pass after pass in one call, and written
    back once. `exclusive`: nothing else writes the tables meanwhile, so the rows are
    overwritten (a copy, the cheapest write); else (workers sharing tables on parameter
    servers) their changes are added. Each row is written once and the kernel adds its deltas
    in a fixed order: the result is deterministic. -> (update op, loss per pair)."""
    inputs = model.inputs
    ids, reach, noise = (inputs[name] for name in ("ctx_ids", "ctx_reach", "ctx_negatives"))
    embedding, output = model.encoder.embedding_table, model.context_table
    vocab_size = sum(int(part.shape[0]) for part in table_parts(embedding))
    in_rows, in_index, out_rows, out_index = tf.numpy_function(
        lambda ids, noise: kernels.block_indices(ids, noise, vocab_size), [ids, noise], [tf.int32] * 4,
        stateful=False, name="context_rows")
    in_rows.set_shape([None])
    out_rows.set_shape([None])
    in_block = tf.nn.embedding_lookup(embedding, in_rows)
    out_block = tf.nn.embedding_lookup(output, out_rows)
    scale = tf.cast(-context_lr * model.context_weight, tf.float32)
    threads = threads or kernels.default_threads()
    scratch = kernels.Scratch()

    def run(in_block, out_block, ids, reach, in_index, out_index, scale):
        return kernels.sgd_passes(in_block, out_block, ids, reach, in_index, out_index, scale, negatives,
                                  threads, deltas=not exclusive, scratch=scratch)

    new_in, new_out, loss, pairs = tf.numpy_function(
        run, [in_block, out_block, ids, reach, in_index, out_index, scale],
        [tf.float32, tf.float32, tf.float32, tf.float32], stateful=True, name="context_kernel")
    new_in.set_shape(in_block.shape)
    new_out.set_shape(out_block.shape)
    writes = [(embedding, in_rows, new_in), (output, out_rows, new_out)]
    if exclusive:  # the PAD row (id 0) is written back as it was read
        update = _write_rows(writes, "scatter_update")
    else:  # the PAD row is never written
        update = _write_rows([(table, tf.boolean_mask(rows, rows > 0), tf.boolean_mask(delta, rows > 0))
                              for table, rows, delta in writes])
    return update, loss / tf.maximum(pairs, 1.0)


def _write_rows(updates, method: str = "scatter_add", deterministic: bool = False):
    """One op writing each (table, row ids, values) of `updates` to its rows with the
    variable's `method`: "scatter_add" adds the values (duplicate ids add up, in a fixed order
    when `deterministic`), "scatter_update" sets them (ids distinct); a partitioned table gets
    one scatter per part (rows split as its parts hold them)."""
    ops = []
    for table, ids, deltas in updates:
        if deterministic:  # one delta a row: TensorFlow's scatter adds repeated rows in no fixed order
            ids, where = tf.unique(ids)
            deltas = tf.math.unsorted_segment_sum(deltas, where, tf.shape(ids)[0])
        parts = table_parts(table)
        if len(parts) == 1:
            ops.append(getattr(parts[0], method)(tf.IndexedSlices(deltas, ids)))
            continue
        sizes = [int(part.shape[0]) for part in parts]
        bounds = tf.constant(np.cumsum(sizes)[:-1], tf.int32)
        which = tf.searchsorted(bounds, ids, side="right")
        local = ids - tf.gather(tf.constant(np.concatenate([[0], np.cumsum(sizes)[:-1]]), tf.int32), which)
        for part, part_ids, part_deltas in zip(parts, tf.dynamic_partition(local, which, len(parts)),
                                               tf.dynamic_partition(deltas, which, len(parts))):
            ops.append(getattr(part, method)(tf.IndexedSlices(part_deltas, part_ids)))
    return tf.group(*ops)


def table_parts(variable) -> list:
    """[variable], or the parts of a PartitionedVariable (a sharded table)."""
    return [variable] if isinstance(variable, tf.Variable) else list(variable)

TrainGraph = collections.namedtuple(
    "TrainGraph", ["global_step", "iterator", "start_step", "inputs", "model", "learning_rate",
                   "train_op", "total_loss", "summary_op"])

def build_train_graph(maker: BatchMaker, model_config: ModelConfig, config: PretrainConfig,
                       total_steps: int, partitioner=None, stream_end: Optional[int] = None,
                       shared_tables: bool = False) -> TrainGraph:
    """Builds in the current graph: the global step; an iterator over the batches of
    `maker.stream(start, stream_end or total_steps)` (feed `start_step` when running
    `iterator.initializer`); `inputs` (name -> tensor, feedable with held-out batches); the
    model, its two [vocab, dim] tables split by `partitioner` if given; the learning-rate
    schedule (over `total_steps`), train op, summaries. `shared_tables`: other workers train
    the same tables at the same time (`build_train_op`)."""
    global_step = tf1.train.get_or_create_global_step()
    start_step = tf1.placeholder_with_default(tf.constant(0, tf.int64), [], name="start_step")
    dataset = tf.data.Dataset.from_generator(
        lambda start: maker.stream(int(start), stream_end or total_steps),
        output_signature=tuple(tf.TensorSpec(shape, dtype) for dtype, shape in INPUT_SPECS.values()),
        args=(start_step,))
    dataset = dataset.prefetch(4)
    iterator = tf1.data.make_initializable_iterator(dataset)
    next_batch = iterator.get_next()
    # placeholder_with_default lets evaluation feed held-out batches through the same graph
    inputs = {name: tf1.placeholder_with_default(t, spec[1], name=f"feed_{name}")
              for (name, spec), t in zip(INPUT_SPECS.items(), next_batch)}
    model = build_pretrain_model(inputs, model_config, config.objectives,
                                 config.embedding_from_context_only, seed=config.seed,
                                 partitioner=partitioner, negatives=config.negatives)
    step_f = tf.cast(global_step, tf.float32)
    warm = float(max(config.warmup_steps, 1))
    lr = config.learning_rate * tf.minimum(
        (step_f + 1.0) / warm,
        tf.maximum(0.0, (total_steps - step_f) / max(total_steps - warm, 1.0)))
    decay = tf.maximum(1e-4, 1.0 - step_f / float(total_steps))
    train_op, context_loss = build_train_op(model, lr, config.context_learning_rate * decay, config.clip_norm,
                                            global_step, config.negatives, config.deterministic, shared_tables)
    # the training losses: the context loss as the train op computed it (not once more)
    losses = dict(model.losses, **({"context": context_loss} if context_loss is not None else {}))
    total_loss = tf.add_n([config.objectives[k] * v for k, v in sorted(losses.items())])
    summaries = [tf1.summary.scalar("loss/total", total_loss), tf1.summary.scalar("learning_rate", lr)]
    summaries += [tf1.summary.scalar(f"loss/{k}", v) for k, v in losses.items()]
    return TrainGraph(global_step, iterator, start_step, inputs, model, lr, train_op, total_loss,
                      tf1.summary.merge(summaries))


# glibc's mallopt parameters
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
# freed blocks up to this size stay in the process for reuse (the batch producer's arrays)
KEPT_BLOCK_BYTES = 4 << 20


def start_batches(session, built: TrainGraph, start_step: int) -> None:
    """Starts `built`'s batch iterator at `start_step`, then lets glibc's malloc reuse freed
    blocks of up to KEPT_BLOCK_BYTES again. TensorFlow's generator dataset sets glibc's mmap
    threshold to 128 KiB when its op is built (against memory growth with Python 3.11), so
    every array of 128 KiB or more that the batch producer makes is a new mapping, page-faulted
    in and unmapped again: 40% of the producer's time, on the cores the train step needs. A
    threshold of a few MiB keeps those blocks (the held-out memory stays bounded: the producer
    makes arrays of the same sizes batch after batch). Nothing changes off glibc."""
    session.run(built.iterator.initializer, {built.start_step: start_step})
    if sys.platform.startswith("linux"):
        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):  # not glibc
            return
        mallopt(M_MMAP_THRESHOLD, KEPT_BLOCK_BYTES)
        mallopt(M_TRIM_THRESHOLD, 8 * KEPT_BLOCK_BYTES)
