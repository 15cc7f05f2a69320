"""Sentence splitting and word tokenizing, with no downloads.

`Tokenizer` is NLTK's `RegexpTokenizer` technique (one `findall` of a word pattern): the
fastest of NLTK's data-free tokenizers on Wikipedia text. It calls the compiled pattern
itself, which gives exactly `nltk.tokenize.RegexpTokenizer(pattern).tokenize(text)` (a test
checks it) without importing `nltk`: with scipy, scikit-learn and pandas installed,
`import nltk` takes about 2.5 s, which would dominate `auxpretrain corrupt` on small files.

`SentenceSplitter` is NLTK's Punkt: the installed `punkt_tab` data when present, else a
`PunktSentenceTokenizer` trained (unsupervised) on a sample of the corpus itself.
NLTK is imported only when a splitter is built.

This module must not import TensorFlow.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

from auxpretrain.config import CorpusConfig, default_of
from auxpretrain.errors import ConfigError, InputError

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

# Longer lines go to Punkt in pieces of at most this many characters, cut after a possible
# sentence end (NLTK runs each of its regular expressions over the whole text under a 5 s
# limit: a 50 MB line would exceed it).
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


def _installed_punkt(language: str):
    """NLTK's installed punkt_tab model for `language`, or None."""
    try:
        from nltk.tokenize.punkt import PunktTokenizer
        return PunktTokenizer(language)
    except (ImportError, LookupError, OSError, ValueError):
        return None


def _train_punkt(texts: Iterable[str], max_chars: int):
    """A Punkt tokenizer trained on the first `max_chars` characters of `texts`, and that count."""
    from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktTrainer

    sample: List[str] = []
    size = 0
    for text in texts:
        if size >= max_chars:
            break
        text = text[: max_chars - size]
        sample.append(text)
        size += len(text) + 1
    if not sample:
        return PunktSentenceTokenizer(), 0
    text = "\n".join(sample)
    trainer = PunktTrainer()
    trainer.train(text, finalize=True)
    return PunktSentenceTokenizer(trainer.get_params()), len(text)


class SentenceSplitter:
    """Splits a paragraph into sentences with NLTK Punkt.

    Build it with `from_sample` (installed punkt data, else trained on the sample) or
    `deferred` (the same, done on the first paragraph that may hold two sentences: files
    with one sentence a line then never import NLTK). Text with no sentence end followed
    by more text is returned whole without calling Punkt.
    """

    def __init__(self, punkt=None, source: str = "untrained"):
        self._punkt = punkt
        self._factory: Optional[Callable[[], Any]] = None
        self.source = source  # "installed:english", "trained on N chars", "untrained"
        self.seconds = 0.0  # time spent loading or training Punkt

    @classmethod
    def from_sample(cls, texts: Iterable[str], max_chars: int = SAMPLE_CHARS,
                    language: str = "english", use_installed: bool = True) -> "SentenceSplitter":
        """Installed punkt data for `language` if present, else Punkt trained on the first
        `max_chars` characters of `texts` (only that much of the iterable is consumed)."""
        splitter = cls()
        splitter._factory = lambda: _build_punkt(texts, max_chars, language, use_installed)
        splitter._load()
        return splitter

    @classmethod
    def deferred(cls, sample: Callable[[], Iterable[str]], max_chars: int = SAMPLE_CHARS,
                 language: str = "english", use_installed: bool = True) -> "SentenceSplitter":
        """Like `from_sample`, but Punkt is loaded or trained (on `sample()`) only when a
        paragraph first needs it."""
        splitter = cls(source="not needed")
        splitter._factory = lambda: _build_punkt(sample(), max_chars, language, use_installed)
        return splitter

    @property
    def loaded(self) -> bool:
        return self._punkt is not None

    def _load(self) -> None:
        start = time.perf_counter()
        self._punkt, self.source = self._factory()
        self._factory = None
        self.seconds = time.perf_counter() - start

    def split(self, paragraph: str) -> List[str]:
        """Sentences of `paragraph`, stripped; [] if it is blank."""
        text = paragraph.strip()
        if not text:
            return []
        if _MAYBE_BOUNDARY.search(text) is None:
            return [text]
        if self._punkt is None:
            if self._factory is None:
                from nltk.tokenize.punkt import PunktSentenceTokenizer
                self._punkt = PunktSentenceTokenizer()
            else:
                self._load()
        try:
            return [s for piece in _pieces(text, MAX_SPLIT_CHARS)
                    for s in (s.strip() for s in self._punkt.tokenize(piece)) if s]
        except TimeoutError:  # NLTK's limit on one regular expression (not an OSError of a file)
            raise InputError(f"a line of {len(text):,} characters could not be split into sentences "
                             "within NLTK's time limit; put one paragraph or sentence a line") from None

    def __repr__(self) -> str:
        return f"SentenceSplitter(source={self.source!r})"


def _pieces(text: str, limit: int) -> Iterable[str]:
    """`text` in consecutive pieces of at most `limit` characters, each cut after the last
    possible sentence end in it (else after its last space; else at `limit`)."""
    start = 0
    while len(text) - start > limit:
        window = text[start:start + limit]
        cut = 0
        for m in _MAYBE_BOUNDARY.finditer(window):
            cut = m.end()
        if not cut:
            cut = max(window.rfind(" ") + 1, 0) or limit
        yield text[start:start + cut]
        start += cut
    yield text[start:]


def _build_punkt(texts: Iterable[str], max_chars: int, language: str, use_installed: bool):
    """(punkt tokenizer, source description)."""
    if use_installed:
        punkt = _installed_punkt(language)
        if punkt is not None:
            return punkt, f"installed:{language}"
    punkt, size = _train_punkt(texts, max_chars)
    return punkt, f"trained on {size:,} chars"
