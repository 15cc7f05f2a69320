"""Levers for the convolution layers: retrain the layers above a frozen pretrained
embedding on another kind of bad sentence, then measure whether they transfer.

    python -m benchmarks.levers --export EXPORT --corpus data/wiki.txt data/reviews.txt \\
        --lever LEVER --objective sentence|token|both [--steps 1000] [--edits 1] [--skip-top 0] \\
        [--seed 0] [--out DIR] [--no-probe] [--transfer]

Stage 2 of a two-stage pretraining: EXPORT's embedding is restored and frozen, the convolutions
start afresh, and Adam (1e-3, 64 good sentences a step, each with a bad copy) trains them on
`sentence` (good or bad, one logit on the pooled vector), `token` (each position of the bad
copy replaced or not) or `both` (summed). The bad copies (NumPy, vectorised, seeded) by LEVER:
  unigram, swap  the package's Corruptor: --edits unigram^0.75 replacements, or swapped pairs
  neighbours  a word -> one of its --neighbours nearest words in narrow-window word vectors
              (gensim skip-gram, window 2, 64 dimensions): same syntax, other meaning;
              --contrast N keeps the N of them least similar in EXPORT's (wide-window) embedding
  ngram       a word -> a draw from P(w | left, right) over the training sentences (or P(w | left))
  splice      the tail, from a random position on, -> another batch sentence's
  batchword   a word -> a word of another batch sentence
  generator   ELECTRA: --edits positions masked and filled by samples of a small masked-word
              predictor (one convolution, a quarter of the width, over the frozen embedding)
              trained jointly; a copy whose samples all equal the original counts as good
neighbours, ngram, batchword and generator never edit the --skip-top most frequent words (word
counts: the export vocabulary's occurrences in the encoded corpus).

Prints stage 2's loss and pairwise accuracy (the mean of the last 200 steps), writes DIR/export
(verified by load_export) and DIR/levers.json, then the linear probe of the new export's frozen
pooled features (benchmarks.probe_layers: "top" and "stack", 1,000 labels, seeds 0, 1, 2) unless
--no-probe; --transfer also fine-tunes it with `TransferConfig(layers="all", ensemble="none")`
at 1,000 labels, seeds 0, 1, 2. These runs made the lever table of docs/results.md.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import os
import sys
import time
from typing import Callable, Dict, List, Optional

import numpy as np

LEVERS = ("neighbours", "ngram", "splice", "batchword", "generator", "unigram", "swap")
OBJECTIVES = ("sentence", "token", "both")
PAD_ID, MASK_ID = 0, 1  # the generator's masked positions hold UNK's id; it never proposes 0 or 1
LEARNING_RATE = 1e-3
LOG_EVERY = 200
HELDOUT_FRACTION = 0.02  # of the sentences not trained on (as in pretraining), chosen with seed 0
NEIGHBOUR_CANDIDATES = 20_000  # neighbours are drawn among this many most frequent words

# bad int [B, T]; changed bool [B, T]: the bad copy holds another word there (never at padding); ok bool [B]
Corrupted = collections.namedtuple("Corrupted", "bad changed ok")
NgramIndex = collections.namedtuple("NgramIndex", "vocab_size key middle left middle_of_left")


# ---------------------------------------------------------------- corruptions (NumPy, seeded)

def pick_positions(good, lengths, rng, edits: int, eligible: Optional[np.ndarray] = None):
    """`edits` distinct positions a sentence, uniformly among its eligible words (eligible: bool
    [V], None: every word) -> (positions int [B, edits], ok bool [B]: the sentence has that many)."""
    batch, width = good.shape
    allowed = np.arange(width)[None] < lengths[:, None]
    if eligible is not None:
        allowed &= eligible[good]
    score = np.where(allowed, rng.random((batch, width)), -1.0)
    return np.argsort(-score, axis=1)[:, :edits], allowed.sum(1) >= edits


def replace_words(good, lengths, rng, edits, eligible, propose: Callable) -> Corrupted:
    """Picks positions, asks `propose(rows, cols)` for new ids there, writes them into the
    sentences that have enough eligible words (never a PAD id)."""
    pos, ok = pick_positions(good, lengths, rng, edits, eligible)
    rows, cols = np.repeat(np.arange(len(good)), pos.shape[1]), pos.ravel()
    new = np.asarray(propose(rows, cols))
    keep = ok[rows] & (new != PAD_ID)
    bad = good.copy()
    bad[rows[keep], cols[keep]] = new[keep]
    changed = bad != good
    return Corrupted(bad, changed, ok & changed.any(1))


def corrupt_with(corruptor, good, lengths, rng) -> Corrupted:
    """unigram and swap: the package's Corruptor."""
    r = corruptor.corrupt(good, lengths, rng)
    return Corrupted(r.bad, r.changed, r.ok)


