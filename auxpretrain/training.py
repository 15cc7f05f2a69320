"""`auxpretrain pretrain`: corpus -> vocabulary -> good/bad batches -> TF1 training loop ->
checkpoints, TensorBoard logs, held-out metrics -> the export.

Layout of OUT/:
  run.json             the run's configuration (a rerun with another config is refused)
  vocab.txt, counts.txt the vocabulary and its corpus counts (fixed for the run)
  data/                the corpus encoded as int32 ids (ids.bin, lengths.npy, meta.json);
                       training reads its batches from there, a rerun reuses it
  checkpoints/         Saver checkpoints (model, Adam slots, global step); rerun resumes
  logs/                TensorBoard event files
  export/              the transferable collection (see export.py), written at the end
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import sys
import time
import weakref
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np

from auxpretrain.config import CorruptionConfig, ModelConfig, PretrainConfig
from auxpretrain.errors import ConfigError, InputError
from auxpretrain.vocab import DEFAULT_MAX_COUNT_ENTRIES

RESUMABLE_KEYS = {"epochs", "max_steps", "eval_every", "checkpoint_every", "checkpoint_minutes",
                  "keep_checkpoints", "patience"}


# ---------------------------------------------------------------- encoded corpus

# Held-out sentences at most, whatever heldout_fraction gives: the held-out batches are built
# once and kept in memory, and every evaluation runs over all of them, so their number must not
# grow with the corpus (10,000 pairs put the standard error of an accuracy near 0.5 points).
MAX_HELDOUT = 10_000
ENCODED_FORMAT = 1  # version of the files prepare_corpus writes to its cache directory
IDS_FILE, LENGTHS_FILE, META_FILE = "ids.bin", "lengths.npy", "meta.json"
_CHUNK = 8192  # sentences encoded (and spooled) per write
_READ_BLOCK = 1 << 22  # bytes read at a time when checking ids.bin


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
        width = max(int(lengths.max()) if len(index) else 1, 1)
        out = np.zeros((len(index), width), dtype=np.int32)
        pos = np.arange(width)
        mask = pos[None, :] < lengths[:, None]
        out[mask] = self.ids[(starts[:, None] + pos[None, :])[mask]]
        return out, lengths


class _IdsFile:
    """An open file of little-endian int32 ids, shared by the DiskSentences views over it;
    closed when the last view is gone."""

    def __init__(self, path: str, tokens: int):
        self.path = path
        self.tokens = tokens  # ids in the file
        self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._close = weakref.finalize(self, os.close, self.fd)

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
    with the corpus; the page cache keeps a hot file fast. Same interface as EncodedSentences;
    `subset` is a view over the same file (no id is copied).
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
        width = max(int(lengths.max()) if len(index) else 1, 1)
        out = np.zeros((len(index), width), dtype=np.int32)
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
                   max_count_entries: Optional[int] = DEFAULT_MAX_COUNT_ENTRIES) -> PreparedCorpus:
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

    Held out: round(n * heldout_fraction) sentences, at most max(max_heldout, min_heldout),
    chosen by `seed`, kept in memory (EncodedSentences). The training sentences are a
    DiskSentences view (12 bytes a sentence in memory).
    """
    import tempfile

    from auxpretrain.corpus import CorpusStats, iter_sentences, iter_texts, resolve
    from auxpretrain.text import SentenceSplitter
    from auxpretrain.vocab import Vocabulary

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
            splitter = SentenceSplitter.from_sample(iter_texts(specs, text_column=text_column))

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

    from auxpretrain.vocab import UNK_ID

    paths = {name: os.path.join(directory, name) for name in (IDS_FILE, LENGTHS_FILE, META_FILE)}
    for name in os.listdir(directory):  # temporary files of an interrupted run
        if name.startswith((f".{IDS_FILE}.", f".{LENGTHS_FILE}.")) and name.endswith(".tmp"):
            os.unlink(os.path.join(directory, name))
    if os.path.exists(paths[META_FILE]):
        os.unlink(paths[META_FILE])  # the old files are no longer described
    tmp = {name: os.path.join(directory, f".{name}.{os.getpid()}.tmp") for name in (IDS_FILE, LENGTHS_FILE)}
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
    _write_json_atomic(paths[META_FILE], meta)
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


# ---------------------------------------------------------------- batches

