"""The encoded corpus: sentences as int32 token ids, on disk, reused by a rerun.

`prepare_corpus` streams a corpus (split, tokenize, count, encode) into a cache directory
(`OUT/data` of a pretraining run): ids.bin (little-endian int32, sentence after sentence),
lengths.npy, meta.json (what was encoded, counts, crc32). Training reads its batches from
there (`DiskSentences`, one `pread` a sentence; a file of at most 64 MB is read into memory
once), so memory does not grow with the corpus; the held-out sentences are kept in memory
(`EncodedSentences`).

This module must not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import weakref
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np

from auxpretrain.data.corpus import CorpusStats, iter_sentences, iter_texts, resolve
from auxpretrain.data.text import SentenceSplitter
from auxpretrain.data.vocab import DEFAULT_MAX_COUNT_ENTRIES, UNK_ID, Vocabulary
from auxpretrain.config import CorpusConfig, default_of
from auxpretrain.errors import InputError
from auxpretrain.files import atomic_write_json, is_temporary_of, temporary_name

# Held-out sentences at most, whatever heldout_fraction gives: the held-out batches are built
# once and kept in memory, and every evaluation runs over all of them, so their number must not
# grow with the corpus (10,000 pairs put the standard error of an accuracy near 0.5 points).
MAX_HELDOUT = 10_000

ENCODED_FORMAT = 1  # version of the files prepare_corpus writes to its cache directory

IDS_FILE, LENGTHS_FILE, META_FILE = "ids.bin", "lengths.npy", "meta.json"

_CHUNK = 8192  # sentences encoded (and spooled) per write

_READ_BLOCK = 1 << 22  # bytes read at a time when checking ids.bin

# An ids.bin up to this size is read into memory at its first batch (one read instead of a
# `pread` a sentence: ~2.5 ms a pretraining batch on the demo corpus); larger ones stay on disk.
MAX_IDS_IN_MEMORY = 64 << 20


def _padded_rows(ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """int32 [len(starts), T]: row r is ids[starts[r]:][:lengths[r]], 0-padded (T = the
    longest, at least 1)."""
    width = max(int(lengths.max()) if len(lengths) else 1, 1)
    out = np.zeros((len(lengths), width), dtype=np.int32)
    pos = np.arange(width)
    mask = pos[None, :] < lengths[:, None]
    out[mask] = ids[(starts[:, None] + pos[None, :])[mask]]
    return out


@dataclasses.dataclass
class EncodedSentences:
    """Sentences in memory: one flat int32 id array plus offsets (4 bytes a token). Used for
    small sets (the held-out sentences); the training sentences are `DiskSentences`."""

    ids: np.ndarray  # int32 [total tokens]
    offsets: np.ndarray  # int64 [n + 1]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, index: np.ndarray) -> "EncodedSentences":
        """A copy holding sentences `index` (int [k]), in that order."""
        index = np.asarray(index, dtype=np.int64)
        starts = self.offsets[index]
        lengths = self.offsets[index + 1] - starts
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # position of each kept token in self.ids: its sentence's start + its rank in it
        at = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return EncodedSentences(self.ids[at].astype(np.int32), offsets)

    def batch(self, index: np.ndarray, max_length: int):
        """-> ids int32 [len(index), T] 0-padded (T = longest, capped), lengths int32."""
        index = np.asarray(index, dtype=np.int64)
        starts = self.offsets[index]
        lengths = np.minimum(self.offsets[index + 1] - starts, max_length).astype(np.int32)
        return _padded_rows(self.ids, starts, lengths), lengths

class _IdsFile:
    """An open file of little-endian int32 ids, shared by the DiskSentences views over it;
    closed when the last view is gone."""

    def __init__(self, path: str, tokens: int):
        self.path = path
        self.tokens = tokens  # ids in the file
        self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._close = weakref.finalize(self, os.close, self.fd)
        self._all: Optional[np.ndarray] = None

    def in_memory(self) -> Optional[np.ndarray]:
        """int32 [tokens]: the whole file, read once, if it is at most MAX_IDS_IN_MEMORY bytes;
        else None."""
        if self._all is None and 4 * self.tokens <= MAX_IDS_IN_MEMORY:
            self._all = self.read(0, self.tokens)
        return self._all

    def read(self, start: int, count: int) -> np.ndarray:
        """int32 [count]: the ids at positions start .. start+count-1 (one pread)."""
        data = os.pread(self.fd, 4 * count, 4 * start)
        if len(data) != 4 * count:
            raise InputError(f"{self.path}: shorter than its sentences say (changed while in use?); "
                             "delete it and run again to re-encode the corpus")
        return np.frombuffer(data, dtype="<i4")

class DiskSentences:
    """Sentences whose ids stay on disk, in a flat int32 file (4 bytes a token).

    In memory: each sentence's start (int64, in tokens) and length (int32), 12 bytes a
    sentence. `batch` reads only its rows, one `os.pread` each: nothing is memory-mapped (every
    mapped page an epoch touches would count as resident), so resident memory does not grow
    with the corpus; the page cache keeps a hot file fast. A file of at most
    MAX_IDS_IN_MEMORY bytes is read whole at the first batch instead (the same rows). Same
    interface as EncodedSentences; `subset` is a view over the same file (no id is copied).
    """

    def __init__(self, ids_file: _IdsFile, starts: np.ndarray, lengths: np.ndarray):
        self._file = ids_file
        self.starts = np.asarray(starts, dtype=np.int64)  # int64 [n], first token of each sentence
        self._lengths = np.asarray(lengths, dtype=np.int32)  # int32 [n]
        self.starts.flags.writeable = False
        self._lengths.flags.writeable = False

    def __len__(self) -> int:
        return len(self._lengths)

    @property
    def lengths(self) -> np.ndarray:
        """int32 [n] tokens of each sentence (read-only)."""
        return self._lengths

    @property
    def path(self) -> str:
        return self._file.path

    def subset(self, index: np.ndarray) -> "DiskSentences":
        """A view of sentences `index` (int [k]), in that order, over the same file."""
        index = np.asarray(index, dtype=np.int64)
        return DiskSentences(self._file, self.starts[index], self._lengths[index])

    def batch(self, index: np.ndarray, max_length: int):
        """-> ids int32 [len(index), T] 0-padded (T = longest, capped), lengths int32."""
        index = np.asarray(index, dtype=np.int64)
        lengths = np.minimum(self._lengths[index], max_length).astype(np.int32)
        ids = self._file.in_memory()
        if ids is not None:
            return _padded_rows(ids, self.starts[index], lengths), lengths
        out = np.zeros((len(index), max(int(lengths.max()) if len(index) else 1, 1)), dtype=np.int32)
        read = self._file.read
        for row, (start, n) in enumerate(zip(self.starts[index].tolist(), lengths.tolist())):
            out[row, :n] = read(start, n)
        return out, lengths

    def to_memory(self) -> EncodedSentences:
        """The same sentences as EncodedSentences (reads them all: for small sets)."""
        offsets = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(self._lengths, out=offsets[1:])
        ids = np.zeros(int(offsets[-1]), dtype=np.int32)
        for i, (start, n) in enumerate(zip(self.starts.tolist(), self._lengths.tolist())):
            ids[offsets[i]:offsets[i + 1]] = self._file.read(start, n)
        return EncodedSentences(ids, offsets)

@dataclasses.dataclass
class PreparedCorpus:
    vocab: Any
    tokenizer: Any
    train: Any  # DiskSentences
    heldout: EncodedSentences
    stats: Dict[str, Any]

def prepare_corpus(specs: Sequence[str], tokenizer, min_count: int, max_vocab: Optional[int],
                   heldout_fraction: float, min_heldout: int, seed: int, text_column=None,
                   vocab=None, log: Callable[[str], None] = print, cache_dir: Optional[str] = None,
                   max_heldout: int = MAX_HELDOUT,
                   max_count_entries: Optional[int] = DEFAULT_MAX_COUNT_ENTRIES,
                   split_sample_chars: int = default_of(CorpusConfig, "split_sample_chars"),
                   train_splitter: bool = False) -> PreparedCorpus:
    """Streams the corpus into a file of int32 ids; memory does not grow with the corpus.

    Pass 1 (skipped when `vocab` is given) splits, tokenizes and counts the words, the count
    bounded by `max_count_entries` distinct tokens (None: unbounded; see `vocab.count_tokens`:
    exact below the bound), and spools the token lists to an anonymous temporary file. Pass 2
    encodes them (from the spool; without one, by reading the corpus again) chunk by chunk into
    `cache_dir`: ids.bin (little-endian int32, sentence after sentence), lengths.npy (int32 per
    sentence), meta.json (what was encoded, counts, crc32), each written atomically, meta.json
    last. When `cache_dir` already holds files encoded from the same corpus files (path, size,
    mtime), tokenizer and vocabulary, they are reused: with `vocab` given (a resumed run) the
    corpus is not read at all. Files that do not match, or fail the size/crc32 check, are
    encoded again. `cache_dir` None: a temporary directory, removed before returning (the open
    ids file lives as long as the returned sentences).

    Sentences are split with the shipped English Punkt parameters when the text looks
    English, else (or with `train_splitter`) with Punkt trained on its first `split_sample_chars`
    characters (`SentenceSplitter.from_sample`).

    Held out: round(n * heldout_fraction) sentences, at most max(max_heldout, min_heldout),
    chosen by `seed`, kept in memory (EncodedSentences). The training sentences are a
    DiskSentences view (12 bytes a sentence in memory).
    """
    import tempfile

    t0 = time.time()
    specs = list(specs)
    fingerprint = _corpus_fingerprint(resolve(specs))  # InputError now for a missing file

    def empty_vocab_error():
        return InputError(f"{specs[0]}: the vocabulary is empty after --min-count {min_count}; "
                          "use more text or a lower --min-count")

    def key(vocab) -> Dict[str, Any]:
        to_dict = getattr(tokenizer, "to_dict", None)
        return {"format": ENCODED_FORMAT, "corpus": specs, "text_column": text_column,
                "files": fingerprint, "tokenizer": to_dict() if to_dict else repr(tokenizer),
                "vocab_sha256": vocab.sha256}

    if vocab is not None and len(vocab) <= 2:
        raise empty_vocab_error()
    temporary = tempfile.TemporaryDirectory(prefix="auxpretrain-ids-") if cache_dir is None else None
    directory = temporary.name if temporary is not None else cache_dir
    spool = None
    try:
        os.makedirs(directory, exist_ok=True)
        encoded = _load_encoded(directory, key(vocab), log) if vocab is not None and temporary is None \
            else None
        reused = encoded is not None
        if encoded is None:
            stats = CorpusStats()
            splitter = SentenceSplitter.from_sample(iter_texts(specs, text_column=text_column),
                                                    max_chars=split_sample_chars, train=train_splitter)

            def sentences(stats):
                return iter_sentences(specs, tokenizer, splitter, text_column=text_column, stats=stats)

            count_report = None
            if vocab is None:
                spool = _TokenSpool(directory)
                vocab, count_report = Vocabulary.build_counted(spool.tee(sentences(stats)), min_count,
                                                               max_vocab, max_count_entries, log)
                _release_free_memory()
                if len(vocab) <= 2:
                    raise empty_vocab_error()
                if temporary is None:  # files of a run killed before it saved its vocabulary
                    encoded = _load_encoded(directory, key(vocab), log)
                    reused = encoded is not None
            if encoded is None:
                if spool is not None and spool.usable:
                    token_lists = spool.read()
                else:
                    token_lists = sentences(stats if spool is None else CorpusStats())
                extra = {"stats": _stats_dict(stats)}
                if count_report is not None:
                    extra["count"] = dataclasses.asdict(count_report)
                encoded = _encode(token_lists, vocab, directory, key(vocab), extra, specs[0])
        lengths, ids_file, meta = encoded
    except OSError as e:  # the corpus readers raise InputError; this is the run directory
        raise InputError(f"{directory}: cannot write the encoded corpus ({e.strerror or e})") from None
    finally:
        if spool is not None:
            spool.close()
        if temporary is not None:
            temporary.cleanup()  # the open ids file stays readable until it is closed

    n = len(lengths)
    n_heldout = min(int(round(n * heldout_fraction)), max(max_heldout, min_heldout))
    if n_heldout < min_heldout or n - n_heldout < min_heldout:
        raise InputError(
            f"{specs[0]}: the corpus has {n} sentences, too few to hold out {min_heldout} for "
            f"evaluation at heldout_fraction {heldout_fraction}; use more text "
            f"(at least {math.ceil(min_heldout / heldout_fraction)} sentences)")
    # the same draw as when everything was in memory: a permutation's first n_heldout; boolean
    # masks keep the order and the temporaries small (they are per sentence)
    held = np.zeros(n, dtype=bool)
    held[np.random.default_rng([seed, 7]).permutation(n)[:n_heldout]] = True
    starts = np.cumsum(lengths, dtype=np.int64)
    starts -= lengths
    heldout = DiskSentences(ids_file, starts[held], lengths[held]).to_memory()
    np.logical_not(held, out=held)
    train = DiskSentences(ids_file, starts[held], lengths[held])
    del held, starts, lengths
    _release_free_memory()
    tokens, unk = int(meta["tokens"]), float(meta["unk"]) / max(int(meta["tokens"]), 1)
    corpus_stats = dict(meta["stats"], sentences=n, train_sentences=len(train),
                        heldout_sentences=len(heldout), tokens=tokens,
                        unk_rate=round(unk, 4), vocab_size=len(vocab),
                        seconds=round(time.time() - t0, 1))
    count = meta.get("count") or {}
    if count.get("prunes"):
        corpus_stats.update(count_prunes=count["prunes"], count_threshold=count["threshold"])
    log(f"corpus: {n} sentences, {tokens} tokens, vocabulary {len(vocab)} "
        f"(min count {min_count}), unknown-word rate {unk:.1%}, {n_heldout} held out "
        f"({corpus_stats['seconds']} s{', encoded ids reused' if reused else ''})")
    return PreparedCorpus(vocab, tokenizer, train, heldout, corpus_stats)

def _release_free_memory() -> None:
    """Hands the C heap's free pages back to the system (glibc's malloc_trim; elsewhere a no-op).
    Counting the words of a 400 MB corpus leaves ~70 MB freed but resident without it."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError, TypeError):
        pass

