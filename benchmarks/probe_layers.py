"""How much sentiment signal an export's frozen encoder carries: a linear probe of its pooled layers.

    python -m benchmarks.probe_layers EXPORT [EXPORT ...] [--train-size 1000] [--random-layers]

Each export's encoder (every layer restored; with --random-layers only the embedding, the
convolutions left at their random initialisation, the reference for what training them added)
encodes the sentiment snippets (every token; the export's tokenizer and vocabulary). Two
feature sets: "top", the top layer pooled (the sentence vector a transfer head sees), and
"stack", every layer pooled (the embedding included), side by side. Logistic regression on
standardised features, C picked on the dev split, test accuracy for seeds 0, 1, 2 (1,000
stratified training labels drawn as `auxpretrain transfer --train-size 1000 --seed S` draws
them). Nothing is fine-tuned, so it screens exports in minutes where `transfer` takes longer;
benchmarks.levers runs it on each lever's export. Not a substitute for `auxpretrain transfer`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Dict, List, Sequence

import numpy as np

SEEDS = (0, 1, 2)
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
FEATURE_SETS = ("top", "stack")
BATCH = 512
GRAPH_SEED = 7  # initialises the convolutions of --random-layers


def pooled_layers(export, texts: Sequence[str], random_layers: bool = False) -> List[np.ndarray]:
    """Every layer's pooled output (embedding first), float32 [len(texts), width] each."""
    import tensorflow as tf

    from auxpretrain.model.encoder import build_encoder, pool
    from auxpretrain.transfer.graph_api import encode_texts, restore_pretrained

    tf1 = tf.compat.v1
    config = export.config
    graph = tf.Graph()
    with graph.as_default():
        ids = tf1.placeholder(tf.int32, [None, None])
        enc = build_encoder(ids, config, seed=GRAPH_SEED)
        pooled = [pool(enc.layers[name], enc.mask, config.pooling) for name in config.layer_names()]
        restore = restore_pretrained(export, layers=["embedding"] if random_layers else None).init_fn
        init = tf1.global_variables_initializer()
    x, _ = encode_texts(list(texts), export)
    with tf1.Session(graph=graph) as sess:
        sess.run(init)
        restore(sess)
        parts = [sess.run(pooled, {ids: x[a:a + BATCH]}) for a in range(0, len(x), BATCH)]
    return [np.concatenate([p[i] for p in parts]) for i in range(len(pooled))]


def dev_chosen_accuracy(train, dev, test) -> float:
    """Test accuracy of logistic regression on standardised features, C picked on dev; each
    argument is (features [n, d], labels [n])."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train[0])
    best = None
    for c in C_GRID:
        clf = LogisticRegression(C=c, max_iter=3000).fit(scaler.transform(train[0]), train[1])
        dev_accuracy = clf.score(scaler.transform(dev[0]), dev[1])
        if best is None or dev_accuracy > best[0]:
            best = (dev_accuracy, clf.score(scaler.transform(test[0]), test[1]))
    return float(best[1])


def probe_export(export, train_size: int = 1000, seeds: Sequence[int] = SEEDS,
                 random_layers: bool = False) -> Dict[str, List[float]]:
    """{"top": [test accuracy per seed], "stack": [...]} of an Export (or export directory)."""
    from auxpretrain import load_sentiment, stratified_subsample
    from auxpretrain.export import as_export

    export = as_export(export)
    tasks = [load_sentiment("package", seed=seed) for seed in seeds]
    texts = sorted({t for s in (tasks[0].train, tasks[0].dev, tasks[0].test) for t in s.texts})
    row = {t: i for i, t in enumerate(texts)}  # every seed splits the same snippets differently
    layers = pooled_layers(export, texts, random_layers)
    features = {"top": layers[-1], "stack": np.concatenate(layers, axis=1)}
    out: Dict[str, List[float]] = {name: [] for name in FEATURE_SETS}
    for seed, task in zip(seeds, tasks):
        splits = (stratified_subsample(task.train, train_size, seed), task.dev, task.test)
        index = [np.array([row[t] for t in s.texts]) for s in splits]
        for name in FEATURE_SETS:
            out[name].append(dev_chosen_accuracy(*[(features[name][i], np.asarray(s.labels))
                                                   for i, s in zip(index, splits)]))
    return out


def summary(accuracies: Sequence[float]) -> str:
    """'66.2 ± 0.4 (65.6 / 66.5 / 66.4)': mean ± sample std and each seed's, in %."""
    std = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    return (f"{100 * statistics.mean(accuracies):.1f} ± {100 * std:.1f} ("
            + " / ".join(f"{100 * a:.1f}" for a in accuracies) + ")")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.probe_layers", description=__doc__.split("\n\n")[0])
    parser.add_argument("exports", nargs="+", metavar="EXPORT")
    parser.add_argument("--train-size", type=int, default=1000, help="training labels (default 1000)")
    parser.add_argument("--random-layers", action="store_true",
                        help="restore the embedding only (the convolutions stay randomly initialised)")
    args = parser.parse_args(argv)
    for path in args.exports:
        result = probe_export(path, args.train_size, random_layers=args.random_layers)
        for name in FEATURE_SETS:
            print(f"{path} {name}: {summary(result[name])}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
