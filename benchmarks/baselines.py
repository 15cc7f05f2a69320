"""The baselines a user would pick instead of pretraining: TF-IDF + logistic regression, and
gensim word2vec on the pretraining corpus written as an export (word2vec embedding rows under
randomly initialised convolution layers) for fine_tune to start from."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Dict, Optional

from benchmarks.profiles import WORD2VEC

if TYPE_CHECKING:
    from benchmarks.run import Bench

TFIDF_CS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)  # C values of tfidf_lr, the best on dev is kept


def tfidf_lr(task, n: Optional[int], seed: int) -> Dict[str, Any]:
    """TF-IDF uni+bigrams + logistic regression, C chosen on dev; the same stratified
    subsample as fine_tune(train_size=n) with that seed."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from auxpretrain import stratified_subsample

    train = task.train if n is None else stratified_subsample(task.train, n, seed)
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    x_train = vec.fit_transform(train.texts)
    x_dev, x_test = vec.transform(task.dev.texts), vec.transform(task.test.texts)
    best = None
    for c in TFIDF_CS:
        clf = LogisticRegression(C=c, max_iter=2000, solver="liblinear", random_state=seed)
        clf.fit(x_train, train.labels)
        dev = float((clf.predict(x_dev) == task.dev.labels).mean())
        if best is None or dev > best[0]:
            best = (dev, c, clf)
    dev, c, clf = best
    acc = float((clf.predict(x_test) == task.test.labels).mean())
    return {"accuracy": round(acc, 5), "dev_accuracy": round(dev, 5), "C": c}


def build_word2vec_export(bench: Bench, export, name: str = "word2vec"):
    """gensim skip-gram on the pretraining corpus (same Tokenizer, same Punkt splitting),
    written as an export: embedding rows from word2vec for the export's vocabulary,
    convolution layers randomly initialised (the encoder's own initialisers, seed 0)."""
    import numpy as np

    window, epochs = WORD2VEC[name]
    out_dir = os.path.join(bench.out, name, "export")
    if os.path.exists(os.path.join(out_dir, "manifest.json")):
        from auxpretrain import load_export

        cached = load_export(out_dir)
        info = cached.manifest.get("word2vec", {})
        if info.get("source_vocab_sha256") == export.vocab.sha256 and cached.config == export.config:
            bench.results[name] = info
            return cached
        bench.say(f"{name}: the cached export was built for another vocabulary; rebuilding")

    from gensim.models import Word2Vec

    from auxpretrain import SentenceSplitter, write_export
    from auxpretrain.data.corpus import iter_sentences, iter_texts

    corpus = bench.corpus()
    t0 = time.perf_counter()
    splitter = SentenceSplitter.from_sample(iter_texts(list(corpus)))
    sentences = list(iter_sentences(list(corpus), export.tokenizer, splitter))
    t_tok = time.perf_counter() - t0
    tokens = sum(map(len, sentences))
    dim = export.config.embedding_size
    t0 = time.perf_counter()
    model = Word2Vec(sentences, vector_size=dim, window=window, negative=5, sg=1, min_count=2, sample=1e-4,
                     epochs=epochs, workers=min(2, os.cpu_count() or 1), seed=0)
    t_train = time.perf_counter() - t0
    values = random_encoder_values(export.config, seed=0)
    table = values["embedding/table"]
    found = 0
    for i, token in enumerate(export.vocab.tokens):
        if i > 1 and token in model.wv.key_to_index:
            table[i] = model.wv[token]
            found += 1
    info = {"sentences": len(sentences), "tokens": tokens, "vector_size": dim, "epochs": epochs, "window": window,
            "negative": 5, "min_count": 2, "sample": 1e-4, "tokenize_seconds": round(t_tok, 1),
            "train_seconds": round(t_train, 1), "tokens_per_s": round(epochs * tokens / max(t_train, 1e-9)),
            "rows_from_word2vec": found, "vocab_size": len(export.vocab),
            "mean_row_norm": round(float(np.linalg.norm(table[2:], axis=1).mean()), 3),
            "source_vocab_sha256": export.vocab.sha256}
    bench.say(f"{name}: {len(sentences):,} sentences, {tokens:,} tokens, trained in {t_train:.0f} s "
              f"({info['tokens_per_s']:,} tokens/s); {found:,} of {len(export.vocab):,} export rows from word2vec")
    written = write_export(out_dir, values, export.config, export.vocab, export.tokenizer,
                           {"word2vec": info, "note": "benchmark baseline: word2vec embedding, random convolutions"})
    bench.results[name] = info
    bench.save()
    return written


def random_encoder_values(config, seed: int) -> Dict[str, Any]:
    """The encoder's variables as build_encoder initialises them (name -> ndarray)."""
    import tensorflow as tf

    from auxpretrain import build_encoder, values_from_session

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(seed)
        ids = tf1.placeholder(tf.int32, [None, None])
        build_encoder(ids, config, seed=seed)
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            return values_from_session(sess)