def corrupt_batchword(good, lengths, rng, edits=1, eligible=None) -> Corrupted:
    """Each edited word replaced by a word drawn uniformly from another sentence of the batch."""
    batch = len(good)

    def propose(rows, cols):
        partner = (rows + rng.integers(1, batch, rows.size)) % batch
        return good[partner, (rng.random(rows.size) * lengths[partner]).astype(int)]
    return replace_words(good, lengths, rng, edits, eligible, propose)


def corrupt_neighbours(good, lengths, rng, neighbours, edits=1, eligible=None) -> Corrupted:
    """Each edited word replaced by one of its neighbours (int [V, K], `neighbour_table`), uniformly."""
    def propose(rows, cols):
        return neighbours[good[rows, cols], rng.integers(0, neighbours.shape[1], rows.size)]
    return replace_words(good, lengths, rng, edits, eligible, propose)


def corrupt_ngram(good, lengths, rng, index: NgramIndex, edits=1, eligible=None) -> Corrupted:
    """Each edited word replaced by a draw from P(w | left, right) (`ngram_index`): redrawn up to
    3 times when it equals the original; with fewer than 2 candidates, or still the original,
    a draw from P(w | left)."""
    width = good.shape[1]

    def propose(rows, cols):
        orig = good[rows, cols]
        left = np.where(cols > 0, good[rows, np.maximum(cols - 1, 0)], 0).astype(np.int64)
        right = np.where(cols + 1 < lengths[rows], good[rows, np.minimum(cols + 1, width - 1)], 0).astype(np.int64)
        query = left * index.vocab_size + right
        lo, hi = np.searchsorted(index.key, query, "left"), np.searchsorted(index.key, query, "right")
        new = index.middle[np.minimum(lo + (rng.random(rows.size) * (hi - lo)).astype(int), len(index.middle) - 1)]
        redraw = (hi - lo < 2) | (new == orig)
        for _ in range(3):
            idx = np.flatnonzero(redraw & (hi - lo >= 2))
            new[idx] = index.middle[lo[idx] + (rng.random(idx.size) * (hi - lo)[idx]).astype(int)]
            redraw = (hi - lo < 2) | (new == orig)
        idx = np.flatnonzero(redraw)
        blo = np.searchsorted(index.left, left[idx], "left")
        bhi = np.searchsorted(index.left, left[idx], "right")
        new[idx] = index.middle_of_left[np.minimum(blo + (rng.random(idx.size) * (bhi - blo)).astype(int),
                                                   len(index.middle_of_left) - 1)]
        return new
    return replace_words(good, lengths, rng, edits, eligible, propose)


def corrupt_splice(good, lengths, rng) -> Corrupted:
    """From a random position c (1 <= c < the shorter length) on, the sentence is another batch
    sentence's: its own first c words, then the partner's words c.. (the partner's length)."""
    batch, width = good.shape
    partner = (np.arange(batch) + rng.integers(1, batch, batch)) % batch
    shorter = np.minimum(lengths, lengths[partner])
    ok = shorter >= 2
    cut = 1 + (rng.random(batch) * np.maximum(shorter - 1, 1)).astype(int)
    take = ok[:, None] & (np.arange(width)[None] >= cut[:, None])
    bad = np.where(take, good[partner], good)
    changed = (bad != good) & (bad != PAD_ID)
    return Corrupted(bad, changed, ok & changed.any(1))


def corrupt_generator(good, lengths, rng, edits=1, eligible=None) -> Corrupted:
    """The positions the generator fills, as MASK_ID (`build_generator` samples the words)."""
    return replace_words(good, lengths, rng, edits, eligible, lambda rows, cols: np.full(rows.size, MASK_ID))