def _corpus_fingerprint(sources) -> List[List[Any]]:
    """[path, size, mtime_ns] of each corpus file ([spec] for a hub dataset)."""
    out: List[List[Any]] = []
    for source in sources:
        if source.kind == "hub":
            out.append([source.spec])
        else:
            st = os.stat(source.path)
            out.append([os.path.abspath(source.path), st.st_size, st.st_mtime_ns])
    return out

class _TokenSpool:
    """Token lists spooled to an anonymous file during the counting pass, so the encoding
    pass does not split and tokenize the corpus again. One sentence a line, tokens joined by
    spaces: usable only while no token holds a space or a line break (the default tokenizer's
    never do); otherwise the encoding pass reads the corpus again."""

    def __init__(self, directory: str):
        import tempfile

        self.file = tempfile.TemporaryFile(dir=directory, prefix=".tokens-spool-")
        self.usable = True

    def tee(self, token_lists: Iterator[List[str]]) -> Iterator[List[str]]:
        """Yields `token_lists`' non-empty lists, writing them to the spool in chunks."""
        chunk: List[List[str]] = []
        for tokens in token_lists:
            if not tokens:
                continue
            chunk.append(tokens)
            yield tokens
            if len(chunk) == _CHUNK:
                self._write(chunk)
                chunk = []
        self._write(chunk)

    def _write(self, chunk: List[List[str]]) -> None:
        if not chunk or not self.usable:
            return
        text = "\n".join(map(" ".join, chunk)) + "\n"
        # n tokens give n - 1 spaces and 1 line end a sentence: any more sit inside tokens
        if text.count(" ") + text.count("\n") != sum(map(len, chunk)):
            self.usable = False
            self.file.truncate(0)
            return
        self.file.write(text.encode("utf-8", "surrogatepass"))

    def read(self) -> Iterator[List[str]]:
        """The spooled token lists, in order."""
        self.file.flush()
        self.file.seek(0)
        for line in self.file:  # a binary file splits on b"\n" only
            yield line[:-1].decode("utf-8", "surrogatepass").split(" ")

    def close(self) -> None:
        self.file.close()

