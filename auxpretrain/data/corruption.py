"""Good sentence -> bad sentence, on padded id batches (numpy only: no TensorFlow, no I/O).

Ops (`OPS`, their index is `CorruptedBatch.op`):
- replace: `edits` distinct positions each get a word drawn from the unigram distribution
  raised to `alpha` (word2vec's noise distribution), never the word already there and never
  a special id. With `band=True` the draw stays within the original word's frequency band
  (bands of equal token mass), so a rare replacement word does not give the bad sentence away.
- swap: `edits` disjoint pairs of positions exchange their words; the two words of a pair
  always differ (as ids); `swap="adjacent"` takes neighbours only.

Each sentence draws one op by the configured weights. A sentence an op cannot corrupt
(too short, no two different words...) is skipped: `ok` is False, `bad` equals the input,
and `skipped` counts it under its reason. Everything is vectorized over the batch and
deterministic for a given `numpy.random.Generator` state.

This module must not import TensorFlow.
"""

from __future__ import annotations

import collections
from typing import Dict, Optional, Tuple

import numpy as np

from auxpretrain.config import CorruptionConfig
from auxpretrain.errors import ConfigError

OPS = ("replace", "swap")
REPLACE, SWAP = 0, 1

# skip reasons (keys of CorruptedBatch.skipped)
EMPTY = "empty"
TOO_SHORT_FOR_REPLACE = "too_short_for_replace"
TOO_SHORT_FOR_SWAP = "too_short_for_swap"
NO_DIFFERENT_WORDS = "no_different_words_to_swap"
NO_DIFFERENT_NEIGHBOURS = "no_different_neighbours_to_swap"
NO_REPLACEMENT = "no_replacement_word"

_FAST_TRIES = 8  # rejection rounds before the exact (B x T) fallback


class CorruptedBatch(collections.namedtuple("CorruptedBatch", "bad ok op positions changed skipped")):
    """Result of `Corruptor.corrupt` for a batch of B sentences padded to T.

    bad: int32 [B, T], the bad sentences (equal to the input where ok is False).
    ok: bool [B], False where the sentence was skipped.
    op: int8 [B], index in OPS of the op applied, -1 if skipped.
    positions: int32 [B, K], changed positions, -1 padded: replace fills `edits` sorted
        positions, swap fills `2 * edits` as pairs (p, q), p < q.
    changed: bool [B, T], True where bad differs from the input (ELECTRA's labels).
    skipped: dict reason -> number of sentences skipped for it.
    """

    __slots__ = ()


# draws at least this large use UnigramSampler's guide table
GUIDE_MIN_DRAWS = 16384


