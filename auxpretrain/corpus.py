"""Streaming corpus readers: text lines from files, globs and hub datasets.

A corpus spec is one of:
- a plain-text file or glob (`.txt`, any unknown extension, or that compressed as `.gz`,
  `.bz2`, `.xz`): one paragraph or sentence a line, read by a fast line reader; bytes that
  are not UTF-8 are replaced by U+FFFD and counted in `CorpusStats.decode_errors`;
- a JSON Lines (`.jsonl`, `.json`, `.ndjson`), CSV (`.csv`, `.tsv`) or Parquet (`.parquet`)
  file or glob, compressed or not, read through `datasets.load_dataset(..., streaming=True)`;
  the text is in `text_column` (default: a column named "text");
- `hf:NAME[:CONFIG[:SPLIT]]`, a dataset on the Hugging Face hub (needs a network), split
  "train" by default, e.g. `hf:wikitext:wikitext-103-raw-v1`.

The readers hold one line or row at a time: memory does not grow with the corpus.
Bad input (missing, empty, binary, unreadable files, a wrong column, an unreachable hub)
raises `InputError` with one line naming the file.

`write_pairs` streams a corpus into a good/bad pairs file (`auxpretrain corrupt`); it keeps
the word counts (they grow with the vocabulary, not the corpus) and spools ids to disk.

This module must not import TensorFlow (nor `datasets` unless a structured or hub spec is read).
"""

from __future__ import annotations

import bz2
import dataclasses
import glob
import gzip
import itertools
import json
import lzma
import os
import tempfile
import time
from collections import defaultdict
from typing import Callable, Dict, Iterable, Iterator, List, Optional

import numpy as np

from auxpretrain.config import CorruptionConfig
from auxpretrain.corruption import OPS, Corruptor
from auxpretrain.errors import InputError
from auxpretrain.text import SentenceSplitter, Tokenizer
from auxpretrain.vocab import Vocabulary

COMPRESSIONS: Dict[str, Callable] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
STRUCTURED = {".jsonl": "json", ".json": "json", ".ndjson": "json", ".csv": "csv", ".tsv": "csv",
              ".parquet": "parquet"}
HUB_PREFIX = "hf:"
DEFAULT_TEXT_COLUMN = "text"
_HEAD_BYTES = 8192  # bytes checked for NUL / undecodable content
_MAX_BAD_FRACTION = 0.3  # more U+FFFD than this in the head: not text
_REPLACEMENT = "\ufffd"
_REPLACEMENT_BYTES = _REPLACEMENT.encode("utf-8")


@dataclasses.dataclass
class CorpusStats:
    """Counters filled while a corpus streams by."""

    files: int = 0  # files (or hub datasets) opened
    lines: int = 0  # lines or rows read, blank ones included
    empty_lines: int = 0  # blank lines (or rows with no text)
    sentences: int = 0  # non-empty sentences yielded by iter_sentences
    tokens: int = 0  # tokens in those sentences
    decode_errors: int = 0  # characters replaced by U+FFFD while decoding (datasets inputs: every U+FFFD)

    def to_dict(self) -> Dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Source:
    """One resolved corpus input."""

    spec: str  # what the user wrote (a path, a glob or hf:...)
    kind: str  # "text", "json", "csv", "parquet" or "hub"
    path: str  # the file; for "hub", the dataset name
    compression: Optional[str] = None  # ".gz", ".bz2", ".xz" or None
    config: Optional[str] = None  # hub dataset config
    split: str = "train"  # hub dataset split


def _classify(path: str):
    """(kind, compression) from a file name."""
    root, ext = os.path.splitext(path.lower())
    compression = None
    if ext in COMPRESSIONS:
        compression = ext
        root, ext = os.path.splitext(root)
    return STRUCTURED.get(ext, "text"), compression


