"""The n-gram member of a downstream ensemble: TF-IDF word and character n-grams and a
logistic regression, in numpy (no TensorFlow, no scipy).

Features (the classic strong linear baseline for short texts): word uni+bigrams of the export's
tokenizer, and character 2..5-grams inside each word padded with spaces (scikit-learn's
`char_wb`), each block with sublinear tf (1 + log tf), smoothed idf and its own L2 row norm.
The classifier is multinomial logistic regression with an L2 penalty 1 / (2 C), fitted by
L-BFGS; C is chosen on dev. `NgramModel.save` / `load` write plain files (JSON + .npy without
pickle).

`fuse(neural, ngram, weight)` averages two members' class probabilities; the weight is chosen
on dev by `choose_weight` (transfer.fine_tuning does this when `TransferConfig.ensemble` is
"ngram").
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from auxpretrain.errors import InputError
from auxpretrain.files import atomic_write_json

WORD_NGRAMS = (1, 2)
CHAR_NGRAMS = (2, 5)
CHAR_MIN_DF = 2  # character n-grams seen in fewer training texts are dropped
C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)  # inverse L2 strengths tried on dev
# neural weights tried on dev by choose_weight: a coarse grid that never lets the n-gram member
# outweigh the neural one (finer grids and accuracy as the criterion overfitted the dev split)
WEIGHT_GRID = (1.0, 0.7, 0.5)
NGRAM_JSON, NGRAM_WEIGHTS = "ngram.json", "ngram_weights.npy"


@dataclasses.dataclass
class Sparse:
    """A CSR matrix: row i's columns are indices[indptr[i]:indptr[i+1]] with values data[...]."""

    data: np.ndarray  # float64 [nnz]
    indices: np.ndarray  # int64 [nnz]
    indptr: np.ndarray  # int64 [rows + 1]
    columns: int

    def __post_init__(self):
        self.row_ids = np.repeat(np.arange(self.rows), np.diff(self.indptr))  # the row of each value

    @property
    def rows(self) -> int:
        return len(self.indptr) - 1

    def dot(self, w: np.ndarray) -> np.ndarray:
        """self @ w for w [columns, k] -> [rows, k]."""
        return np.stack([np.bincount(self.row_ids, weights=self.data * w[self.indices, j], minlength=self.rows)
                         for j in range(w.shape[1])], axis=1)

    def tdot(self, g: np.ndarray) -> np.ndarray:
        """self.T @ g for g [rows, k] -> [columns, k]."""
        return np.stack([np.bincount(self.indices, weights=self.data * g[self.row_ids, j], minlength=self.columns)
                         for j in range(g.shape[1])], axis=1)


def _word_grams(tokens: Sequence[str]) -> List[str]:
    grams = list(tokens)
    grams += [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]
    return grams


def _token_char_grams(token: str) -> List[str]:
    """Character n-grams of one token padded with spaces (scikit-learn's char_wb)."""
    padded, (lo, hi) = f" {token} ", CHAR_NGRAMS
    return [padded[i:i + n] for n in range(lo, hi + 1) for i in range(len(padded) - n + 1)]


class _Block:
    """One feature block: an n-gram vocabulary with idf, turning n-gram id lists into L2-normed rows."""

    def __init__(self, index: Dict[str, int], idf: np.ndarray):
        self.index, self.idf = index, idf

    @classmethod
    def fit(cls, gram_sets: List[set], min_df: int) -> "_Block":
        df: Dict[str, int] = {}
        for grams in gram_sets:
            for g in grams:
                df[g] = df.get(g, 0) + 1
        kept = sorted(g for g, n in df.items() if n >= min_df)
        counts = np.array([df[g] for g in kept], np.float64)
        idf = np.log((1.0 + len(gram_sets)) / (1.0 + counts)) + 1.0
        return cls({g: i for i, g in enumerate(kept)}, idf)

    def ids(self, grams: Sequence[str]) -> np.ndarray:
        """int64 column ids of the known grams (repeats kept)."""
        index = self.index
        return np.fromiter((index[g] for g in grams if g in index), np.int64)

    def row(self, ids: np.ndarray):
        """(columns, values) of one text: sublinear tf * idf, L2-normalised."""
        cols, tf = np.unique(ids, return_counts=True)
        values = (1.0 + np.log(tf)) * self.idf[cols]
        norm = math.sqrt(_dot(values, values)) or 1.0
        return cols, values / norm


