"""Whether pretraining steps are reproducible, and what that costs, measured paired and interleaved.

The context objective's compiled kernel (`pretraining.kernels`, the usual case) adds each
row's updates in a fixed order: runs are bit-identical, the flag changes nothing. Its
TensorFlow fallback (no C compiler at install, or AUXPRETRAIN_PURE_PYTHON=1) does not: its
sparse SGD updates repeat rows (frequent words), TensorFlow's CPU scatter adds a repeated
row's updates in a varying order, so two runs of the same command drift apart from the first
step; `--deterministic` (`PretrainConfig.deterministic`, `pretraining.graph._write_rows`)
sums a row's updates first (each row is then written once). This measures the fallback: it
times training steps of two graphs of the same configuration (the defaults of
`PretrainConfig` and `ModelConfig` unless told), repeated rows summed (deterministic) and not
(the default), in sessions that alternate in one process, so that the load of a shared
machine falls on both alike: each block runs 3 warm-up steps, then `--steps` timed steps (wall
time, and the process's CPU time, all threads: less sensitive to other processes on the
machine); and it checks whether every session of a graph ends with the same bytes.

Usage: python -m benchmarks.determinism [--corpus data/wiki.txt] [--chars 1500000] [--steps 30]
       [--rounds 6]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import statistics
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

MODES = ("summed", "unsummed")


@contextlib.contextmanager
def without_kernel():
    """Train graphs built meanwhile use the context objective's TensorFlow fallback."""
    from auxpretrain.pretraining import kernels

    saved = kernels.compiled
    kernels.compiled = None
    try:
        yield
    finally:
        kernels.compiled = saved


def measure(corpus: str, steps: int, rounds: int, config=None, model: Optional[dict] = None,
            corpus_config=None) -> Dict[str, object]:
    """-> {"summed": [wall s/step of each block], "unsummed": [...], "cpu": {mode: [CPU s/step]},
    "ratio" / "cpu_ratio": median summed / median unsummed, "same_bytes": {mode: every session
    of that graph ended the same, "spread": {mode: largest difference of a table's value between
    sessions}}."""
    import dataclasses

    import tensorflow as tf

    from auxpretrain.config import CorpusConfig, CorruptionConfig, PretrainConfig
    from auxpretrain.pretraining.batches import BatchMaker
    from auxpretrain.pretraining.graph import build_train_graph
    from auxpretrain.pretraining.run import prepare_run

    tf1 = tf.compat.v1
    config = config or PretrainConfig(max_steps=10 ** 6)
    corruption = CorruptionConfig()
    _, data, model_config = prepare_run([corpus], None, model or {}, config, corruption,
                                        corpus_config=corpus_config or CorpusConfig(), init_embeddings=None,
                                        log=lambda line: None)
    maker = BatchMaker(data.train, data.vocab, model_config, config, corruption)
    graphs = {}
    for mode in MODES:
        graph = tf.Graph()
        with graph.as_default(), without_kernel():
            tf1.set_random_seed(config.seed)
            built = build_train_graph(maker, model_config, dataclasses.replace(config, deterministic=mode == "summed"),
                                      10 ** 6)
            tables = [v for v in tf1.global_variables() if "table" in v.name]
            graphs[mode] = (graph, built, tf1.global_variables_initializer(), tables)
    times: Dict[str, List[float]] = {mode: [] for mode in MODES}
    cpu: Dict[str, List[float]] = {mode: [] for mode in MODES}
    digests: Dict[str, set] = {mode: set() for mode in MODES}
    first: Dict[str, list] = {}
    spread = {mode: 0.0 for mode in MODES}  # largest difference from the first session's tables
    for r in range(rounds):
        for mode in MODES if r % 2 == 0 else MODES[::-1]:
            graph, built, init, tables = graphs[mode]
            with tf1.Session(graph=graph) as sess:
                sess.run(init)
                sess.run(built.iterator.initializer, {built.start_step: 0})
                for _ in range(3):
                    sess.run(built.train_op)
                start, start_cpu = time.perf_counter(), time.process_time()
                for _ in range(steps):
                    sess.run(built.train_op)
                times[mode].append((time.perf_counter() - start) / steps)
                cpu[mode].append((time.process_time() - start_cpu) / steps)
                values = sess.run(tables)
                digests[mode].add(hashlib.sha256(b"".join(np.ascontiguousarray(x).tobytes()
                                                          for x in values)).hexdigest())
                first.setdefault(mode, values)
                spread[mode] = max([spread[mode]] + [float(np.abs(a - b).max()) for a, b in zip(first[mode], values)])
    return dict(times, cpu=cpu, ratio=statistics.median(times["summed"]) / statistics.median(times["unsummed"]),
                cpu_ratio=statistics.median(cpu["summed"]) / statistics.median(cpu["unsummed"]),
                same_bytes={mode: len(digests[mode]) == 1 for mode in MODES}, spread=spread)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.determinism", description=__doc__.split("\n")[0])
    p.add_argument("--corpus", default="data/wiki.txt", help="text file (default data/wiki.txt)")
    p.add_argument("--chars", type=int, default=1_500_000, help="characters of it used (default 1,500,000)")
    p.add_argument("--steps", type=int, default=30, help="timed steps a block (default 30)")
    p.add_argument("--rounds", type=int, default=6, help="blocks of each graph (default 6)")
    args = p.parse_args(argv)
    with open(args.corpus, "r", encoding="utf-8") as f:
        text = f.read(args.chars)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as sample:
        sample.write(text)
        sample.flush()
        result = measure(sample.name, args.steps, args.rounds)
    for mode in MODES:
        print(f"repeated rows {mode}: median {statistics.median(result[mode]):.4f} s/step wall "
              f"({', '.join(f'{t:.4f}' for t in result[mode])}), {statistics.median(result['cpu'][mode]):.4f} "
              f"s/step CPU; every session the same bytes: {result['same_bytes'][mode]} (largest difference "
              f"{result['spread'][mode]:.1e} after {args.steps + 3} steps)")
    print(f"summed / unsummed: {result['ratio']:.3f} wall, {result['cpu_ratio']:.3f} CPU")


if __name__ == "__main__":
    main()
