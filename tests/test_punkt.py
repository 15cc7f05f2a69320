"""Punkt without NLTK (data.punkt): the same sentences as NLTK's Punkt, parameters as JSON."""

import json
import os
import random
import subprocess
import sys

import pytest

from auxpretrain.data import punkt
from auxpretrain.errors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _nltk_tokenizer(params: punkt.PunktParameters):
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    return PunktSentenceTokenizer(params.to_nltk())


def _same_as_nltk(params, texts):
    ours, theirs = punkt.PunktSplitter(params), _nltk_tokenizer(params)
    differ = [t for t in texts if ours.spans(t) != list(theirs.span_tokenize(t))]
    return differ


@pytest.fixture(scope="module")
def wikipedia():
    """Prose paragraphs of the Wikipedia sample the gensim wheel ships."""
    pytest.importorskip("gensim")
    from auxpretrain.data.packaged import wikipedia_paragraphs

    return list(wikipedia_paragraphs())


def test_same_sentences_as_nltk_on_wikipedia_text(wikipedia):
    sample = "\n".join(wikipedia)[:400_000]
    trained = punkt.train_parameters(sample)
    assert trained.abbrev_types and trained.ortho_context
    for params in (trained, punkt.load_parameters()):
        assert _same_as_nltk(params, wikipedia) == []


def test_same_sentences_as_nltk_on_the_repository_text():
    texts = []
    for name in ("README.md", "corpora/tiny.txt", "docs/architecture.md", "docs/results.md"):
        with open(os.path.join(ROOT, name), encoding="utf-8") as f:
            texts += [line.strip() for line in f if line.strip()]
    assert _same_as_nltk(punkt.load_parameters(), texts) == []


def test_same_sentences_as_nltk_on_odd_punctuation():
    """Random strings of abbreviations, initials, numbers, quotes, brackets, ellipses and
    line breaks, with parameters that exercise every rule (collocations, sentence starters,
    orthographic contexts)."""
    params = punkt.PunktParameters(
        abbrev_types={"mr", "dr", "e.g", "etc", "vs", "st", "i.e", "no", "u.s"},
        collocations={("j.", "bach"), ("##number##", "the")},
        sent_starters={"the", "he"},
        ortho_context={"smith": 2, "the": 2 | 32, "he": 2, "bach": 4, "it": 32 | 64})
    pieces = ["Mr.", "Dr.", "U.S.", "e.g.", "J.", "a.", "1990.", "3.5", "...", "..", "?", "!", ".", '"',
              "'", ")", "(", "]", "--", "-", ",", ";", ":", "The", "the", "He", "it", "Smith", "Bach",
              "\u201c", "\u201d", "\u2019", "\xab", "\xbb", "no.", "No.", "etc.", "vs.", "St.", "I.",
              "i.e.", 'word."', "end.)", "Yes!", "why?", "\t", "\n", "¿", "-1.", "1st.", "Ü.", "ß."]
    rng = random.Random(0)
    texts = ["".join(rng.choice(pieces) + rng.choice([" ", " ", "", "  ", "\n"])
                     for _ in range(rng.randint(1, 14))).strip() for _ in range(3000)]
    assert _same_as_nltk(params, texts) == []