class NgramFeaturizer:
    """Word and character n-gram TF-IDF features of texts, fitted on training texts."""

    def __init__(self, tokenizer, word: _Block, char: _Block):
        self.tokenizer, self.word, self.char = tokenizer, word, char

    @classmethod
    def fit(cls, texts: Sequence[str], tokenizer) -> "NgramFeaturizer":
        tokens = tokenizer.tokenize_batch(list(texts))
        grams_of: Dict[str, set] = {}
        char_sets = []
        for toks in tokens:
            text_grams: set = set()
            for t in toks:
                if t not in grams_of:
                    grams_of[t] = set(_token_char_grams(t))
                text_grams |= grams_of[t]
            char_sets.append(text_grams)
        return cls(tokenizer, _Block.fit([set(_word_grams(t)) for t in tokens], 1),
                   _Block.fit(char_sets, CHAR_MIN_DF))

    @property
    def columns(self) -> int:
        return len(self.word.index) + len(self.char.index) + 1  # + a bias column

    def transform(self, texts: Sequence[str]) -> Sparse:
        tokens = self.tokenizer.tokenize_batch(list(texts))
        char_ids: Dict[str, np.ndarray] = {}  # each distinct token's character n-gram ids, once
        offset, bias = len(self.word.index), self.columns - 1
        data, indices, indptr = [], [], [0]
        for toks in tokens:
            for t in toks:
                if t not in char_ids:
                    char_ids[t] = self.char.ids(_token_char_grams(t))
            wc, wv = self.word.row(self.word.ids(_word_grams(toks)))
            cc, cv = self.char.row(np.concatenate([char_ids[t] for t in toks]) if toks else np.zeros(0, np.int64))
            indices += [wc, cc + offset, np.array([bias])]
            data += [wv, cv, np.ones(1)]
            indptr.append(indptr[-1] + len(wc) + len(cc) + 1)
        return Sparse(np.concatenate(data), np.concatenate(indices).astype(np.int64),
                      np.asarray(indptr, np.int64), self.columns)


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """a . b of two vectors without BLAS: OpenBLAS's threads spin on a busy machine and made one
    dot of a 300k-vector ~20x slower than this loop (measured on 2 shared cores)."""
    return float(np.einsum("i,i->", a, b))


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(axis=1, keepdims=True)


def fit_logistic(x: Sparse, labels: np.ndarray, num_classes: int, c: float, start: Optional[np.ndarray] = None,
                 iterations: int = 150, tolerance: float = 1e-7) -> np.ndarray:
    """Weights [columns, classes] minimising mean cross-entropy + ||W||^2 / (2 C n) (the bias
    column included, as liblinear does), by L-BFGS (memory 10) with a backtracking line search,
    from `start` (warm start) or zeros; stops when the loss changes by less than `tolerance`."""
    n = x.rows
    y = np.zeros((n, num_classes))
    y[np.arange(n), labels] = 1.0

    def loss_grad(w_flat):
        w = w_flat.reshape(x.columns, num_classes)
        p = _softmax(x.dot(w))
        loss = -np.sum(y * np.log(np.maximum(p, 1e-12))) / n + float(np.sum(w * w)) / (2 * c * n)
        grad = x.tdot(p - y) / n + w / (c * n)
        return loss, grad.ravel()

    w = np.zeros(x.columns * num_classes) if start is None else start.ravel().astype(np.float64)
    loss, grad = loss_grad(w)
    history: List[Tuple[np.ndarray, np.ndarray]] = []
    for _ in range(iterations):
        q = grad.copy()
        alphas = []
        for s, yk in reversed(history):
            a = _dot(s, q) / _dot(yk, s)
            alphas.append(a)
            q -= a * yk
        if history:
            s, yk = history[-1]
            q *= _dot(s, yk) / _dot(yk, yk)
        for (s, yk), a in zip(history, reversed(alphas)):
            q += s * (a - _dot(yk, q) / _dot(yk, s))
        direction = -q
        slope = _dot(grad, direction)
        if slope >= 0:  # not a descent direction: restart from the gradient
            direction, slope, history = -grad, -_dot(grad, grad), []
        step = 1.0
        while True:
            new_w = w + step * direction
            new_loss, new_grad = loss_grad(new_w)
            if new_loss <= loss + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s, yk = new_w - w, new_grad - grad
        if _dot(yk, s) > 1e-12:
            history = (history + [(s, yk)])[-10:]
        converged = abs(loss - new_loss) <= tolerance * max(1.0, abs(loss))
        w, loss, grad = new_w, new_loss, new_grad
        if converged or np.abs(grad).max() < 1e-6:
            break
    return w.reshape(x.columns, num_classes)


