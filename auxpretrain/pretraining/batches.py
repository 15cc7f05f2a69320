"""Pretraining batches: good sentences, their fresh corruptions, and context pairs.

Batch b of epoch e is a pure function of (seed, e, b), so a resumed run sees exactly the
batches the interrupted one would have, with no replay. No TensorFlow here: the training
graph pulls the batches through `BatchMaker.stream`.
"""

from __future__ import annotations

import os
import tempfile
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np

from auxpretrain.config import CorruptionConfig, ModelConfig, PretrainConfig
from auxpretrain.data.corruption import Corruptor, UnigramSampler
from auxpretrain.data.encoded import EncodedSentences

# An epoch's context-pass orders (4 bytes a sentence a pass) stay in memory up to this many
# bytes; beyond, `PassOrders` keeps them in an anonymous temporary file and reads a step's rows.
MAX_ORDERS_IN_MEMORY = 64 << 20


class BatchMaker:
    """Builds pretraining batches: good sentences, their fresh corruptions, context pairs."""

    def __init__(self, data: EncodedSentences, vocab, model_config: ModelConfig,
                 config: PretrainConfig, corruption: CorruptionConfig):
        self.data = data
        self.model_config = model_config
        self.config = config
        counts = np.asarray(vocab.counts, dtype=np.float64)
        self.corruptor = Corruptor(vocab.counts, corruption)
        self.sampler = UnigramSampler(vocab.counts, config.negatives_alpha)
        freq = counts / max(counts.sum(), 1.0)
        t = config.subsample
        with np.errstate(divide="ignore", invalid="ignore"):
            keep = np.where(freq > 0, (np.sqrt(freq / t) + 1.0) * t / freq, 0.0) if t > 0 \
                else np.ones_like(freq)
        keep[:2] = 0.0  # PAD and UNK never enter context pairs
        self.keep_prob = np.minimum(keep, 1.0)
        self.want_context = "context" in config.objectives
        self.want_pairs = any(name != "context" for name in config.objectives)  # good/bad sentences
        self.batches_per_epoch = max(1, len(data) // config.batch_size)

    def epoch_order(self, epoch: int, context_pass: int = 0) -> np.ndarray:
        """Sentence indices of each batch of `epoch`, length-bucketed then shuffled: int32
        [batches, batch_size], row i the i-th batch (4 bytes a sentence: a stream holds one of
        these per context pass). Pass 0 is the order of the step's own batches; context pass
        k > 0 reorders the same sentences for the extra context pairs of each step
        (`config.context_passes`)."""
        tag = [1] if context_pass == 0 else [3, context_pass]
        rng = np.random.default_rng([self.config.seed, epoch, *tag])
        perm = rng.permutation(len(self.data)).astype(np.int32)
        b = self.config.batch_size
        chunk = b * 50
        lengths = self.data.lengths
        batches = []
        for start in range(0, len(perm) - b + 1, chunk):
            part = perm[start:start + chunk]
            part = part[np.argsort(lengths[part], kind="stable")]
            batches.extend(part[i:i + b] for i in range(0, len(part) - b + 1, b))
        order = rng.permutation(len(batches))
        if not batches:
            return np.zeros((0, b), np.int32)
        return np.stack(batches)[order]

    def make(self, index: np.ndarray, rng: np.random.Generator,
             context_index: Sequence[np.ndarray] = (), pairs: bool = True) -> Dict[str, np.ndarray]:
        """The batch of sentences `index`: good, bad, changed, and the context windows of those
        sentences (pass 0) and of each array of `context_index` (passes 1.., context only).
        `pairs` False (no objective reads them): good is every sentence, no corruption drawn,
        bad and changed are empty."""
        ids, lengths = self.data.batch(index, self.model_config.max_length)
        if pairs:
            corrupted = self.corruptor.corrupt(ids, lengths, rng)
            ok = corrupted.ok
            batch = {"good": ids[ok], "bad": corrupted.bad[ok], "changed": corrupted.changed[ok]}
        else:
            batch = {"good": ids, "bad": ids[:0], "changed": np.zeros((0, ids.shape[1]), bool)}
        if self.want_context:
            words = ids
            if len(context_index):  # the passes' sentences, one array (rows: pass after pass)
                more = self.data.batch(np.concatenate(list(context_index)), self.model_config.max_length)[0]
                width = max(ids.shape[1], more.shape[1])
                words = np.concatenate([np.pad(a, ((0, 0), (0, width - a.shape[1]))) for a in (ids, more)])
            kept, reach, negatives = self.context_windows(words, rng)
            passes = 1 + len(context_index)
            ctx, reach = (a.reshape(passes, len(index), -1) for a in (kept, reach))
            negatives = negatives.reshape(passes, len(index), -1)
        else:
            ctx = reach = np.zeros((1, 0, 0), np.int32)
            negatives = np.zeros((1, 0, self.config.noise_pool), np.int32)
        batch.update(ctx_ids=ctx, ctx_reach=reach, ctx_negatives=negatives)
        return batch

    def context_windows(self, ids: np.ndarray, rng: np.random.Generator):
        """word2vec skip-gram windows of a batch of sentences, as gensim builds them: frequent
        words subsampled away first (`keep_prob`), then for each remaining word (the target) a
        window of random reach 1..context_window over the remaining words; and `noise_pool`
        noise words per sentence, shared by its pairs (see `objectives.context_windows`).

        -> kept int32 [B, T'] (the kept words, left-aligned, 0-padded), reach int32 [B, T']
        (0 at padding), negatives int32 [B, noise_pool]."""
        keep = rng.random(ids.shape) < self.keep_prob[ids]
        lengths = keep.sum(1)
        width = max(int(lengths.max()) if lengths.size else 0, 1)
        kept = np.zeros((ids.shape[0], width), np.int32)
        rows = np.nonzero(keep)[0]
        cols = np.cumsum(keep, axis=1)[keep] - 1
        kept[rows, cols] = ids[keep]
        valid = np.arange(width)[None, :] < lengths[:, None]
        reach = np.zeros(kept.shape, np.int32)
        reach[valid] = rng.integers(1, self.config.context_window + 1, size=int(valid.sum()))
        pool = self.config.noise_pool
        negatives = np.asarray(self.sampler.sample(ids.shape[0] * pool, rng), np.int32).reshape(ids.shape[0], pool)
        return kept, reach, negatives

    def stream(self, start_step: int, total_steps: int) -> Iterator[tuple]:
        """Batches for global steps start_step .. total_steps-1, as tuples in INPUT_SPECS order."""
        from auxpretrain.model.objectives import INPUT_SPECS

        step = start_step
        while step < total_steps:
            epoch, offset = divmod(step, self.batches_per_epoch)
            order = self.epoch_order(epoch)
            extra = PassOrders(self, epoch)
            try:
                for b in range(offset, len(order)):
                    if step >= total_steps:
                        return
                    rng = np.random.default_rng([self.config.seed, epoch, b, 2])
                    batch = self.make(order[b], rng, extra.batch(b), pairs=self.want_pairs)
                    yield tuple(batch[name] for name in INPUT_SPECS)
                    step += 1
            finally:
                extra.close()
            if offset >= len(order):  # defensive: never loop forever on an empty epoch
                step += 1


class PassOrders:
    """Row b of `maker.epoch_order(epoch, k)` for each context pass k = 1 .. context_passes - 1.

    The orders are built one pass at a time; when all of them together would take more than
    `max_bytes` (default `MAX_ORDERS_IN_MEMORY`; 4 bytes a sentence a pass: 234 MiB for 19 passes
    of 3.2M sentences), each is written to an anonymous temporary file next to the training ids
    (`_open`) and dropped, and `batch(b)` reads its rows back (one `os.pread` a pass), so that
    memory does not grow with sentences x passes. If the file cannot be written (a full or
    read-only disk), the orders stay in memory: the same rows.
    """

    def __init__(self, maker: BatchMaker, epoch: int, max_bytes: Optional[int] = None):
        passes = maker.config.context_passes if maker.want_context else 1
        self._count = passes - 1
        self._arrays: List[np.ndarray] = []
        self._file = None
        self._rows = self._row_bytes = 0
        if passes < 2:
            return
        first = np.ascontiguousarray(maker.epoch_order(epoch, 1), dtype=np.int32)
        self._rows, self._row_bytes = first.shape[0], first.shape[1] * 4
        limit = MAX_ORDERS_IN_MEMORY if max_bytes is None else max_bytes
        if self._count * first.nbytes > limit:
            self._file = self._open(maker.data)
        if self._file is not None:
            try:
                self._file.write(first.tobytes())
                for k in range(2, passes):
                    self._file.write(np.ascontiguousarray(maker.epoch_order(epoch, k), dtype=np.int32).tobytes())
                self._file.flush()
                return
            except OSError:  # a full disk: keep them in memory instead
                self.close()
        self._arrays = [first] + [maker.epoch_order(epoch, k) for k in range(2, passes)]

    @staticmethod
    def _open(data):
        """An anonymous temporary file next to `data`'s ids file (else in the system's temporary
        directory: the ids of a cluster worker's or a test's corpus are in a removed one), or
        None if none can be made."""
        path = getattr(data, "path", None)
        places = [os.path.dirname(path)] if path and os.path.isdir(os.path.dirname(path)) else []
        for place in places + [None]:
            try:
                return tempfile.TemporaryFile(dir=place, prefix=".orders-")
            except OSError:
                continue
        return None

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    def batch(self, b: int) -> List[np.ndarray]:
        """Row b of each pass's order (int32 [batch_size] each)."""
        if self._file is None:
            return [order[b] for order in self._arrays]
        fd, size = self._file.fileno(), self._row_bytes
        return [np.frombuffer(os.pread(fd, size, (k * self._rows + b) * size), dtype=np.int32)
                for k in range(self._count)]

    def close(self) -> None:
        """Removes the temporary file, if any."""
        if self._file is not None:
            self._file.close()
            self._file = None