def resolve(specs: Iterable[str]) -> List[Source]:
    """Expands globs and checks every input exists; InputError on the first bad spec."""
    if isinstance(specs, str):
        specs = [specs]
    sources: List[Source] = []
    for spec in specs:
        if spec.startswith(HUB_PREFIX):
            parts = spec[len(HUB_PREFIX):].split(":")
            if not parts[0] or len(parts) > 3 or not all(parts):
                raise InputError(f"{spec}: expected hf:NAME[:CONFIG[:SPLIT]], e.g. hf:wikitext:wikitext-103-raw-v1")
            sources.append(Source(spec, "hub", parts[0], None, parts[1] if len(parts) > 1 else None,
                                  parts[2] if len(parts) > 2 else "train"))
            continue
        if glob.has_magic(spec):
            paths = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
            if not paths:
                raise InputError(f"{spec}: no file matches this pattern")
        else:
            if os.path.isdir(spec):
                example = os.path.join(spec, "*.txt")
                raise InputError(f"{spec}: is a directory; pass files or a glob such as '{example}'")
            if not os.path.exists(spec):
                raise InputError(f"{spec}: no such file")
            paths = [spec]
        for path in paths:
            kind, compression = _classify(path)
            sources.append(Source(spec, kind, path, compression))
    if not sources:
        raise InputError("no corpus given: pass one or more files, globs or hf:NAME datasets")
    return sources


def iter_texts(specs: Iterable[str], text_column: Optional[str] = None,
               stats: Optional[CorpusStats] = None) -> Iterator[str]:
    """Streams the non-blank lines (stripped) of every input, in order.

    Specs are resolved (and checked) when this is called, not at the first `next`.
    text_column: column holding the text in JSON Lines / CSV / Parquet / hub inputs.
    stats: a CorpusStats to update (files, lines, empty_lines, decode_errors).
    """
    sources = resolve(specs)
    return _iter_sources(sources, text_column, stats if stats is not None else CorpusStats())


def iter_sentences(specs: Iterable[str], tokenizer, splitter=None, text_column: Optional[str] = None,
                   stats: Optional[CorpusStats] = None) -> Iterator[List[str]]:
    """Streams token lists, one per sentence (lines split by `splitter` if given, else one
    sentence a line); sentences with no token are dropped."""
    stats = stats if stats is not None else CorpusStats()
    texts = iter_texts(specs, text_column, stats)
    return _iter_sentences(texts, tokenizer.tokenize, splitter, stats)


def _iter_sentences(texts, tokenize, splitter, stats) -> Iterator[List[str]]:
    """Generator behind iter_sentences."""
    split = splitter.split if splitter is not None else None
    for text in texts:
        for sentence in (split(text) if split else (text,)):
            tokens = tokenize(sentence)
            if tokens:
                stats.sentences += 1
                stats.tokens += len(tokens)
                yield tokens


def _iter_sources(sources: List[Source], text_column, stats: CorpusStats) -> Iterator[str]:
    """Generator behind iter_texts."""
    for source in sources:
        stats.files += 1
        if source.kind == "text":
            reader = _iter_text_file(source, stats)
        elif source.kind == "hub":
            reader = _iter_hub(source, text_column, stats)
        else:
            reader = _iter_structured_file(source, text_column, stats)
        yield from reader


# ---------------------------------------------------------------------- plain text

def _open_binary(source: Source):
    """Binary file object of a (possibly compressed) file; InputError if it cannot be read."""
    try:
        if os.path.getsize(source.path) == 0:
            raise InputError(f"{source.path}: empty file (0 bytes)")
        opener = COMPRESSIONS.get(source.compression)
        return opener(source.path, "rb") if opener else open(source.path, "rb", buffering=1 << 20)
    except OSError as e:
        raise InputError(f"{source.path}: cannot read ({e.strerror or e})") from None


def _read_error(source: Source, error: Exception) -> InputError:
    """InputError for a failure while reading (bad or truncated compressed data, I/O error)."""
    if isinstance(error, EOFError):
        what = f"truncated {source.compression[1:]} data"
    elif source.compression and isinstance(error, (OSError, lzma.LZMAError)) and not getattr(error, "errno", None):
        what = f"not valid {source.compression[1:]} data ({error})"
    else:
        what = f"cannot read ({getattr(error, 'strerror', None) or error})"
    return InputError(f"{source.path}: {what}")


