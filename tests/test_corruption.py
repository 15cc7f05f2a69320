"""Corruptor: ops respect their definitions, determinism, skips, bands, unigram sampling."""

import numpy as np
import pytest

from auxpretrain.config import CorruptionConfig
from auxpretrain.data.corruption import (OPS, Corruptor, CorruptedBatch, UnigramSampler,
                                    sample_unigram)
from auxpretrain.errors import ConfigError

V = 99  # vocabulary size, specials included


def _counts(vocab_size=V, seed=0):
    """Zipf counts; ids 0, 1 (PAD, UNK) count 0, one more id never seen."""
    counts = (5000 / np.arange(1, vocab_size + 1)).astype(np.int64) + 1
    counts[:2] = 0
    counts[vocab_size - 1] = 0
    return counts


def _batch(batch=301, width=37, seed=0, vocab_size=V, min_length=0):
    """Padded ids [batch, width] of varied lengths (some rows shorter than others, and
    width larger than every length), drawn from ids 1..vocab_size-2 (UNK included)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_length, width - 3, size=batch)
    ids = rng.integers(1, vocab_size - 1, size=(batch, width)).astype(np.int32)
    ids[np.arange(width)[None, :] >= lengths[:, None]] = 0
    return ids, lengths.astype(np.int32)


CONFIGS = {
    "mix": CorruptionConfig(),
    "replace": CorruptionConfig(ops={"replace": 1.0}),
    "replace3": CorruptionConfig(ops={"replace": 1.0}, edits=3),
    "band": CorruptionConfig(ops={"replace": 1.0}, band=True, num_bands=5),
    "swap": CorruptionConfig(ops={"swap": 1.0}),
    "swap2": CorruptionConfig(ops={"swap": 1.0}, edits=2),
    "adjacent": CorruptionConfig(ops={"swap": 1.0}, swap="adjacent"),
    "adjacent2": CorruptionConfig(ops={"swap": 1.0}, swap="adjacent", edits=2),
    "mix2": CorruptionConfig(ops={"replace": 0.7, "swap": 0.3}, edits=2, alpha=0.5),
}


def _check_batch(config, ids, lengths, result):
    """Asserts every documented property of a CorruptedBatch."""
    assert isinstance(result, CorruptedBatch)
    batch, width = ids.shape
    assert result.bad.shape == ids.shape and result.bad.dtype == np.int32
    assert result.changed.shape == ids.shape and result.changed.dtype == bool
    assert result.ok.dtype == bool and result.op.dtype == np.int8
    assert result.positions.dtype == np.int32 and result.positions.shape[0] == batch
    assert (result.changed == (result.bad != ids)).all()
    padding = np.arange(width)[None, :] >= lengths[:, None]
    assert (result.bad[padding] == 0).all()
    assert (result.bad[~result.ok] == ids[~result.ok]).all()
    assert (result.op[~result.ok] == -1).all() and (result.positions[~result.ok] == -1).all()
    assert int((~result.ok).sum()) == sum(result.skipped.values())
    k = config.edits
    for i in np.flatnonzero(result.ok):
        n = lengths[i]
        good, bad = ids[i, :n], result.bad[i, :n]
        pos = result.positions[i][result.positions[i] >= 0]
        assert not np.array_equal(good, bad)
        op = OPS[result.op[i]]
        assert config.ops.get(op, 0) > 0
        assert set(np.flatnonzero(good != bad).tolist()) == set(pos.tolist())
        if op == "replace":
            assert len(pos) == k and len(set(pos.tolist())) == k and (np.diff(pos) > 0).all()
            assert (bad[pos] != good[pos]).all()  # never the same word
            assert (bad[pos] >= 2).all()  # never a special id
        else:
            assert len(pos) == 2 * k and len(set(pos.tolist())) == 2 * k
            assert sorted(good.tolist()) == sorted(bad.tolist())  # a permutation
            p, q = pos[0::2], pos[1::2]
            assert (p < q).all()
            assert (good[p] != good[q]).all()  # two different words
            assert (bad[p] == good[q]).all() and (bad[q] == good[p]).all()
            if config.swap == "adjacent":
                assert (q - p == 1).all()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_ops_respect_their_definitions(name):
    config = CONFIGS[name]
    ids, lengths = _batch()
    result = Corruptor(_counts(), config).corrupt(ids, lengths, np.random.default_rng(1))
    _check_batch(config, ids, lengths, result)
    assert result.ok.mean() > 0.8


def test_repetitive_sentences_use_the_exact_fallback():
    # mostly one word: the fast rejection draws fail, the exact path must still find the pair
    ids = np.full((200, 29), 5, np.int32)
    lengths = np.full(200, 29, np.int32)
    ids[np.arange(200), np.arange(200) % 29] = 7
    for config in (CONFIGS["swap"], CONFIGS["adjacent"]):
        result = Corruptor(_counts(), config).corrupt(ids, lengths, np.random.default_rng(0))
        _check_batch(config, ids, lengths, result)
        assert result.ok.all()


def test_same_seed_same_pairs_other_seed_other_pairs():
    ids, lengths = _batch()
    corruptor = Corruptor(_counts(), CONFIGS["mix"])
    a = corruptor.corrupt(ids, lengths, np.random.default_rng(7))
    b = Corruptor(_counts(), CONFIGS["mix"]).corrupt(ids, lengths, np.random.default_rng(7))
    c = corruptor.corrupt(ids, lengths, np.random.default_rng(8))
    for field in ("bad", "ok", "op", "positions", "changed"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert a.skipped == b.skipped
    assert not np.array_equal(a.bad, c.bad)


def test_op_weights_are_followed():
    ids, lengths = _batch(batch=4001, min_length=5)
    config = CorruptionConfig(ops={"replace": 0.7, "swap": 0.3})
    result = Corruptor(_counts(), config).corrupt(ids, lengths, np.random.default_rng(0))
    share = (result.op[result.ok] == 0).mean()
    assert 0.66 < share < 0.74


def test_short_and_degenerate_sentences_are_skipped_by_reason():
    ids = np.array([[0, 0, 0, 0], [3, 0, 0, 0], [4, 4, 4, 0], [4, 5, 4, 5], [6, 7, 0, 0]], np.int32)
    lengths = np.array([0, 1, 3, 4, 2], np.int32)
    swap = Corruptor(_counts(), CorruptionConfig(ops={"swap": 1.0})).corrupt(ids, lengths, np.random.default_rng(0))
    assert swap.ok.tolist() == [False, False, False, True, True]
    assert swap.skipped == {"empty": 1, "too_short_for_swap": 1, "no_different_words_to_swap": 1}
    replace2 = Corruptor(_counts(), CorruptionConfig(ops={"replace": 1.0}, edits=2))
    result = replace2.corrupt(ids, lengths, np.random.default_rng(0))
    assert result.ok.tolist() == [False, False, True, True, True]
    assert result.skipped == {"empty": 1, "too_short_for_replace": 1}
    adjacent = Corruptor(_counts(), CorruptionConfig(ops={"swap": 1.0}, swap="adjacent", edits=2))
    result = adjacent.corrupt(ids, lengths, np.random.default_rng(0))
    # [4, 5, 4, 5]: (0, 1) + (2, 3) works; a first draw of (1, 2) leaves no second pair (greedy)
    assert result.ok.tolist() in ([False, False, False, True, False], [False] * 5)
    assert result.skipped == {"empty": 1, "too_short_for_swap": 3, **(
        {} if result.ok[3] else {"no_different_neighbours_to_swap": 1})}
    one_column = Corruptor(_counts(), CONFIGS["adjacent"]).corrupt(ids[:, :1], np.ones(5), np.random.default_rng(0))
    assert not one_column.ok.any() and one_column.skipped == {"too_short_for_swap": 5}


def test_band_draws_stay_within_the_band():
    counts = _counts()
    config = CorruptionConfig(ops={"replace": 1.0}, band=True, num_bands=4)
    corruptor = Corruptor(counts, config)
    band_of = corruptor.sampler.band_of
    assert corruptor.sampler.num_bands >= 2
    ids, lengths = _batch(batch=2001)
    result = corruptor.corrupt(ids, lengths, np.random.default_rng(3))
    rows, cols = np.nonzero(result.changed)
    assert rows.size > 1000
    assert (band_of[ids[rows, cols]] == band_of[result.bad[rows, cols]]).all()
    # the frequent band really holds frequent words
    drawable = np.flatnonzero(counts > 0)
    first = drawable[band_of[drawable] == 0]
    last = drawable[band_of[drawable] == band_of[drawable].max()]
    assert counts[first].min() > counts[last].max()


def test_every_band_has_two_words_even_with_a_dominant_word():
    counts = np.array([0, 0, 10**6, 5, 4, 3, 2, 1, 1], np.int64)
    sampler = UnigramSampler(counts, 0.75, num_bands=10)
    for band in range(sampler.num_bands):
        assert ((sampler.band_of == band) & (counts > 0)).sum() >= 2
    ids = np.full(500, 2)
    drawn, failed = sampler.sample_other(ids, np.random.default_rng(0), within_band=True)
    assert not failed.any() and (drawn != 2).all() and (sampler.band_of[drawn] == sampler.band_of[2]).all()


def test_sample_unigram_follows_counts_to_the_alpha():
    counts = _counts()
    rng = np.random.default_rng(0)
    draws = sample_unigram(counts, 0.75, 200_000, rng)
    assert draws.dtype == np.int32
    assert draws.min() >= 2 and (counts[draws] > 0).all()  # never special, never unseen
    expected = counts ** 0.75 * (counts > 0)
    expected = expected / expected.sum()
    observed = np.bincount(draws, minlength=V) / draws.size
    assert np.abs(observed - expected).max() < 0.005
    sampler = UnigramSampler(counts, 0.75)
    assert np.array_equal(sampler.sample((3, 5), np.random.default_rng(1)),
                          sample_unigram(counts, 0.75, (3, 5), np.random.default_rng(1)))
    assert np.allclose(sampler.probabilities(), expected)
    uniform = sample_unigram(counts, 0.0, 50_000, rng)
    assert np.bincount(uniform, minlength=V)[2:V - 1].min() > 200  # alpha 0: every seen word alike


@pytest.mark.parametrize("words", [1, 3, 50, 5000])
def test_the_guide_table_gives_the_ranks_of_a_binary_search(words):
    """UnigramSampler._ranks (a guide table, then a binary search where it is unsure) equals
    np.searchsorted over the cumulative mass, at and next to every boundary too."""
    rng = np.random.default_rng(words)
    counts = np.concatenate([[0, 0], rng.zipf(1.2, words).astype(np.float64), [0]])
    sampler = UnigramSampler(counts, 0.75)
    cum, total = sampler._cum, sampler._total
    u = np.concatenate([rng.random(20_000) * total, [0.0, total, np.nextafter(total, 0)], cum,
                        np.nextafter(cum, 0), np.nextafter(cum, np.inf)])
    u = u[u <= total]
    np.testing.assert_array_equal(sampler._ranks(u), np.searchsorted(cum, u, side="right"))


def test_sample_other_never_returns_the_same_id():
    counts = _counts()
    sampler = UnigramSampler(counts, 1.0)
    ids = np.repeat(np.arange(V), 300)
    drawn, failed = sampler.sample_other(ids, np.random.default_rng(0))
    assert not failed.any() and (drawn != ids).all() and (counts[drawn] > 0).all()


def test_replace_needs_two_drawable_words():
    with pytest.raises(ConfigError, match="at least 2 words"):
        Corruptor(np.array([0, 0, 5, 0]), CorruptionConfig(ops={"replace": 1.0}))
    swap_only = Corruptor(np.array([0, 0, 5, 0]), CorruptionConfig(ops={"swap": 1.0}))
    result = swap_only.corrupt(np.array([[2, 3]]), np.array([2]), np.random.default_rng(0))
    assert result.ok.all()


def test_large_batch_is_vectorized():
    import time

    ids, lengths = _batch(batch=20_000, width=41, min_length=2)
    corruptor = Corruptor(_counts(), CONFIGS["mix"])
    start = time.perf_counter()
    result = corruptor.corrupt(ids, lengths, np.random.default_rng(0))
    assert time.perf_counter() - start < 2.0  # a Python loop per sentence would take longer
    assert result.ok.sum() > 19_000
