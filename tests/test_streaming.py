"""Streaming corpus preparation: ids on disk, batches equal to the in-memory encoding, views,
bounded vocabulary counting, reuse and re-encoding of the files in the run directory."""

import collections
import os

import numpy as np
import pytest

from auxpretrain.config import CorruptionConfig, ModelConfig, PretrainConfig
from auxpretrain.errors import InputError
from auxpretrain.data.text import SentenceSplitter, Tokenizer
from auxpretrain.data.vocab import Vocabulary, count_tokens

from conftest import make_tiny_corpus

SEED = 3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("c") / "c.txt"
    make_tiny_corpus(path, lines=170)
    with open(path, "a", encoding="utf-8") as f:  # a few long sentences, to be truncated
        for i in range(7):
            f.write(" ".join(f"word{(i * j) % 41}" for j in range(25 + 3 * i)) + "\n")
    return str(path)


def _prepare(corpus, log=None, **kw):
    from auxpretrain.data.encoded import prepare_corpus

    logs = [] if log is None else log
    kw.setdefault("min_count", 1)
    data = prepare_corpus([corpus], Tokenizer(), kw.pop("min_count"), None, 0.1, 20, SEED,
                          log=logs.append, **kw)
    return data, logs


def _in_memory(corpus, min_count=1):
    """The encoding as it was when everything stayed in memory: (vocab, train, heldout)."""
    from auxpretrain.data.corpus import iter_sentences, iter_texts
    from auxpretrain.data.encoded import EncodedSentences

    splitter = SentenceSplitter.from_sample(iter_texts([corpus]))
    vocab = Vocabulary.build(iter_sentences([corpus], Tokenizer(), splitter), min_count=min_count)
    chunks = [vocab.ids_of(t) for t in iter_sentences([corpus], Tokenizer(), splitter)]
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(np.int64)
    everything = EncodedSentences(np.concatenate(chunks).astype(np.int32), offsets)
    n = len(everything)
    order = np.random.default_rng([SEED, 7]).permutation(n)
    k = int(round(n * 0.1))
    return vocab, everything.subset(np.sort(order[k:])), everything.subset(np.sort(order[:k]))


@pytest.mark.parametrize("whole_file", [True, False])
def test_disk_batches_equal_the_in_memory_encoding(corpus, monkeypatch, whole_file):
    """Batches read from ids.bin (read whole when small, else a `pread` a sentence) equal those
    of the encoding kept in memory."""
    from auxpretrain.pretraining.batches import BatchMaker
    from auxpretrain.data import encoded
    from auxpretrain.data.encoded import DiskSentences

    if not whole_file:
        monkeypatch.setattr(encoded, "MAX_IDS_IN_MEMORY", 0)
    data, _ = _prepare(corpus)
    vocab, train, heldout = _in_memory(corpus)
    assert isinstance(data.train, DiskSentences)
    assert data.vocab.tokens == vocab.tokens and data.vocab.counts.tolist() == vocab.counts.tolist()
    assert len(data.train) == len(train) and data.train.lengths.tolist() == train.lengths.tolist()
    np.testing.assert_array_equal(data.heldout.ids, heldout.ids)
    np.testing.assert_array_equal(data.heldout.offsets, heldout.offsets)
    assert data.stats["tokens"] == train.ids.size + heldout.ids.size
    rng = np.random.default_rng(0)
    for max_length in (64, 9, 1):
        for size in (1, 17, len(train)):
            index = rng.choice(len(train), size=size, replace=False)
            for a, b in zip(data.train.batch(index, max_length), train.batch(index, max_length)):
                assert a.dtype == b.dtype == np.int32
                np.testing.assert_array_equal(a, b)
    assert (data.train._file._all is not None) == whole_file
    # the batches the trainer makes (corruption and context pairs included) are the same too
    config = PretrainConfig(batch_size=16, context_window=2, negatives=3, seed=SEED)
    model = ModelConfig(vocab_size=len(vocab), max_length=20)
    disk = BatchMaker(data.train, data.vocab, model, config, CorruptionConfig())
    memory = BatchMaker(train, vocab, model, config, CorruptionConfig())
    order = disk.epoch_order(1)
    assert [b.tolist() for b in order] == [b.tolist() for b in memory.epoch_order(1)]
    for b in range(4):  # as BatchMaker.stream draws them (stream itself would import TensorFlow)
        a = disk.make(order[b], np.random.default_rng([SEED, 1, b, 2]))
        m = memory.make(order[b], np.random.default_rng([SEED, 1, b, 2]))
        assert a.keys() == m.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], m[name])


