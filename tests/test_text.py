"""Tokenizer, WordIds and SentenceSplitter (Punkt: shipped English parameters or trained, no downloads)."""

import pytest

from auxpretrain.errors import ConfigError
import numpy as np

from auxpretrain.data.text import DEFAULT_PATTERN, SentenceSplitter, Tokenizer, WordIds, english_share

TEXTS = [
    "The well-known café's owner didn't pay 3.5 million, or 1,000,000 dollars!",
    "Dr. Smith (aged 42) said: \"No.\" Then—silence… 1q21.1 deletion; e.g. U.S. rock'n'roll",
    "  tabs\tand\nnewlines  ",
    "",
]


def test_tokenize_words_numbers_punctuation():
    tokens = Tokenizer().tokenize(TEXTS[0])
    assert tokens == ["the", "well-known", "café's", "owner", "didn't", "pay", "3.5", "million", ",",
                      "or", "1,000,000", "dollars", "!"]


def test_lowercase_option():
    assert Tokenizer(lowercase=False).tokenize("The Cat.") == ["The", "Cat", "."]
    assert Tokenizer().tokenize("The Cat.") == ["the", "cat", "."]


def test_same_tokens_as_nltk_regexp_tokenizer():
    from nltk.tokenize import RegexpTokenizer

    nltk_tokenizer = RegexpTokenizer(DEFAULT_PATTERN)
    ours = Tokenizer(lowercase=False)
    for text in TEXTS:
        assert ours.tokenize(text) == nltk_tokenizer.tokenize(text)


def test_tokens_never_hold_whitespace_and_batch_matches():
    tokenizer = Tokenizer()
    batch = tokenizer.tokenize_batch(TEXTS)
    assert batch == [tokenizer.tokenize(t) for t in TEXTS]
    for tokens in batch:
        assert all(t and not any(c.isspace() for c in t) for t in tokens)
        assert " ".join(tokens).split() == tokens


def test_to_dict_round_trip_and_errors():
    tokenizer = Tokenizer(lowercase=False)
    assert Tokenizer.from_dict(tokenizer.to_dict()) == tokenizer
    with pytest.raises(ConfigError, match="unknown key"):
        Tokenizer.from_dict({"lowercase": True, "stem": True})
    with pytest.raises(ConfigError, match="unknown tokenizer type"):
        Tokenizer.from_dict({"type": "bpe"})
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        Tokenizer(pattern="(")


SAMPLE = [
    "The cat sat on the mat. The dog slept by the door. It rained all day.",
    "Mr. Brown arrived at noon. He brought bread, cheese and apples. Everyone was hungry.",
    "Is it late? Yes it is! We should go home now.",
] * 30


def test_trained_splitter_splits_paragraphs():
    splitter = SentenceSplitter.from_sample(SAMPLE, train=True)
    assert splitter.source.startswith("trained on") and splitter.source.endswith("(asked)")
    assert splitter.split(SAMPLE[0]) == ["The cat sat on the mat.", "The dog slept by the door.",
                                         "It rained all day."]
    assert splitter.split(SAMPLE[2]) == ["Is it late?", "Yes it is!", "We should go home now."]
    assert splitter.split("   ") == []
    assert splitter.split(" One sentence only. ") == ["One sentence only."]


def test_from_sample_reads_only_max_chars():
    consumed = []

    def texts():
        for i in range(10_000):
            consumed.append(i)
            yield "A short line of text. Another one here."

    SentenceSplitter.from_sample(texts(), max_chars=2_000, train=True)
    assert len(consumed) < 100
    consumed.clear()
    SentenceSplitter.from_sample(texts())  # English: only the language check's characters are read
    assert len(consumed) < 3_000


def test_deferred_splitter_loads_punkt_only_when_needed():
    calls = []

    def sample():
        calls.append(1)
        return iter(SAMPLE)

    splitter = SentenceSplitter.deferred(sample, train=True)
    assert splitter.split("one sentence without an inner boundary.") == ["one sentence without an inner boundary."]
    assert not splitter.loaded and not calls and splitter.source == "not needed"
    assert splitter.split("First one. Second one.") == ["First one.", "Second one."]
    assert splitter.loaded and calls == [1] and splitter.source.startswith("trained on")


def test_empty_sample_gives_a_working_splitter():
    for train in (True, False):
        splitter = SentenceSplitter.from_sample([], train=train)
        assert splitter.split("Hello there. General greeting.") == ["Hello there.", "General greeting."]


GERMAN = ("Der schnelle braune Fuchs springt über den faulen Hund. Die Katze sitzt auf der Matte und "
          "schläft. Es ist ein schöner Tag in Berlin, und wir gehen in den Park. Nr. 5 ist besetzt. ") * 40


def test_english_text_gets_the_shipped_parameters_other_text_is_trained_on():
    assert english_share(" ".join(SAMPLE))[0] > 0.3
    assert english_share(GERMAN)[0] < 0.1
    english = SentenceSplitter.from_sample(SAMPLE)
    assert english.source.startswith("shipped English parameters (the text looks English")
    assert english.split("Mr. Brown met Dr. Smith. They talked.") == ["Mr. Brown met Dr. Smith.", "They talked."]
    german = SentenceSplitter.from_sample([GERMAN])
    assert german.source.startswith("trained on") and "does not look English" in german.source
    assert german.split("Die Katze schläft. Der Hund bellt.") == ["Die Katze schläft.", "Der Hund bellt."]


