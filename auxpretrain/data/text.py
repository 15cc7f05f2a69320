"""Sentence splitting and word tokenizing, with no downloads.

`Tokenizer` is NLTK's `RegexpTokenizer` technique (one `findall` of a word pattern): the
fastest of NLTK's data-free tokenizers on Wikipedia text. It calls the compiled pattern
itself, which gives exactly `nltk.tokenize.RegexpTokenizer(pattern).tokenize(text)` (a test
checks it) without importing `nltk`: with scipy, scikit-learn and pandas installed,
`import nltk` takes about 2.5 s, which would dominate `auxpretrain corrupt` on small files.
`WordIds` turns batches of sentences into word ids with the same tokens, tokenizing each
distinct whitespace-separated chunk once.

`SentenceSplitter` is Punkt (`data.punkt`, the same decisions as NLTK's Punkt without
importing NLTK): with the parameters the package ships (trained once on English package text)
when the text looks English, else with parameters trained by NLTK on a sample of the corpus
itself (also when asked, `train=True`). NLTK is imported only to train.

This module must not import TensorFlow.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import defaultdict
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from auxpretrain.config import CorpusConfig, default_of
from auxpretrain.data import punkt
from auxpretrain.data.speedups import compiled
from auxpretrain.errors import ConfigError

# A word: letters/digits, continued through inner hyphens or apostrophes (well-known,
# don't) and through '.' or ',' before digits (3.5, 1,000, 1q21.1); else any other
# non-space character alone (punctuation).
DEFAULT_PATTERN = r"\w+(?:[-'\u2019]\w+|[.,]\d+)*|[^\w\s]"

# The patterns a tokenizer read from a file (an export's manifest, a saved model's model.json)
# may use: the ones this package writes, whose matching time is linear in the text. Any other
# pattern from a file is refused: a crafted one such as (\w+\s?)+! backtracks for hours.
KNOWN_PATTERNS = (DEFAULT_PATTERN,)

SAMPLE_CHARS = default_of(CorpusConfig, "split_sample_chars")  # Punkt's training sample

# A sentence end followed, later, by whitespace: the only places Punkt can split.
_MAYBE_BOUNDARY = re.compile(r"[.?!]\S*\s")

# A word and the whitespace after it (a window's boundary is final when the word after it is whole).
_WORD_THEN_SPACE = re.compile(r"\s*\S+\s")

# Longer lines go to Punkt in windows of at most this many characters (`_sentences`): Punkt's
# regular expressions run over the whole text they are given, minutes on a line of tens of
# megabytes (and NLTK stops each after 5 s).
MAX_SPLIT_CHARS = 100_000


class Tokenizer:
    """Word tokenizer: `re.findall(pattern, text)`, as NLTK's `RegexpTokenizer`.

    Tokens never contain whitespace, so `" ".join(tokens).split()` gives them back.
    """

    def __init__(self, lowercase: bool = True, pattern: str = DEFAULT_PATTERN):
        try:
            self._findall = re.compile(pattern).findall
        except (re.error, TypeError) as e:
            raise ConfigError(f"tokenizer pattern {pattern!r:.60} is not a valid regular expression ({e})") from None
        self.lowercase = bool(lowercase)
        self.pattern = pattern

    def tokenize(self, text: str) -> List[str]:
        """Words of `text` (lowercased if `lowercase`)."""
        return self._findall(text.lower() if self.lowercase else text)

    def tokenize_batch(self, texts: Iterable[str]) -> List[List[str]]:
        """`tokenize` of each text (one C-level map: faster than a Python loop)."""
        return list(map(self._findall, map(str.lower, texts) if self.lowercase else texts))

    def to_dict(self) -> Dict[str, Any]:
        return {"type": "regexp", "pattern": self.pattern, "lowercase": self.lowercase}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "tokenizer",
                  trust_pattern: bool = False) -> "Tokenizer":
        """The tokenizer `to_dict` described. A pattern other than `KNOWN_PATTERNS` is refused
        unless `trust_pattern` (the dict is your own, not a file someone else wrote)."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where}: expected a JSON object, got {type(values).__name__}")
        unknown = sorted(set(values) - {"type", "pattern", "lowercase"})
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: lowercase, pattern, type")
        if values.get("type", "regexp") != "regexp":
            raise ConfigError(f"{where}: unknown tokenizer type {values.get('type')!r:.40}; only 'regexp' exists")
        lowercase, pattern = values.get("lowercase", True), values.get("pattern", DEFAULT_PATTERN)
        if not isinstance(lowercase, bool):
            raise ConfigError(f"{where}: lowercase must be true or false, got {lowercase!r:.40}")
        if not trust_pattern and pattern not in KNOWN_PATTERNS:
            raise ConfigError(f"{where}: pattern {pattern!r:.60} is not this package's tokenizer pattern; "
                              "a pattern from a file is not run (a crafted one can take hours on one text)")
        return cls(lowercase=lowercase, pattern=pattern)

    def __eq__(self, other) -> bool:
        return isinstance(other, Tokenizer) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Tokenizer(lowercase={self.lowercase}, pattern={self.pattern!r})"