def test_subset_is_a_view_over_the_same_file(corpus):
    data, _ = _prepare(corpus)
    index = np.array([5, 0, 17, 3])
    part = data.train.subset(index)
    assert part._file is data.train._file  # the same open file: no id copied
    assert not hasattr(part, "ids")
    np.testing.assert_array_equal(part.starts, data.train.starts[index])
    np.testing.assert_array_equal(part.lengths, data.train.lengths[index])
    for a, b in zip(part.batch(np.array([2, 0]), 30), data.train.batch(np.array([17, 5]), 30)):
        np.testing.assert_array_equal(a, b)
    assert len(part.subset(np.array([1]))) == 1
    assert not part.lengths.flags.writeable


def test_temporary_directory_is_removed_but_sentences_stay_readable(corpus):
    data, _ = _prepare(corpus)
    assert not os.path.exists(data.train.path)  # cache_dir None: the directory is gone...
    ids, lengths = data.train.batch(np.arange(len(data.train)), 64)  # ...the open file is not
    assert lengths.sum() == data.stats["tokens"] - data.heldout.ids.size


def test_heldout_is_capped(corpus):
    data, _ = _prepare(corpus, max_heldout=25)
    vocab, train, heldout = _in_memory(corpus)
    assert len(data.heldout) == 25 < len(heldout)
    assert len(data.train) + 25 == len(train) + len(heldout)


def test_pruned_count_is_bounded_and_exact_below_the_bound():
    rng = np.random.default_rng(1)
    p = 1.0 / np.arange(1, 3001)
    lists = [[f"w{i}" for i in rng.choice(3000, size=int(rng.integers(1, 19)), p=p / p.sum())]
             for _ in range(2000)]
    exact = collections.Counter(t for tokens in lists for t in tokens)
    unbounded, report = count_tokens(lists, None)
    assert unbounded == exact and report.prunes == 0
    below, report = count_tokens(lists, len(exact))  # the bound is not exceeded: exact
    assert below == exact and report.prunes == 0
    assert Vocabulary.build(lists, min_count=1).tokens == \
        Vocabulary.from_counts(exact, min_count=1).tokens
    logs = []
    bounded, report = count_tokens(lists, 400, logs.append)
    assert report.prunes >= 1 and report.threshold >= 1 and len(logs) == report.prunes
    assert "dropped those seen <= " in logs[0]
    assert report.peak_entries <= 400 + 18 and len(bounded) <= 400
    top = [w for w, _ in exact.most_common(30)]
    for w in top:  # frequent words lose at most the thresholds applied
        assert exact[w] - report.threshold * report.prunes <= bounded[w] <= exact[w]
    small = Vocabulary.build(lists, min_count=1, max_size=12, max_count_entries=400)
    assert small.tokens == Vocabulary.from_counts(exact, min_count=1, max_size=12).tokens
    with pytest.raises(InputError, match="max_count_entries"):
        count_tokens(lists, 0)


def test_pruning_is_logged_and_recorded(corpus):
    data, logs = _prepare(corpus, max_count_entries=30)
    assert any("vocabulary count:" in line for line in logs)
    assert data.stats["count_prunes"] >= 1


