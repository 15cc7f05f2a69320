"""The compiled fast paths of `corrupt` (auxpretrain/data/cspeedups.c) give the same ids and the
same bytes as the pure-Python paths they replace, on awkward text; and CI builds them."""

import json
import os
import random
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest

from auxpretrain.config import CorruptionConfig
from auxpretrain.data import pairs, text
from auxpretrain.data.speedups import compiled

needs_compiled = pytest.mark.skipif(compiled is None, reason="the C extension is not built")

# chunks of every string kind, whitespace str.split() knows (\x1c, \x85, \xa0, \u3000), the separator
AWKWARD = ["the", "The", "café", "naïve", "\u0100bc", "日本語", "😀x", "a\x1cb", "c\x85d", "e\xa0f",
           "g\u3000h", "\x00", "", "  ", "tab\there", "new\nline", "don't", "3.5", '"quoted"', "back\\slash"]


def _python_chunk_ids(batches):
    """What WordIds numbers without the compiled table: each batch's sentences joined by the
    separator (chunk 0), their chunks numbered by a dict as text.split() gives them."""
    chunks = defaultdict()
    chunks.default_factory = chunks.__len__
    chunks["\x00"]
    out = [np.fromiter(map(chunks.__getitem__, " \x00 ".join(b).split()), np.int64) for b in batches]
    return out, list(chunks)[1:]


@needs_compiled
def test_chunk_table_numbers_chunks_as_a_dict_of_split_does():
    rng = np.random.default_rng(7)
    words = [w for w in AWKWARD if w != "\x00"]
    # sentences of one string kind each and mixed: the same chunk must get one id in all of them
    sentences = [" ".join(rng.choice(words, size=int(rng.integers(0, 40)))) for _ in range(300)]
    batches = [sentences[i:i + 31] for i in range(0, 300, 31)]
    batches += [["the café", "café the"], ["日本語 café", "\u0100bc \u0100bc"], [], [""], ["", " "]]
    # enough distinct chunks to grow the table several times, and one longer than its first arena
    batches.append([" ".join(f"w{i}é" if i % 3 else f"w{i}" for i in range(20_011)), "x" * 70_001 + " y"])
    expected, chunks = _python_chunk_ids(batches)
    table = compiled.ChunkTable()
    assert table.lookup(["\x00"])[1] == ["\x00"]
    new = []
    for batch, want in zip(batches, expected):
        got, fresh = table.lookup(batch)
        np.testing.assert_array_equal(np.frombuffer(got, np.int64), want)
        new += fresh
    assert new == chunks and len(table) == len(chunks) + 1
    # a sentence holding the separator: None, and nothing looked up
    assert table.lookup(["brand new", "a\x00b"]) is None and len(table) == len(chunks) + 1


@needs_compiled
@pytest.mark.parametrize("max_chunks", [2_000_000, 7])  # 7: the chunk memory starts again often
def test_word_ids_are_the_same_with_and_without_the_compiled_table(monkeypatch, max_chunks):
    rng = np.random.default_rng(3)
    words = [w for w in AWKWARD if w != "\x00"]
    sentences = [" ".join(rng.choice(words, size=int(rng.integers(0, 12)))) for _ in range(997)]
    sentences[5:7] = ["", "   "]  # sentences without a token
    sentences[400] = "x\x00y"  # the separator in a sentence: that batch is tokenized sentence by sentence
    fast = text.WordIds(text.Tokenizer(), max_chunks=max_chunks)
    got = [fast.encode(sentences[i:i + 101]) for i in range(0, len(sentences), 101)]
    monkeypatch.setattr(text, "compiled", None)
    slow = text.WordIds(text.Tokenizer(), max_chunks=max_chunks)
    want = [slow.encode(sentences[i:i + 101]) for i in range(0, len(sentences), 101)]
    for (ids, lengths), (ids2, lengths2) in zip(got, want):
        np.testing.assert_array_equal(ids, ids2)
        np.testing.assert_array_equal(lengths, lengths2)
    assert fast.words == slow.words
    assert fast.encode([])[0].size == 0 and fast.encode([])[1].size == 0