class BatchMaker:
    """Builds pretraining batches: good sentences, their fresh corruptions, context pairs.

    Batch b of epoch e is a pure function of (seed, e, b), so a resumed run sees exactly
    the batches the interrupted one would have, with no replay.
    """

    def __init__(self, data: EncodedSentences, vocab, model_config: ModelConfig,
                 config: PretrainConfig, corruption: CorruptionConfig):
        from auxpretrain.corruption import Corruptor, UnigramSampler

        self.data = data
        self.model_config = model_config
        self.config = config
        counts = np.asarray(vocab.counts, dtype=np.float64)
        self.corruptor = Corruptor(vocab.counts, corruption)
        self.sampler = UnigramSampler(vocab.counts, 0.75)
        freq = counts / max(counts.sum(), 1.0)
        t = config.subsample
        with np.errstate(divide="ignore", invalid="ignore"):
            keep = np.where(freq > 0, (np.sqrt(freq / t) + 1.0) * t / freq, 0.0) if t > 0 \
                else np.ones_like(freq)
        keep[:2] = 0.0  # PAD and UNK never enter context pairs
        self.keep_prob = np.minimum(keep, 1.0)
        self.want_context = "context" in config.objectives
        self.batches_per_epoch = max(1, len(data) // config.batch_size)

    def epoch_order(self, epoch: int, context_pass: int = 0) -> List[np.ndarray]:
        """Sentence indices of each batch of `epoch`, length-bucketed then shuffled. Pass 0 is
        the order of the step's own batches; context pass k > 0 reorders the same sentences
        for the extra context pairs of each step (`config.context_passes`)."""
        tag = [1] if context_pass == 0 else [3, context_pass]
        rng = np.random.default_rng([self.config.seed, epoch, *tag])
        perm = rng.permutation(len(self.data))
        b = self.config.batch_size
        chunk = b * 50
        lengths = self.data.lengths
        batches = []
        for start in range(0, len(perm) - b + 1, chunk):
            part = perm[start:start + chunk]
            part = part[np.argsort(lengths[part], kind="stable")]
            batches.extend(part[i:i + b] for i in range(0, len(part) - b + 1, b))
        order = rng.permutation(len(batches))
        return [batches[i] for i in order]

    def make(self, index: np.ndarray, rng: np.random.Generator,
             context_index: Sequence[np.ndarray] = ()) -> Dict[str, np.ndarray]:
        """The batch of sentences `index`: good, bad, changed, and context pairs from those
        sentences and from each array of `context_index` (more sentences, context pairs only)."""
        ids, lengths = self.data.batch(index, self.model_config.max_length)
        corrupted = self.corruptor.corrupt(ids, lengths, rng)
        ok = corrupted.ok
        batch = {"good": ids[ok], "bad": corrupted.bad[ok], "changed": corrupted.changed[ok]}
        if self.want_context:
            parts = [self.context_pairs(ids, rng)]
            for more in context_index:
                parts.append(self.context_pairs(self.data.batch(more, self.model_config.max_length)[0], rng))
            center, context, negatives = (np.concatenate(p) for p in zip(*parts))
            pass_pairs = np.array([part[0].size for part in parts], np.int32)
        else:
            center = context = np.zeros(0, np.int32)
            negatives = np.zeros((0, self.config.negatives), np.int32)
            pass_pairs = np.zeros(1, np.int32)
        batch.update(center=center, context=context, negatives=negatives, pass_pairs=pass_pairs)
        return batch

    def context_pairs(self, ids: np.ndarray, rng: np.random.Generator):
        """word2vec skip-gram pairs within a random window, frequent words subsampled."""
        keep = rng.random(ids.shape) < self.keep_prob[ids]
        reach = rng.integers(1, self.config.window + 1, size=ids.shape)
        centers, contexts = [], []
        for d in range(1, min(self.config.window, ids.shape[1] - 1) + 1):
            both = keep[:, :-d] & keep[:, d:]
            fwd = both & (reach[:, :-d] >= d)
            bwd = both & (reach[:, d:] >= d)
            centers += [ids[:, :-d][fwd], ids[:, d:][bwd]]
            contexts += [ids[:, d:][fwd], ids[:, :-d][bwd]]
        center = np.concatenate(centers) if centers else np.zeros(0, np.int32)
        context = np.concatenate(contexts) if contexts else np.zeros(0, np.int32)
        negatives = self.sampler.sample(center.size * self.config.negatives, rng)
        return (center.astype(np.int32), context.astype(np.int32),
                np.asarray(negatives, np.int32).reshape(center.size, self.config.negatives))

    def stream(self, start_step: int, total_steps: int) -> Iterator[tuple]:
        """Batches for global steps start_step .. total_steps-1, as tuples in INPUT_SPECS order."""
        from auxpretrain.objectives import INPUT_SPECS

        step = start_step
        while step < total_steps:
            epoch, offset = divmod(step, self.batches_per_epoch)
            order = self.epoch_order(epoch)
            passes = self.config.context_passes if self.want_context else 1
            extra = [self.epoch_order(epoch, k) for k in range(1, passes)]
            for b in range(offset, len(order)):
                if step >= total_steps:
                    return
                rng = np.random.default_rng([self.config.seed, epoch, b, 2])
                batch = self.make(order[b], rng, [more[b] for more in extra])
                yield tuple(batch[name] for name in INPUT_SPECS)
                step += 1
            if offset >= len(order):  # defensive: never loop forever on an empty epoch
                step += 1


# ---------------------------------------------------------------- probe and statistics

def frequency_features(ids: np.ndarray, log_counts: np.ndarray) -> np.ndarray:
    """[n, 2]: mean and min log-count of each sentence's words (PAD excluded)."""
    mask = ids > 0
    lc = log_counts[ids]
    mean = np.where(mask, lc, 0.0).sum(1) / np.maximum(mask.sum(1), 1)
    low = np.where(mask, lc, np.inf).min(1)
    low[~np.isfinite(low)] = 0.0
    return np.stack([mean, low], axis=1)


def _fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 300):
    mu, sd = x.mean(0), x.std(0) + 1e-8
    z = (x - mu) / sd
    w = np.zeros(z.shape[1])
    b = 0.0
    for _ in range(steps):  # Newton would be overkill: 2 features, convex, gradient descent
        p = 1.0 / (1.0 + np.exp(-(z @ w + b)))
        w -= 0.5 * (z.T @ (p - y)) / len(y)
        b -= 0.5 * float(np.mean(p - y))
    return lambda q: ((q - mu) / sd) @ w + b