def _check_head(source: Source, head: bytes) -> None:
    """InputError if the first bytes look binary (NUL bytes, or mostly not UTF-8)."""
    if b"\x00" in head:
        raise InputError(f"{source.path}: looks binary (NUL bytes in the first 8 KB); "
                         "pass UTF-8 text (UTF-16 files must be converted)")
    text = head.decode("utf-8", "replace")
    bad = text.count(_REPLACEMENT) - head.count(_REPLACEMENT_BYTES)
    if text and bad > _MAX_BAD_FRACTION * len(text):
        raise InputError(f"{source.path}: mostly not UTF-8 text ({bad} of the first {len(text)} "
                         "characters cannot be decoded); pass UTF-8 text")


def _iter_text_file(source: Source, stats: CorpusStats) -> Iterator[str]:
    """Non-blank stripped lines of a plain-text file."""
    f = _open_binary(source)
    yielded = False
    with f:
        try:
            _check_head(source, f.read(_HEAD_BYTES))
            f.seek(0)
            first = True
            for raw in f:
                stats.lines += 1
                line = raw.decode("utf-8", "replace")
                if _REPLACEMENT in line:
                    stats.decode_errors += line.count(_REPLACEMENT) - raw.count(_REPLACEMENT_BYTES)
                if first:
                    line = line.lstrip("\ufeff")
                    first = False
                line = line.strip()
                if not line:
                    stats.empty_lines += 1
                    continue
                yielded = True
                yield line
        except InputError:
            raise
        except (OSError, EOFError, lzma.LZMAError) as e:
            raise _read_error(source, e) from None
    if not yielded:
        raise InputError(f"{source.path}: empty (no text line)")


# ---------------------------------------------------------------------- datasets

def _root_message(error: BaseException) -> str:
    """One line from the innermost cause of `error`."""
    seen = set()
    while (error.__cause__ or error.__context__) is not None and id(error) not in seen:
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    message = str(error).strip().splitlines()
    text = message[0] if message else ""
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text[:300]


def _iter_rows(where: str, rows: Iterable[dict], text_column: Optional[str],
               stats: CorpusStats) -> Iterator[str]:
    """Non-blank lines of the text column of `rows` (dicts)."""
    column = text_column
    yielded = False
    for row in rows:
        if column is None or column not in row:
            names = ", ".join(row) or "(none)"
            if column is not None:
                raise InputError(f"{where}: no column {column!r}; columns: {names}")
            if DEFAULT_TEXT_COLUMN not in row:
                raise InputError(f"{where}: choose the text column with --text-column; columns: {names}")
            column = DEFAULT_TEXT_COLUMN
        value = row[column]
        if value is None:
            stats.lines += 1
            stats.empty_lines += 1
            continue
        if not isinstance(value, str):
            raise InputError(f"{where}: column {column!r} holds {type(value).__name__} values, not text; "
                             f"columns: {', '.join(row)}")
        for line in value.split("\n"):
            stats.lines += 1
            line = line.strip()
            if not line:
                stats.empty_lines += 1
                continue
            if _REPLACEMENT in line:
                stats.decode_errors += line.count(_REPLACEMENT)
            yielded = True
            yield line
    if not yielded:
        raise InputError(f"{where}: empty (no text in column {column or DEFAULT_TEXT_COLUMN!r})")


def _iter_structured_file(source: Source, text_column: Optional[str], stats: CorpusStats) -> Iterator[str]:
    """Text lines of a JSON Lines / CSV / Parquet file, via datasets streaming."""
    if source.kind != "parquet":  # parquet is binary by design; the others must be text
        f = _open_binary(source)
        with f:
            try:
                _check_head(source, f.read(_HEAD_BYTES))
            except (OSError, EOFError, lzma.LZMAError) as e:
                raise _read_error(source, e) from None
    else:
        _open_binary(source).close()
    import datasets

    kwargs = {}
    if source.kind in ("json", "csv"):
        kwargs["encoding_errors"] = "replace"
    if source.path.lower().endswith((".tsv", ".tsv.gz", ".tsv.bz2", ".tsv.xz")):
        kwargs["sep"] = "\t"
    name = {"json": "JSON Lines", "csv": "CSV", "parquet": "Parquet"}[source.kind]
    try:
        dataset = datasets.load_dataset(source.kind, data_files=[os.path.abspath(source.path)],
                                        split="train", streaming=True, **kwargs)
        yield from _iter_rows(source.path, iter(dataset), text_column, stats)
    except InputError:
        raise
    except Exception as e:  # datasets/pyarrow/pandas raise many types for a bad file
        raise InputError(f"{source.path}: cannot read as {name} ({_root_message(e)})") from None