@needs_compiled
def test_chunk_table_refuses_word_ids_it_cannot_hold():
    table = compiled.ChunkTable()
    table.lookup(["\x00"])  # chunk 0 ends a sentence
    ids, new = table.lookup(["a", "b"])
    with pytest.raises(ValueError, match="no words set"):
        table.words(ids, 2)
    with pytest.raises(ValueError, match="more chunks"):
        table.set_words(np.ones(4, np.int64), np.zeros(4, np.int32))  # 3 chunks looked up
    table.set_words(np.array([0, 1, 2], np.int64), np.array([7, 8, 9], np.int32))
    got, lengths = table.words(ids, 2)
    assert np.frombuffer(got, np.int32).tolist() == [7, 8, 9] and np.frombuffer(lengths, np.int64).tolist() == [1, 2]
    with pytest.raises(ValueError, match="breaks"):
        table.words(ids, 1)
    with pytest.raises(TypeError, match="already initialised"):  # it would drop the table under its users
        table.__init__()
    with pytest.raises(TypeError, match="not initialised"):
        compiled.ChunkTable.__new__(compiled.ChunkTable).lookup(["a"])
    words = compiled.WordTexts(["a"])
    with pytest.raises(TypeError, match="already initialised"):  # format_pairs may be reading it
        words.__init__(["b"])


@needs_compiled
def test_format_pairs_writes_the_python_bytes():
    words = ["the", "café", 'say \\"hi\\"', "日本", "😀", "a\\nb", "x"]  # already JSON-escaped bodies
    rng = np.random.default_rng(5)
    good = rng.integers(0, len(words), 211).astype(np.int32)
    bad = rng.integers(0, len(words), 211).astype(np.int32)
    stops = np.sort(rng.choice(np.arange(1, 212), 37, replace=False)).astype(np.int64)
    starts = np.concatenate([[0], stops[:-1]]).astype(np.int64)
    ops = rng.integers(0, 2, stops.size).astype(np.int64)
    widths = (2, 4)
    positions = rng.integers(0, 50, (stops.size, 4)).astype(np.int64)
    args = (good, bad, starts, stops, ops, positions, widths, ("replace", "swap"))
    got = compiled.format_pairs(compiled.WordTexts(words), *args)
    assert got == pairs._python_lines(np.array(words, dtype=object), *args)
    assert json.loads(got.splitlines()[0])["op"] in ("replace", "swap")
    # positions narrower than a width that no row uses (replace only: one column)
    one = (good, bad, starts[:3], stops[:3], np.zeros(3, np.int64), positions[:3, :1].copy(), (1, 2), ("replace", "swap"))
    assert compiled.format_pairs(compiled.WordTexts(words), *one) == pairs._python_lines(
        np.array(words, dtype=object), *one)
    with pytest.raises(IndexError):  # a word id beyond the words
        compiled.format_pairs(compiled.WordTexts(words[:3]), *args)
    with pytest.raises(ValueError):
        compiled.format_pairs(compiled.WordTexts(words), good[:5], *args[1:])


@needs_compiled
@pytest.mark.parametrize("edits,ops", [(1, "replace,swap"), (2, "replace"), (1, "swap")])
def test_pairs_files_are_identical_with_and_without_the_compiled_paths(tmp_path, monkeypatch, edits, ops):
    rng = np.random.default_rng(edits)
    corpus = tmp_path / "corpus.txt"
    vocab = ["alpha", "beta", "gamma", "délta", "日本", "quote\"d", "back\\", "tab", "😀", "Mr.", "end."]
    lines = [" ".join(rng.choice(vocab, size=int(rng.integers(1, 30)))) + ". Next one here." for _ in range(613)]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = CorruptionConfig(edits=edits, ops={op: 1.0 for op in ops.split(",")})
    pairs.write_pairs([str(corpus)], str(tmp_path / "fast.jsonl"), config, seed=11, batch_size=97)
    monkeypatch.setattr(text, "compiled", None)
    monkeypatch.setattr(pairs, "compiled", None)
    pairs.write_pairs([str(corpus)], str(tmp_path / "slow.jsonl"), config, seed=11, batch_size=97)
    fast, slow = (tmp_path / "fast.jsonl").read_bytes(), (tmp_path / "slow.jsonl").read_bytes()
    assert fast == slow and len(fast.splitlines()) > 600