def frequency_probe(train_good, train_bad, held_good, held_bad, counts) -> Dict[str, float]:
    """A linear model on word-frequency features: if it nearly matches the encoder, the
    corruption is too easy (rare replacement words give the bad sentence away)."""
    log_counts = np.log1p(np.asarray(counts, dtype=np.float64))
    x = np.concatenate([frequency_features(train_good, log_counts), frequency_features(train_bad, log_counts)])
    y = np.concatenate([np.ones(len(train_good)), np.zeros(len(train_bad))])
    score = _fit_logistic(x, y)
    sg = score(frequency_features(held_good, log_counts))
    sb = score(frequency_features(held_bad, log_counts))
    return {"single_accuracy": round(float((np.mean(sg > 0) + np.mean(sb <= 0)) / 2), 4),
            "pairwise_accuracy": round(float(np.mean(sg > sb) + 0.5 * np.mean(sg == sb)), 4)}


def activation_stats(pooled: np.ndarray, activation: str) -> Dict[str, float]:
    """Health of the pooled features on held-out good sentences."""
    magnitude = np.abs(pooled)
    never = np.all(magnitude < 1e-6, axis=0)
    return {
        "saturated_fraction": round(float(np.mean(magnitude > 0.95)), 4) if activation == "tanh" else 0.0,
        "zero_fraction": round(float(np.mean(magnitude < 1e-6)), 4),
        "dead_units": int(never.sum()),
        "units": int(pooled.shape[1]),
        "mean_abs": round(float(magnitude.mean()), 4),
        "std_across_sentences": round(float(pooled.std(0).mean()), 4),
    }


# ---------------------------------------------------------------- run directory

def _write_json_atomic(path: str, data: Any) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _config_diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> List[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        if key in RESUMABLE_KEYS:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key not in ("objectives", "ops"):
            keys += _config_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key} ({a!r} -> {b!r})")
    return keys


# ---------------------------------------------------------------- the loop