def _encode(token_lists: Iterator[List[str]], vocab, directory: str, key: Dict[str, Any],
            extra: Dict[str, Any], where: str):
    """Writes ids.bin, lengths.npy and (last) meta.json; -> (lengths, _IdsFile, meta)."""
    import itertools
    import zlib

    paths = {name: os.path.join(directory, name) for name in (IDS_FILE, LENGTHS_FILE, META_FILE)}
    for name in os.listdir(directory):  # temporary files of an interrupted run
        if is_temporary_of(name, IDS_FILE) or is_temporary_of(name, LENGTHS_FILE):
            os.unlink(os.path.join(directory, name))
    if os.path.exists(paths[META_FILE]):
        os.unlink(paths[META_FILE])  # the old files are no longer described
    tmp = {name: temporary_name(os.path.join(directory, name)) for name in (IDS_FILE, LENGTHS_FILE)}
    crc = unk = tokens = 0
    chunks: List[np.ndarray] = []
    lists = iter(token_lists)
    try:
        with open(tmp[IDS_FILE], "wb") as f:
            while True:
                chunk = list(itertools.islice(lists, _CHUNK))
                if not chunk:
                    break
                chunk = [t for t in chunk if t]
                ids = vocab.ids_of(itertools.chain.from_iterable(chunk)).astype("<i4", copy=False)
                data = ids.tobytes()
                f.write(data)
                crc = zlib.crc32(data, crc)
                unk += int(np.count_nonzero(ids == UNK_ID))
                tokens += ids.size
                chunks.append(np.fromiter(map(len, chunk), dtype=np.int32, count=len(chunk)))
            f.flush()
            os.fsync(f.fileno())
        if not chunks:
            raise InputError(f"{where}: no sentences found in the corpus")
        lengths = np.concatenate(chunks)
        del chunks
        with open(tmp[LENGTHS_FILE], "wb") as f:
            np.save(f, lengths.astype("<i4", copy=False), allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp[IDS_FILE], paths[IDS_FILE])
        os.replace(tmp[LENGTHS_FILE], paths[LENGTHS_FILE])
    finally:
        for path in tmp.values():
            if os.path.exists(path):
                os.unlink(path)
    meta = dict(key=key, sentences=int(lengths.size), tokens=int(tokens), unk=int(unk), crc32=int(crc),
                **extra)
    atomic_write_json(paths[META_FILE], meta)
    return lengths, _IdsFile(paths[IDS_FILE], tokens), meta