_SEPARATOR = "\x00"  # joins a batch's sentences for one str.split (never inside a chunk we tokenize)


class WordIds:
    """Sentences -> running word ids (first seen, first numbered), with `tokenizer`'s tokens.

    With the default pattern, which never matches across whitespace, the tokens of a text are
    those of its whitespace-separated chunks in turn; each distinct chunk is lowercased and
    tokenized once and remembered as its word ids (at most `max_chunks` of them, then the
    memory starts again), so a batch costs a `str.split` and a dict lookup per chunk plus
    array gathers (with the compiled `ChunkTable`, one pass over the text in C that makes a
    string only of a chunk seen for the first time; the same ids). Another pattern tokenizes
    every sentence (`Tokenizer.tokenize_batch`).
    `words[i]` is the word of running id i.
    """

    def __init__(self, tokenizer: Tokenizer, max_chunks: int = 2_000_000):
        self.tokenizer = tokenizer
        self.index: defaultdict = defaultdict()
        self.index.default_factory = self.index.__len__  # an unseen word gets the next id
        self.max_chunks = max_chunks
        self._by_chunk = tokenizer.pattern == DEFAULT_PATTERN
        self._reset_chunks()

    @property
    def words(self) -> List[str]:
        return list(self.index)

    def _reset_chunks(self) -> None:
        if compiled is not None:  # the chunks and their word ids in C
            self._chunks = compiled.ChunkTable()
            self._chunks.lookup([_SEPARATOR])  # chunk 0 separates sentences: no token
            self._chunks.set_words(np.zeros(1, np.int64), np.zeros(0, np.int32))
            return
        self._chunks = defaultdict()
        self._chunks.default_factory = self._chunks.__len__
        self._chunks[_SEPARATOR]
        self._chunk_start = np.zeros(1, np.int64)  # chunk id -> first of its word ids in _chunk_words
        self._chunk_size = np.zeros(1, np.int64)  # chunk id -> its number of tokens
        self._chunk_words = np.zeros(0, np.int32)

    def encode(self, sentences: List[str]) -> Tuple[np.ndarray, np.ndarray]:
        """-> (ids int32 [total tokens], lengths int64 [len(sentences)]): the running word ids
        of every sentence in turn, and each sentence's number of tokens (0 for none)."""
        if self._by_chunk and len(self._chunks) > self.max_chunks:
            self._reset_chunks()
        if self._by_chunk and compiled is not None:
            found = self._chunks.lookup(sentences)
            if found is not None:  # (None: the separator in a sentence)
                chunk_bytes, new_chunks = found
                if new_chunks:
                    self._chunks.set_words(*self._word_ids(new_chunks))
                ids, lengths = self._chunks.words(chunk_bytes, len(sentences))
                return np.frombuffer(ids, np.int32), np.frombuffer(lengths, np.int64)
        elif self._by_chunk:
            text = f" {_SEPARATOR} ".join(sentences)
            if text.count(_SEPARATOR) == len(sentences) - 1:  # (else the separator in a sentence)
                return self._python_chunk_ids(text, len(sentences))
        lengths, ids = self._word_ids(sentences)
        return ids, lengths

    def _python_chunk_ids(self, text: str, sentences: int) -> Tuple[np.ndarray, np.ndarray]:
        """`encode` of `sentences` sentences joined by the separator, without the compiled table."""
        known = len(self._chunks)
        chunks = np.fromiter(map(self._chunks.__getitem__, text.split()), np.int64)
        if len(self._chunks) > known:
            sizes, ids = self._word_ids(list(itertools.islice(self._chunks, known, None)))
            starts = self._chunk_words.size + np.cumsum(sizes) - sizes
            self._chunk_start = np.concatenate([self._chunk_start, starts])
            self._chunk_size = np.concatenate([self._chunk_size, sizes])
            self._chunk_words = np.concatenate([self._chunk_words, ids])
        sizes = self._chunk_size[chunks]
        # each sentence's token count: the sum of its chunks' sizes (separators count 0)
        sentence_of_chunk = np.cumsum(chunks == 0)
        lengths = np.bincount(sentence_of_chunk, weights=sizes, minlength=sentences).astype(np.int64)
        # chunk c's word ids are _chunk_words[start_c : start_c + size_c]
        first = np.cumsum(sizes) - sizes
        at = np.repeat(self._chunk_start[chunks] - first, sizes) + np.arange(int(sizes.sum()))
        return self._chunk_words[at], lengths

    def _word_ids(self, texts: List[str]) -> Tuple[np.ndarray, np.ndarray]:
        """(number of tokens int64 [len(texts)], running word ids int32 of them all in turn)."""
        token_lists = self.tokenizer.tokenize_batch(texts)
        sizes = np.fromiter(map(len, token_lists), np.int64, len(token_lists))
        ids = np.fromiter(map(self.index.__getitem__, itertools.chain.from_iterable(token_lists)),
                          np.int32, int(sizes.sum()))
        return sizes, ids


