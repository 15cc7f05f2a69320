"""How fast pretraining runs against the machine: FLOPs per step (TF's profiler on the
subgraph a step executes) and the fp32 matmul peak measured in the same process."""

from __future__ import annotations

import time
from typing import Dict

import numpy as np

import tensorflow as tf

from auxpretrain.config import ModelConfig, PretrainConfig
from auxpretrain.data.encoded import EncodedSentences
from auxpretrain.model.objectives import INPUT_SPECS, build_pretrain_model
from auxpretrain.pretraining.graph import build_train_op

tf1 = tf.compat.v1


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """fp32 matmul peak of this machine in GFLOP/s: the best of `repeats` square matmuls in a TF session."""
    graph = tf.Graph()
    with graph.as_default():
        a = tf1.get_variable("a", [size, size], initializer=tf1.random_normal_initializer(seed=1))
        b = tf1.get_variable("b", [size, size], initializer=tf1.random_normal_initializer(seed=2))
        product = tf.reduce_sum(tf.matmul(a, b))
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(product)
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                sess.run(product)
                best = min(best, time.perf_counter() - t0)
    return 2.0 * size ** 3 / best / 1e9

def profile_step_flops(model_config: ModelConfig, config: PretrainConfig, batch: int, length: int,
                       pairs: int) -> Dict[str, float]:
    """Float ops of one training step (forward + backward + update), counted by TF's profiler
    on the subgraph the train op runs, with static shapes of a typical batch."""
    shapes = {"good": [batch, length], "bad": [batch, length], "changed": [batch, length],
              "center": [pairs], "context": [pairs], "negatives": [pairs, config.negatives],
              "pass_pairs": [1]}  # the passes' updates count as one over all their pairs
    graph = tf.Graph()
    with graph.as_default():
        inputs = {name: tf1.placeholder(dtype, shapes[name], name=name)
                  for name, (dtype, _) in INPUT_SPECS.items()}
        model = build_pretrain_model(inputs, model_config, config.objectives,
                                     config.embedding_from_context_only)
        step = tf1.train.get_or_create_global_step()
        train_op = build_train_op(model, 1e-3, 0.025, config.clip_norm, step)
    # only what a step executes: an objective-less encoder branch must not count
    used = tf1.graph_util.extract_sub_graph(graph.as_graph_def(), [train_op.op.name])
    counted = tf.Graph()
    with counted.as_default():
        tf1.import_graph_def(used, name="")
        opts = tf1.profiler.ProfileOptionBuilder.float_operation()
        opts["output"] = "none"
        total = tf1.profiler.profile(counted, options=opts).total_float_ops
        fwd_opts = dict(opts)
        fwd_opts["hide_name_regexes"] = [".*gradients.*", "train/.*"]
        forward = tf1.profiler.profile(counted, options=fwd_opts).total_float_ops
    return {"step_flops": float(total), "forward_flops": float(forward)}

def performance(model_config, config, train: EncodedSentences, tokens_per_second: float,
                 mean_pairs: float, log):
    """Model FLOP/s from TF's profiler at the mean batch shape, over the measured peak."""
    try:
        mean_len = float(np.minimum(train.lengths, model_config.max_length).mean())
        # batches are length-bucketed: padded width ~ mean length
        length = max(int(round(mean_len)), 1)
        pairs = int(round(mean_pairs))  # context pairs per step, as measured in the run
        flops = profile_step_flops(model_config, config, config.batch_size, length, pairs)
        peak = matmul_peak_gflops()
        tokens_per_step = 2 * config.batch_size * mean_len
        model_gflops = flops["step_flops"] * tokens_per_second / tokens_per_step / 1e9
        mfu = model_gflops / peak
        log(f"speed: {tokens_per_second:,.0f} tokens/s, model {model_gflops:.1f} GFLOP/s "
            f"(TF profiler, forward+backward), matmul peak {peak:.0f} GFLOP/s, utilisation {mfu:.1%}")
        return {"step_flops": flops["step_flops"], "forward_flops": flops["forward_flops"],
                "model_gflops": round(model_gflops, 2), "peak_gflops": round(peak, 1),
                "mfu": round(mfu, 4)}
    except Exception as e:  # measuring must never lose a finished run
        log(f"speed: could not profile FLOPs ({type(e).__name__}: {e})")
        return {}
