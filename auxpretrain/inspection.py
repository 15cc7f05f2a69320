"""A look at an export's embedding: nearest neighbours by cosine similarity, and TensorBoard
projector files (`auxpretrain inspect EXPORT --neighbors WORD,... --projector DIR`).

Numpy only; reading the embedding table from the checkpoint loads TensorFlow on first use.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from auxpretrain.errors import ConfigError, InputError
from auxpretrain.export import as_export
from auxpretrain.files import atomic_write_text

EMBEDDING_TABLE = "embedding/table"
PROJECTOR_FILES = ("vectors.tsv", "metadata.tsv", "projector_config.pbtxt")


def _table(export) -> np.ndarray:
    return np.asarray(export.values([EMBEDDING_TABLE])[EMBEDDING_TABLE], np.float32)


def nearest_neighbors(source, words: Sequence[str], k: int = 10) -> Dict[str, List[Tuple[str, float]]]:
    """The `k` words whose embedding rows are closest to each word's row (cosine similarity).

    Args:
      source: an export directory (checksums verified) or an Export.
      words: words to look up; lowercased as the export's tokenizer does.
      k: neighbours per word (the word itself, <pad> and <unk> are never listed).

    Returns:
      {word: [(neighbour, cosine), ...]} in the order of `words`, most similar first.

    Raises:
      InputError: a word is not in the export's vocabulary.
    """
    export = as_export(source)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be an integer >= 1, got {k!r}")
    lowercase = getattr(export.tokenizer, "lowercase", False)
    keys = [w.strip().lower() if lowercase else w.strip() for w in words]
    unknown = [w for w in keys if w not in export.vocab or export.vocab.id_of(w) < 2]
    if unknown:
        raise InputError(f"{', '.join(map(repr, unknown))} not in the vocabulary of {export.path} "
                         f"({len(export.vocab)} tokens); `auxpretrain inspect` lists its first words")
    table = _table(export)
    norms = np.linalg.norm(table, axis=1)
    unit = table / np.maximum(norms, 1e-12)[:, None]
    out = {}
    for word in keys:
        i = export.vocab.id_of(word)
        scores = unit @ unit[i]
        scores[:2] = -np.inf  # <pad>, <unk>
        scores[i] = -np.inf
        scores[norms == 0] = -np.inf
        best = np.argsort(-scores, kind="stable")[:k]
        out[word] = [(export.vocab.tokens[j], round(float(scores[j]), 4)) for j in best if np.isfinite(scores[j])]
    return out


def write_projector(source, out_dir: str, rows: Optional[int] = None) -> List[str]:
    """Writes TensorBoard projector files for the embedding: `vectors.tsv` (one row of floats a
    line), `metadata.tsv` (the word of each row, one a line) and `projector_config.pbtxt`.

    `tensorboard --logdir OUT_DIR` shows them in its Projector tab (or load the two TSV files
    at projector.tensorflow.org). Rows are the vocabulary's words in id order (most frequent
    first), <pad> and <unk> left out; `rows` keeps the first `rows` of them.

    Returns:
      the paths written.
    """
    export = as_export(source)
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
        raise ConfigError(f"rows must be an integer >= 1, got {rows!r}")
    table = _table(export)[2:]
    tokens = export.vocab.tokens[2:]
    if rows is not None:
        table, tokens = table[:rows], tokens[:rows]
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise InputError(f"{out_dir}: cannot create the projector directory ({e.strerror or e})") from None
    paths = [os.path.join(out_dir, name) for name in PROJECTOR_FILES]
    atomic_write_text(paths[0], "".join("\t".join(f"{x:.6g}" for x in row) + "\n" for row in table.tolist()))
    atomic_write_text(paths[1], "".join(t.replace("\t", " ") + "\n" for t in tokens))
    atomic_write_text(paths[2], 'embeddings {\n  tensor_name: "%s"\n  tensor_shape: %d\n  tensor_shape: %d\n'
                                '  tensor_path: "%s"\n  metadata_path: "%s"\n}\n'
                      % (EMBEDDING_TABLE, len(tokens), table.shape[1], PROJECTOR_FILES[0], PROJECTOR_FILES[1]))
    return paths
