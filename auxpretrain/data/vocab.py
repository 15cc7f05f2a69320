"""Vocabulary: build from token lists, encode / decode padded batches, vocab.txt on disk.

Ids: 0 is `<pad>`, 1 is `<unk>`, then the words, most frequent first (ties by token, so a
corpus always gives the same ids). `vocab.txt` holds one token a line in id order; its
sha256 identifies the vocabulary inside an export.

This module must not import TensorFlow.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
from typing import Callable, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from auxpretrain.errors import InputError
from auxpretrain.files import atomic_write_text

PAD_ID = 0
UNK_ID = 1

# Distinct tokens a vocabulary count keeps in memory before pruning its rarest entries. A
# Counter entry costs about 100 bytes in CPython (short str key + table slot), so 2M entries
# bound counting at about 200 MB, below a pretraining run's TensorFlow footprint. It is 40x the
# default --max-vocab (50,000), so pruning touches only tokens far below a capped vocabulary's
# cut; text with fewer than 2M distinct tokens (the demo corpus has 50k) is counted exactly.
DEFAULT_MAX_COUNT_ENTRIES = 2_000_000


class Vocabulary:
    """Token <-> id map with corpus counts.

    tokens: list of str, `tokens[i]` is the token of id i; tokens[0] = PAD, tokens[1] = UNK.
    counts: int64 array [V], corpus count of each token (0 for the specials).
    """

    PAD = "<pad>"
    UNK = "<unk>"
    PAD_ID = PAD_ID
    UNK_ID = UNK_ID
    SPECIALS = (PAD, UNK)

    def __init__(self, tokens: Sequence[str], counts: Optional[Sequence[int]] = None):
        tokens = list(tokens)
        if tokens[:2] != [self.PAD, self.UNK]:
            raise InputError(f"vocabulary must start with {self.PAD!r}, {self.UNK!r}; got {tokens[:2]!r}")
        try:
            joined = "".join(tokens)  # TypeError if a token is not a str
        except TypeError:
            _raise_bad_token(tokens)
        index = {token: i for i, token in enumerate(tokens)}
        if len(index) != len(tokens) or not all(tokens) or "\n" in joined or "\r" in joined:
            _raise_bad_token(tokens)
        if counts is None:
            counts = np.zeros(len(tokens), np.int64)
        counts = np.asarray(counts, dtype=np.int64)
        if counts.shape != (len(tokens),):
            raise InputError(f"vocabulary counts have shape {counts.shape}, expected ({len(tokens)},)")
        if (counts < 0).any():
            raise InputError("vocabulary counts must be >= 0")
        self.tokens: List[str] = tokens
        self.counts: np.ndarray = counts
        self._index = index
        self._token_array = np.array(tokens, dtype=object)

    # ------------------------------------------------------------------ building

    @classmethod
    def build(cls, token_lists: Iterable[List[str]], min_count: int = 2,
              max_size: Optional[int] = None,
              max_count_entries: Optional[int] = DEFAULT_MAX_COUNT_ENTRIES,
              log: Optional[Callable[[str], None]] = None) -> "Vocabulary":
        """Counts the tokens of `token_lists` (one pass, streaming) and keeps those seen at
        least `min_count` times; `max_size` caps the whole vocabulary, specials included.

        Counting memory is bounded by `max_count_entries` distinct tokens (see `count_tokens`);
        below that bound the result is exactly the unbounded count's.
        """
        return cls.build_counted(token_lists, min_count, max_size, max_count_entries, log)[0]

    @classmethod
    def build_counted(cls, token_lists: Iterable[List[str]], min_count: int = 2,
                      max_size: Optional[int] = None,
                      max_count_entries: Optional[int] = DEFAULT_MAX_COUNT_ENTRIES,
                      log: Optional[Callable[[str], None]] = None):
        """`build`, returning (Vocabulary, CountReport)."""
        counter, report = count_tokens(token_lists, max_count_entries, log)
        vocab = cls.from_counts(counter, min_count=min_count, max_size=max_size)
        del counter
        # fresh copies of the kept words: CPython returns an arena of small objects to the
        # system only when none of its objects is alive, and a few thousand survivors scattered
        # over a counter of millions of words would keep most of its memory (~130 MB measured
        # after a 2M-entry count) for the rest of the run
        return cls([t.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")
                    for t in vocab.tokens], vocab.counts), report

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], min_count: int = 2,
                    max_size: Optional[int] = None) -> "Vocabulary":
        """Vocabulary of the tokens in `counts` (token -> count), most frequent first."""
        words = list(counts)
        return cls.from_arrays(words, np.fromiter(counts.values(), np.int64, len(words)), min_count, max_size)

    @classmethod
    def from_arrays(cls, words: Sequence[str], counts, min_count: int = 2,
                    max_size: Optional[int] = None) -> "Vocabulary":
        """Like `from_counts`, from a list of distinct words and their int counts [len(words)]."""
        if min_count < 1:
            raise InputError(f"min_count must be >= 1, got {min_count}")
        if max_size is not None and max_size < 2:
            raise InputError(f"max_size must be >= 2 (the two special tokens), got {max_size}")
        counts = np.asarray(counts, dtype=np.int64)
        keep = np.flatnonzero(counts >= min_count)
        kept = [words[i] for i in keep.tolist()]
        if cls.PAD in kept or cls.UNK in kept:
            special = np.array([w in cls.SPECIALS for w in kept])
            keep, kept = keep[~special], [w for w in kept if w not in cls.SPECIALS]
        order = np.zeros(0, np.int64)
        if kept:  # most frequent first, ties by token (code point order, as Python sorts str)
            order = np.lexsort((np.array(kept, dtype=str), -counts[keep]))
        if max_size is not None:
            order = order[: max_size - 2]
        tokens = [cls.PAD, cls.UNK] + [kept[i] for i in order.tolist()]
        return cls(tokens, np.concatenate([[0, 0], counts[keep[order]]]).astype(np.int64))

    # ------------------------------------------------------------------ lookups

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._index

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, sha256={self.sha256[:12]}...)"

    def id_of(self, token: str) -> int:
        """Id of `token`; UNK_ID if it is not in the vocabulary."""
        return self._index.get(token, UNK_ID)

    def ids_of(self, tokens: Iterable[str]) -> np.ndarray:
        """int32 ids of `tokens` (UNK_ID for unknown ones)."""
        tokens = list(tokens)
        return np.fromiter(map(self._index.get, tokens, itertools.repeat(UNK_ID)),
                           dtype=np.int32, count=len(tokens))

    # ------------------------------------------------------------------ batches

    def encode_batch(self, token_lists: Sequence[Sequence[str]], max_length: Optional[int] = None,
                     pad_to_max_length: bool = False) -> Tuple[np.ndarray, np.ndarray]:
        """Encodes a batch of token lists.

        Returns (ids, lengths): ids int32 [B, T], 0-padded, where T is the longest kept
        length (at least 1), or `max_length` if `pad_to_max_length`; lengths int32 [B].
        Lists longer than `max_length` are truncated.
        """
        lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
        flat = self.ids_of(itertools.chain.from_iterable(token_lists))
        if max_length is not None:
            if max_length < 1:
                raise InputError(f"max_length must be >= 1, got {max_length}")
            kept = np.minimum(lengths, max_length)
        else:
            kept = lengths
        width = int(max_length) if (pad_to_max_length and max_length) else max(int(kept.max(initial=0)), 1)
        ids = np.zeros((len(lengths), width), np.int32)
        if flat.size:
            starts = np.cumsum(lengths) - lengths
            rows = np.repeat(np.arange(len(lengths)), lengths)
            cols = np.arange(flat.size) - np.repeat(starts, lengths)
            keep = cols < np.repeat(kept, lengths)
            ids[rows[keep], cols[keep]] = flat[keep]
        return ids, kept.astype(np.int32)

    def decode_batch(self, ids: np.ndarray, lengths: Optional[np.ndarray] = None) -> List[List[str]]:
        """Token lists of an id batch [B, T]; without `lengths`, each row ends after its last
        non-PAD id."""
        ids = np.asarray(ids)
        if ids.ndim != 2:
            raise InputError(f"decode_batch expects ids of shape [B, T], got {ids.shape}")
        if lengths is None:
            nonpad = ids != PAD_ID
            lengths = np.where(nonpad.any(1), ids.shape[1] - np.argmax(nonpad[:, ::-1], axis=1), 0)
        lengths = np.minimum(np.asarray(lengths, dtype=np.int64), ids.shape[1])
        valid = np.arange(ids.shape[1])[None, :] < lengths[:, None]
        flat = self._token_array[ids[valid]].tolist()
        ends = np.cumsum(lengths).tolist()
        starts = [0] + ends[:-1]
        return [flat[s:e] for s, e in zip(starts, ends)]

    # ------------------------------------------------------------------ files

    def to_text(self) -> str:
        """The vocab.txt content: one token a line, in id order."""
        return "\n".join(self.tokens) + "\n"

    @property
    def sha256(self) -> str:
        """Hex sha256 of the vocab.txt bytes (UTF-8)."""
        return hashlib.sha256(self.to_text().encode("utf-8")).hexdigest()

    def save(self, path: str) -> None:
        """Writes vocab.txt (atomically)."""
        atomic_write_text(path, self.to_text())

    def save_counts(self, path: str) -> None:
        """Writes `token<TAB>count` lines in id order (atomically)."""
        lines = "".join(f"{t}\t{c}\n" for t, c in zip(self.tokens, self.counts.tolist()))
        atomic_write_text(path, lines)

    @classmethod
    def load(cls, path: str, counts_path: Optional[str] = None) -> "Vocabulary":
        """Reads vocab.txt (and the counts file written by `save_counts`, if given)."""
        tokens = _read_lines(path)
        counts = None
        if counts_path is not None:
            rows = _read_lines(counts_path)
            if len(rows) != len(tokens):
                raise InputError(f"{counts_path}: {len(rows)} lines but {path} has {len(tokens)} tokens")
            counts = []
            for line_no, (row, token) in enumerate(zip(rows, tokens), 1):
                name, _, value = row.rpartition("\t")
                if name != token or not value.isdigit():
                    raise InputError(f"{counts_path}:{line_no}: expected '{token}<TAB>count', got {row!r}")
                counts.append(int(value))
        try:
            return cls(tokens, counts)
        except InputError as e:
            raise InputError(f"{path}: {e}") from None


@dataclasses.dataclass
class CountReport:
    """What `count_tokens` did."""

    distinct: int = 0  # distinct tokens in the counter at the end
    prunes: int = 0  # times the counter was pruned (0: the count is exact)
    threshold: int = 0  # last pruning threshold: tokens seen <= this often were dropped
    dropped: int = 0  # entries dropped, over all prunings
    peak_entries: int = 0  # most entries the counter held


def count_tokens(token_lists: Iterable[List[str]],
                 max_entries: Optional[int] = DEFAULT_MAX_COUNT_ENTRIES,
                 log: Optional[Callable[[str], None]] = None):
    """Token -> count over `token_lists` in bounded memory; returns (Counter, CountReport).

    When the counter holds more than `max_entries` distinct tokens, word2vec's ReduceVocab
    prunes it: entries counted at most `threshold` times are dropped and the threshold rises
    by one, repeated until at most 3/4 of `max_entries` remain (so the O(entries) prunings
    stay rare). While the bound is never hit the count is exact. After pruning, a token that
    survives is undercounted by at most the sum of the thresholds applied (it lost at most
    `threshold` counts each time it was dropped); frequent tokens (the ones a capped vocabulary
    keeps) pass the threshold early and are exact or nearly so; rare ones may be missing.
    `max_entries` None: no bound. `log` hears about each pruning.
    """
    if max_entries is not None and max_entries < 1:
        raise InputError(f"max_count_entries must be >= 1, got {max_entries}")
    counter: collections.Counter = collections.Counter()
    report = CountReport()
    if max_entries is None:
        for tokens in token_lists:
            counter.update(tokens)
    else:
        low = max(max_entries * 3 // 4, 1)
        for tokens in token_lists:
            counter.update(tokens)
            if len(counter) > max_entries:
                before = len(counter)
                report.peak_entries = max(report.peak_entries, before)
                while len(counter) > low:
                    report.threshold += 1
                    t = report.threshold
                    counter = collections.Counter({w: c for w, c in counter.items() if c > t})
                report.prunes += 1
                report.dropped += before - len(counter)
                if log is not None:
                    log(f"vocabulary count: {before:,} distinct tokens > bound {max_entries:,}; dropped "
                        f"those seen <= {report.threshold} times ({before - len(counter):,}), "
                        f"{len(counter):,} left")
    report.distinct = len(counter)
    report.peak_entries = max(report.peak_entries, len(counter))
    return counter, report


def _raise_bad_token(tokens: Sequence) -> None:
    """InputError naming the first empty, non-string, line-breaking or repeated token."""
    seen = {}
    for i, token in enumerate(tokens):
        if not isinstance(token, str) or not token or "\n" in token or "\r" in token:
            raise InputError(f"vocabulary token {i} ({token!r}) is empty or holds a line break")
        if seen.setdefault(token, i) != i:
            raise InputError(f"vocabulary token {token!r} appears twice (ids {seen[token]} and {i})")


def _read_lines(path: str) -> List[str]:
    """Lines of a UTF-8 text file without their line ends; InputError if unreadable."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text ({e.reason})") from None
    if not text:
        raise InputError(f"{path}: empty file")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines
