"""The context objective's updates as compiled code (auxpretrain/pretraining/ccontext.c), when
it is built.

`compiled` is the extension module, or None (`why_not_compiled` says why): not built (no C
compiler at install time), built from another version of the source, or turned off with
AUXPRETRAIN_PURE_PYTHON=1. Without it the train op runs the same updates as TensorFlow ops
(`graph._context_loop`); tests compare the two.

`sgd_passes` is what the train op calls (through `tf.numpy_function`) on the rows a step
touches. No TensorFlow here.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import numpy as np

from auxpretrain.data.speedups import load_compiled

ABI_VERSION = 1  # ccontext.c's ABI_VERSION this code was written for
MAX_THREADS = 8

compiled, why_not_compiled = load_compiled("auxpretrain.pretraining.ccontext", ABI_VERSION)


def default_threads() -> int:
    """The CPUs this process may run on, at most MAX_THREADS."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_THREADS))


def block_indices(ids: np.ndarray, noise: np.ndarray, vocab_size: int):
    """The rows a step's context updates touch, and where each word finds its row.

    ids int32 [passes, sentences, T], noise int32 [passes, sentences, P] (as the train op gets
    them). -> (in_rows: the distinct ids, ascending; in_index [passes * sentences * T]: each
    word's position in in_rows; out_rows: the distinct ids of the noise words and the words;
    out_index [passes * sentences * (P + T)]: each noise word's then each word's position in
    out_rows), all int32."""
    ids = np.ascontiguousarray(ids, np.int32)
    both = np.ascontiguousarray(np.concatenate([noise, ids], axis=-1), np.int32)
    out = []
    for flat in (ids.reshape(-1), both.reshape(-1)):
        rows = np.empty(min(flat.size, vocab_size), np.int32)
        index = np.empty(flat.size, np.int32)
        count = compiled.rows_of(flat, vocab_size, rows, index) if flat.size else 0
        out += [rows[:count], index]
    return tuple(out)


class Scratch:
    """Float32 arrays kept from step to step for `sgd_passes`' results. Fresh memory of their
    size costs page faults at every step (freed blocks above glibc's mmap threshold go back to
    the system; TensorFlow's generator dataset sets it to 128 KiB). An array is handed out
    again only once nothing else holds it (TensorFlow drops its reference to a step's result
    when the step is done)."""

    def __init__(self):
        self._kept = {}

    def array(self, name: str, rows: int, dim: int) -> np.ndarray:
        """A float32 [rows, dim] array, contents undefined."""
        base = self._kept.get(name)
        # references: self._kept's, `base` and getrefcount's argument; any other is a user's
        if base is None or base.shape[0] < rows or base.shape[1] != dim or sys.getrefcount(base) > 3:
            base = np.empty((max(rows + rows // 4, 1), dim), np.float32)  # room for larger steps
            self._kept[name] = base
        return base[:rows]


def sgd_passes(in_block: np.ndarray, out_block: np.ndarray, ids: np.ndarray, reach: np.ndarray,
               in_index: np.ndarray, out_index: np.ndarray, scale, negatives: int, threads: int,
               deltas: bool, scratch: Optional[Scratch] = None):
    """The passes of a step on the rows it touches (`block_indices`).

    in_block float32 [Ui, dim], out_block float32 [Uo, dim]: the embedding's and the output
    table's rows (left unchanged); ids int32 [passes, sentences, T] and reach (as the train op
    gets them); in_index, out_index as `block_indices` gives them. -> (the rows after the
    updates, or their changes if `deltas`: [Ui, dim], [Uo, dim]; the summed pair loss as
    each update saw it, float32; the number of pairs, float32). `scratch`: where the results
    go (a Scratch the caller keeps), else new arrays."""
    passes, sentences, width = ids.shape
    count = passes * sentences
    scratch = scratch or Scratch()
    new_in = scratch.array("in", *in_block.shape)
    new_out = scratch.array("out", *out_block.shape)
    loss = pairs = 0.0
    if count and width:  # the kernel copies the blocks, then updates the copies
        loss, pairs = compiled.sgd_passes(
            new_in, new_out, np.ascontiguousarray(in_block, np.float32), np.ascontiguousarray(out_block, np.float32),
            np.ascontiguousarray(in_index, np.int32).reshape(count, width),
            np.ascontiguousarray(out_index, np.int32).reshape(count, -1),
            np.ascontiguousarray(reach, np.int32).reshape(count, width), passes, float(scale), int(negatives),
            int(threads))
    else:
        new_in[...] = in_block
        new_out[...] = out_block
    if deltas:
        new_in -= in_block
        new_out -= out_block
    return new_in, new_out, np.float32(loss), np.float32(pairs)
