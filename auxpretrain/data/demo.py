"""The demo corpora (`auxpretrain corpus`): unlabeled pretraining text from the samples that
installed packages ship (see `packaged`).

`build_demo_corpora` writes wiki.txt (Wikipedia prose) and reviews.txt (review snippets and plot
summaries). reviews.txt holds only the snippets of the sentiment train+dev pool of
`tasks.load_sentiment`, never its fixed test split, so pretraining never sees a test sentence.

This module must not import TensorFlow.
"""

from __future__ import annotations

import os
import re
import time
from typing import List

from auxpretrain.data import tasks
from auxpretrain.data.packaged import (rotten_tomatoes_path, rotten_tomatoes_rows, wikipedia_paragraphs,
                                       wikipedia_sample_path)
from auxpretrain.errors import InputError
from auxpretrain.files import temporary_name


def _review_items(pool_texts: List[str], plots: List[str]) -> List[List[str]]:
    """Groups of lines for reviews.txt: one snippet each, or the paragraphs of one plot."""
    items = [[t] for t in pool_texts]
    for plot in plots:
        paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", plot)]
        paragraphs = [p for p in paragraphs if p]
        if paragraphs:
            items.append(paragraphs)
    return items


def _write_lines_tmp(out_dir: str, name: str, lines) -> tuple:
    """Writes `lines` to a temp file in out_dir; returns (temp path, lines, words)."""
    # open(..., "x") rather than mkstemp: the file gets the umask's mode, not 0600.
    tmp = temporary_name(os.path.join(out_dir, name))
    n_lines = n_words = 0
    try:
        with open(tmp, "x", encoding="utf-8", newline="\n") as f:
            for line in lines:
                f.write(line + "\n")
                n_lines += 1
                n_words += len(line.split())
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tmp, n_lines, n_words


def build_demo_corpora(out_dir: str, seed: int = 0) -> dict:
    """Writes the unlabeled demo corpora into `out_dir` (created if missing):

    - `wiki.txt`: the Wikipedia sample's prose paragraphs, one per line, article order;
    - `reviews.txt`: the review snippets of the sentiment train+dev pool (the snippets
      `tasks.load_sentiment("package")` does not put in its fixed test split, computed by
      that same function) plus the plot summaries, one snippet or plot paragraph per line.
      No line equals (after normalisation) a test snippet. `seed` only shuffles the order
      of the snippets and plots (a plot's paragraphs stay together); the content never
      depends on it.

    Both files are written to temp files first and moved into place (os.replace) only when
    both are complete, so an interrupted run leaves no half-written corpus.

    Returns {"wiki": {"path", "lines", "words", "seconds"},
             "reviews": {"path", "lines", "words", "snippets", "plot_paragraphs"},
             "test_snippets_excluded": int}; paths are out_dir joined with the file name.
    """
    import numpy as np

    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError(f"{out_dir}: exists and is not a directory; pass another --out")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise InputError(f"{out_dir}: cannot create the directory ({e.strerror}); "
                         f"pass another --out") from None

    # Fail on a missing package before the slow Wikipedia pass.
    rotten_tomatoes_path()
    wikipedia_sample_path()

    data = tasks.load_sentiment("package", dev_size=0)
    test_keys = {tasks.normalize_text(t) for t in data.test.texts}
    plots = [r["text"] for r in rotten_tomatoes_rows() if r["category"] == "plot"]
    items = _review_items(data.train.texts, plots)
    order = np.random.default_rng(seed).permutation(len(items))
    n_snippets = len(data.train.texts)  # items[:n_snippets] are snippets, the rest plots
    seen = set(test_keys)
    review_lines = []
    n_plot_paragraphs = 0
    for i in order:
        for line in items[i]:
            key = tasks.normalize_text(line)
            if not key or key in seen:  # never a test snippet, never a duplicate
                continue
            seen.add(key)
            review_lines.append(line)
            n_plot_paragraphs += int(i >= n_snippets)

    tmps = []
    try:
        start = time.perf_counter()
        wiki_tmp, wiki_lines, wiki_words = _write_lines_tmp(out_dir, "wiki.txt", wikipedia_paragraphs())
        wiki_seconds = time.perf_counter() - start
        tmps.append(wiki_tmp)
        rev_tmp, rev_lines, rev_words = _write_lines_tmp(out_dir, "reviews.txt", review_lines)
        tmps.append(rev_tmp)
        wiki_path = os.path.join(out_dir, "wiki.txt")
        reviews_path = os.path.join(out_dir, "reviews.txt")
        os.replace(wiki_tmp, wiki_path)
        os.replace(rev_tmp, reviews_path)
    except BaseException as e:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.unlink(tmp)
        if isinstance(e, OSError):
            raise InputError(f"{out_dir}: cannot write the corpora ({e.strerror or e}); "
                             f"free some space or pass another --out") from None
        raise
    return {
        "wiki": {"path": wiki_path, "lines": wiki_lines, "words": wiki_words,
                 "seconds": round(wiki_seconds, 2)},
        "reviews": {"path": reviews_path, "lines": rev_lines, "words": rev_words,
                    "snippets": rev_lines - n_plot_paragraphs,
                    "plot_paragraphs": n_plot_paragraphs},
        "test_snippets_excluded": len(data.test.texts),
    }