def ngram_index(ids, offsets, vocab_size: int) -> NgramIndex:
    """The middle words of every (left, right) pair and the next words of every left word in
    sentences (flat ids, offsets [n + 1]), sorted for np.searchsorted; 0 at a sentence's ends."""
    ids = np.asarray(ids, np.int64)
    left, right = np.concatenate([[0], ids[:-1]]), np.concatenate([ids[1:], [0]])
    left[offsets[:-1]] = 0
    right[offsets[1:] - 1] = 0
    key = left * vocab_size + right
    order, by_left = np.argsort(key, kind="stable"), np.argsort(left, kind="stable")
    return NgramIndex(vocab_size, key[order], ids[order], left[by_left], ids[by_left])


def neighbour_table(vectors, k: int = 10, candidates: int = NEIGHBOUR_CANDIDATES, contrast: int = 0,
                    wide=None) -> np.ndarray:
    """int [V, k]: each word's k nearest words by cosine of `vectors` [V, d] among the
    `candidates` most frequent (ids 2.., itself excluded), nearest first; contrast n: of those,
    the n least similar in `wide` [V, d'] (EXPORT's embedding), least similar first."""
    unit = vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-8)
    size, top = len(unit), min(len(unit), candidates)
    out = np.zeros((size, k), np.int64)
    for a in range(0, size, 2000):
        sim = unit[a:a + 2000] @ unit[:top].T
        rows = np.arange(a, a + len(sim))
        sim[np.flatnonzero(rows < top), rows[rows < top]] = -np.inf
        sim[:, :2] = -np.inf
        out[a:a + 2000] = np.argsort(-sim, axis=1)[:, :k]
    if contrast:
        wide = wide / (np.linalg.norm(wide, axis=1, keepdims=True) + 1e-8)
        order = np.argsort(np.einsum("vd,vkd->vk", wide, wide[out]), axis=1)
        out = np.take_along_axis(out, order, axis=1)[:, :contrast]
    return out


def narrow_vectors(sentences, tokens, seed: int, dim: int = 64) -> np.ndarray:
    """float32 [V, dim]: gensim skip-gram (window 2, 5 epochs, one worker: reproducible) on the
    encoded sentences (flat .ids and .offsets), row i the vector of tokens[i] (zero if unseen)."""
    from gensim.models import Word2Vec

    words = np.array(tokens, dtype=object)
    text = [words[sentences.ids[a:b]].tolist() for a, b in zip(sentences.offsets[:-1], sentences.offsets[1:])]
    wv = Word2Vec(text, vector_size=dim, window=2, min_count=1, sg=1, negative=5, epochs=5, workers=1,
                  seed=seed).wv
    rows = np.array([wv.key_to_index.get(t, -1) for t in tokens])
    out = np.zeros((len(tokens), dim), np.float32)
    out[rows >= 0] = wv.vectors[rows[rows >= 0]]
    return out


def make_corruption(args, train, counts, export, log) -> Callable:
    """(good, lengths, rng) -> Corrupted for args.lever."""
    from auxpretrain.config import CorruptionConfig
    from auxpretrain.data.corruption import Corruptor
    from auxpretrain.errors import InputError

    eligible = np.argsort(np.argsort(-counts.astype(np.float64))) >= args.skip_top  # rank 0: the most frequent
    if args.lever in ("unigram", "swap"):
        op = "replace" if args.lever == "unigram" else "swap"
        corruptor = Corruptor(counts, CorruptionConfig(ops={op: 1.0}, edits=args.edits))
        return lambda good, lengths, rng: corrupt_with(corruptor, good, lengths, rng)
    if args.lever == "splice":
        return corrupt_splice
    extra = {}
    if args.lever == "neighbours":
        if args.vectors:
            vectors = np.load(args.vectors)
            if vectors.ndim != 2 or len(vectors) != len(counts):
                raise InputError(f"{args.vectors}: shape {vectors.shape}, expected [{len(counts)}, dim] "
                                 "(a row per word of the export's vocabulary)")
        else:
            vectors = narrow_vectors(train, export.vocab.tokens, args.seed + 1)
            np.save(os.path.join(args.out, "narrow_vectors.npy"), vectors)
            log(f"narrow word vectors: {os.path.join(args.out, 'narrow_vectors.npy')} (--vectors reuses them)")
        wide = export.values(["embedding/table"])["embedding/table"] if args.contrast else None
        extra["neighbours"] = neighbour_table(vectors, args.neighbours, contrast=args.contrast, wide=wide)
    if args.lever == "ngram":
        extra["index"] = ngram_index(train.ids, train.offsets, len(counts))
    corrupt = {"neighbours": corrupt_neighbours, "ngram": corrupt_ngram, "batchword": corrupt_batchword,
               "generator": corrupt_generator}[args.lever]
    return lambda good, lengths, rng: corrupt(good, lengths, rng, edits=args.edits, eligible=eligible, **extra)