def _hub_reachable(timeout: float = 5.0) -> bool:
    """True if the hub's host accepts a TCP connection (or a proxy / offline cache is set up)."""
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy",
                                        "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return True  # let datasets decide: a proxy, or cached data
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _hub_error(source: Source, error: Exception) -> InputError:
    """InputError for a failed hub load: unreachable, unknown dataset or config."""
    name = type(error).__name__
    if name in ("DatasetNotFoundError", "RepositoryNotFoundError"):
        return InputError(f"{source.spec}: dataset {source.path!r} not found on the hub; check the name")
    if isinstance(error, (ConnectionError, TimeoutError)) or "LocalEntryNotFoundError" in str(error):
        return _offline(source)
    return InputError(f"{source.spec}: cannot load from the hub ({_root_message(error)})")


def _offline(source: Source) -> InputError:
    return InputError(f"{source.spec}: cannot reach the dataset hub (offline?); "
                      "download the data and pass local files instead")


def _iter_hub(source: Source, text_column: Optional[str], stats: CorpusStats) -> Iterator[str]:
    """Text lines of a hub dataset split, streamed."""
    if not _hub_reachable():
        raise _offline(source)
    import datasets

    try:
        dataset = datasets.load_dataset(source.path, source.config, split=source.split, streaming=True)
        rows = iter(dataset)
        first = next(rows, None)
    except Exception as e:
        raise _hub_error(source, e) from None

    def all_rows():
        if first is not None:
            yield first
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except Exception as e:
                raise _hub_error(source, e) from None
            yield row

    yield from _iter_rows(source.spec, all_rows(), text_column, stats)


# ---------------------------------------------------------------------- good/bad pairs file

@dataclasses.dataclass
class PairsReport:
    """What `write_pairs` did."""

    path: str  # the pairs file written
    stats: CorpusStats  # corpus counters (first pass)
    pairs: int = 0  # pairs written
    by_op: Dict[str, int] = dataclasses.field(default_factory=dict)  # op name -> pairs
    skipped: Dict[str, int] = dataclasses.field(default_factory=dict)  # reason -> sentences
    vocab_size: int = 0  # sampling vocabulary, specials included
    rare_words: int = 0  # distinct words below min_count (sampled as <unk>)
    splitter: str = "off"  # how sentences were split: "off", "not needed", or Punkt's source and time
    seconds: float = 0.0  # wall time of the whole call