def _load_encoded(directory: str, key: Dict[str, Any], log: Callable[[str], None]):
    """(lengths, _IdsFile, meta) of files `_encode` wrote for `key`, or None (with a log line
    saying why) if there are none, they were encoded from something else or fail a check."""
    import zlib

    paths = {name: os.path.join(directory, name) for name in (IDS_FILE, LENGTHS_FILE, META_FILE)}
    if not os.path.exists(paths[META_FILE]):
        return None

    def stale(why: str):
        log(f"corpus: {paths[IDS_FILE]} {why}; encoding the corpus again")
        return None

    try:
        with open(paths[META_FILE], "r", encoding="utf-8") as f:
            meta = json.load(f)
        if not isinstance(meta, dict) or meta.get("key") != key:
            return stale("was encoded from another corpus, tokenizer or vocabulary")
        tokens, n = int(meta["tokens"]), int(meta["sentences"])
        size = os.path.getsize(paths[IDS_FILE])
        if size != 4 * tokens:
            return stale(f"has {size} bytes, {4 * tokens} expected (truncated?)")
        lengths = np.load(paths[LENGTHS_FILE], allow_pickle=False)
        if lengths.shape != (n,) or lengths.dtype != np.dtype("<i4") or \
                int(lengths.sum(dtype=np.int64)) != tokens or (n and int(lengths.min()) < 1):
            return stale(f"does not match {LENGTHS_FILE}")
        crc = 0
        block = bytearray(_READ_BLOCK)
        with open(paths[IDS_FILE], "rb", buffering=0) as f:
            while True:
                size = f.readinto(block)
                if not size:
                    break
                crc = zlib.crc32(memoryview(block)[:size], crc)
        if crc != int(meta["crc32"]):
            return stale("is damaged (crc32 differs from meta.json)")
    except (OSError, ValueError, KeyError, TypeError) as e:
        return stale(f"cannot be checked ({type(e).__name__}: {e})")
    return lengths.astype(np.int32, copy=False), _IdsFile(paths[IDS_FILE], tokens), meta

def _stats_dict(stats) -> Dict[str, Any]:
    if dataclasses.is_dataclass(stats):
        return {k: v for k, v in dataclasses.asdict(stats).items()
                if isinstance(v, (int, float, str))}
    return {k: v for k, v in vars(stats).items() if isinstance(v, (int, float, str))}