# Frequent English words: their share of a text's words tells English-like text (about a third
# of the words of the demo corpora, Wikipedia and reviews alike) from other languages (German,
# French, Spanish, Dutch, Russian samples: 0-7%).
ENGLISH_WORDS = frozenset(
    "the of and to a in is was that for it with as on by he at from his be this are an or not "
    "i you but they have were which had her she their has its".split())
ENGLISH_SHARE = 0.2  # at least this share of the words of English-like text are ENGLISH_WORDS
ENGLISH_CHECK_CHARS = 100_000  # characters of the sample the check reads
_LETTERS = re.compile(r"[^\W\d_]+")


def english_share(text: str) -> Tuple[float, int]:
    """(share of the words of `text` that are frequent English words, number of words)."""
    words = _LETTERS.findall(text.lower())
    if not words:
        return 0.0, 0
    return sum(map(ENGLISH_WORDS.__contains__, words)) / len(words), len(words)


class SentenceSplitter:
    """Splits a paragraph into sentences with Punkt.

    Build it with `from_sample` or `deferred` (the same, done on the first paragraph that may
    hold two sentences: files with one sentence a line then never read a sample). The
    parameters: the shipped English ones when the sample's first `ENGLISH_CHECK_CHARS`
    characters look English (`english_share`), else (or with `train=True`) trained by NLTK on
    the sample's first `max_chars` characters. `source` says which. Text with no sentence end
    followed by more text is returned whole without calling Punkt.
    """

    def __init__(self, params: Optional[punkt.PunktParameters] = None, source: str = "untrained"):
        self._punkt = punkt.PunktSplitter(params) if params is not None else None
        self._factory: Optional[Callable[[], Any]] = None
        self.source = source  # "shipped English parameters (...)", "trained on N chars (...)", ...
        self.seconds = 0.0  # time spent loading or training Punkt

    @classmethod
    def from_sample(cls, texts: Iterable[str], max_chars: int = SAMPLE_CHARS,
                    train: bool = False) -> "SentenceSplitter":
        """Punkt for the text `texts` starts (only as much of the iterable as needed is read)."""
        splitter = cls()
        splitter._factory = lambda: _build_punkt(texts, max_chars, train)
        splitter._load()
        return splitter

    @classmethod
    def deferred(cls, sample: Callable[[], Iterable[str]], max_chars: int = SAMPLE_CHARS,
                 train: bool = False) -> "SentenceSplitter":
        """Like `from_sample`, but the parameters are chosen (on `sample()`) only when a
        paragraph first needs them."""
        splitter = cls(source="not needed")
        splitter._factory = lambda: _build_punkt(sample(), max_chars, train)
        return splitter

    @property
    def loaded(self) -> bool:
        return self._punkt is not None

    def _load(self) -> None:
        start = time.perf_counter()
        params, self.source = self._factory()
        self._punkt = punkt.PunktSplitter(params)
        self._factory = None
        self.seconds = time.perf_counter() - start

    def split(self, paragraph: str) -> List[str]:
        """Sentences of `paragraph`, stripped; [] if it is blank."""
        text = paragraph.strip()
        if not text:
            return []
        if "?" in text or "!" in text:
            if _MAYBE_BOUNDARY.search(text) is None:
                return [text]
        else:  # the same test, faster with str.find: whitespace after the first period
            period = text.find(".")
            if period < 0 or text.find(" ", period) < 0 and _MAYBE_BOUNDARY.search(text, period) is None:
                return [text]
        if self._punkt is None:
            if self._factory is None:
                self._punkt = punkt.PunktSplitter(punkt.PunktParameters())
            else:
                self._load()
        if len(text) <= MAX_SPLIT_CHARS:  # one window: what _sentences gives, without its generator
            return [s for s in map(str.strip, self._punkt.sentences(text)) if s]
        return [s for s in map(str.strip, _sentences(self._punkt, text, MAX_SPLIT_CHARS)) if s]

    def __repr__(self) -> str:
        return f"SentenceSplitter(source={self.source!r})"