class UnigramSampler:
    """Draws word ids from counts ** alpha with a cumulative table + searchsorted, sped up by
    a guide table (the same draws).

    Ids below `num_special` and ids of count 0 are never drawn. Words are also cut into at
    most `num_bands` frequency bands of about equal token mass (each with >= 2 drawable
    words), for `sample_other(..., within_band=True)`.
    """

    def __init__(self, counts, alpha: float = 0.75, num_special: int = 2, num_bands: int = 1):
        counts = np.asarray(counts, dtype=np.float64).ravel()
        if alpha < 0:
            raise ConfigError(f"alpha must be >= 0, got {alpha}")
        if num_bands < 1:
            raise ConfigError(f"num_bands must be >= 1, got {num_bands}")
        drawable = counts > 0
        drawable[:num_special] = False
        self.size = counts.size
        self.alpha = float(alpha)
        self.num_drawable = int(drawable.sum())
        if self.num_drawable == 0:
            raise ConfigError("no word to sample: every non-special count is 0")
        weights = np.where(drawable, counts, 1.0) ** alpha * drawable
        order = np.argsort(-(counts * drawable), kind="stable")  # frequent first, undrawable last
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        cum = np.cumsum(weights[order])
        self.weights = weights
        self._order = order
        self._rank = rank
        self._cum = cum
        self._total = float(cum[-1])
        self._last = self.num_drawable - 1  # rank of the last drawable word
        self._guide_lo = self._guide_hi = None  # built at the first large draw (`_ranks`)
        self._build_bands(counts * drawable, num_bands)

    def _build_guide(self) -> None:
        """The guide table of `_ranks`: [0, total) cut into about 16 intervals a drawable word
        (at most 2M: 16 MB), and for each the range of `searchsorted(cum, u, "right")` over its
        u, with a margin far above float64 rounding. An interval inside one word's mass knows
        its rank; at most one in 16 holds a boundary between words."""
        buckets = 1 << min(max(int(16 * self.num_drawable - 1).bit_length(), 4), 21)
        edges = np.arange(buckets + 1, dtype=np.float64) * (self._total / buckets)
        self._guide_scale = buckets / self._total
        self._guide_lo = np.searchsorted(self._cum, edges[:-1] * (1.0 - 1e-12), side="right").astype(np.int32)
        self._guide_hi = np.searchsorted(self._cum, edges[1:] * (1.0 + 1e-12), side="right").astype(np.int32)

    def _ranks(self, u: np.ndarray) -> np.ndarray:
        """np.searchsorted(cum, u, side="right") for u in [0, total] (float64 [n]), the same
        values. A draw of GUIDE_MIN_DRAWS or more (the context objective's noise words: ~50k a
        pretraining batch) looks most of them up in the guide table, built then (~20 ms on the
        demo vocabulary: 0.5 ms against 4.6 ms for 53,760 draws), and binary-searches the
        rest; smaller ones (the corruptor's) search."""
        if u.size < GUIDE_MIN_DRAWS:
            return np.searchsorted(self._cum, u, side="right")
        if self._guide_lo is None:
            self._build_guide()
        bucket = np.minimum((u * self._guide_scale).astype(np.int64), len(self._guide_lo) - 1)
        k = self._guide_lo[bucket].astype(np.int64)
        unsure = np.flatnonzero(k != self._guide_hi[bucket])
        k[unsure] = np.searchsorted(self._cum, u[unsure], side="right")
        return k

    def _build_bands(self, mass: np.ndarray, num_bands: int) -> None:
        """Bands over ranks [0, num_drawable): band_of [V], per band rank/mass ranges."""
        n = self.num_drawable
        sorted_mass = mass[self._order[:n]]
        before = np.cumsum(sorted_mass) - sorted_mass
        raw = np.minimum((before / sorted_mass.sum() * num_bands).astype(np.int64), num_bands - 1)
        starts = [0] + (np.flatnonzero(np.diff(raw)) + 1).tolist()  # first rank of each band
        # a band of fewer than 2 words joins the band before it (the first joins the next)
        merged = []
        for i, start in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else n
            if merged and (end - start < 2 or merged[-1][1] - merged[-1][0] < 2):
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        self.num_bands = len(merged)
        band_of_rank = np.full(self.size, self.num_bands - 1, np.int32)  # undrawable: rarest band
        for b, (start, end) in enumerate(merged):
            band_of_rank[start:end] = b
        self.band_of = band_of_rank[self._rank]
        ranges = np.array(merged, dtype=np.int64)
        self._band_lo = np.where(ranges[:, 0] > 0, self._cum[ranges[:, 0] - 1], 0.0)
        self._band_hi = self._cum[ranges[:, 1] - 1]
        self._band_last = ranges[:, 1] - 1

    def probabilities(self) -> np.ndarray:
        """float64 [V], the probability of drawing each id."""
        return self.weights / self._total

    def sample(self, size, rng: np.random.Generator) -> np.ndarray:
        """int32 ids of shape `size`, drawn from counts ** alpha."""
        u = rng.random(size) * self._total
        k = np.minimum(self._ranks(u.ravel()).reshape(u.shape), self._last)
        return self._order[k].astype(np.int32)

    def sample_other(self, ids, rng: np.random.Generator, within_band: bool = False
                     ) -> Tuple[np.ndarray, np.ndarray]:
        """For each id, a drawn id != it (from counts ** alpha without it; with `within_band`,
        from its own band only). Returns (int32 ids, bool failed), both of ids' shape;
        failed is True only where no other word exists."""
        ids = np.asarray(ids, dtype=np.int64)
        shape = ids.shape
        ids = ids.ravel()
        out = np.empty(ids.size, np.int32)
        todo = np.arange(ids.size)
        for _ in range(_FAST_TRIES):
            if todo.size == 0:
                break
            drawn = self._draw_excluding(ids[todo], rng, within_band)
            good = drawn != ids[todo]
            out[todo[good]] = drawn[good]
            todo = todo[~good]
        failed = np.zeros(ids.size, bool)
        failed[todo] = True
        out[todo] = ids[todo]
        return out.reshape(shape), failed.reshape(shape)

    def _draw_excluding(self, ids: np.ndarray, rng: np.random.Generator, within_band: bool) -> np.ndarray:
        """One draw per id from the range's mass with the id's own mass cut out."""
        own = self.weights[ids]
        before = self._cum[self._rank[ids]] - own
        if within_band:
            band = self.band_of[ids]
            lo, hi, last = self._band_lo[band], self._band_hi[band], self._band_last[band]
        else:
            lo, hi, last = 0.0, self._total, self._last
        u = lo + rng.random(ids.size) * (hi - lo - own)
        u = np.where(u >= before, u + own, u)
        k = np.minimum(self._ranks(u), last)
        return self._order[k].astype(np.int32)