def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """fp32 matmul peak of this machine, measured in a TF session (DATA.md's method)."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        a = tf1.get_variable("a", [size, size], initializer=tf1.random_normal_initializer(seed=1))
        b = tf1.get_variable("b", [size, size], initializer=tf1.random_normal_initializer(seed=2))
        product = tf.reduce_sum(tf.matmul(a, b))
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(product)
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                sess.run(product)
                best = min(best, time.perf_counter() - t0)
    return 2.0 * size ** 3 / best / 1e9


def profile_step_flops(model_config: ModelConfig, config: PretrainConfig, batch: int, length: int,
                       pairs: int) -> Dict[str, float]:
    """Float ops of one training step (forward + backward + update), counted by TF's profiler
    on the subgraph the train op runs, with static shapes of a typical batch."""
    import tensorflow as tf

    from auxpretrain.objectives import INPUT_SPECS, build_pretrain_model

    tf1 = tf.compat.v1
    shapes = {"good": [batch, length], "bad": [batch, length], "changed": [batch, length],
              "center": [pairs], "context": [pairs], "negatives": [pairs, config.negatives],
              "pass_pairs": [1]}  # the passes' updates count as one over all their pairs
    graph = tf.Graph()
    with graph.as_default():
        inputs = {name: tf1.placeholder(dtype, shapes[name], name=name)
                  for name, (dtype, _) in INPUT_SPECS.items()}
        model = build_pretrain_model(inputs, model_config, config.objectives,
                                     config.embedding_from_context_only)
        step = tf1.train.get_or_create_global_step()
        train_op = _train_op(model, 1e-3, 0.025, config.clip_norm, step)
    # only what a step executes: an objective-less encoder branch must not count
    used = tf1.graph_util.extract_sub_graph(graph.as_graph_def(), [train_op.op.name])
    counted = tf.Graph()
    with counted.as_default():
        tf1.import_graph_def(used, name="")
        opts = tf1.profiler.ProfileOptionBuilder.float_operation()
        opts["output"] = "none"
        total = tf1.profiler.profile(counted, options=opts).total_float_ops
        fwd_opts = dict(opts)
        fwd_opts["hide_name_regexes"] = [".*gradients.*", "train/.*"]
        forward = tf1.profiler.profile(counted, options=fwd_opts).total_float_ops
    return {"step_flops": float(total), "forward_flops": float(forward)}


def pretrain(corpus: Sequence[str], out_dir: str, model_overrides: Mapping[str, Any],
             config: PretrainConfig, corruption: CorruptionConfig, *, text_column: Optional[str] = None,
             lowercase: bool = True, min_count: int = 2, max_vocab: Optional[int] = 50000,
             init_embeddings: Optional[str] = None, progress: bool = True,
             measure_speed: bool = True, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Pretrains on `corpus` and writes OUT/export; resumes an interrupted run in `out_dir`.

    With `measure_speed`, FLOPs per step are counted with TF's profiler and the machine's
    matmul peak is measured (a few seconds) to report FLOP utilisation.

    Returns a summary dict (steps, metrics, throughput, export path).
    """
    import tensorflow as tf

    from auxpretrain.variables import TRANSFERABLE_VARIABLES, strip_suffix

    tf1 = tf.compat.v1
    tokenizer, data, model_config = _prepare_run(
        corpus, out_dir, model_overrides, config, corruption, text_column=text_column,
        lowercase=lowercase, min_count=min_count, max_vocab=max_vocab,
        init_embeddings=init_embeddings, log=log)
    vocab = data.vocab
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    maker = BatchMaker(data.train, vocab, model_config, config, corruption)
    total_steps = config.max_steps or int(math.ceil(config.epochs * maker.batches_per_epoch))

    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(config.seed)
        built = _build_train_graph(maker, model_config, config, total_steps)
        global_step, iterator, start_placeholder = built.global_step, built.iterator, built.start_step
        inputs, model, train_op = built.inputs, built.model, built.train_op
        total_loss, summary_op = built.total_loss, built.summary_op
        saver = tf1.train.Saver(max_to_keep=config.keep_checkpoints)
        transferable = tf1.get_collection(TRANSFERABLE_VARIABLES)
        init = tf1.global_variables_initializer()
    graph.finalize()

    heldout_batches = _heldout_batches(data.heldout, vocab, model_config, config, corruption)
    session_config = tf1.ConfigProto(intra_op_parallelism_threads=0, inter_op_parallelism_threads=0)
    with tf1.Session(graph=graph, config=session_config) as sess:
        latest = tf1.train.latest_checkpoint(ckpt_dir)
        if latest:
            saver.restore(sess, latest)
            start = int(sess.run(global_step))
            log(f"resumed from step {start} ({os.path.relpath(latest, out_dir)})")
        else:
            sess.run(init)
            start = 0
            if init_embeddings:
                from auxpretrain.embeddings import load_word_vectors

                table = model.encoder.embedding_table
                rows, found = load_word_vectors(init_embeddings, vocab, model_config.embedding_size,
                                                sess.run(table))
                table.load(rows, sess)
                log(f"init embeddings: {found} of {len(vocab)} vocabulary words found in {init_embeddings}")
        sess.run(iterator.initializer, {start_placeholder: start})
        writer = tf1.summary.FileWriter(os.path.join(out_dir, "logs"), graph if start == 0 else None)
        log(f"pretraining: {total_steps} steps of {config.batch_size} sentence pairs, objectives "
            + ", ".join(f"{k}={v:g}" for k, v in config.objectives.items())
            + f"; {maker.batches_per_epoch} steps per epoch"
            + (f"; context pairs from {config.context_passes} passes per epoch"
               if maker.want_context and config.context_passes > 1 else ""))
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total_steps, initial=start, unit="step", file=sys.stderr,
                       dynamic_ncols=True, mininterval=1.0, disable=not sys.stderr.isatty())
        tokens = pairs_seen = 0
        train_seconds = 0.0
        last_ckpt_time = time.time()
        step = start
        heldout = _HeldoutTracker(model, inputs, heldout_batches, writer, total_steps, config.patience, log)
        fetches = {"train": train_op, "loss": total_loss, "good": inputs["good"], "center": inputs["center"]}
        while step < total_steps:
            t0 = time.perf_counter()
            try:
                want_summary = (step + 1) % 50 == 0
                out = sess.run(dict(fetches, summary=summary_op) if want_summary else fetches)
            except tf.errors.OutOfRangeError:
                break
            train_seconds += time.perf_counter() - t0
            step += 1
            tokens += int(np.count_nonzero(out["good"])) * 2
            pairs_seen += int(out["center"].size)
            if want_summary:
                writer.add_summary(out["summary"], step)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{out['loss']:.3f}", tok_s=f"{tokens / max(train_seconds, 1e-9):,.0f}")
            if step % config.eval_every == 0 or step == total_steps:
                if heldout.check(sess, step, out["loss"], f"{tokens / max(train_seconds, 1e-9):,.0f} tokens/s"):
                    saver.save(sess, os.path.join(ckpt_dir, "model.ckpt"), global_step=step)
                    break
            if step % config.checkpoint_every == 0 or \
                    time.time() - last_ckpt_time > 60 * config.checkpoint_minutes:
                saver.save(sess, os.path.join(ckpt_dir, "model.ckpt"), global_step=step)
                last_ckpt_time = time.time()
        if bar is not None:
            bar.close()
        final = heldout.finish(sess, step, scalars=False)
        history = heldout.history
        saver.save(sess, os.path.join(ckpt_dir, "model.ckpt"), global_step=step)
        writer.close()
        values = {strip_suffix(v.name): value for v, value in zip(transferable, sess.run(transferable))}
        pooled = _pooled_on(sess, model, inputs, heldout_batches)
    act = activation_stats(pooled, model_config.activation)
    probe = frequency_probe(*_probe_sets(maker, heldout_batches), vocab.counts)
    throughput = tokens / max(train_seconds, 1e-9) if tokens else None
    steps_run = max(step - start, 1)
    perf = _performance(model_config, config, data.train, throughput, pairs_seen / steps_run, log) \
        if throughput and measure_speed else {}
    summary = {
        "steps": step, "total_steps": total_steps, "resumed_from": start,
        "heldout": {k: v for k, v in final.items() if k != "step"}, "history": history,
        "frequency_probe": probe, "pooled_features": act,
        "train_seconds_this_session": round(train_seconds, 1),
        "tokens_per_second": round(throughput, 1) if throughput else None, **perf,
    }
    _write_run_export(out_dir, values, summary, data, corpus, model_config, config, corruption,
                      tokenizer, log)
    return summary


