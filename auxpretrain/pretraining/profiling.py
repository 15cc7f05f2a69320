"""How fast pretraining runs against the machine: FLOPs per step (TF's profiler on the
subgraph a step executes, plus the context objective's loop, counted from its shapes) and the
fp32 matmul peak measured in the same process, interleaved with a timing of the sentence part
alone (so that both see the same load on a shared machine)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import time
from typing import Dict, Optional

import numpy as np

import tensorflow as tf

from auxpretrain.config import ModelConfig, PretrainConfig
from auxpretrain.data.encoded import EncodedSentences
from auxpretrain.model.objectives import INPUT_SPECS, build_pretrain_model
from auxpretrain.pretraining.graph import build_train_op

tf1 = tf.compat.v1


def _timer(session, fetch, feed=None):
    """A function timing one run of `fetch` (seconds)."""
    def run() -> float:
        t0 = time.perf_counter()
        session.run(fetch, feed)
        return time.perf_counter() - t0
    return run


def _matmul(size: int = 2048):
    """(session, fetch) of a square fp32 matmul, run once."""
    graph = tf.Graph()
    with graph.as_default():
        a = tf1.get_variable("a", [size, size], initializer=tf1.random_normal_initializer(seed=1))
        b = tf1.get_variable("b", [size, size], initializer=tf1.random_normal_initializer(seed=2))
        product = tf.reduce_sum(tf.matmul(a, b))
        init = tf1.global_variables_initializer()
    session = tf1.Session(graph=graph)
    session.run(init)
    session.run(product)
    return session, product


def matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
    """fp32 matmul peak of this machine in GFLOP/s: the best of `repeats` square matmuls in a TF session."""
    session, product = _matmul(size)
    with session:
        best = min(_timer(session, product)() for _ in range(repeats))
    return 2.0 * size ** 3 / best / 1e9


def _step_graph(model_config: ModelConfig, config: PretrainConfig, shapes: Dict[str, list]):
    """(graph, its input placeholders, the train op) of one training step at static `shapes`."""
    graph = tf.Graph()
    with graph.as_default():
        inputs = {name: tf1.placeholder(dtype, shapes[name], name=name)
                  for name, (dtype, _) in INPUT_SPECS.items()}
        model = build_pretrain_model(inputs, model_config, config.objectives,
                                     config.embedding_from_context_only, negatives=config.negatives)
        step = tf1.train.get_or_create_global_step()
        train_op, _ = build_train_op(model, 1e-3, 0.025, config.clip_norm, step, config.negatives,
                                     config.deterministic)
    return graph, inputs, train_op


def _count_flops(graph, train_op) -> Dict[str, float]:
    """Float ops of what `train_op` executes (TF's profiler), all and forward only. The
    profiler does not see inside the context objective's while loop (see `context_flops`)."""
    # only what a step executes: an objective-less encoder branch must not count
    used = tf1.graph_util.extract_sub_graph(graph.as_graph_def(), [train_op.op.name])
    counted = tf.Graph()
    with counted.as_default():
        tf1.import_graph_def(used, name="")
        opts = tf1.profiler.ProfileOptionBuilder.float_operation()
        opts["output"] = "none"
        fwd_opts = dict(opts)
        fwd_opts["hide_name_regexes"] = [".*gradients.*", "train/.*"]
        with contextlib.redirect_stderr(io.StringIO()):  # "N ops no flops stats ...": shape-only ops
            total = tf1.profiler.profile(counted, options=opts).total_float_ops
            forward = tf1.profiler.profile(counted, options=fwd_opts).total_float_ops
    return {"step_flops": float(total), "forward_flops": float(forward)}


def step_shapes(config: PretrainConfig, batch: int, length: int, context_width: int) -> Dict[str, list]:
    """Input shapes of a typical step: `batch` sentences of `length` tokens, and
    `config.context_passes` context passes of `batch` sentences of `context_width` kept words."""
    passes = config.context_passes if "context" in config.objectives else 1
    width = context_width if "context" in config.objectives else 0
    return {"good": [batch, length], "bad": [batch, length], "changed": [batch, length],
            "ctx_ids": [passes, batch, width], "ctx_reach": [passes, batch, width],
            "ctx_negatives": [passes, batch, config.noise_pool]}


def context_flops(model_config: ModelConfig, config: PretrainConfig, batch: int, context_width: int) -> float:
    """The context objective's float ops per step: per pass, three batched products of
    [batch, width, dim] by [batch, width + noise_pool, dim] (scores, then the two tables'
    updates), 2 ops a multiply-add."""
    if "context" not in config.objectives:
        return 0.0
    per_pass = 3 * 2 * batch * context_width * (context_width + config.noise_pool) * model_config.embedding_size
    return float(config.context_passes * per_pass)


def profile_step_flops(model_config: ModelConfig, config: PretrainConfig, batch: int, length: int,
                       context_width: int) -> Dict[str, float]:
    """Float ops of one training step (forward + backward + update) with the static shapes of
    a typical batch: the sentence-level objectives counted by TF's profiler on the subgraph the
    train op runs, the context objective's loop from its shapes (`context_flops`)."""
    sentence_config = _without_context(config)
    out = {"step_flops": 0.0, "forward_flops": 0.0}
    if sentence_config is not None:
        graph, _, train_op = _step_graph(model_config, sentence_config, step_shapes(sentence_config, batch, length, 0))
        out = _count_flops(graph, train_op)
    out["sentence_step_flops"] = out["step_flops"]
    out["context_step_flops"] = context_flops(model_config, config, batch, context_width)
    out["step_flops"] += out["context_step_flops"]
    return out


def _without_context(config: PretrainConfig) -> Optional[PretrainConfig]:
    """The config of the sentence-level objectives alone, or None when there are none."""
    objectives = {k: v for k, v in config.objectives.items() if k != "context"}
    return dataclasses.replace(config, objectives=objectives) if objectives else None


def time_sentence_part(model_config: ModelConfig, config: PretrainConfig, batch: int, length: int,
                       rounds: int = 10) -> Dict[str, float]:
    """The sentence-level objectives alone (the convolutions and the Adam update, no context
    objective) on random sentences of the typical shape, and the matmul peak, timed in turns
    (`rounds` of each, best kept) so that both see the machine's load alike."""
    sentence_config = _without_context(config)
    if sentence_config is None:
        return {}
    shapes = step_shapes(sentence_config, batch, length, 0)
    graph, inputs, train_op = _step_graph(model_config, sentence_config, shapes)
    rng = np.random.default_rng(0)
    feed = {inputs[name]: (rng.integers(2, model_config.vocab_size, shape).astype(np.int32)
                           if INPUT_SPECS[name][0] == tf.int32 else rng.random(shape) < 0.05)
            for name, shape in shapes.items()}
    with graph.as_default():
        init = tf1.global_variables_initializer()
    peak_session, product = _matmul()
    with tf1.Session(graph=graph) as session, peak_session:
        session.run(init)
        session.run(train_op, feed)
        step, peak = _timer(session, train_op, feed), _timer(peak_session, product)
        times = [(step(), peak()) for _ in range(rounds)]
    return {"sentence_step_seconds": min(t for t, _ in times),
            "peak_gflops": 2.0 * 2048 ** 3 / min(p for _, p in times) / 1e9}


def performance(model_config, config, train: EncodedSentences, tokens_per_second: float,
                context_width: float, log):
    """Model FLOP/s of the run (TF's profiler at the mean batch shape, the context loop from its
    shapes) over the matmul peak; and the sentence part's own utilisation, timed alone in this
    process in turns with the peak."""
    try:
        mean_len = float(np.minimum(train.lengths, model_config.max_length).mean())
        # batches are length-bucketed: padded width ~ mean length
        length = max(int(round(mean_len)), 1)
        flops = profile_step_flops(model_config, config, config.batch_size, length,
                                   max(int(round(context_width)), 1))
        sentence = time_sentence_part(model_config, config, config.batch_size, length)
        peak = sentence.get("peak_gflops") or matmul_peak_gflops()
        tokens_per_step = 2 * config.batch_size * mean_len
        model_gflops = flops["step_flops"] * tokens_per_second / tokens_per_step / 1e9
        mfu = model_gflops / peak
        out = {"step_flops": flops["step_flops"], "forward_flops": flops["forward_flops"],
               "context_step_flops": flops["context_step_flops"],
               "model_gflops": round(model_gflops, 2), "peak_gflops": round(peak, 1), "mfu": round(mfu, 4)}
        line = (f"speed: {tokens_per_second:,.0f} tokens/s, model {model_gflops:.1f} GFLOP/s "
                f"(forward+backward), matmul peak {peak:.0f} GFLOP/s, utilisation {mfu:.1%}")
        if sentence:
            gflops = flops["sentence_step_flops"] / sentence["sentence_step_seconds"] / 1e9
            out.update(sentence_step_flops=flops["sentence_step_flops"],
                       sentence_step_seconds=round(sentence["sentence_step_seconds"], 4),
                       sentence_gflops=round(gflops, 2), sentence_mfu=round(gflops / peak, 4))
            line += f"; the sentence part alone {gflops:.1f} GFLOP/s, utilisation {gflops / peak:.1%}"
        log(line)
        return out
    except Exception as e:  # measuring must never lose a finished run
        log(f"speed: could not profile FLOPs ({type(e).__name__}: {e})")
        return {}