def test_rerun_reuses_the_encoded_files(corpus, tmp_path):
    cache = str(tmp_path / "data")
    first, logs = _prepare(corpus, cache_dir=cache)
    assert sorted(os.listdir(cache)) == ["ids.bin", "lengths.npy", "meta.json"]
    stamp = os.stat(os.path.join(cache, "ids.bin")).st_mtime_ns
    second, logs = _prepare(corpus, cache_dir=cache, vocab=first.vocab)  # a resumed run
    assert "encoded ids reused" in logs[-1]
    assert os.stat(os.path.join(cache, "ids.bin")).st_mtime_ns == stamp
    assert second.stats == dict(first.stats, seconds=second.stats["seconds"])
    third, logs = _prepare(corpus, cache_dir=cache)  # vocabulary counted again, same one
    assert "encoded ids reused" in logs[-1]
    index = np.arange(len(first.train))
    for data in (second, third):
        for a, b in zip(data.train.batch(index, 64), first.train.batch(index, 64)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("damage, message", [
    ("truncate", "expected (truncated?)"),
    ("flip", "damaged (crc32"),
    ("lengths", "does not match lengths.npy"),
    ("meta", "cannot be checked"),
])
def test_damaged_files_are_encoded_again(corpus, tmp_path, damage, message):
    cache = tmp_path / "data"
    first, _ = _prepare(corpus, cache_dir=str(cache))
    index = np.arange(len(first.train))
    expected = first.train.batch(index, 64)  # read now: damage in place reaches its open file
    ids = cache / "ids.bin"
    if damage == "truncate":
        os.truncate(ids, ids.stat().st_size - 4)
    elif damage == "flip":
        raw = bytearray(ids.read_bytes())
        raw[len(raw) // 2] ^= 0x55
        ids.write_bytes(bytes(raw))
    elif damage == "lengths":
        np.save(cache / "lengths.npy", np.ones(3, np.int32))
    else:
        (cache / "meta.json").write_text("{not json")
    again, logs = _prepare(corpus, cache_dir=str(cache), vocab=first.vocab)
    assert any(message in line and "encoding the corpus again" in line for line in logs), logs
    assert "reused" not in logs[-1]
    for a, b in zip(again.train.batch(index, 64), expected):
        np.testing.assert_array_equal(a, b)
    _, logs = _prepare(corpus, cache_dir=str(cache), vocab=first.vocab)
    assert "encoded ids reused" in logs[-1]


def test_changed_corpus_or_vocabulary_is_encoded_again(tmp_path):
    path = make_tiny_corpus(tmp_path / "c.txt", lines=170)
    cache = str(tmp_path / "data")
    first, _ = _prepare(str(path), cache_dir=cache)
    smaller = Vocabulary(first.vocab.tokens[:-1], first.vocab.counts[:-1])
    _, logs = _prepare(str(path), cache_dir=cache, vocab=smaller)
    assert any("another corpus, tokenizer or vocabulary" in line for line in logs)
    make_tiny_corpus(path, lines=171)
    _, logs = _prepare(str(path), cache_dir=cache, vocab=first.vocab)
    assert any("another corpus, tokenizer or vocabulary" in line for line in logs)


def test_file_shrinking_under_a_run_is_one_line(corpus, tmp_path):
    cache = tmp_path / "data"
    data, _ = _prepare(corpus, cache_dir=str(cache))
    os.truncate(cache / "ids.bin", 8)
    with pytest.raises(InputError, match=r"ids.bin: shorter than its sentences say") as info:
        data.train.batch(np.arange(len(data.train)), 64)
    assert "\n" not in str(info.value)


def test_tokens_with_spaces_skip_the_spool(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("".join(f"alpha beta gamma {i % 5} .\n" for i in range(300)))

    class Pairs(Tokenizer):  # tokens of two words: the spool cannot hold them
        def tokenize(self, text):
            words = text.lower().split()
            return [" ".join(words[i:i + 2]) for i in range(0, len(words), 2)]

    from auxpretrain.data.encoded import prepare_corpus

    data = prepare_corpus([str(path)], Pairs(), 1, None, 0.1, 20, SEED, log=lambda s: None)
    assert "alpha beta" in data.vocab and data.stats["tokens"] == 900


def test_unwritable_cache_dir_is_one_line(corpus, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot write the encoded corpus") as info:
        _prepare(corpus, cache_dir=str(blocker / "data"))
    assert "\n" not in str(info.value)