def test_the_environment_variable_turns_the_compiled_paths_off():
    code = "from auxpretrain.data.speedups import compiled; print(compiled is None)"
    env = dict(os.environ, AUXPRETRAIN_PURE_PYTHON="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


@pytest.mark.skipif(not os.environ.get("CI"), reason="CI builds the extension; elsewhere it is optional")
def test_ci_builds_the_compiled_paths():
    assert compiled is not None, "pip install did not build auxpretrain/data/cspeedups.c"


# pieces of text for Punkt's quick path: sentence ends before quotes and brackets, abbreviations,
# initials, numbers, ellipses, every whitespace it must notice, every string kind
PUNKT_PIECES = ["Mr.", "Dr.", "e.g.", "i.e.", "U.S.", "J.", "a.", "3.5.", "1990.", "-1.", "No.", "etc.", "...",
                "..", ".", "?", "!", "?!", "?.", '"', "'", "(", ")", "[", "]", "{", "}", "*", ":", ";", "@",
                "--", ",", "The", "the", "He", "it", "Smith", "Bach", "word", "x", "\u2018", "\u2019", "\u201c",
                "\u201d", "\xab", "\xbb", "caf\xe9.", "\xdc.", "\u03a3.", "\u65e5\u672c.", "\U0001F600.", "\U0001F600",
                'end."', "end.)", "end.'", "Yes!", "why?", "x.\u201d", "\x00", "\x1c"]
PUNKT_SPACES = [" "] * 60 + ["", "  "] * 4 + ["\t", "\n", "\xa0", "\u3000", "\u2003", "\x85", " \n"]


def _punkt_texts(seed, count):
    rng = random.Random(seed)
    texts = ["".join(rng.choice(PUNKT_PIECES) + rng.choice(PUNKT_SPACES) for _ in range(rng.randint(0, 14)))
             for _ in range(count)]
    # most stripped (as SentenceSplitter sends them), some with spaces at either end
    return [t.strip() if i % 4 else rng.choice(["", " ", "\n", "\u3000"]) + t for i, t in enumerate(texts)]


def _punkt_params():
    from auxpretrain.data import punkt

    return punkt.PunktParameters(
        abbrev_types={"mr", "dr", "e.g", "etc", "no", "u.s", "i.e", "a-b"},
        collocations={("j.", "bach"), ("##number##", "the"), ("dr", "smith"), ("smith", "he")},
        sent_starters={"the", "he"},
        ortho_context={"smith": 2, "the": 2 | 32, "he": 2, "bach": 4, "it": 32 | 64, "a": 32, "word": 64})


@needs_compiled
def test_compiled_quick_slices_are_punkts_on_awkward_and_real_text():
    """The compiled quick path gives what PunktSplitter._quick_slices gives (slices, realign or
    None) on random awkward strings and real paragraphs, with fresh and warm memos, and leaves
    the same memos behind (it calls back for the same misses)."""
    from auxpretrain.data import punkt

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    real = []
    for name in ("README.md", "corpora/tiny.txt", "docs/architecture.md", "docs/results.md"):
        with open(os.path.join(root, name), encoding="utf-8") as f:
            real += [line.strip() for line in f if line.strip()]
    texts = _punkt_texts(11, 4000) + real
    for params in (_punkt_params(), punkt.load_parameters()):
        ours, reference = punkt.PunktSplitter(params), punkt.PunktSplitter(params)
        for warm in (False, True):
            got = [compiled.quick_slices(ours, t) for t in texts]
            assert got == [reference._quick_slices(t) for t in texts], warm
            assert (ours._quick, ours._plains) == (reference._quick, reference._plains)
        assert sum(g is None for g in got) > 300 and sum(g is not None for g in got) > 1500


@needs_compiled
def test_compiled_quick_slices_pass_on_errors_and_read_every_string_kind():
    from auxpretrain.data import punkt

    class Failing(punkt.PunktSplitter):
        def _quick_decision(self, context, period):
            raise ValueError(context)

    splitter = Failing(punkt.load_parameters())
    with pytest.raises(ValueError, match="x. \\(y"):
        compiled.quick_slices(splitter, "x. (y")
    with pytest.raises(TypeError):
        compiled.quick_slices(splitter, b"x. y")
    reference = punkt.PunktSplitter(punkt.load_parameters())
    for letter in ("e", "\xe9", "\u03a3", "\U0001F600"):  # one, two and four bytes a code point
        text = f"A {letter}. B {letter}. (C.) \u201cD.\u201d E{letter}?! F"
        assert compiled.quick_slices(reference, text) == reference._quick_slices(text)
        assert compiled.quick_slices(reference, text)[0][0] == (0, 4)