# ---------------------------------------------------------------- the stage-2 graph (tf.compat.v1)

Stage2 = collections.namedtuple("Stage2", "graph good bad changed train loss pair_accuracy init restore")


def build_generator(good, masked, config, seed: int):
    """ELECTRA's generator: a masked-word predictor (one convolution, a quarter of the width)
    over the shared `embedding/table` -> (bad ids: the masked positions sampled from it,
    changed float [B, T], its cross-entropy at the masked positions)."""
    import tensorflow as tf

    from auxpretrain.model.encoder import build_layers

    tf1 = tf.compat.v1
    at_mask = tf.cast(tf.equal(masked, MASK_ID), tf.float32) * tf.cast(tf.not_equal(good, MASK_ID), tf.float32)
    small = dataclasses.replace(config, hidden_size=max(config.hidden_size // 4, 16), num_layers=1)
    with tf1.variable_scope("embedding"):  # the encoder's, restored and frozen
        table = tf1.get_variable("table", [config.vocab_size, config.embedding_size], trainable=False)
    mask = tf.cast(tf.not_equal(masked, PAD_ID), tf.float32)
    with tf1.variable_scope("generator"):
        sequence = build_layers(tf.nn.embedding_lookup(table, masked) * mask[:, :, None], mask, small, 0,
                                extra_collections=(), seed=seed + 5)
        out_w = tf1.get_variable("out", [small.hidden_size, config.vocab_size],
                                 initializer=tf1.glorot_uniform_initializer(seed=seed))
        out_b = tf1.get_variable("out_b", [config.vocab_size], initializer=tf1.zeros_initializer())
    logits = tf.tensordot(sequence, out_w, [[2], [0]]) + out_b
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=good, logits=logits)
    loss = tf.reduce_sum(loss * at_mask) / tf.maximum(tf.reduce_sum(at_mask), 1.0)
    never = tf.constant([-1e9, -1e9] + [0.0] * (config.vocab_size - 2))  # PAD and MASK are not proposed
    sampled = tf.random.categorical(tf.reshape(tf.stop_gradient(logits) + never, [-1, config.vocab_size]), 1,
                                    seed=seed)
    bad = tf.where(at_mask > 0, tf.cast(tf.reshape(sampled, tf.shape(good)), tf.int32), good)
    return bad, tf.cast(tf.not_equal(bad, good), tf.float32) * at_mask, loss


def build_stage2(export, lever: str, objective: str, seed: int) -> Stage2:
    """The training graph: the encoder (embedding frozen) on good and bad sentences, the heads
    of `objective`, Adam; `restore` puts EXPORT's embedding in."""
    import tensorflow as tf

    from auxpretrain.model.encoder import build_classifier, build_encoder, build_token_head
    from auxpretrain.transfer.graph_api import restore_pretrained

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(seed)
        good = tf1.placeholder(tf.int32, [None, None], "good")
        bad = tf1.placeholder(tf.int32, [None, None], "bad")
        changed = tf1.placeholder(tf.float32, [None, None], "changed")
        n = tf.shape(good)[0]
        bad_in, changed_in, bad_labels, gen_loss = bad, changed, tf.zeros([n]), []
        if lever == "generator":
            bad_in, changed_in, loss = build_generator(good, bad, export.config, seed)
            bad_labels, gen_loss = 1.0 - tf.reduce_max(changed_in, axis=1), [loss]
        with tf1.variable_scope(tf1.get_variable_scope(), reuse=tf1.AUTO_REUSE):
            enc = build_encoder(tf.concat([good, bad_in], 0), export.config, frozen=["embedding"], seed=seed)
        losses, pair_accuracy = [], None
        if objective in ("sentence", "both"):
            logit = build_classifier(enc.pooled, 1, seed=seed)
            labels = tf.concat([tf.ones([n]), bad_labels], 0)
            losses.append(tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logit)))
            pair_accuracy = tf.reduce_mean(tf.cast(logit[:n] > logit[n:], tf.float32))
        if objective in ("token", "both"):
            token_logits, mask = build_token_head(enc.sequence, seed=seed)[n:], enc.mask[n:]
            token_loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=changed_in, logits=token_logits)
            losses.append(tf.reduce_sum(token_loss * mask) / tf.reduce_sum(mask))
        loss = tf.add_n(losses + gen_loss)
        train = tf1.train.AdamOptimizer(LEARNING_RATE).minimize(loss)
        init = tf1.global_variables_initializer()
        restore = restore_pretrained(export, layers=["embedding"]).init_fn
    return Stage2(graph, good, bad, changed, train, loss, pair_accuracy, init, restore)