def _train_op(model, lr, context_lr, clip_norm: float, global_step, context_passes: int = 1):
    """Adam (clipped) on the non-context objectives; word2vec's SGD on the context pairs, one
    update per context pass (`inputs["pass_pairs"]` splits the pairs), each reading the
    tables the previous one wrote, as word2vec's sequential updates do (one summed update
    over several passes' pairs diverges: frequent words' rows get too many at once)."""
    import tensorflow as tf

    from auxpretrain.objectives import context_pair_loss

    tf1 = tf.compat.v1
    updates = []  # (optimizer, [(gradient, variable)])
    with tf1.name_scope("train"):
        if model.loss.op.type != "Const":
            variables = tf1.trainable_variables()
            grads = tf.gradients(model.loss, variables)
            pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
            clipped, _ = tf.clip_by_global_norm([g for g, _ in pairs], clip_norm)
            updates.append((tf1.train.AdamOptimizer(lr), list(zip(clipped, [v for _, v in pairs]))))
        sgd = None  # the context objective's optimizer, when it is on
        if model.context_weight is not None:
            tables = _parts(model.encoder.embedding_table) + _parts(model.context_table)
            sgd = tf1.train.GradientDescentOptimizer(context_lr)
            inputs = model.inputs
            ends = tf.cumsum(inputs["pass_pairs"]) if context_passes > 1 else None

            def context_grads(k):
                """Gradients of pass k's summed pair losses (all pairs when there is one pass)."""
                if context_passes == 1:
                    picked = [inputs["center"], inputs["context"], inputs["negatives"]]
                else:
                    start = ends[k - 1] if k else 0
                    picked = [inputs[n][start:ends[k]] for n in ("center", "context", "negatives")]
                per_pair = context_pair_loss(model.encoder.embedding_table, model.context_table, *picked)
                return sgd.compute_gradients(model.context_weight * tf.reduce_sum(per_pair), var_list=tables)

            updates.append((sgd, context_grads(0)))
        # every gradient is computed before any variable changes: without this the SGD update
        # of embedding/table races the Adam branch's reads of it (runs and resumes not reproducible)
        grads = [g.values if isinstance(g, tf.IndexedSlices) else g
                 for _, gv in updates for g, _ in gv if g is not None]
        ops = []
        with tf.control_dependencies(grads):
            for optimizer, gv in updates:
                with tf.control_dependencies(ops):  # one after the other: both may update the table
                    ops.append(optimizer.apply_gradients(gv))
        if sgd is not None:
            for k in range(1, context_passes):
                with tf.control_dependencies(ops[-1:]):  # pass k reads what pass k-1 wrote
                    gv = context_grads(k)
                ops.append(sgd.apply_gradients(gv))
        with tf.control_dependencies(ops):
            return tf1.assign_add(global_step, 1)


def _parts(variable) -> list:
    """[variable], or the parts of a PartitionedVariable (a sharded table)."""
    import tensorflow as tf

    return [variable] if isinstance(variable, tf.Variable) else list(variable)


