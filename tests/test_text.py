"""Tokenizer and SentenceSplitter (NLTK Punkt, no downloads)."""

import pytest

from auxpretrain.errors import ConfigError
from auxpretrain.data.text import DEFAULT_PATTERN, SentenceSplitter, Tokenizer

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
    splitter = SentenceSplitter.from_sample(SAMPLE, use_installed=False)
    assert splitter.source.startswith("trained on")
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

    SentenceSplitter.from_sample(texts(), max_chars=2_000, use_installed=False)
    assert len(consumed) < 100


def test_deferred_splitter_loads_punkt_only_when_needed():
    calls = []

    def sample():
        calls.append(1)
        return iter(SAMPLE)

    splitter = SentenceSplitter.deferred(sample, use_installed=False)
    assert splitter.split("one sentence without an inner boundary.") == ["one sentence without an inner boundary."]
    assert not splitter.loaded and not calls and splitter.source == "not needed"
    assert splitter.split("First one. Second one.") == ["First one.", "Second one."]
    assert splitter.loaded and calls == [1] and splitter.source.startswith("trained on")


def test_empty_sample_gives_a_working_splitter():
    splitter = SentenceSplitter.from_sample([], use_installed=False)
    assert splitter.split("Hello there. General greeting.") == ["Hello there.", "General greeting."]


def test_installed_punkt_data_is_preferred(tmp_path, monkeypatch):
    import nltk

    model = tmp_path / "tokenizers" / "punkt_tab" / "english"
    model.mkdir(parents=True)
    for name, content in (("collocations.tab", ""), ("sent_starters.txt", ""),
                          ("abbrev_types.txt", "dr\n"), ("ortho_context.tab", "")):
        (model / name).write_text(content, encoding="utf-8")
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)] + list(nltk.data.path))

    def unused_sample():
        raise AssertionError("the sample must not be read when punkt data is installed")
        yield

    splitter = SentenceSplitter.from_sample(unused_sample())
    assert splitter.source == "installed:english"
    assert splitter.split("Dr. Smith came home. He sat down.") == ["Dr. Smith came home.", "He sat down."]


def test_a_very_long_line_is_split_within_nltks_time_limit(monkeypatch):
    """NLTK runs each regular expression under a time limit (5 s); a 50 MB line went to Punkt
    whole and hit it (a traceback). Lines go to Punkt in pieces of MAX_SPLIT_CHARS. Scaled
    down here: the limit is 0.1 s, the pieces 20,000 characters, the line 600 KB (whole, it
    takes several times the limit)."""
    import nltk.redos

    from auxpretrain.data import text
    from auxpretrain.errors import InputError

    splitter = SentenceSplitter.from_sample(SAMPLE, use_installed=False)
    line = " ".join(SAMPLE * 40)
    line = " ".join([line] * (600_000 // len(line) + 1))
    monkeypatch.setattr(nltk.redos, "DEFAULT_TIMEOUT", 0.1)
    monkeypatch.setattr(text, "MAX_SPLIT_CHARS", 20_000)
    sentences = splitter.split(line)
    assert " ".join(sentences) == line and max(map(len, sentences)) < 100  # nothing lost, all split
    monkeypatch.setattr(text, "MAX_SPLIT_CHARS", 10 ** 9)  # the whole line at once, as before
    with pytest.raises(InputError, match=r"a line of \d{3},\d{3} characters could not be split into sentences "
                                         r"within NLTK's time limit; put one paragraph or sentence a line"):
        splitter.split(line)


def test_pieces_end_after_a_possible_sentence_end():
    from auxpretrain.data.text import _pieces

    text = "One two. Three four five. Six seven eight nine ten. " * 3
    pieces = list(_pieces(text.strip(), 30))
    assert "".join(pieces) == text.strip()
    assert all(len(p) <= 30 for p in pieces)
    assert all(p.rstrip().endswith(".") for p in pieces)
    assert list(_pieces("x" * 25, 10)) == ["x" * 10, "x" * 10, "x" * 5]  # no space: cut at the limit