class NgramModel:
    """A fitted featurizer + logistic regression: `predict_proba(texts)` -> float [n, classes]."""

    def __init__(self, featurizer: NgramFeaturizer, weights: np.ndarray, c: float):
        self.featurizer, self.weights, self.c = featurizer, weights, c

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self.weights.shape[1]), np.float32)
        return _softmax(self.featurizer.transform(texts).dot(self.weights)).astype(np.float32)

    def save(self, directory: str) -> List[str]:
        """Writes ngram.json (vocabularies, idf, C) and ngram_weights.npy; returns the file names."""
        f = self.featurizer
        atomic_write_json(os.path.join(directory, NGRAM_JSON), {
            "kind": "ngram_logistic_regression", "c": self.c, "word_ngrams": list(WORD_NGRAMS),
            "char_ngrams": list(CHAR_NGRAMS),
            "word": {"grams": list(f.word.index), "idf": f.word.idf.tolist()},
            "char": {"grams": list(f.char.index), "idf": f.char.idf.tolist()}})
        np.save(os.path.join(directory, NGRAM_WEIGHTS), self.weights.astype(np.float32), allow_pickle=False)
        return [NGRAM_JSON, NGRAM_WEIGHTS]

    @classmethod
    def load(cls, directory: str, tokenizer) -> "NgramModel":
        """Reads what `save` wrote (checksums are the caller's: they are listed in model.json)."""
        path = os.path.join(directory, NGRAM_JSON)
        try:
            with open(path, "r", encoding="utf-8") as fh:
                meta = json.load(fh)
            blocks = []
            for name in ("word", "char"):
                grams, idf = list(meta[name]["grams"]), np.asarray(meta[name]["idf"], np.float64)
                if len(grams) != len(idf) or not all(isinstance(g, str) for g in grams):
                    raise ValueError(f"{name}: {len(grams)} n-grams but {len(idf)} idf values")
                blocks.append(_Block({g: i for i, g in enumerate(grams)}, idf))
            weights = np.load(os.path.join(directory, NGRAM_WEIGHTS), allow_pickle=False).astype(np.float64)
            c = float(meta["c"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}: cannot read the n-gram model ({e}); save the model again") from None
        featurizer = NgramFeaturizer(tokenizer, *blocks)
        if weights.ndim != 2 or weights.shape[0] != featurizer.columns:
            raise InputError(f"{path}: weights of shape {list(weights.shape)} do not fit "
                             f"{featurizer.columns} features; save the model again")
        return cls(featurizer, weights, c)


def fit_ngram_model(train_texts: Sequence[str], train_labels: np.ndarray, dev_texts: Sequence[str],
                    dev_labels: np.ndarray, num_classes: int, tokenizer,
                    grid: Sequence[float] = C_GRID) -> Tuple[NgramModel, Dict[float, float]]:
    """The n-gram model whose C (from `grid`) has the best dev accuracy (the smaller C on a tie);
    also returns C -> dev accuracy."""
    featurizer = NgramFeaturizer.fit(train_texts, tokenizer)
    x, x_dev = featurizer.transform(train_texts), featurizer.transform(dev_texts)
    labels, dev_labels = np.asarray(train_labels), np.asarray(dev_labels)
    scores, best, weights = {}, None, None
    for c in sorted(grid):  # each fit starts from the previous (smaller C) solution
        weights = fit_logistic(x, labels, num_classes, c, start=weights)
        acc = float(np.mean(x_dev.dot(weights).argmax(1) == dev_labels))
        scores[c] = round(acc, 5)
        if best is None or acc > best[0]:
            best = (acc, c, weights)
    return NgramModel(featurizer, best[2], best[1]), scores


def fuse(neural: np.ndarray, ngram: np.ndarray, weight: float) -> np.ndarray:
    """weight * neural + (1 - weight) * ngram: class probabilities of the ensemble."""
    return weight * np.asarray(neural) + (1.0 - weight) * np.asarray(ngram)


def choose_weight(neural_dev: np.ndarray, ngram_dev: np.ndarray, dev_labels: np.ndarray) -> Tuple[float, Dict[float, float]]:
    """The neural weight (from WEIGHT_GRID) whose fused probabilities have the lowest dev
    cross-entropy (a proper score: less noisy than dev accuracy); on a tie the larger neural
    weight. Also returns weight -> dev cross-entropy."""
    labels = np.asarray(dev_labels)
    losses = {}
    for w in WEIGHT_GRID:
        p = fuse(neural_dev, ngram_dev, w)[np.arange(len(labels)), labels]
        losses[w] = float(-np.mean(np.log(np.maximum(p, 1e-12))))
    best = min(WEIGHT_GRID, key=lambda w: (round(losses[w], 10), -w))
    return best, {w: round(v, 5) for w, v in losses.items()}