# ---------------------------------------------------------------- shared with cluster.py

def _prepare_run(corpus: Sequence[str], out_dir: Optional[str], model_overrides: Mapping[str, Any],
                 config: PretrainConfig, corruption: CorruptionConfig, *, text_column, lowercase: bool,
                 min_count: int, max_vocab: Optional[int], init_embeddings: Optional[str],
                 log: Callable[[str], None], extra_spec: Optional[Mapping[str, Any]] = None):
    """Reads the corpus for a run in `out_dir`: records the run there (run.json, vocab.txt,
    counts.txt, the encoded ids in data/) or, if it holds one already, refuses another
    configuration and reuses its vocabulary. `out_dir` None writes nothing (a cluster worker:
    the ids go to a temporary directory). `extra_spec`: more run.json entries.
    -> (tokenizer, PreparedCorpus, ModelConfig)"""
    from auxpretrain.text import Tokenizer
    from auxpretrain.vocab import Vocabulary

    tokenizer = Tokenizer(lowercase=lowercase)
    run_spec = {
        "corpus": list(corpus), "text_column": text_column, "tokenizer": tokenizer.to_dict(),
        "min_count": min_count, "max_vocab": max_vocab, "init_embeddings": init_embeddings,
        "model": dict(model_overrides), "pretrain": config.to_dict(), "corruption": corruption.to_dict(),
        **dict(extra_spec or {}),
    }
    vocab, record, cache_dir = None, False, None
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        run_file = os.path.join(out_dir, "run.json")
        vocab_path, counts_path = os.path.join(out_dir, "vocab.txt"), os.path.join(out_dir, "counts.txt")
        cache_dir = os.path.join(out_dir, "data")
        if os.path.exists(run_file):
            with open(run_file, "r", encoding="utf-8") as f:
                diff = _config_diff(json.load(f), run_spec)
            if diff:
                raise ConfigError(f"{out_dir} holds a run with another configuration ({'; '.join(diff)}); "
                                  "use a new --out or the same settings to resume")
            if os.path.exists(vocab_path) and os.path.exists(counts_path):
                vocab = Vocabulary.load(vocab_path, counts_path)
        record = vocab is None
    data = prepare_corpus(corpus, tokenizer, min_count, max_vocab, config.heldout_fraction,
                          config.min_heldout, config.seed, text_column=text_column, vocab=vocab, log=log,
                          cache_dir=cache_dir)
    if record:
        data.vocab.save(vocab_path)
        data.vocab.save_counts(counts_path)
        _write_json_atomic(run_file, run_spec)
    model_config = ModelConfig.from_dict(dict(model_overrides, vocab_size=len(data.vocab)),
                                         where="model config")
    return tokenizer, data, model_config


TrainGraph = collections.namedtuple(
    "TrainGraph", ["global_step", "iterator", "start_step", "inputs", "model", "learning_rate",
                   "train_op", "total_loss", "summary_op"])


def _build_train_graph(maker: BatchMaker, model_config: ModelConfig, config: PretrainConfig,
                       total_steps: int, partitioner=None, stream_end: Optional[int] = None) -> TrainGraph:
    """Builds in the current graph: the global step; an iterator over the batches of
    `maker.stream(start, stream_end or total_steps)` (feed `start_step` when running
    `iterator.initializer`); `inputs` (name -> tensor, feedable with held-out batches); the
    model, its two [vocab, dim] tables split by `partitioner` if given; the learning-rate
    schedule (over `total_steps`), train op, summaries."""
    import tensorflow as tf

    from auxpretrain.objectives import INPUT_SPECS, build_pretrain_model

    tf1 = tf.compat.v1
    global_step = tf1.train.get_or_create_global_step()
    start_step = tf1.placeholder_with_default(tf.constant(0, tf.int64), [], name="start_step")
    dataset = tf.data.Dataset.from_generator(
        lambda start: maker.stream(int(start), stream_end or total_steps),
        output_signature=tuple(tf.TensorSpec(shape, dtype) for dtype, shape in INPUT_SPECS.values()),
        args=(start_step,))
    dataset = dataset.prefetch(4)
    iterator = tf1.data.make_initializable_iterator(dataset)
    next_batch = iterator.get_next()
    # placeholder_with_default lets evaluation feed held-out batches through the same graph
    inputs = {name: tf1.placeholder_with_default(t, spec[1], name=f"feed_{name}")
              for (name, spec), t in zip(INPUT_SPECS.items(), next_batch)}
    model = build_pretrain_model(inputs, model_config, config.objectives,
                                 config.embedding_from_context_only, seed=config.seed,
                                 partitioner=partitioner)
    step_f = tf.cast(global_step, tf.float32)
    warm = float(max(config.warmup_steps, 1))
    lr = config.learning_rate * tf.minimum(
        (step_f + 1.0) / warm,
        tf.maximum(0.0, (total_steps - step_f) / max(total_steps - warm, 1.0)))
    decay = tf.maximum(1e-4, 1.0 - step_f / float(total_steps))
    train_op = _train_op(model, lr, config.context_learning_rate * decay, config.clip_norm,
                         global_step, config.context_passes)
    total_loss = tf.add_n([config.objectives[k] * v for k, v in sorted(model.losses.items())])
    summaries = [tf1.summary.scalar("loss/total", total_loss), tf1.summary.scalar("learning_rate", lr)]
    summaries += [tf1.summary.scalar(f"loss/{k}", v) for k, v in model.losses.items()]
    return TrainGraph(global_step, iterator, start_step, inputs, model, lr, train_op, total_loss,
                      tf1.summary.merge(summaries))


