"""How much sentiment signal an embedding carries, without training the CNN: a linear probe.

    python -m benchmarks.probe_embeddings EXPORT [EXPORT ...]
    python -m benchmarks.probe_embeddings EXPORT --corpus data/wiki.txt data/reviews.txt \
        --gensim window=5,epochs=5 window=15,epochs=20

For each embedding: the mean of a snippet's word vectors (unknown words left out) -> logistic
regression (C picked on the dev split) on 1,000 stratified sentiment labels; test accuracy for
seeds 0, 1, 2 and their mean. An export's `embedding/table` is probed with its own vocabulary;
with --gensim, gensim skip-gram vectors are trained on --corpus (one paragraph a line, the first
EXPORT's tokenizer, min count 2, 128 dimensions unless dim= is given) once per setting and
probed the same way. The probe ranks embeddings as transfer does (README Results, "What we
tried") in seconds instead of minutes; it is not a substitute for `auxpretrain transfer`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Dict, List, Sequence

import numpy as np

SEEDS = (0, 1, 2)
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def parse_setting(text: str) -> Dict[str, float]:
    """'window=15,epochs=20' -> {'window': 15, 'epochs': 20} (ints where integral)."""
    out = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        number = float(value)
        out[key.strip()] = int(number) if number.is_integer() else number
    return out


def splits(tokenizer, train_size: int):
    """[(train, dev, test)] token lists and labels per seed."""
    from auxpretrain import load_sentiment, stratified_subsample

    out = []
    for seed in SEEDS:
        task = load_sentiment("package", seed=seed)
        train = stratified_subsample(task.train, train_size, seed)
        out.append([(tokenizer.tokenize_batch(s.texts), np.asarray(s.labels)) for s in (train, task.dev, task.test)])
    return out


def probe(vector_of: Callable[[str], np.ndarray], dim: int, data) -> List[float]:
    """Test accuracy per seed of logistic regression on mean word vectors."""
    from sklearn.linear_model import LogisticRegression

    accuracies = []
    for seed_splits in data:
        features = []
        for tokens, labels in seed_splits:
            x = np.zeros((len(tokens), dim), np.float32)
            for i, words in enumerate(tokens):
                vectors = [v for v in map(vector_of, words) if v is not None]
                if vectors:
                    x[i] = np.mean(vectors, axis=0)
            features.append((x, labels))
        best = None
        for c in C_GRID:
            clf = LogisticRegression(C=c, max_iter=3000).fit(*features[0])
            dev = clf.score(*features[1])
            if best is None or dev > best[0]:
                best = (dev, clf.score(*features[2]))
        accuracies.append(best[1])
    return accuracies


def export_vectors(export):
    table = export.values(["embedding/table"])["embedding/table"]
    index = {token: i for i, token in enumerate(export.vocab.tokens) if i > 1}  # not PAD, UNK
    return lambda word: table[index[word]] if word in index else None, table.shape[1]


def gensim_vectors(corpus: Sequence[str], tokenizer, setting: Dict[str, float]):
    from gensim.models import Word2Vec

    sentences = []
    for path in corpus:
        with open(path, "r", encoding="utf-8") as f:
            sentences.extend(t for t in map(tokenizer.tokenize, f) if t)
    kw = dict(vector_size=128, sg=1, min_count=2, negative=5, sample=1e-4, workers=2, seed=0)
    kw.update({"vector_size" if k == "dim" else k: v for k, v in setting.items()})
    wv = Word2Vec(sentences, **kw).wv
    return lambda word: wv[word] if word in wv.key_to_index else None, wv.vector_size


def report(name: str, accuracies: Sequence[float]) -> None:
    cells = " / ".join(f"{100 * a:.1f}" for a in accuracies)
    print(f"{name}: {cells}, mean {100 * float(np.mean(accuracies)):.1f}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.probe_embeddings",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("exports", nargs="+", metavar="EXPORT")
    parser.add_argument("--corpus", nargs="+", default=[], metavar="FILE", help="text for --gensim")
    parser.add_argument("--gensim", nargs="+", default=[], type=parse_setting, metavar="K=V,...",
                        help="gensim Word2Vec settings to train on --corpus and probe")
    parser.add_argument("--train-size", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.gensim and not args.corpus:
        parser.error("--gensim needs --corpus")
    from auxpretrain import load_export

    exports = [load_export(path) for path in args.exports]
    data = splits(exports[0].tokenizer, args.train_size)
    for path, export in zip(args.exports, exports):
        report(path, probe(*export_vectors(export), data))
    for setting in args.gensim:
        name = "gensim " + ",".join(f"{k}={v}" for k, v in setting.items())
        report(name, probe(*gensim_vectors(args.corpus, exports[0].tokenizer, setting), data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
