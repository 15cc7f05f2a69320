"""benchmarks.levers: each corruption on tiny generated ids (shapes, `changed`, seeds, valid ids),
and the whole command once on a tiny corpus and export (5 steps, no probe)."""

import json

import numpy as np
import pytest

from benchmarks import levers

V, B, T, EDITS = 99, 23, 13, 2


def batch(seed=0):
    """Good sentences: ids 1..V-1 (a few UNK), lengths 1..T, 0-padded."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, B)
    good = rng.integers(2, V, (B, T)).astype(np.int32)
    good[rng.random((B, T)) < 0.05] = 1
    good[np.arange(T)[None] >= lengths[:, None]] = 0
    return good, lengths


def sentences(good, lengths):
    """EncodedSentences-like flat ids and offsets of a batch."""
    ids = np.concatenate([row[:n] for row, n in zip(good, lengths)])
    return np.concatenate([[0], np.cumsum(lengths)]), ids


def corruptions():
    """lever name -> (good, lengths, rng) -> Corrupted, with tiny tables where a lever needs one."""
    from auxpretrain.config import CorruptionConfig
    from auxpretrain.data.corruption import Corruptor

    good, lengths = batch(1)
    offsets, ids = sentences(good, lengths)
    counts = np.concatenate([[0, 0], np.arange(V - 2, 0, -1) * 3])
    eligible = np.ones(V, bool)
    eligible[2:12] = False  # the 10 most frequent words are never edited
    rng = np.random.default_rng(5)
    neighbours = levers.neighbour_table(rng.normal(size=(V, 7)).astype(np.float32), k=4, candidates=60)
    index = levers.ngram_index(ids, offsets, V)
    kw = dict(edits=EDITS, eligible=eligible)
    unigram = Corruptor(counts, CorruptionConfig(ops={"replace": 1.0}, edits=EDITS))
    swap = Corruptor(counts, CorruptionConfig(ops={"swap": 1.0}, edits=EDITS))
    return {
        "unigram": lambda g, n, r: levers.corrupt_with(unigram, g, n, r),
        "swap": lambda g, n, r: levers.corrupt_with(swap, g, n, r),
        "splice": levers.corrupt_splice,
        "batchword": lambda g, n, r: levers.corrupt_batchword(g, n, r, **kw),
        "neighbours": lambda g, n, r: levers.corrupt_neighbours(g, n, r, neighbours, **kw),
        "ngram": lambda g, n, r: levers.corrupt_ngram(g, n, r, index, **kw),
        "generator": lambda g, n, r: levers.corrupt_generator(g, n, r, **kw),
    }, dict(neighbours=neighbours, eligible=eligible, ids=ids, offsets=offsets)


@pytest.mark.parametrize("lever", levers.LEVERS)
def test_corruption_marks_its_edits_and_is_seeded(lever):
    corrupt, tables = corruptions()
    good, lengths = batch(1)  # the sentences of the n-gram index, as training batches are
    bad, changed, ok = corrupt[lever](good, lengths, np.random.default_rng(3))
    assert bad.shape == good.shape and changed.shape == good.shape and ok.shape == (B,)
    assert changed.dtype == bool and ok.dtype == bool
    assert 3 <= ok.sum() < B  # most rows are pairs; a 1-word sentence is not
    # changed marks exactly the positions where the bad copy holds another word
    assert np.array_equal(changed, (bad != good) & (bad != 0))
    assert changed[ok].any(1).all() and not changed[~ok].any()
    assert np.array_equal(bad[~ok], good[~ok])
    # valid ids, and no PAD inside a sentence: each row's words are a prefix of it
    assert bad.min() >= 0 and bad.max() < V
    bad_lengths = (bad != 0).sum(1)
    assert np.array_equal(bad != 0, np.arange(T)[None] < bad_lengths[:, None])
    if lever != "splice":
        assert np.array_equal(bad_lengths, lengths)
    r, c = np.nonzero(changed)
    if lever in ("unigram", "batchword", "neighbours", "ngram", "generator"):
        assert changed.sum(1).max() <= EDITS
    if lever in ("batchword", "neighbours", "ngram", "generator"):
        assert tables["eligible"][good[r, c]].all()  # the frequent words stay
    if lever == "neighbours":
        assert all(bad[i, j] in tables["neighbours"][good[i, j]] for i, j in zip(r, c))
    if lever == "ngram":  # every proposal follows its left word somewhere in the corpus
        ids, offsets = tables["ids"], tables["offsets"]
        starts = set(offsets[:-1].tolist())
        seen = {(0 if k in starts else int(ids[k - 1]), int(ids[k])) for k in range(len(ids))}
        assert all((int(good[i, j - 1]) if j else 0, int(bad[i, j])) in seen for i, j in zip(r, c))
    if lever == "batchword":
        assert all(bad[i, j] in good[np.arange(B) != i] for i, j in zip(r, c))
    if lever == "generator":
        assert (bad[r, c] == levers.MASK_ID).all()
    if lever == "splice":
        assert (c >= 1).all()  # the first word is always the sentence's own
    again = corrupt[lever](good, lengths, np.random.default_rng(3))
    assert all(np.array_equal(a, b) for a, b in zip(again, (bad, changed, ok)))


def test_neighbour_table_excludes_itself_and_specials():
    vectors = np.random.default_rng(0).normal(size=(V, 5)).astype(np.float32)
    table = levers.neighbour_table(vectors, k=6, candidates=50)
    assert table.shape == (V, 6) and table.min() >= 2 and table.max() < 50
    assert not (table == np.arange(V)[:, None]).any()
    wide = np.random.default_rng(1).normal(size=(V, 3)).astype(np.float32)
    contrast = levers.neighbour_table(vectors, k=6, candidates=50, contrast=2, wide=wide)
    assert contrast.shape == (V, 2) and all(set(c) <= set(t) for c, t in zip(contrast, table))


def test_narrow_vectors_are_reproducible():
    """gensim with one worker: the same vectors twice; a word the sentences lack gets zeros."""
    import types

    good, lengths = batch(3)
    offsets, ids = sentences(good, lengths)
    tokens = ["<pad>", "<unk>"] + [f"w{i}" for i in range(2, V)]
    text = types.SimpleNamespace(ids=ids, offsets=offsets)
    first, second = levers.narrow_vectors(text, tokens, seed=1), levers.narrow_vectors(text, tokens, seed=1)
    assert first.shape == (V, 64) and np.array_equal(first, second)
    unseen = np.setdiff1d(np.arange(V), ids)
    assert not first[unseen].any() and first[np.unique(ids)].any(1).all()


def test_command_end_to_end(tmp_path, capsys):
    """Stage 2 on a tiny corpus and export: a verified export whose embedding is the base's, bit
    for bit, and whose convolutions are new."""
    from auxpretrain.data.tasks import Split, TaskData
    from auxpretrain.export import load_export
    from conftest import make_tiny_corpus, make_tiny_export

    corpus = str(make_tiny_corpus(tmp_path / "c.txt", lines=70))
    with open(corpus, encoding="utf-8") as f:
        lines = [line for line in f.read().splitlines() if line]
    split = Split(lines, [0] * len(lines))
    base = make_tiny_export(tmp_path / "base", task=TaskData("c", ["a", "b"], split, split, split, "c"))
    out = tmp_path / "out"
    code = levers.main(["--export", base.path, "--corpus", corpus, "--lever", "generator", "--objective", "both",
                        "--steps", "5", "--batch-size", "9", "--edits", "2", "--no-probe", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "stage 2 (5 steps trained" in printed and "loss" in printed and "pair_accuracy" in printed
    new = load_export(str(out / "export"))
    before, after = base.values(), new.values()
    assert np.array_equal(after["embedding/table"], before["embedding/table"])
    assert not np.array_equal(after["layer_1/kernel"], before["layer_1/kernel"])  # not restored: retrained
    assert new.manifest["lever"]["lever"] == "generator"
    with open(out / "levers.json", encoding="utf-8") as f:
        result = json.load(f)
    assert result["stage2"]["steps_trained"] == 5 and "probe" not in result
    assert set(result["stage2"]["train"]) == {"loss", "pair_accuracy"}
