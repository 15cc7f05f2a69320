"""The context objective's train step with the compiled kernel against the TensorFlow loop it
replaced, on the same real batches, in one process.

    python -m benchmarks.context_kernel --corpus data/wiki.txt data/reviews.txt [--batches 40]
        [--rounds 3] [--json OUT.json]

Both graphs train the context objective alone (as `benchmarks.word_vectors` does, with the
defaults of `PretrainConfig`: 20 passes a step) from the same initial tables on the first
`--batches` batches of the corpus, fed as NumPy arrays (no producer thread: the step alone).
Each round times every batch's step once per graph, the graphs in turns (later rounds train on
the same batches again). Prints the median milliseconds a step of each, their ratio, and the
largest difference between the two graphs' tables after the first round (float rounding, and
TensorFlow's approximate sigmoid).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np


def measure(corpus: Sequence[str], batches: int = 40, rounds: int = 3, config=None, model: Optional[dict] = None,
            corpus_config=None) -> Dict[str, Any]:
    """-> {"kernel" / "loop": [median ms a step of each round], "ratio": loop / kernel (medians),
    "max_difference": the largest difference between the two graphs' tables after round 1}."""
    import tensorflow as tf

    from auxpretrain.config import CorpusConfig, CorruptionConfig, PretrainConfig
    from auxpretrain.model.objectives import INPUT_SPECS, build_pretrain_model
    from auxpretrain.pretraining.batches import BatchMaker
    from auxpretrain.pretraining.graph import build_train_op
    from auxpretrain.pretraining.run import prepare_run
    from benchmarks.determinism import without_kernel

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
    for mode in ("kernel", "loop"):
        graph = tf.Graph()
        with graph.as_default():
            tf1.set_random_seed(config.seed)
            inputs = {n: tf1.placeholder(d, s, name=n) for n, (d, s) in INPUT_SPECS.items()}
            model = build_pretrain_model(inputs, model_config, config.objectives, True, seed=config.seed,
                                         negatives=config.negatives)
            step = tf1.train.get_or_create_global_step()
            if mode == "loop":
                with without_kernel():
                    op, _ = build_train_op(model, 1e-3, config.context_learning_rate, config.clip_norm, step,
                                           config.negatives)
            else:
                op, _ = build_train_op(model, 1e-3, config.context_learning_rate, config.clip_norm, step,
                                       config.negatives)
            tables = [model.encoder.embedding_table, model.context_table]
            init = tf1.global_variables_initializer()
        session = tf1.Session(graph=graph)
        session.run(init)
        sessions[mode] = (session, op, inputs, tables)
    # the same start: the kernel graph's initial tables in both
    start = sessions["kernel"][0].run(sessions["kernel"][3])
    loop_session, _, _, loop_tables = sessions["loop"]
    with loop_session.graph.as_default():
        for table, value in zip(loop_tables, start):
            table.load(value, loop_session)
    times: Dict[str, List[float]] = {"kernel": [], "loop": []}
    for r in range(rounds):
        for mode in ("kernel", "loop") if r % 2 == 0 else ("loop", "kernel"):
            session, op, inputs, _ = sessions[mode]
            per_step = []
            for feed in feeds:
                t0 = time.perf_counter()
                session.run(op, {inputs[n]: feed[n] for n in INPUT_SPECS})
                per_step.append(time.perf_counter() - t0)
            times[mode].append(1000 * statistics.median(per_step))
        if r == 0:  # each graph has stepped through the batches once
            after = {mode: session.run(tables) for mode, (session, _, _, tables) in sessions.items()}
            difference = max(float(np.abs(a - b).max()) for a, b in zip(after["kernel"], after["loop"]))
    for session, _, _, _ in sessions.values():
        session.close()
    return {"kernel": times["kernel"], "loop": times["loop"],
            "ratio": statistics.median(times["loop"]) / statistics.median(times["kernel"]),
            "max_difference": difference, "batches": len(feeds), "rounds": rounds}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.context_kernel", description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", nargs="+", required=True, help="text files (the demo corpus: data/wiki.txt data/reviews.txt)")
    p.add_argument("--batches", type=int, default=40, help="batches (steps) timed a round")
    p.add_argument("--rounds", type=int, default=3, help="rounds, the graphs in turns")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args(argv)
    from auxpretrain.pretraining import kernels

    if kernels.compiled is None:
        print(f"the compiled kernel is off: {kernels.why_not_compiled}", file=sys.stderr)
        return 1
    result = measure(args.corpus, args.batches, args.rounds)
    print(f"context step, {result['batches']} batches x {result['rounds']} rounds: kernel "
          f"{statistics.median(result['kernel']):.1f} ms, TensorFlow loop {statistics.median(result['loop']):.1f} ms "
          f"(medians): {result['ratio']:.2f}x; after the first round the tables differ by at most "
          f"{result['max_difference']:.2g}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