def train_stage2(export, train, corrupt, args, log) -> Dict[str, object]:
    """Trains -> {"values": the transferable variables, "train": {loss, pair_accuracy of the last
    LOG_EVERY steps}, "seconds", "steps_trained"}."""
    import tensorflow as tf

    from auxpretrain.transfer.restore import values_from_session

    model = build_stage2(export, args.lever, args.objective, args.seed)
    fetch = [model.loss] + ([model.pair_accuracy] if model.pair_accuracy is not None else [])
    names = ["loss", "pair_accuracy"][:len(fetch)]
    rng, history = np.random.default_rng(args.seed), []
    max_length = export.config.max_length

    with tf.compat.v1.Session(graph=model.graph) as sess:
        sess.run(model.init)
        model.restore(sess)
        t0 = time.perf_counter()
        for step in range(args.steps):
            ids, lengths = train.batch(rng.choice(len(train), args.batch_size, replace=False), max_length)
            c = corrupt(ids, lengths, rng)
            if c.ok.sum() >= 2:  # else the step is skipped
                feed = {model.good: ids[c.ok], model.bad: c.bad[c.ok], model.changed: c.changed[c.ok].astype(np.float32)}
                history.append(sess.run([model.train] + fetch, feed)[1:])
            if (step + 1) % LOG_EVERY == 0 and history:
                mean = np.mean(history[-LOG_EVERY:], 0)
                log(f"step {step + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in zip(names, mean))
                    + f" ({time.perf_counter() - t0:.0f} s)")
        values = values_from_session(sess)
    out = {"values": values, "seconds": round(time.perf_counter() - t0, 1), "steps_trained": len(history)}
    out["train"] = dict(zip(names, map(float, np.mean(history[-LOG_EVERY:], 0)))) if history else {}
    return out


# ---------------------------------------------------------------- the command

def corpus_counts(export, data, train) -> np.ndarray:
    """int64 [V]: the vocabulary's counts if the export has them, else each id's occurrences in
    the encoded corpus (training and held-out sentences; 0 for PAD and UNK, as Vocabulary's)."""
    if export.vocab.counts.any():
        return export.vocab.counts
    counts = sum(np.bincount(s.ids, minlength=len(export.vocab)) for s in (train, data.heldout))
    counts[:2] = 0
    return counts.astype(np.int64)