def _check_output(out_path: str, sources: List[Source]) -> str:
    """Absolute output path; InputError if it cannot be written or would overwrite an input."""
    path = os.path.abspath(out_path)
    directory = os.path.dirname(path)
    if os.path.isdir(path):
        raise InputError(f"{out_path}: is a directory; --out needs a file name")
    if not os.path.isdir(directory):
        raise InputError(f"{out_path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise InputError(f"{out_path}: directory {directory} is not writable")
    for source in sources:
        if source.kind != "hub" and os.path.exists(path) and os.path.samefile(path, source.path):
            raise InputError(f"{out_path}: would overwrite the corpus file {source.path}; choose another --out")
    return path


def write_pairs(specs: Iterable[str], out_path: str, config=None, seed: int = 0, tokenizer=None,
                split: bool = True, text_column: Optional[str] = None, min_count: int = 2,
                max_vocab: Optional[int] = None, limit: Optional[int] = None,
                batch_size: int = 8192, split_sample_chars: int = 2_000_000) -> PairsReport:
    """Writes one good/bad pair per corpus sentence to `out_path` (JSON Lines), atomically.

    Each line: {"good": str, "bad": str, "op": "replace"|"swap", "positions": [int, ...]},
    good and bad being tokens joined by single spaces (the tokens never hold spaces, so
    `.split(" ")` gives them back) and positions the changed token indexes (swap: pairs).
    The first pass streams the corpus once: it splits (`split`: Punkt, trained on the first
    `split_sample_chars` characters only if a line needs it), tokenizes, counts words and
    spools the sentences as word ids to an anonymous temporary file next to `out_path`;
    the second pass reads that spool in batches, corrupts them (`Corruptor`, seeded by
    `seed`) and writes the pairs. Words seen fewer than `min_count` times are <unk> for the
    corruptor only: good keeps every original word; bad's replacement words are drawn from
    the vocabulary. `limit` keeps the first `limit` sentences. A failure leaves no file.
    """
    start = time.perf_counter()
    sources = resolve(specs)
    path = _check_output(out_path, sources)
    config = config if config is not None else CorruptionConfig()
    tokenizer = tokenizer if tokenizer is not None else Tokenizer()
    if limit is not None and limit < 1:
        raise InputError(f"limit must be >= 1, got {limit}")
    stats = CorpusStats()
    splitter = None
    if split:
        splitter = SentenceSplitter.deferred(
            lambda: _iter_sources(sources, text_column, CorpusStats()), max_chars=split_sample_chars)
    directory = os.path.dirname(path)

    with tempfile.TemporaryFile(dir=directory, prefix=".spool-ids-") as spool_ids, \
            tempfile.TemporaryFile(dir=directory, prefix=".spool-lengths-") as spool_lengths:
        # pass 1: sentences -> running word ids (first-seen order) on disk, and their counts
        index: defaultdict = defaultdict()
        index.default_factory = index.__len__  # an unseen word gets the next id
        counts = np.zeros(0, np.int64)
        texts = _iter_sources(sources, text_column, stats)
        split_line = splitter.split if splitter is not None else None
        total = 0
        while limit is None or total < limit:
            lines = list(itertools.islice(texts, batch_size if limit is None else min(batch_size, limit - total)))
            if not lines:
                break
            if split_line is not None:
                lines = list(itertools.chain.from_iterable(map(split_line, lines)))
            token_lists = tokenizer.tokenize_batch(lines)
            lengths = np.fromiter(map(len, token_lists), np.int64, len(token_lists))
            if limit is not None and np.count_nonzero(lengths) > limit - total:
                cut = np.flatnonzero(lengths)[limit - total - 1] + 1
                token_lists, lengths = token_lists[:cut], lengths[:cut]
            lengths = lengths[lengths > 0]
            total += lengths.size
            stats.sentences += lengths.size
            stats.tokens += int(lengths.sum())
            counts = _spool(token_lists, lengths, index, counts, spool_ids, spool_lengths)
        texts.close()
        if total == 0:
            raise InputError(f"{', '.join(s.spec for s in sources)}: no sentence found")

        words = list(index)  # running id -> word
        vocab = Vocabulary.from_arrays(words, counts, min_count=min_count, max_size=max_vocab)
        corruptor = Corruptor(vocab.counts, config)
        to_vocab = vocab.ids_of(words)
        to_word = np.full(len(vocab), -1, np.int64)
        to_word[2:] = [index[t] for t in vocab.tokens[2:]]
        escaped = np.array(_json_bodies(words), dtype=object)  # each word's JSON text, escaped once

        # pass 2: spool -> corrupted batches -> JSON lines
        report = PairsReport(path=out_path, stats=stats, vocab_size=len(vocab),
                             rare_words=len(words) - (len(vocab) - 2))
        by_op = {op: 0 for op in OPS}
        skipped: Dict[str, int] = {}
        rng = np.random.default_rng(seed)
        spool_ids.seek(0)
        spool_lengths.seek(0)
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            with open(tmp, "x", encoding="utf-8", newline="\n") as out:
                while True:
                    lengths_batch = np.frombuffer(spool_lengths.read(4 * batch_size), dtype=np.int32)
                    if lengths_batch.size == 0:
                        break
                    run_ids = np.frombuffer(spool_ids.read(4 * int(lengths_batch.sum())), dtype=np.int32)
                    lines, ops, skips = _pair_lines(run_ids, lengths_batch, to_vocab, to_word, escaped,
                                                    corruptor, rng)
                    out.write(lines)
                    for op, n in ops.items():
                        by_op[op] += n
                    for reason, n in skips.items():
                        skipped[reason] = skipped.get(reason, 0) + n
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except OSError as e:
            raise InputError(f"{out_path}: cannot write ({e.strerror or e})") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    report.by_op = {op: n for op, n in by_op.items() if n}
    report.pairs = sum(by_op.values())
    report.skipped = skipped
    if splitter is None:
        report.splitter = "off"
    else:
        report.splitter = f"{splitter.source} ({splitter.seconds:.1f} s)" if splitter.loaded else splitter.source
    report.seconds = time.perf_counter() - start
    return report


def _json_bodies(words: List[str]) -> List[str]:
    """JSON string body (no quotes) of each word; one encoder call when no word holds a space."""
    escape = json.encoder.encode_basestring
    joined = " ".join(words)
    if joined.count(" ") == len(words) - 1:
        return escape(joined)[1:-1].split(" ") if words else []
    return [escape(w)[1:-1] for w in words]


def _spool(token_lists, lengths, index, counts, spool_ids, spool_lengths):
    """Writes a batch of sentences (lengths: their non-zero token counts) as running ids;
    returns the updated counts."""
    ids = np.fromiter(map(index.__getitem__, itertools.chain.from_iterable(token_lists)),
                      dtype=np.int32, count=int(lengths.sum()))
    spool_ids.write(ids.tobytes())
    spool_lengths.write(np.asarray(lengths, dtype=np.int32).tobytes())
    batch_counts = np.bincount(ids, minlength=len(index))
    if counts.size < batch_counts.size:
        counts = np.concatenate([counts, np.zeros(batch_counts.size - counts.size, np.int64)])
    counts += batch_counts
    return counts


_PAIR_LINE = '{{"good": "{}", "bad": "{}", "op": "{}", "positions": {}}}\n'


def _pair_lines(run_ids, lengths, to_vocab, to_word, escaped, corruptor, rng):
    """JSON lines of one batch: (text, {op: pairs}, {reason: skipped}).

    run_ids: int32 [N], the batch's words (running ids), sentence after sentence;
    lengths: int32 [B]; to_vocab: running id -> vocabulary id; to_word: vocabulary id ->
    running id; escaped: object [words], each word's JSON-escaped text.
    """
    batch = lengths.size
    lengths = lengths.astype(np.int64)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    ids = np.zeros((batch, max(int(lengths.max()), 1)), np.int32)
    rows = np.repeat(np.arange(batch), lengths)
    cols = np.arange(run_ids.size) - np.repeat(starts, lengths)
    ids[rows, cols] = to_vocab[run_ids]
    result = corruptor.corrupt(ids, lengths, rng)

    # bad words = good words with the changed positions rewritten (flat object arrays)
    good = escaped[run_ids]
    bad = good.copy()
    done = np.flatnonzero(result.ok)
    position_text = np.empty(batch, object)
    for code, width in ((0, corruptor.edits), (1, 2 * corruptor.edits)):
        rows_op = done[result.op[done] == code]
        if not rows_op.size:
            continue
        pos = result.positions[rows_op, :width]
        at = starts[rows_op, None] + pos
        if code == 0:  # replace: the vocabulary word of the new id
            bad[at] = escaped[to_word[result.bad[rows_op[:, None], pos]]]
        else:  # swap: the original words of the two positions
            left, right = at[:, 0::2], at[:, 1::2]
            bad[left], bad[right] = good[right], good[left]
        template = "[" + ", ".join(["{}"] * width) + "]"
        position_text[rows_op] = list(itertools.starmap(template.format, pos.tolist()))
    # one line per ok sentence, built by C-level maps (no Python loop per sentence)
    good, bad = good.tolist(), bad.tolist()
    slices = list(map(slice, starts[done].tolist(), ends[done].tolist()))
    op_text = np.array(OPS, dtype=object)[result.op[done]].tolist()
    text = "".join(map(_PAIR_LINE.format, map(" ".join, map(good.__getitem__, slices)),
                       map(" ".join, map(bad.__getitem__, slices)), op_text, position_text[done].tolist()))
    counts = np.bincount(result.op[done], minlength=len(OPS)).tolist()
    return text, dict(zip(OPS, counts)), result.skipped