def sample_unigram(counts, alpha: float, size, rng: np.random.Generator, num_special: int = 2) -> np.ndarray:
    """int32 ids drawn from counts ** alpha, never a special (id < num_special) or a count-0
    id. Builds the table each call: keep a `UnigramSampler` for repeated draws."""
    return UnigramSampler(counts, alpha, num_special).sample(size, rng)


def _nth_true(mask: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Column of the n-th (0-based) True of each row of `mask` (0 where there is none)."""
    return np.argmax(np.cumsum(mask, axis=1, dtype=np.int32) > n[:, None], axis=1)


def _uniform_below(rng: np.random.Generator, n: np.ndarray) -> np.ndarray:
    """Uniform integers in [0, n) (0 where n <= 0)."""
    return np.minimum((rng.random(n.shape) * n).astype(np.int64), np.maximum(n - 1, 0))


class Corruptor:
    """Turns batches of good sentences (padded ids) into bad ones.

    counts: int [V], corpus count per id (`Vocabulary.counts`): the replace noise
        distribution. Ids below `num_special` (PAD, UNK) are never drawn.
    config: `CorruptionConfig` (ops and weights, edits, alpha, band, num_bands, swap).
    """

    def __init__(self, counts, config: Optional[CorruptionConfig] = None, num_special: int = 2):
        self.config = config if config is not None else CorruptionConfig()
        weights = np.array([float(self.config.ops.get(op, 0.0)) for op in OPS])
        self._op_cum = np.cumsum(weights) / weights.sum()
        self._op_cum[-1] = 1.0
        self._uses = {op for op, w in zip(OPS, weights) if w > 0}
        self.num_special = num_special
        self.edits = self.config.edits
        self.positions_width = max((self.edits if op == "replace" else 2 * self.edits) for op in self._uses)
        self.sampler = None
        if "replace" in self._uses:
            drawable = int((np.asarray(counts).ravel()[num_special:] > 0).sum())
            if drawable < 2:
                raise ConfigError(
                    f"replace needs at least 2 words with a count > 0, the vocabulary has "
                    f"{drawable}: use a bigger corpus or a lower min count")
            self.sampler = UnigramSampler(counts, self.config.alpha, num_special, self.config.num_bands)

    def corrupt(self, ids, lengths, rng: np.random.Generator) -> CorruptedBatch:
        """Corrupts every sentence of a batch.

        ids: int [B, T], 0-padded good sentences (T may exceed every length).
        lengths: int [B], tokens of each sentence (clipped to T).
        rng: numpy.random.Generator; the same state gives the same batch.
        """
        ids = np.asarray(ids)
        if ids.ndim != 2:
            raise ValueError(f"ids must have shape [B, T], got {ids.shape}")
        ids = ids.astype(np.int32, copy=False)
        batch, width = ids.shape
        lengths = np.clip(np.asarray(lengths, dtype=np.int64).reshape(-1), 0, width)
        if lengths.shape[0] != batch:
            raise ValueError(f"lengths has {lengths.shape[0]} entries for a batch of {batch}")
        op = np.searchsorted(self._op_cum, rng.random(batch), side="right").astype(np.int8)
        op = np.minimum(op, len(OPS) - 1)
        bad = ids.copy()
        positions = np.full((batch, self.positions_width), -1, np.int32)
        ok = np.zeros(batch, bool)
        skipped: Dict[str, int] = collections.Counter()
        for code, apply in ((REPLACE, self._replace), (SWAP, self._swap)):
            rows = np.flatnonzero(op == code)
            if rows.size:
                row_ok, pos, reasons, new_words = apply(ids, lengths[rows], rows, rng)
                done = rows[row_ok]
                pos = pos[row_ok]
                positions[done, : pos.shape[1]] = pos
                if code == REPLACE:
                    bad[done[:, None], pos] = new_words
                else:
                    left, right = pos[:, 0::2], pos[:, 1::2]
                    r = done[:, None]
                    bad[r, left], bad[r, right] = ids[r, right], ids[r, left]
                ok[done] = True
                for reason, count in reasons.items():
                    skipped[reason] += count
        op[~ok] = -1
        changed = np.zeros(ids.shape, bool)
        r, c = np.nonzero(positions >= 0)  # every position listed really differs
        changed[r, positions[r, c]] = True
        return CorruptedBatch(bad, ok, op, positions, changed, dict(skipped))

    # ------------------------------------------------------------------ replace

    def _replace(self, ids: np.ndarray, lengths: np.ndarray, rows: np.ndarray, rng: np.random.Generator):
        """Replace in rows `rows` of ids (lengths: theirs). Returns ok [n], positions
        [n, edits], reasons, replacement ids [ok rows, edits]."""
        k = self.edits
        empty = lengths == 0
        short = ~empty & (lengths < k)
        pos = _distinct_positions(rng, lengths, k, ids.shape[1], todo=np.flatnonzero(lengths >= k))
        new, failed = self.sampler.sample_other(ids[rows[:, None], pos], rng, within_band=self.config.band)
        no_word = ~empty & ~short & failed.any(axis=1)
        ok = ~(empty | short | no_word)
        reasons = _reasons((EMPTY, empty), (TOO_SHORT_FOR_REPLACE, short), (NO_REPLACEMENT, no_word))
        return ok, pos.astype(np.int32), reasons, new[ok]

    # ------------------------------------------------------------------ swap

    def _swap(self, ids: np.ndarray, lengths: np.ndarray, rows: np.ndarray, rng: np.random.Generator):
        """Swap in rows `rows` of ids (lengths: theirs). Returns ok [n], positions
        [n, 2 * edits] as sorted pairs, reasons, None."""
        adjacent = self.config.swap == "adjacent"
        n = rows.size
        empty = lengths == 0
        short = ~empty & (lengths < 2 * self.edits)
        found = ~empty & ~short
        used = np.full((n, 2 * self.edits), -1, np.int64)  # positions taken by earlier pairs
        for e in range(self.edits):
            todo = np.flatnonzero(found)
            pick = _pick_adjacent if adjacent else _pick_any
            p, q, got = pick(ids, rows, lengths, used[:, : 2 * e], todo, rng)
            found[todo[~got]] = False
            used[:, 2 * e], used[:, 2 * e + 1] = np.minimum(p, q), np.maximum(p, q)
        failed = ~empty & ~short & ~found
        reason = NO_DIFFERENT_NEIGHBOURS if adjacent else NO_DIFFERENT_WORDS
        reasons = _reasons((EMPTY, empty), (TOO_SHORT_FOR_SWAP, short), (reason, failed))
        return found, used.astype(np.int32), reasons, None


def _distinct_positions(rng, lengths, k, width, todo):
    """int64 [n, k]: for the rows in `todo`, k distinct sorted positions below each length,
    uniformly; other rows hold zeros."""
    n = lengths.shape[0]
    pos = np.zeros((n, k), np.int64)
    if k == 1:
        pos[todo, 0] = _uniform_below(rng, lengths[todo])
        return pos
    for _ in range(_FAST_TRIES):  # draw k, keep rows without a repeat
        if todo.size == 0:
            return pos
        draw = np.sort(_uniform_below(rng, np.repeat(lengths[todo, None], k, axis=1)), axis=1)
        distinct = (np.diff(draw, axis=1) > 0).all(axis=1)
        pos[todo[distinct]] = draw[distinct]
        todo = todo[~distinct]
    if todo.size:  # short rows: the first k of a random order of their positions
        keys = rng.random((todo.size, width))
        keys[np.arange(width)[None, :] >= lengths[todo, None]] = 2.0
        pos[todo] = np.sort(np.argsort(keys, axis=1)[:, :k], axis=1)
    return pos


def _is_used(used, draw):
    """bool [m]: draw[i] is one of used[i] (used: [m, j] positions)."""
    return (used == draw[:, None]).any(axis=1) if used.shape[1] else np.zeros(draw.shape, bool)


def _free(ids, rows, lengths, used, where):
    """bool [m, T]: positions below the length and not in `used`, for local rows `where`."""
    free = np.arange(ids.shape[1])[None, :] < lengths[where, None]
    if used.shape[1]:
        taken = used[where]
        r = np.repeat(np.arange(where.size), taken.shape[1])
        free[r, taken.ravel()] = False
    return free


def _pick_any(ids, rows, lengths, used, todo, rng):
    """For the local rows `todo` (global rows[todo]), two positions not in `used`, holding
    different words: p uniform among the free positions, q uniform among the free ones
    holding another word. Returns p, q (int64 [n]) and got (bool [len(todo)])."""
    n = rows.size
    p = np.zeros(n, np.int64)
    q = np.zeros(n, np.int64)
    where = todo  # local rows still drawing
    for _ in range(_FAST_TRIES):
        if where.size == 0:
            break
        draw = _uniform_below(rng, lengths[where])
        good = ~_is_used(used[where], draw)
        p[where[good]] = draw[good]
        where = where[~good]
    if where.size:  # exact: the n-th free position
        free = _free(ids, rows, lengths, used, where)
        p[where] = _nth_true(free, _uniform_below(rng, free.sum(axis=1)))
    word = np.zeros(n, ids.dtype)
    word[todo] = ids[rows[todo], p[todo]]
    where = todo
    for _ in range(_FAST_TRIES):
        if where.size == 0:
            break
        draw = _uniform_below(rng, lengths[where])
        good = (ids[rows[where], draw] != word[where]) & ~_is_used(used[where], draw)
        q[where[good]] = draw[good]
        where = where[~good]
    missing = np.zeros(n, bool)
    if where.size:  # exact: the n-th free position holding another word
        other = _free(ids, rows, lengths, used, where) & (ids[rows[where]] != word[where, None])
        count = other.sum(axis=1)
        q[where] = _nth_true(other, _uniform_below(rng, count))
        missing[where[count == 0]] = True
    return p, q, ~missing[todo]


def _pick_adjacent(ids, rows, lengths, used, todo, rng):
    """For the local rows `todo`, neighbours (p, p + 1) not in `used`, holding different
    words, uniformly. Returns p, p + 1 (int64 [n]) and got (bool [len(todo)])."""
    n, width = rows.size, ids.shape[1]
    p = np.zeros(n, np.int64)
    if width < 2:
        return p, p + 1, np.zeros(todo.size, bool)
    where = todo
    for _ in range(_FAST_TRIES):
        if where.size == 0:
            break
        draw = _uniform_below(rng, lengths[where] - 1)
        g = rows[where]
        good = ((ids[g, draw] != ids[g, draw + 1]) & (lengths[where] >= 2)
                & ~_is_used(used[where], draw) & ~_is_used(used[where], draw + 1))
        p[where[good]] = draw[good]
        where = where[~good]
    missing = np.zeros(n, bool)
    if where.size:  # exact: the n-th usable neighbour pair
        free = _free(ids, rows, lengths, used, where)
        sub = ids[rows[where]]
        usable = free[:, :-1] & free[:, 1:] & (sub[:, :-1] != sub[:, 1:])
        count = usable.sum(axis=1)
        p[where] = _nth_true(usable, _uniform_below(rng, count))
        missing[where[count == 0]] = True
    return p, p + 1, ~missing[todo]


def _reasons(*pairs) -> Dict[str, int]:
    """{reason: count} of the boolean masks that count anything."""
    return {reason: int(mask.sum()) for reason, mask in pairs if mask.any()}