def transfer_accuracies(export, train_size: int, seeds, log) -> List[float]:
    """Test accuracy per seed of `fine_tune`, every layer restored, no ensemble."""
    from auxpretrain import TransferConfig, fine_tune, load_sentiment

    out = []
    for seed in seeds:
        result = fine_tune(load_sentiment("package", seed=seed), export, train_size=train_size,
                           settings=TransferConfig(layers="all", ensemble="none", seed=seed))
        out.append(float(result.metrics["accuracy"]))
        log(f"transfer seed {seed}: {100 * out[-1]:.1f} (best epoch {result.metrics['best_epoch']})")
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.levers", description=__doc__.split("\n\n")[0])
    arg = p.add_argument
    arg("--export", required=True, help="the export whose embedding is kept (frozen)")
    arg("--corpus", nargs="+", required=True, metavar="FILE", help="the pretraining text")
    arg("--lever", required=True, choices=LEVERS)
    arg("--objective", required=True, choices=OBJECTIVES)
    arg("--steps", type=int, default=1000, help="training steps (default 1000)")
    arg("--batch-size", type=int, default=64, help="good sentences a step (default 64)")
    arg("--edits", type=int, default=1, help="words edited a sentence (default 1)")
    arg("--skip-top", type=int, default=0, help="never edit the N most frequent words (default 0)")
    arg("--neighbours", type=int, default=10, help="neighbours: nearest words kept (default 10)")
    arg("--contrast", type=int, default=0, help="neighbours: of those, the N least similar in EXPORT's embedding")
    arg("--vectors", help="neighbours: a .npy of narrow word vectors [V, d] (default: trained, saved in DIR)")
    arg("--seed", type=int, default=0)
    arg("--out", help="output directory (default runs/levers/LEVER-OBJECTIVE)")
    arg("--cache-dir", help="keep the encoded corpus here for reruns (default: a temporary directory)")
    arg("--no-probe", action="store_true", help="skip the linear probe")
    arg("--transfer", action="store_true", help="also fine-tune (every layer), 1,000 labels, seeds 0, 1, 2")
    arg("--train-size", type=int, default=1000, help="labels for the probe and --transfer (default 1000)")
    args = p.parse_args(argv)
    if args.steps < 1 or args.edits < 1 or args.batch_size < 2 or args.skip_top < 0:
        p.error("--steps and --edits must be >= 1, --batch-size >= 2, --skip-top >= 0")
    if args.contrast and not 0 < args.contrast <= args.neighbours:
        p.error("--contrast must be in 1..--neighbours")
    args.out = args.out or os.path.join("runs", "levers", f"{args.lever}-{args.objective}")
    return args


def main(argv=None) -> int:
    from auxpretrain.errors import AuxPretrainError

    args = parse_args(argv)
    try:
        run(args)
    except AuxPretrainError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def run(args) -> Dict[str, object]:
    from auxpretrain.data.encoded import prepare_corpus
    from auxpretrain.export import load_export, write_export
    from auxpretrain.files import atomic_write_json
    from benchmarks.probe_layers import FEATURE_SETS, SEEDS, probe_export, summary

    log = functools.partial(print, flush=True)
    export = load_export(args.export)
    os.makedirs(args.out, exist_ok=True)
    data = prepare_corpus(args.corpus, export.tokenizer, 1, None, HELDOUT_FRACTION, 1, 0, vocab=export.vocab,
                          log=log, cache_dir=args.cache_dir)
    train = data.train.to_memory()
    counts = corpus_counts(export, data, train)
    corrupt = make_corruption(args, train, counts, export, log)
    setting = {k: v for k, v in vars(args).items() if k not in ("no_probe", "transfer", "cache_dir", "out")}
    log(f"stage 2: {args.lever} + {args.objective}, {args.steps} steps above {args.export}'s frozen embedding")
    stage2 = train_stage2(export, train, corrupt, args, log)
    log(f"stage 2 ({stage2['steps_trained']} steps trained, {stage2['seconds']} s), mean of the last "
        f"{LOG_EVERY}: " + ", ".join(f"{k} {v:.4f}" for k, v in stage2["train"].items()))
    path = os.path.join(args.out, "export")
    write_export(path, stage2.pop("values"), export.config, export.vocab, export.tokenizer,
                 extra={"transfer": {"default_layers": export.config.layer_names()},
                        "lever": dict(setting, stage2_of=os.path.abspath(args.export), train=stage2["train"])})
    new = load_export(path)
    log(f"wrote {path} (verified)")
    result = dict(setting, export=path, stage2=stage2)
    if not args.no_probe:
        result["probe"] = probe_export(new, args.train_size)
        for name in FEATURE_SETS:
            log(f"probe {name} ({args.train_size} labels, seeds {', '.join(map(str, SEEDS))}): "
                f"{summary(result['probe'][name])}")
    if args.transfer:
        result["transfer"] = transfer_accuracies(new, args.train_size, SEEDS, log)
        log(f"transfer, layers all ({args.train_size} labels): {summary(result['transfer'])}")
    atomic_write_json(os.path.join(args.out, "levers.json"), result)
    return result


if __name__ == "__main__":
    sys.exit(main())
