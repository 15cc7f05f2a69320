"""Reading and splitting in a child process (`data.forked`, `write_pairs(parallel=...)`): the
same pairs and report as in process, the child's errors raised as they were, no child left."""

import os

import pytest

from auxpretrain.data import forked, pairs
from auxpretrain.errors import InputError

pytestmark = pytest.mark.skipif(not forked.can_fork(), reason="forks only on Linux")


def _items(n, fail_at=None, exit_at=None):
    def make():
        for i in range(n):
            if i == fail_at:
                raise InputError(f"corpus.txt: line {i}: bad")
            if i == exit_at:
                os._exit(3)  # the child dies without a word
            yield [f"sentence {i}"] * (i % 3)
    return make


def test_items_come_back_in_order_then_the_final_value():
    items = forked.ForkedItems(_items(37), lambda: {"lines": 37})
    assert list(items) == [[f"sentence {i}"] * (i % 3) for i in range(37)]
    assert items.final == {"lines": 37} and not items._process.is_alive()


def test_an_error_in_the_child_is_raised_as_it_was():
    with pytest.raises(InputError, match=r"^corpus.txt: line 5: bad$"):
        list(forked.ForkedItems(_items(9, fail_at=5)))


def test_a_child_that_dies_is_one_clear_error():
    with pytest.raises(InputError, match="ended without a result .exit code 3"):
        list(forked.ForkedItems(_items(9, exit_at=4)))


def test_leaving_early_stops_the_child():
    items = forked.ForkedItems(_items(10_000))
    for i, _ in enumerate(items):
        if i == 2:
            break
    items.close()
    assert not items._process.is_alive()


def _corpus(path, lines=401):
    text = "".join(f"Line {i} has words, and Dr. Smith said so. Then {i % 7} more words follow!\n"
                   for i in range(lines))
    path.write_text(text + "\n\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("split", [True, False])
def test_pairs_and_report_are_the_same_in_a_child(tmp_path, monkeypatch, split):
    corpus = _corpus(tmp_path / "corpus.txt")
    made = []

    class Counted(forked.ForkedItems):
        def __init__(self, *args):
            made.append(args)
            super().__init__(*args)

    monkeypatch.setattr(pairs, "ForkedItems", Counted)
    child = pairs.write_pairs([corpus, corpus], str(tmp_path / "a.jsonl"), split=split, batch_size=53,
                              parallel=True)
    alone = pairs.write_pairs([corpus, corpus], str(tmp_path / "b.jsonl"), split=split, batch_size=53,
                              parallel=False)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert child.stats == alone.stats and child.stats.lines == 2 * 403 and child.stats.empty_lines == 4
    assert child.splitter.split(" (")[0] == alone.splitter.split(" (")[0]  # the same parameters
    assert child.pairs == alone.pairs > 700
    assert len(made) == 1  # the first in a child, the second not


def test_only_a_corpus_worth_a_process_goes_to_one(tmp_path):
    from auxpretrain.data.corpus import resolve

    small = resolve([_corpus(tmp_path / "small.txt")])
    big = tmp_path / "big.txt"
    big.write_text("Some text. More text.\n" * (pairs.MIN_FORKED_BYTES // 20), encoding="utf-8")
    assert not pairs._worth_a_process(small, split=True)
    assert pairs._worth_a_process(resolve([str(big)]), split=True)
    assert not pairs._worth_a_process(resolve([str(big)]), split=False)  # nothing to split: reading alone


def test_no_process_to_be_had_means_the_same_pairs_in_process(tmp_path, monkeypatch):
    corpus = _corpus(tmp_path / "corpus.txt")

    def refused(*args):
        raise BlockingIOError(11, "Resource temporarily unavailable")  # what fork raises at a limit

    monkeypatch.setattr(pairs, "ForkedItems", refused)
    report = pairs.write_pairs([corpus], str(tmp_path / "a.jsonl"), parallel=True)
    pairs.write_pairs([corpus], str(tmp_path / "b.jsonl"), parallel=False)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes() and report.pairs > 300


def test_a_bad_file_read_in_the_child_is_one_error_and_no_file(tmp_path):
    corpus = _corpus(tmp_path / "corpus.txt")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01" * 5000)
    with pytest.raises(InputError, match="binary.txt: looks binary"):
        pairs.write_pairs([corpus, str(tmp_path / "binary.txt")], str(tmp_path / "p.jsonl"), parallel=True)
    assert sorted(os.listdir(tmp_path)) == ["binary.txt", "corpus.txt"]
