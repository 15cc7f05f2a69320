"""The context objective's train step three ways, on the same real batches, in one process:
the compiled kernel in a TensorFlow op on the tables' memory (`op`, the default), the same
kernel on rows TensorFlow gathers and scatters back (`kernel`, what a cluster's workers run),
and the TensorFlow loop they replaced (`loop`, the fallback without a C compiler).

    python -m benchmarks.context_kernel --corpus data/wiki.txt data/reviews.txt [--batches 40]
        [--rounds 3] [--json OUT.json]

The graphs train the context objective alone (as `benchmarks.word_vectors` does, with the
defaults of `PretrainConfig`: 20 passes a step) from the same initial tables on the first
`--batches` batches of the corpus, fed as NumPy arrays (no producer thread: the step alone).
Each round times every batch's step once per graph, the graphs in turns (later rounds train on
the same batches again). Prints the median milliseconds a step of each, the loop's over the
others', and the largest difference between the tables after the first round: none between
`op` and `kernel` (the same updates in the same order), float rounding and TensorFlow's
approximate sigmoid against the loop.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np


MODES = ("op", "kernel", "loop")


@contextlib.contextmanager
def _path(mode: str):
    """Train graphs built meanwhile take the context path `mode` (see the module docstring)."""
    from auxpretrain.pretraining import graph as train_graph
    from benchmarks.determinism import without_kernel

    if mode == "loop":
        with without_kernel():
            yield
        return
    saved = train_graph._in_place_op
    if mode == "kernel":
        train_graph._in_place_op = lambda model: None
    try:
        yield
    finally:
        train_graph._in_place_op = saved


def measure(corpus: Sequence[str], batches: int = 40, rounds: int = 3, config=None, model: Optional[dict] = None,
            corpus_config=None) -> Dict[str, Any]:
    """-> {mode: [median ms a step of each round] for MODES, "ratio": loop / op and
    "kernel_ratio": kernel / op (medians), "max_difference": {mode: the largest difference from
    op's tables after round 1}}."""
    import tensorflow as tf

    from auxpretrain.config import CorpusConfig, CorruptionConfig, PretrainConfig
    from auxpretrain.model.objectives import INPUT_SPECS, build_pretrain_model
    from auxpretrain.pretraining.batches import BatchMaker
    from auxpretrain.pretraining.graph import build_train_op
    from auxpretrain.pretraining.run import prepare_run

    tf1 = tf.compat.v1
    config = config or PretrainConfig(objectives={"context": 1.0})
    corruption = CorruptionConfig()
    with tempfile.TemporaryDirectory() as workdir:
        _, data, model_config = prepare_run(list(corpus), workdir, model or {}, config, corruption,
                                            corpus_config=corpus_config or CorpusConfig(), init_embeddings=None,
                                            log=lambda line: None)
        maker = BatchMaker(data.train, data.vocab, model_config, config, corruption)
        feeds = [dict(zip(INPUT_SPECS, b)) for b in maker.stream(0, batches)]
    sessions = {}
    for mode in MODES:
        graph = tf.Graph()
        with graph.as_default():
            tf1.set_random_seed(config.seed)
            inputs = {n: tf1.placeholder(d, s, name=n) for n, (d, s) in INPUT_SPECS.items()}
            model = build_pretrain_model(inputs, model_config, config.objectives, True, seed=config.seed,
                                         negatives=config.negatives)
            step = tf1.train.get_or_create_global_step()
            with _path(mode):
                op, _ = build_train_op(model, 1e-3, config.context_learning_rate, config.clip_norm, step,
                                       config.negatives)
            tables = [model.encoder.embedding_table, model.context_table]
            init = tf1.global_variables_initializer()
        session = tf1.Session(graph=graph)
        session.run(init)
        sessions[mode] = (session, op, inputs, tables)
    # the same start: the first graph's initial tables in all
    start = sessions[MODES[0]][0].run(sessions[MODES[0]][3])
    for mode in MODES[1:]:
        session, _, _, tables = sessions[mode]
        with session.graph.as_default():
            for table, value in zip(tables, start):
                table.load(value, session)
    times: Dict[str, List[float]] = {mode: [] for mode in MODES}
    for r in range(rounds):
        for mode in MODES if r % 2 == 0 else MODES[::-1]:
            session, op, inputs, _ = sessions[mode]
            per_step = []
            for feed in feeds:
                t0 = time.perf_counter()
                session.run(op, {inputs[n]: feed[n] for n in INPUT_SPECS})
                per_step.append(time.perf_counter() - t0)
            times[mode].append(1000 * statistics.median(per_step))
        if r == 0:  # each graph has stepped through the batches once
            after = {mode: session.run(tables) for mode, (session, _, _, tables) in sessions.items()}
            difference = {mode: max(float(np.abs(a - b).max()) for a, b in zip(after[mode], after["op"]))
                          for mode in MODES[1:]}
    for session, _, _, _ in sessions.values():
        session.close()
    median = {mode: statistics.median(times[mode]) for mode in MODES}
    return dict(times, ratio=median["loop"] / median["op"], kernel_ratio=median["kernel"] / median["op"],
                max_difference=difference, batches=len(feeds), rounds=rounds)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.context_kernel", description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", nargs="+", required=True, help="text files (the demo corpus: data/wiki.txt data/reviews.txt)")
    p.add_argument("--batches", type=int, default=40, help="batches (steps) timed a round")
    p.add_argument("--rounds", type=int, default=3, help="rounds, the graphs in turns")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args(argv)
    from auxpretrain.pretraining import context_op, kernels

    if kernels.compiled is None:
        print(f"the compiled kernel is off: {kernels.why_not_compiled}", file=sys.stderr)
        return 1
    if context_op.load()[0] is None:
        print(f"the context op is off: {context_op.load()[1]}", file=sys.stderr)
        return 1
    result = measure(args.corpus, args.batches, args.rounds)
    op, kernel, loop = (statistics.median(result[mode]) for mode in MODES)
    print(f"context step, {result['batches']} batches x {result['rounds']} rounds (medians): op {op:.1f} ms, "
          f"kernel on gathered rows {kernel:.1f} ms ({result['kernel_ratio']:.2f}x the op's), TensorFlow loop "
          f"{loop:.1f} ms ({result['ratio']:.2f}x); after the first round the tables differ from the op's by "
          f"{result['max_difference']['kernel']:.2g} (kernel) and {result['max_difference']['loop']:.2g} (loop)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