def _write_run_export(out_dir: str, values: Mapping[str, np.ndarray], summary: Dict[str, Any],
                      data: PreparedCorpus, corpus: Sequence[str], model_config: ModelConfig,
                      config: PretrainConfig, corruption: CorruptionConfig, tokenizer,
                      log: Callable[[str], None]) -> None:
    """Writes OUT/export from the encoder's `values` (name -> ndarray) with the run's manifest
    entries; `summary` (heldout, frequency_probe, pooled_features, ...) becomes its metrics and
    gets the export's path."""
    from auxpretrain import export as export_lib

    default_layers = model_config.layer_names() if config.default_layers == "all" else \
        [n.strip() for n in config.default_layers.split(",") if n.strip()]
    extra = {
        "transfer": {"default_layers": default_layers},
        "corpus": dict(data.stats, files=list(corpus)),
        "corruption": corruption.to_dict(), "pretrain": config.to_dict(),
        "metrics": summary,
    }
    exported = export_lib.write_export(os.path.join(out_dir, "export"), values, model_config,
                                       data.vocab, tokenizer, extra)
    summary["export"] = exported.path
    probe, act = summary["frequency_probe"], summary["pooled_features"]
    log(f"held-out: {_fmt(summary['heldout'])}; frequency-only probe: single "
        f"{probe['single_accuracy']:.3f}, pairwise {probe['pairwise_accuracy']:.3f}")
    log(f"pooled features: {act['saturated_fraction']:.1%} saturated, {act['zero_fraction']:.1%} zero, "
        f"{act['dead_units']} of {act['units']} units dead")
    log(f"export written to {os.path.join(out_dir, 'export')}")


def _fmt(metrics: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "step")


class _HeldoutTracker:
    """Held-out evaluation during pretraining (single process and cluster chief): the history,
    TensorBoard scalars, the log line, and early stopping on pairwise accuracy (the context
    loss when there is no sentence-level objective) after `patience` evaluations without gain."""

    def __init__(self, model, inputs, batches, writer, total_steps: int, patience: int,
                 log: Callable[[str], None]):
        self.model, self.inputs, self.batches, self.writer = model, inputs, batches, writer
        self.total_steps, self.patience, self.log = total_steps, patience, log
        self.history: List[Dict[str, Any]] = []
        self.best: Optional[float] = None
        self.stale = 0

    def _evaluate(self, sess, step: int, scalars: bool = True) -> Dict[str, float]:
        metrics = evaluate(sess, self.model, self.inputs, self.batches)
        self.history.append(dict(step=step, **metrics))
        if scalars:
            _write_scalars(self.writer, step, metrics)
        return metrics

    def check(self, sess, step: int, loss: float, speed: str) -> bool:
        """Evaluates and logs at `step`; True when training should stop early."""
        metrics = self._evaluate(sess, step)
        self.log(f"step {step}/{self.total_steps}: loss {loss:.4f}, held-out "
                 + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) + f", {speed}")
        key = metrics.get("pairwise_accuracy", -metrics.get("context_loss", 0.0))
        if self.best is None or key > self.best:
            self.best, self.stale = key, 0
        else:
            self.stale += 1
        if self.patience and self.stale >= self.patience:
            self.log(f"early stop at step {step}: no held-out improvement in {self.stale} evaluations")
            return True
        return False

    def finish(self, sess, step: int, scalars: bool = True) -> Dict[str, Any]:
        """The final held-out metrics (evaluated now unless `step` already was)."""
        if not self.history or self.history[-1]["step"] != step:
            self._evaluate(sess, step, scalars)
        return self.history[-1]


def _write_scalars(writer, step: int, metrics: Mapping[str, float]) -> None:
    import tensorflow as tf

    tf1 = tf.compat.v1
    values = [tf1.Summary.Value(tag=f"heldout/{k}", simple_value=float(v)) for k, v in metrics.items()]
    writer.add_summary(tf1.Summary(value=values), step)
    writer.flush()


