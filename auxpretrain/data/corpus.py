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

This module must not import TensorFlow (nor `datasets` unless a structured or hub spec is read).
"""

from __future__ import annotations

import bz2
import dataclasses
import glob
import gzip
import lzma
import os
from typing import Callable, Dict, Iterable, Iterator, List, Optional

from auxpretrain.errors import InputError
from auxpretrain.files import cause_line

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
    return iter_resolved_texts(sources, text_column, stats if stats is not None else CorpusStats())


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


def iter_resolved_texts(sources: List[Source], text_column: Optional[str], stats: CorpusStats) -> Iterator[str]:
    """The non-blank stripped lines of already resolved `sources` (see `iter_texts`), in order."""
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
        raise InputError(f"{source.path}: cannot read as {name} ({cause_line(e)})") from None


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
    return InputError(f"{source.spec}: cannot load from the hub ({cause_line(error)})")


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