@pytest.mark.parametrize("odd_space", [False, True])
def test_the_quick_path_finds_nltks_sentences(odd_space):
    """Texts take a quick path (str.find instead of regular expressions, decisions memoised by
    context): the same slices as the general path and the same sentences as NLTK, with
    periods, question and exclamation marks before quotes and brackets, abbreviations,
    initials, numbers, empty words, double spaces and (odd_space) other whitespace, which the
    quick path must notice and leave to the general one."""
    params = punkt.PunktParameters(
        abbrev_types={"mr", "dr", "e.g", "etc", "no", "u.s", "a-b"},
        collocations={("j.", "bach"), ("##number##", "the"), ("dr", "smith"), ("smith", "he")},
        sent_starters={"the", "he"},
        ortho_context={"smith": 2, "the": 2 | 32, "he": 2, "bach": 4, "it": 32 | 64, "a": 32, "b": 2})
    words = ["Mr", "Dr", "U.S", "e.g", "J", "a", "1990", "3.5", "", ".", "..", "The", "the", "He", "it",
             "Smith", "Bach", "no", "etc", "I", "x", "B", "\xdc", "\xdf", "-1", "1st", "a-b", "_", "\u03a3"]
    ends = ["", "", "", ".", ".", ".", ". ", '."', ".)", ".'", ".]", ".\u201d", ".\xbb", ".*", ".(", ",", ")",
            '"', "(", "--", "...", "?", "!", "?!", '?"', "!)", "?."]
    spaces = [" "] * 12 + ["", "  "]
    if odd_space:
        ends += [".\xa0", ".\t", ".\n"]
        spaces += ["\xa0", "\t", "\n", "\u2003"]
    rng = random.Random(3)
    texts = ["".join(rng.choice(ends) + rng.choice(words) + rng.choice(ends) + rng.choice(spaces)
                     for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    texts = [t.strip() if i % 5 else t for i, t in enumerate(texts)] + [
        "Ask Smith. He knows.", "Ask Smith. The end.", "In 1990. the war ended.", "In 1990. The war ended.",
        'He left. " Then" he said.', "It ended. ) Then.", "It ended. '' Then.", "See J. Bach. He wrote.",
        "See Dr. Smith. It is.", "He left.  Then.", "He left. \u201d No."]
    for params in (params, punkt.load_parameters()):
        ours = punkt.PunktSplitter(params)
        quick = [t for t in texts if ours._quick_slices(t) is not None]
        assert len(quick) > (300 if odd_space else 1500)
        assert [t for t in quick if ours._quick_slices(t)[0] != ours._slices(t)] == []
        assert _same_as_nltk(params, texts) == []


def test_parameters_round_trip_through_json(tmp_path):
    params = punkt.PunktParameters({"dr", "e.g"}, {("j.", "bach")}, {"the"}, {"the": 34, "bach": 4})
    path = tmp_path / "p.json"
    path.write_text(json.dumps(params.to_dict(trained_on="test")), encoding="utf-8")
    assert punkt.load_parameters(str(path)) == params
    assert punkt.PunktParameters.from_nltk(params.to_nltk()) == params


@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "not a Punkt parameters file"),
    ('{"format": "something else"}', "not a Punkt parameters file"),
    ('{"format": "auxpretrain-punkt-parameters", "abbrev_types": []}', "bad Punkt parameters"),
    ('{"format": "auxpretrain-punkt-parameters", "abbrev_types": [], "sent_starters": [], '
     '"collocations": [["a"]], "ortho_context": {}}', "pairs of word types"),
    ("{not json", "not valid JSON"),
])
def test_bad_parameter_files_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message) as info:
        punkt.load_parameters(str(path))
    assert str(path) in str(info.value)


def test_shipped_parameters_are_package_data_and_split_without_nltk():
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        assert "punkt_english.json" in f.read()
    code = ("import sys; from auxpretrain.data.text import SentenceSplitter; "
            "s = SentenceSplitter.from_sample(['The cat sat on the mat. It was warm.'] * 20); "
            "print(s.split('Dr. Smith came home. He sat down.')); print(s.source); "
            "print('nltk' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout.splitlines()
    assert out[0] == "['Dr. Smith came home.', 'He sat down.']"
    assert out[1].startswith("shipped English parameters")
    assert out[2] == "False"


def test_sentence_splitter_sends_punkt_the_same_paragraphs():
    """SentenceSplitter.split tests with str.find whether a paragraph may hold a boundary
    (whitespace after a sentence end): the same answer as its regular expression."""
    from auxpretrain.data.text import _MAYBE_BOUNDARY, SentenceSplitter

    splitter = SentenceSplitter(punkt.load_parameters())
    rng = random.Random(4)
    pieces = ["a", "Word", " ", " ", ".", ".", "?", "!", "\t", "\xa0", "\n", "\u2003", ",", "Mr.", '"', ")"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        stripped = text.strip()
        if not stripped or _MAYBE_BOUNDARY.search(stripped) is None:
            expected = [stripped] if stripped else []
        else:
            expected = [s.strip() for s in splitter._punkt.sentences(stripped) if s.strip()]
        assert splitter.split(text) == expected, repr(text)