EDGE_TEXTS = TEXTS + [
    "ΟΔΟΣ ΣΟΦΟΣ Σ", "snake_case and 1.5a 1,000th x-y- 'quoted' don’t", "nul\x00 inside\x00", "\x00",
    "   ", "tab\tsplit\u2028line\u00a0nbsp", "MiXeD CaSe İstanbul ǅ",
]


def _check_word_ids(encoder, tokenizer, batch):
    """`encoder` gives `tokenizer`'s tokens of `batch`: the lengths, and the words of the ids."""
    ids, lengths = encoder.encode(batch)
    expected = tokenizer.tokenize_batch(batch)
    assert lengths.tolist() == [len(t) for t in expected]
    assert [encoder.words[i] for i in ids] == [w for t in expected for w in t]


@pytest.mark.parametrize("lowercase", [True, False])
def test_word_ids_give_the_tokenizer_s_tokens(lowercase):
    tokenizer = Tokenizer(lowercase=lowercase)
    texts = EDGE_TEXTS + [t + " " + u for t in SAMPLE[:3] for u in EDGE_TEXTS[:4]]
    for max_chunks in (2_000_000, 5):  # 5: the chunk memory starts again between batches
        encoder = WordIds(tokenizer, max_chunks=max_chunks)
        for start in range(0, len(texts), 7):
            _check_word_ids(encoder, tokenizer, texts[start:start + 7])
    assert encoder.encode([]) == (pytest.approx(np.zeros(0)), pytest.approx(np.zeros(0)))


def test_word_ids_on_wikipedia_text():
    pytest.importorskip("gensim")
    from auxpretrain.data.packaged import wikipedia_paragraphs

    paragraphs = list(wikipedia_paragraphs())
    tokenizer = Tokenizer()
    encoder = WordIds(tokenizer)
    for start in range(0, len(paragraphs), 1000):
        _check_word_ids(encoder, tokenizer, paragraphs[start:start + 1000])


def test_word_ids_with_another_pattern_tokenize_every_sentence():
    tokenizer = Tokenizer(pattern=r"\S+ ?")  # matches across a space: no chunking
    encoder = WordIds(tokenizer)
    ids, lengths = encoder.encode(["a b  c", "d"])
    assert lengths.tolist() == [3, 1] and [encoder.words[i] for i in ids] == ["a ", "b ", "c", "d"]


def test_a_very_long_line_goes_to_punkt_in_windows_with_the_same_sentences(monkeypatch):
    """A line of tens of megabytes went to Punkt whole (minutes; NLTK's 5 s limit a
    traceback); lines go in windows of MAX_SPLIT_CHARS, each continuing at the previous one's
    last sentence. Scaled down: windows of 2,000 characters, a line of 60 KB."""
    from auxpretrain.data import text

    line = " ".join(SAMPLE * 40)
    line = " ".join([line] * (60_000 // len(line) + 1))
    for train in (False, True):
        splitter = SentenceSplitter.from_sample(SAMPLE, train=train)
        whole = splitter.split(line)
        calls = []
        real = splitter._punkt.spans
        monkeypatch.setattr(text, "MAX_SPLIT_CHARS", 2_000)
        monkeypatch.setattr(splitter._punkt, "spans", lambda piece: calls.append(len(piece)) or real(piece))
        assert splitter.split(line) == whole and " ".join(whole) == line  # nothing lost, the same split
        assert len(calls) > 20 and max(calls) <= 2_000
        monkeypatch.undo()


@pytest.mark.parametrize("text", [
    "A cat sat. See e.g. Fig. 3 for more. A dog ran. See e.g. Fig. 3 for more. A cat sat here.",
    "A cat sat. Mr. Jones left at 3 a.m. Then he slept. A dog ran. Mr. Jones left at 3 a.m. Then he slept."])
def test_windows_never_decide_a_boundary_from_a_cut_word(text):
    """A window that ends inside a word ("Fig." seen as "Fi") must not decide the boundary
    before it: every window size from twice the longest sentence gives the whole text's
    sentences."""
    from auxpretrain.data.text import _sentences

    splitter = SentenceSplitter.from_sample(SAMPLE)
    splitter.split("Load it. Now.")
    whole = [s.strip() for s in splitter._punkt.sentences(text)]
    for limit in range(2 * max(map(len, whole)), len(text)):
        assert [s.strip() for s in _sentences(splitter._punkt, text, limit)] == whole, limit


def test_a_window_of_one_sentence_is_cut_after_its_last_space():
    from auxpretrain.data.text import _sentences

    splitter = SentenceSplitter.from_sample(SAMPLE)
    splitter.split("Load it. Now.")
    text = "word " * 30 + "end. Next one."
    got = [s.strip() for s in _sentences(splitter._punkt, text, 40)]
    assert " ".join(got).split() == text.split()
    assert got[-1] == "Next one."
    assert list(_sentences(splitter._punkt, "x" * 25, 10)) == ["x" * 10, "x" * 10, "x" * 5]  # no space