def _heldout_batches(heldout: EncodedSentences, vocab, model_config, config, corruption,
                     batch_size: int = 256) -> List[Dict[str, np.ndarray]]:
    """Fixed held-out batches (one corruption draw, seeded) so every evaluation is comparable."""
    maker = BatchMaker(heldout, vocab, model_config, config, corruption)
    order = np.argsort(heldout.lengths, kind="stable")
    out = []
    for i, start in enumerate(range(0, len(order), batch_size)):
        rng = np.random.default_rng([config.seed, 99991, i])
        out.append(maker.make(order[start:start + batch_size], rng))
    return out


def evaluate(sess, model, inputs, batches) -> Dict[str, float]:
    """Held-out metrics: sentence accuracy, pairwise accuracy, per-objective losses."""
    good_scores, bad_scores, losses = [], [], {k: [] for k in model.losses}
    token_hits = []
    for batch in batches:
        feed = {inputs[k]: v for k, v in batch.items()}
        fetch = {"losses": model.losses}
        if model.sentence_logits is not None:
            fetch["logits"] = model.sentence_logits
        if model.token_logits is not None:
            fetch["tokens"] = model.token_logits
        out = sess.run(fetch, feed)
        for k, v in out["losses"].items():
            losses[k].append(v)
        n = len(batch["good"])
        if "logits" in out:
            good_scores.append(out["logits"][:n])
            bad_scores.append(out["logits"][n:])
        if "tokens" in out:
            bad_tokens = out["tokens"][n:]
            changed = batch["changed"]
            valid = batch["bad"] > 0
            # a replaced position scored below every original position of its sentence
            for row in range(n):
                if changed[row].any():
                    pos, neg = bad_tokens[row][changed[row]], bad_tokens[row][valid[row] & ~changed[row]]
                    if neg.size:
                        token_hits.append(float(np.mean(pos.min() > neg)))
    metrics: Dict[str, float] = {}
    if good_scores:
        g, b = np.concatenate(good_scores), np.concatenate(bad_scores)
        metrics["accuracy"] = float((np.mean(g > 0) + np.mean(b <= 0)) / 2)
        metrics["pairwise_accuracy"] = float(np.mean(g > b))
        metrics["good_recall"] = float(np.mean(g > 0))
    if token_hits:
        metrics["token_top1"] = float(np.mean(token_hits))
    for k, v in losses.items():
        metrics[f"{k}_loss"] = float(np.mean(v))
    return {k: round(v, 4) for k, v in metrics.items()}


def _pooled_on(sess, model, inputs, batches) -> np.ndarray:
    pooled = []
    for batch in batches:
        feed = {inputs[k]: v for k, v in batch.items()}
        n = len(batch["good"])
        pooled.append(sess.run(model.encoder.pooled, feed)[:n])
    return np.concatenate(pooled)


def _probe_sets(maker: BatchMaker, heldout_batches):
    rng = np.random.default_rng([maker.config.seed, 4242])
    n = min(len(maker.data), 20000)
    index = rng.choice(len(maker.data), size=n, replace=False)
    ids, lengths = maker.data.batch(index, maker.model_config.max_length)
    corrupted = maker.corruptor.corrupt(ids, lengths, rng)
    width = max(max(b["good"].shape[1] for b in heldout_batches), ids.shape[1])

    def pad(a):
        return np.pad(a, ((0, 0), (0, width - a.shape[1])))

    held_good = np.concatenate([pad(b["good"]) for b in heldout_batches])
    held_bad = np.concatenate([pad(b["bad"]) for b in heldout_batches])
    return pad(ids[corrupted.ok]), pad(corrupted.bad[corrupted.ok]), held_good, held_bad


def _performance(model_config, config, train: EncodedSentences, tokens_per_second: float,
                 mean_pairs: float, log):
    """Model FLOP/s from TF's profiler at the mean batch shape, over the measured peak."""
    try:
        mean_len = float(np.minimum(train.lengths, model_config.max_length).mean())
        # batches are length-bucketed: padded width ~ mean length
        length = max(int(round(mean_len)), 1)
        pairs = int(round(mean_pairs))  # context pairs per step, as measured in the run
        flops = profile_step_flops(model_config, config, config.batch_size, length, pairs)
        peak = matmul_peak_gflops()
        tokens_per_step = 2 * config.batch_size * mean_len
        model_gflops = flops["step_flops"] * tokens_per_second / tokens_per_step / 1e9
        mfu = model_gflops / peak
        log(f"speed: {tokens_per_second:,.0f} tokens/s, model {model_gflops:.1f} GFLOP/s "
            f"(TF profiler, forward+backward), matmul peak {peak:.0f} GFLOP/s, utilisation {mfu:.1%}")
        return {"step_flops": flops["step_flops"], "forward_flops": flops["forward_flops"],
                "model_gflops": round(model_gflops, 2), "peak_gflops": round(peak, 1),
                "mfu": round(mfu, 4)}
    except Exception as e:  # measuring must never lose a finished run
        log(f"speed: could not profile FLOPs ({type(e).__name__}: {e})")
        return {}
