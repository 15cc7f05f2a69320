"""Vocabulary: build, encode/decode batches, vocab.txt round trip and sha256."""

import hashlib

import numpy as np
import pytest

from auxpretrain.errors import InputError
from auxpretrain.data.vocab import PAD_ID, UNK_ID, Vocabulary


def _token_lists(vocab_size=97, sentences=300, seed=0):
    """Zipf-ish token lists over words w0..w{vocab_size-1}."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab_size + 1)
    p /= p.sum()
    return [[f"w{i}" for i in rng.choice(vocab_size, size=int(rng.integers(1, 23)), p=p)]
            for _ in range(sentences)]


def test_build_orders_by_count_then_token():
    vocab = Vocabulary.build([["b", "a", "c", "b"], ["a", "b", "d"], ["d", "e"]], min_count=2)
    assert vocab.tokens == ["<pad>", "<unk>", "b", "a", "d"]
    assert vocab.counts.tolist() == [0, 0, 3, 2, 2]
    assert vocab.counts.dtype == np.int64
    assert vocab.id_of("<pad>") == PAD_ID == 0 and vocab.id_of("<unk>") == UNK_ID == 1
    assert vocab.id_of("e") == UNK_ID and vocab.id_of("b") == 2
    assert len(vocab) == 5 and "a" in vocab and "e" not in vocab


def test_min_count_and_max_size():
    lists = _token_lists()
    full = Vocabulary.build(lists, min_count=1)
    assert len(full) <= 99
    capped = Vocabulary.build(lists, min_count=1, max_size=37)
    assert len(capped) == 37 and capped.tokens == full.tokens[:37]
    frequent = Vocabulary.build(lists, min_count=5)
    assert (frequent.counts[2:] >= 5).all()
    with pytest.raises(InputError):
        Vocabulary.build(lists, min_count=0)


def test_special_tokens_in_the_corpus_are_not_duplicated():
    vocab = Vocabulary.build([["<unk>", "<pad>", "x", "x"]], min_count=1)
    assert vocab.tokens == ["<pad>", "<unk>", "x"]


def test_encode_batch_pads_truncates_and_decodes_back():
    vocab = Vocabulary.build(_token_lists(), min_count=1)
    batch = [["w0", "w1", "w2"], [], ["w3", "unseen"], ["w1"] * 50]
    ids, lengths = vocab.encode_batch(batch, max_length=37)
    assert ids.dtype == np.int32 and lengths.dtype == np.int32
    assert ids.shape == (4, 37) and lengths.tolist() == [3, 0, 2, 37]
    assert ids[0, 3:].sum() == 0 and ids[1].sum() == 0
    assert ids[2, 1] == UNK_ID
    decoded = vocab.decode_batch(ids, lengths)
    assert decoded == [["w0", "w1", "w2"], [], ["w3", "<unk>"], ["w1"] * 37]
    assert vocab.decode_batch(ids) == decoded  # lengths from the padding
    ids_short, _ = vocab.encode_batch(batch[:3], max_length=37)
    assert ids_short.shape == (3, 3)  # width = longest kept sentence
    ids_fixed, _ = vocab.encode_batch(batch[:3], max_length=37, pad_to_max_length=True)
    assert ids_fixed.shape == (3, 37)
    empty, empty_lengths = vocab.encode_batch([[], []])
    assert empty.shape == (2, 1) and empty_lengths.tolist() == [0, 0]


def test_encode_decode_round_trip_on_a_large_batch():
    lists = _token_lists(sentences=1000, seed=3)
    vocab = Vocabulary.build(lists, min_count=1)
    ids, lengths = vocab.encode_batch(lists)
    assert vocab.decode_batch(ids, lengths) == lists


def test_save_load_round_trip_and_stable_sha256(tmp_path):
    vocab = Vocabulary.build(_token_lists() + [["é", "日本", '"', "\\"]], min_count=1)
    path = tmp_path / "vocab.txt"
    vocab.save(str(path))
    data = path.read_bytes()
    assert data.decode("utf-8").split("\n")[:-1] == vocab.tokens
    assert vocab.sha256 == hashlib.sha256(data).hexdigest()
    loaded = Vocabulary.load(str(path))
    assert loaded == vocab and loaded.sha256 == vocab.sha256
    loaded.save(str(tmp_path / "again.txt"))
    assert (tmp_path / "again.txt").read_bytes() == data
    assert Vocabulary.build(_token_lists() + [["é", "日本", '"', "\\"]], min_count=1).sha256 == vocab.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.txt", "vocab.txt"]  # no temp files


def test_counts_round_trip(tmp_path):
    vocab = Vocabulary.build(_token_lists(), min_count=1)
    vocab.save(str(tmp_path / "vocab.txt"))
    vocab.save_counts(str(tmp_path / "counts.tsv"))
    loaded = Vocabulary.load(str(tmp_path / "vocab.txt"), str(tmp_path / "counts.tsv"))
    assert loaded.counts.tolist() == vocab.counts.tolist()
    (tmp_path / "other.tsv").write_text("<pad>\t0\n<unk>\t0\n", encoding="utf-8")
    with pytest.raises(InputError, match="2 lines"):
        Vocabulary.load(str(tmp_path / "vocab.txt"), str(tmp_path / "other.tsv"))


@pytest.mark.parametrize("content, message", [
    (b"a\nb\n", "must start with"),
    (b"<pad>\n<unk>\nx\nx\n", "appears twice"),
    (b"<pad>\n<unk>\n\nx\n", "empty"),
    (b"<pad>\n<unk>\n\xff\n", "not UTF-8"),
    (b"", "empty file"),
])
def test_load_errors(tmp_path, content, message):
    path = tmp_path / "vocab.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        Vocabulary.load(str(path))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_load_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        Vocabulary.load(str(tmp_path / "nope.txt"))