def _sentences(splitter, text: str, limit: int) -> Iterable[str]:
    """`splitter`'s sentences of `text`, given to it in windows of at most `limit` characters
    (its regular expressions run over all the text they get: minutes on a line of tens of
    megabytes). Punkt decides a boundary from the words on both sides of it, so a window's
    boundaries are final up to the last one whose next word lies whole inside the window: the
    next window starts at the sentence after it, and the sentences are the whole text's (a
    window of two sentences whose second word is cut keeps the boundary it has). A window of one
    sentence (longer than `limit`) is cut after its last space."""
    start = 0
    while len(text) - start > limit:
        window = text[start:start + limit]
        spans = splitter.spans(window)
        # the boundary before the last span was decided from that span's first word, which the
        # window may have cut ("Fig." seen as "Fi"): final only if that word ends inside it
        whole_word = len(spans) >= 2 and _WORD_THEN_SPACE.match(window, spans[-1][0]) is not None
        keep = len(spans) - 1 if whole_word or len(spans) == 2 else len(spans) - 2  # 2: no better cut
        if keep >= 1 and spans[keep][0] > 0:
            yield from (window[a:b] for a, b in spans[:keep])
            start += spans[keep][0]
        else:
            cut = window.rfind(" ") + 1 or limit
            yield from splitter.sentences(window[:cut])
            start += cut
    yield from splitter.sentences(text[start:])


def _build_punkt(texts: Iterable[str], max_chars: int, train: bool):
    """(Punkt parameters, source description) for the text `texts` starts."""
    texts = iter(texts)
    head: List[str] = []
    if not train:
        size = 0
        for text in texts:
            head.append(text)
            size += len(text) + 1
            if size >= ENGLISH_CHECK_CHARS:
                break
        share, words = english_share("\n".join(head)[:ENGLISH_CHECK_CHARS])
        if share >= ENGLISH_SHARE or words < 50:
            why = f"{share:.0%} frequent English words" if words >= 50 else f"only {words} words to judge by"
            return punkt.load_parameters(), f"shipped English parameters (the text looks English: {why})"
        reason = f"the text does not look English: {share:.0%} frequent English words"
    else:
        reason = "asked"
    params, size = _train_punkt(itertools.chain(head, texts), max_chars)
    return params, f"trained on {size:,} chars ({reason})"


def _train_punkt(texts: Iterable[str], max_chars: int):
    """Punkt parameters trained on the first `max_chars` characters of `texts`, and that count."""
    sample: List[str] = []
    size = 0
    for text in texts:
        if size >= max_chars:
            break
        text = text[: max_chars - size]
        sample.append(text)
        size += len(text) + 1
    if not sample:
        return punkt.PunktParameters(), 0
    text = "\n".join(sample)
    return punkt.train_parameters(text), len(text)
