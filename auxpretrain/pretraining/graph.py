"""The pretraining graph: the batch iterator, the model, the learning-rate schedules and the
train op (Adam on the sentence-level objectives, word2vec's SGD on the context pairs)."""

from __future__ import annotations

import collections
from typing import Optional

import tensorflow as tf

from auxpretrain.config import ModelConfig, PretrainConfig
from auxpretrain.model.objectives import INPUT_SPECS, build_pretrain_model, context_pair_loss
from auxpretrain.pretraining.batches import BatchMaker

tf1 = tf.compat.v1


def sum_repeated_rows(grads_and_vars, enabled: bool = True):
    """(gradient, variable) pairs whose IndexedSlices gradients hold each row once, a repeated
    row's slices summed first. TensorFlow's CPU scatter adds a row's repeated updates in a
    varying order, so two runs of the same command, or a resumed run and an
    uninterrupted one, drift apart from the first step (docs/cli.md); summed, each row gets one
    update and the result is the same every time (for about 17% more CPU a step:
    benchmarks.determinism). `enabled=False`: as they come."""
    out = []
    for grad, var in grads_and_vars:
        if enabled and isinstance(grad, tf.IndexedSlices):
            rows, at = tf.unique(grad.indices)
            grad = tf.IndexedSlices(tf.math.unsorted_segment_sum(grad.values, at, tf.shape(rows)[0]), rows,
                                    grad.dense_shape)
        out.append((grad, var))
    return out


def build_train_op(model, lr, context_lr, clip_norm: float, global_step, context_passes: int = 1,
                   unique_rows: bool = False):
    """Adam (clipped) on the non-context objectives; word2vec's SGD on the context pairs, one
    update per context pass (`inputs["pass_pairs"]` splits the pairs), each reading the
    tables the previous one wrote, as word2vec's sequential updates do (one summed update
    over several passes' pairs diverges: frequent words' rows get too many at once).
    `unique_rows`: each pass's repeated rows are summed before the update (`sum_repeated_rows`)."""
    updates = []  # (optimizer, [(gradient, variable)])
    with tf1.name_scope("train"):
        if model.loss.op.type != "Const":
            variables = tf1.trainable_variables()
            grads = tf.gradients(model.loss, variables)
            pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
            clipped, _ = tf.clip_by_global_norm([g for g, _ in pairs], clip_norm)
            updates.append((tf1.train.AdamOptimizer(lr), list(zip(clipped, [v for _, v in pairs]))))
        sgd = None  # the context objective's optimizer, when it is on
        if model.context_weight is not None:
            tables = table_parts(model.encoder.embedding_table) + table_parts(model.context_table)
            sgd = tf1.train.GradientDescentOptimizer(context_lr)
            inputs = model.inputs
            ends = tf.cumsum(inputs["pass_pairs"]) if context_passes > 1 else None

            def context_grads(k):
                """Gradients of pass k's summed pair losses (all pairs when there is one pass)."""
                if context_passes == 1:
                    picked = [inputs["center"], inputs["context"], inputs["negatives"]]
                else:
                    start = ends[k - 1] if k else 0
                    picked = [inputs[n][start:ends[k]] for n in ("center", "context", "negatives")]
                per_pair = context_pair_loss(model.encoder.embedding_table, model.context_table, *picked)
                return sum_repeated_rows(sgd.compute_gradients(model.context_weight * tf.reduce_sum(per_pair),
                                                               var_list=tables), unique_rows)

            updates.append((sgd, context_grads(0)))
        # every gradient is computed before any variable changes: without this the SGD update
        # of embedding/table races the Adam branch's reads of it (runs and resumes not reproducible)
        grads = [g.values if isinstance(g, tf.IndexedSlices) else g
                 for _, gv in updates for g, _ in gv if g is not None]
        ops = []
        with tf.control_dependencies(grads):
            for optimizer, gv in updates:
                with tf.control_dependencies(ops):  # one after the other: both may update the table
                    ops.append(optimizer.apply_gradients(gv))
        if sgd is not None:
            for k in range(1, context_passes):
                with tf.control_dependencies(ops[-1:]):  # pass k reads what pass k-1 wrote
                    gv = context_grads(k)
                ops.append(sgd.apply_gradients(gv))
        with tf.control_dependencies(ops):
            return tf1.assign_add(global_step, 1)

def table_parts(variable) -> list:
    """[variable], or the parts of a PartitionedVariable (a sharded table)."""
    return [variable] if isinstance(variable, tf.Variable) else list(variable)

TrainGraph = collections.namedtuple(
    "TrainGraph", ["global_step", "iterator", "start_step", "inputs", "model", "learning_rate",
                   "train_op", "total_loss", "summary_op"])

def build_train_graph(maker: BatchMaker, model_config: ModelConfig, config: PretrainConfig,
                       total_steps: int, partitioner=None, stream_end: Optional[int] = None) -> TrainGraph:
    """Builds in the current graph: the global step; an iterator over the batches of
    `maker.stream(start, stream_end or total_steps)` (feed `start_step` when running
    `iterator.initializer`); `inputs` (name -> tensor, feedable with held-out batches); the
    model, its two [vocab, dim] tables split by `partitioner` if given; the learning-rate
    schedule (over `total_steps`), train op, summaries. `config.deterministic` sums the repeated
    rows of the sparse updates first (`sum_repeated_rows`)."""
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
                                 partitioner=partitioner)
    step_f = tf.cast(global_step, tf.float32)
    warm = float(max(config.warmup_steps, 1))
    lr = config.learning_rate * tf.minimum(
        (step_f + 1.0) / warm,
        tf.maximum(0.0, (total_steps - step_f) / max(total_steps - warm, 1.0)))
    decay = tf.maximum(1e-4, 1.0 - step_f / float(total_steps))
    train_op = build_train_op(model, lr, config.context_learning_rate * decay, config.clip_norm,
                         global_step, config.context_passes, config.deterministic)
    total_loss = tf.add_n([config.objectives[k] * v for k, v in sorted(model.losses.items())])
    summaries = [tf1.summary.scalar("loss/total", total_loss), tf1.summary.scalar("learning_rate", lr)]
    summaries += [tf1.summary.scalar(f"loss/{k}", v) for k, v in model.losses.items()]
    return TrainGraph(global_step, iterator, start_step, inputs, model, lr, train_op, total_loss,
                      tf1.summary.merge(summaries))
