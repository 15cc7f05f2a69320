"""The `corrupt` command's pairs file: one good/bad pair a corpus sentence, as JSON Lines.

`write_pairs` streams a corpus (`corpus.iter_resolved_texts`), keeps the word counts (they grow
with the vocabulary, not the corpus), spools the sentences as ids to disk, then corrupts them
in batches (`corruption.Corruptor`) and writes the lines: with the compiled `format_pairs`
(auxpretrain/data/cspeedups.c) when it is built, else with C-level string maps (`_python_lines`).
On a large local corpus the first pass reads and splits in a child process (`forked`) while
this one encodes; the second formats and writes each batch in a thread while this one corrupts
the next.

This module must not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterable, List, Optional

import numpy as np

from auxpretrain.config import CorpusConfig, CorruptionConfig
from auxpretrain.data.corpus import CorpusStats, Source, iter_resolved_texts, resolve
from auxpretrain.data.corruption import OPS, Corruptor
from auxpretrain.data.forked import ForkedItems, can_fork, fork_pays
from auxpretrain.data.speedups import compiled
from auxpretrain.data.text import SentenceSplitter, Tokenizer, WordIds
from auxpretrain.data.vocab import Vocabulary
from auxpretrain.errors import InputError
from auxpretrain.files import temporary_name

# The pairs' sampling vocabulary keeps every word seen min_count times (no size cap, unlike a
# pretraining vocabulary): `corrupt` draws replacements from all of them.
SAMPLING_CORPUS = CorpusConfig(max_vocab=None)


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


def write_pairs(specs: Iterable[str], out_path: str, config: Optional[CorruptionConfig] = None,
                seed: int = 0, corpus: CorpusConfig = SAMPLING_CORPUS, split: bool = True,
                limit: Optional[int] = None, batch_size: int = 8192,
                parallel: Optional[bool] = None) -> PairsReport:
    """Writes one good/bad pair per corpus sentence to `out_path` (JSON Lines), atomically.

    Each line: {"good": str, "bad": str, "op": "replace"|"swap", "positions": [int, ...]},
    good and bad being tokens joined by single spaces (the tokens never hold spaces, so
    `.split(" ")` gives them back) and positions the changed token indexes (swap: pairs).
    The first pass streams the corpus once: it splits (`split`: Punkt, trained on the first
    `corpus.split_sample_chars` characters only if a line needs it), tokenizes (lowercased if
    `corpus.lowercase`; text in `corpus.text_column` of structured files), counts words and
    spools the sentences as word ids to an anonymous temporary file next to `out_path`;
    the second pass reads that spool in batches, corrupts them (`Corruptor`, seeded by
    `seed`) and writes the pairs. Words seen fewer than `corpus.min_count` times (and beyond
    `corpus.max_vocab`) are <unk> for the corruptor only: good keeps every original word; bad's replacement words are drawn from
    the vocabulary. `limit` keeps the first `limit` sentences. A failure leaves no file.
    `parallel`: read and split in a child process while this one encodes (`forked`; the same
    pairs): None where it pays (Linux, two processors, one thread running, a local corpus of
    1 MB or more, no `limit`), True wherever it can (Linux, no `limit`), False never.
    """
    start = time.perf_counter()
    sources = resolve(specs)
    path = _check_output(out_path, sources)
    config = config if config is not None else CorruptionConfig()
    tokenizer = Tokenizer(lowercase=corpus.lowercase)
    text_column = corpus.text_column
    if limit is not None and limit < 1:
        raise InputError(f"limit must be >= 1, got {limit}")
    stats = CorpusStats()
    splitter = None
    if split:
        splitter = SentenceSplitter.deferred(
            lambda: iter_resolved_texts(sources, text_column, CorpusStats()), max_chars=corpus.split_sample_chars,
            train=corpus.train_splitter)
    directory = os.path.dirname(path)

    with tempfile.TemporaryFile(dir=directory, prefix=".spool-ids-") as spool_ids, \
            tempfile.TemporaryFile(dir=directory, prefix=".spool-lengths-") as spool_lengths:
        # pass 1: sentences -> running word ids (first-seen order) on disk, and their counts
        encoder = WordIds(tokenizer)
        counts = np.zeros(0, np.int64)
        total = 0

        def sentence_batches(size=batch_size):
            texts = iter_resolved_texts(sources, text_column, stats)
            split_line = splitter.split if splitter is not None else None
            while limit is None or total < limit:
                lines = list(itertools.islice(texts, size if limit is None else min(size, limit - total)))
                if not lines:
                    break
                yield list(itertools.chain.from_iterable(map(split_line, lines))) if split_line else lines
            texts.close()

        forked = None
        if parallel is not False and limit is None and can_fork() and \
                (parallel or (fork_pays() and _worth_a_process(sources, split))):
            # reading and splitting (Python) in a child process while this one encodes (compiled)
            # (smaller batches: the two processes wait less for each other at the start and the end)
            try:
                forked = ForkedItems(lambda: sentence_batches(FORKED_BATCH_LINES),
                                     lambda: (stats, _describe(splitter)))
            except OSError:  # no process to be had (a process or memory limit): all of it here
                forked = None
        for lines in forked if forked is not None else sentence_batches():
            ids, lengths = encoder.encode(lines)
            if limit is not None and np.count_nonzero(lengths) > limit - total:
                cut = np.flatnonzero(lengths)[limit - total - 1] + 1
                lengths = lengths[:cut]
                ids = ids[:int(lengths.sum())]
            lengths = lengths[lengths > 0]
            total += lengths.size
            counts = _spool(ids, lengths, len(encoder.index), counts, spool_ids, spool_lengths)
        splitter_text = _describe(splitter)
        if forked is not None:  # what the child counted and which splitter it loaded
            child_stats, splitter_text = forked.final
            stats.__dict__.update(child_stats.to_dict())
        stats.sentences = total
        stats.tokens = int(counts.sum())
        if total == 0:
            raise InputError(f"{', '.join(s.spec for s in sources)}: no sentence found")

        words = encoder.words  # running id -> word
        vocab = Vocabulary.from_arrays(words, counts, min_count=corpus.min_count, max_size=corpus.max_vocab)
        corruptor = Corruptor(vocab.counts, config)
        to_vocab = vocab.ids_of(words)
        to_word = np.full(len(vocab), -1, np.int64)
        to_word[2:] = [encoder.index[t] for t in vocab.tokens[2:]]
        escaped = _json_bodies(words)  # each word's JSON text, escaped once
        escaped = compiled.WordTexts(escaped) if compiled is not None else np.array(escaped, dtype=object)

        # pass 2: spool -> corrupted batches -> JSON lines
        report = PairsReport(path=out_path, stats=stats, vocab_size=len(vocab),
                             rare_words=len(words) - (len(vocab) - 2))
        by_op = {op: 0 for op in OPS}
        skipped: Dict[str, int] = {}
        rng = np.random.default_rng(seed)
        spool_ids.seek(0)
        spool_lengths.seek(0)
        tmp = temporary_name(path)
        try:
            with open(tmp, "xb") as out, ThreadPoolExecutor(1) as writer:
                # a batch is formatted and written in a thread while this one corrupts the next
                # (the compiled formatter runs without the GIL); the batches are written in turn
                written = None
                while True:
                    lengths_batch = np.frombuffer(spool_lengths.read(4 * batch_size), dtype=np.int32)
                    if lengths_batch.size == 0:
                        break
                    run_ids = np.frombuffer(spool_ids.read(4 * int(lengths_batch.sum())), dtype=np.int32)
                    lines, ops, skips = _pair_lines(run_ids, lengths_batch, to_vocab, to_word, escaped,
                                                    corruptor, rng)
                    if written is not None:
                        written.result()
                    written = writer.submit(lambda lines=lines: out.write(lines()))
                    for op, n in ops.items():
                        by_op[op] += n
                    for reason, n in skips.items():
                        skipped[reason] = skipped.get(reason, 0) + n
                if written is not None:
                    written.result()
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
    report.splitter = splitter_text
    report.seconds = time.perf_counter() - start
    return report


def _describe(splitter: Optional[SentenceSplitter]) -> str:
    """The report's line on the sentence splitter."""
    if splitter is None:
        return "off"
    return f"{splitter.source} ({splitter.seconds:.1f} s)" if splitter.loaded else splitter.source


