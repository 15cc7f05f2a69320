"""Reading pretrained word vectors (word2vec / GloVe, text or binary) into embedding rows.

No TensorFlow here: the result is a numpy matrix the pretraining graph starts from.
"""

from __future__ import annotations

import os
from typing import Tuple

import numpy as np

from auxpretrain.errors import InputError


def _open(path: str):
    if path.endswith(".gz"):
        import gzip
        return gzip.open(path, "rb")
    if path.endswith(".bz2"):
        import bz2
        return bz2.open(path, "rb")
    return open(path, "rb")


def _is_binary_word2vec(head: bytes) -> bool:
    first = head.split(b"\n", 1)[0].split()
    if len(first) != 2 or not all(p.isdigit() for p in first):
        return False
    rest = head.split(b"\n", 1)[1] if b"\n" in head else b""
    return b"\x00" in rest[:4096] or any(b > 127 for b in rest[:256] if b not in b"\r\n\t ")


def load_word_vectors(path: str, vocab, dim: int, rows: np.ndarray) -> Tuple[np.ndarray, int]:
    """Copies vectors of vocabulary words from a word2vec/GloVe file into `rows`.

    Args:
      path: text format ("word v1 v2 ...", an optional "count dim" first line; GloVe has none)
        or word2vec's C binary format (.bin), optionally .gz/.bz2.
      vocab: an auxpretrain.vocab.Vocabulary.
      dim: the model's embedding_size; the file's vectors must have this width.
      rows: float32 [len(vocab), dim] initial rows; words found in the file are overwritten.

    Returns:
      (rows, number of vocabulary words found in the file).
    """
    if not os.path.isfile(path):
        raise InputError(f"{path}: --init-embeddings file not found")
    index = {tok: i for i, tok in enumerate(vocab.tokens)}
    found = 0
    with _open(path) as f:
        head = f.read(65536)
    binary = _is_binary_word2vec(head)
    with _open(path) as f:
        if binary:
            header = f.readline().split()
            count, width = int(header[0]), int(header[1])
            if width != dim:
                raise InputError(f"{path}: vectors have {width} dimensions but the model's "
                                 f"embedding_size is {dim}; pass --embedding-size {width}")
            for _ in range(count):
                word = bytearray()
                while True:
                    ch = f.read(1)
                    if ch in (b" ", b""):
                        break
                    if ch != b"\n":
                        word.extend(ch)
                vec = np.frombuffer(f.read(4 * width), dtype=np.float32)
                if vec.size != width:
                    raise InputError(f"{path}: truncated binary vectors after {found} words")
                i = index.get(word.decode("utf-8", errors="replace"))
                if i is not None and i > 1:
                    rows[i] = vec
                    found += 1
            return rows, found
        for lineno, raw in enumerate(f, start=1):
            parts = raw.decode("utf-8", errors="replace").rstrip().split(" ")
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                if int(parts[1]) != dim:
                    raise InputError(f"{path}:1: vectors have {parts[1]} dimensions but the model's "
                                     f"embedding_size is {dim}; pass --embedding-size {parts[1]}")
                continue
            if len(parts) < 2:
                continue
            if len(parts) - 1 != dim:
                raise InputError(f"{path}:{lineno}: a vector of {len(parts) - 1} numbers, expected "
                                 f"{dim} (the model's embedding_size)")
            i = index.get(parts[0])
            if i is None or i <= 1:
                continue
            try:
                rows[i] = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise InputError(f"{path}:{lineno}: not a number in the vector of {parts[0]!r}") from None
            found += 1
    return rows, found