# Reading and splitting go to a child process (`forked`) for corpora of at least this many bytes
# of local files: below, forking and pickling the batches cost more than they save.
MIN_FORKED_BYTES = 1 << 20
FORKED_BATCH_LINES = 2048  # lines the child reads and splits at a time


def _worth_a_process(sources: List[Source], split: bool) -> bool:
    """Whether reading and splitting `sources` in a child process pays: sentences to split, in
    local files (a hub dataset streams through its library's threads) of MIN_FORKED_BYTES."""
    if not split or any(source.kind == "hub" for source in sources):
        return False
    try:
        return sum(os.path.getsize(source.path) for source in sources) >= MIN_FORKED_BYTES
    except OSError:
        return False


def _json_bodies(words: List[str]) -> List[str]:
    """JSON string body (no quotes) of each word; one encoder call when no word holds a space."""
    escape = json.encoder.encode_basestring
    joined = " ".join(words)
    if joined.count(" ") == len(words) - 1:
        return escape(joined)[1:-1].split(" ") if words else []
    return [escape(w)[1:-1] for w in words]


def _spool(ids, lengths, n_words, counts, spool_ids, spool_lengths):
    """Writes a batch of sentences (ids: their running word ids in turn; lengths: their
    non-zero token counts) to the spool; returns the counts, updated and grown to `n_words`."""
    spool_ids.write(np.asarray(ids, dtype=np.int32).tobytes())
    spool_lengths.write(np.asarray(lengths, dtype=np.int32).tobytes())
    batch_counts = np.bincount(ids, minlength=n_words)
    if counts.size < batch_counts.size:
        counts = np.concatenate([counts, np.zeros(batch_counts.size - counts.size, np.int64)])
    counts += batch_counts
    return counts


_PAIR_LINE = '{{"good": "{}", "bad": "{}", "op": "{}", "positions": {}}}\n'


def _python_lines(escaped, good, bad, starts, stops, ops, positions, widths, op_names) -> bytes:
    """`cspeedups.format_pairs` in Python (the same bytes): one JSON line per row r, its good and
    bad words good/bad[starts[r]:stops[r]] (running ids; escaped: object [words], their JSON
    text), its op op_names[ops[r]] and positions[r, :widths[ops[r]]]."""
    position_text = np.empty(ops.size, object)
    for code, width in enumerate(widths):
        rows = np.flatnonzero(ops == code)
        if rows.size:
            template = "[" + ", ".join(["{}"] * width) + "]"
            position_text[rows] = list(itertools.starmap(template.format, positions[rows, :width].tolist()))
    # C-level maps, no Python loop per sentence
    good, bad = escaped[good].tolist(), escaped[bad].tolist()
    slices = list(map(slice, starts.tolist(), stops.tolist()))
    return "".join(map(_PAIR_LINE.format, map(" ".join, map(good.__getitem__, slices)),
                       map(" ".join, map(bad.__getitem__, slices)), np.array(op_names, dtype=object)[ops].tolist(),
                       position_text.tolist())).encode("utf-8")


def _pair_lines(run_ids, lengths, to_vocab, to_word, escaped, corruptor, rng):
    """JSON lines of one batch: (a function that makes their UTF-8 bytes, {op: pairs}, {reason: skipped}).

    run_ids: int32 [N], the batch's words (running ids), sentence after sentence;
    lengths: int32 [B]; to_vocab: running id -> vocabulary id; to_word: vocabulary id ->
    running id; escaped: each word's JSON-escaped text, as `cspeedups.WordTexts` (written by
    the compiled path) or an object array (`_python_lines`).
    """
    batch = lengths.size
    lengths = lengths.astype(np.int64)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    ids = np.zeros((batch, max(int(lengths.max()), 1)), np.int32)
    ids[np.arange(ids.shape[1]) < lengths[:, None]] = to_vocab[run_ids]  # row after row: the sentences in turn
    result = corruptor.corrupt(ids, lengths, rng)

    # bad = good with the changed positions rewritten (running word ids)
    bad = run_ids.copy()
    done = np.flatnonzero(result.ok)
    widths = (corruptor.edits, 2 * corruptor.edits)  # positions listed by replace, by swap
    for code, width in enumerate(widths):
        rows_op = done[result.op[done] == code]
        if not rows_op.size:
            continue
        pos = result.positions[rows_op, :width]
        at = starts[rows_op, None] + pos
        if code == 0:  # replace: the vocabulary word of the new id
            bad[at] = to_word[result.bad[rows_op[:, None], pos]]
        else:  # swap: the original words of the two positions
            left, right = at[:, 0::2], at[:, 1::2]
            bad[left], bad[right] = run_ids[right], run_ids[left]
    write = _python_lines if isinstance(escaped, np.ndarray) else compiled.format_pairs
    args = (escaped, run_ids, bad, starts[done], ends[done], result.op[done].astype(np.int64),
            result.positions[done].astype(np.int64), widths, OPS)
    counts = np.bincount(result.op[done], minlength=len(OPS)).tolist()
    return functools.partial(write, *args), dict(zip(OPS, counts)), result.skipped
