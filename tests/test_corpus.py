"""Corpus readers: every format, streaming, decode errors, and bad input."""

import bz2
import csv
import gzip
import json
import lzma

import pytest

from auxpretrain.data.corpus import CorpusStats, iter_sentences, iter_texts, resolve
from auxpretrain.errors import InputError
from auxpretrain.data.text import SentenceSplitter, Tokenizer

LINES = ["The first line. It has two sentences.", "", "Second line here", "  Third line, padded.  "]
EXPECTED = ["The first line. It has two sentences.", "Second line here", "Third line, padded."]
ROWS = [{"text": line, "label": i} for i, line in enumerate(LINES)]


def _write_text(path, opener=open):
    with opener(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(LINES) + "\n")
    return str(path)


def _read(spec, **kwargs):
    stats = CorpusStats()
    return list(iter_texts([spec], stats=stats, **kwargs)), stats


@pytest.mark.parametrize("name, opener", [("c.txt", open), ("c.txt.gz", gzip.open), ("c.bz2", bz2.open),
                                          ("c.xz", lzma.open), ("c.raw", open)])
def test_plain_text_formats(tmp_path, name, opener):
    texts, stats = _read(_write_text(tmp_path / name, opener))
    assert texts == EXPECTED
    assert (stats.files, stats.lines, stats.empty_lines, stats.decode_errors) == (1, 4, 1, 0)


def test_bom_crlf_and_globs(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbfalpha\r\nbeta\r\n")
    (tmp_path / "b.txt").write_bytes(b"gamma\n")
    texts, stats = _read(str(tmp_path / "*.txt"))
    assert texts == ["alpha", "beta", "gamma"] and stats.files == 2
    assert [s.path for s in resolve([str(tmp_path / "*.txt")])] == [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]


def test_undecodable_bytes_are_replaced_and_counted(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café naïve\nplain line\nreal \ufffd kept\n".encode("latin-1", "replace")
                     .replace(b"?", "\ufffd".encode("utf-8")))
    texts, stats = _read(str(path))
    assert texts == ["caf\ufffd na\ufffdve", "plain line", "real \ufffd kept"]
    assert stats.decode_errors == 2  # the U+FFFD already in the file is not a decode error


def _write_jsonl(path, rows=ROWS, opener=open):
    with opener(path, "wt", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return str(path)


def _write_csv(path, rows=ROWS, delimiter=","):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["text", "label"], delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def _write_parquet(path, rows=ROWS):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), str(path))
    return str(path)


@pytest.mark.parametrize("writer, name", [(_write_jsonl, "d.jsonl"), (_write_csv, "d.csv"),
                                          (_write_parquet, "d.parquet"),
                                          (lambda p: _write_jsonl(p, opener=gzip.open), "d.jsonl.gz"),
                                          (lambda p: _write_csv(p, delimiter="\t"), "d.tsv")])
def test_structured_formats_through_datasets(tmp_path, writer, name):
    path = writer(tmp_path / name)
    texts, stats = _read(path, text_column="text")
    assert texts == EXPECTED and stats.lines == 4 and stats.empty_lines == 1
    assert _read(path)[0] == EXPECTED  # a column named "text" is the default


def test_wrong_text_column_lists_the_columns(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl")
    with pytest.raises(InputError, match=r"no column 'body'; columns: text, label"):
        _read(path, text_column="body")
    with pytest.raises(InputError, match=r"column 'label' holds int values, not text; columns: text, label"):
        _read(path, text_column="label")
    other = _write_csv(tmp_path / "o.csv", rows=[{"text": "x", "label": 1}])
    _write_parquet(tmp_path / "p.parquet", rows=[{"body": "x", "label": 1}])
    assert _read(other)[0] == ["x"]
    with pytest.raises(InputError, match=r"choose the text column with --text-column; columns: body, label"):
        _read(str(tmp_path / "p.parquet"))


def test_malformed_jsonl_is_one_line_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{not json\n', encoding="utf-8")
    with pytest.raises(InputError, match="cannot read as JSON Lines") as info:
        _read(str(path))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "no such file"),
    (lambda d: (d / "c.txt").write_bytes(b""), "empty file"),
    (lambda d: (d / "c.txt").write_text("\n  \n\t\n"), "empty"),
    (lambda d: (d / "c.txt").write_bytes(b"GIF89a\x00\x01\x02" * 50), "looks binary"),
    (lambda d: (d / "c.txt").write_bytes(bytes(range(128, 256)) * 20), "mostly not UTF-8"),
    (lambda d: (d / "c.txt").write_text("hi\n".encode("utf-16").decode("latin-1"), encoding="latin-1"),
     "looks binary"),
    (lambda d: (d / "c.txt").mkdir(), "is a directory"),
])
def test_bad_text_inputs(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(InputError, match=message) as info:
        _read(str(tmp_path / "c.txt"))
    assert str(info.value).startswith(str(tmp_path / "c.txt")) and "\n" not in str(info.value)


def test_bad_compressed_files(tmp_path):
    (tmp_path / "fake.gz").write_bytes(b"this is not gzip data at all\n")
    with pytest.raises(InputError, match="not valid gz data"):
        _read(str(tmp_path / "fake.gz"))
    data = gzip.compress(("a line of text\n" * 5000).encode())
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated gz data"):
        _read(str(tmp_path / "cut.gz"))


def test_glob_without_match_and_bad_hub_spec(tmp_path):
    with pytest.raises(InputError, match="no file matches"):
        _read(str(tmp_path / "*.txt"))
    with pytest.raises(InputError, match="expected hf:NAME"):
        _read("hf:")
    with pytest.raises(InputError, match="no corpus given"):
        list(iter_texts([]))


def test_specs_are_checked_before_streaming(tmp_path):
    good = _write_text(tmp_path / "good.txt")
    with pytest.raises(InputError, match="missing.txt: no such file"):
        iter_texts([good, str(tmp_path / "missing.txt")])  # raised at the call, nothing read yet


def test_reading_streams(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("a line of words.\n" * 200_000, encoding="utf-8")
    stats = CorpusStats()
    texts = iter_texts([str(path)], stats=stats)
    assert next(texts) == "a line of words."
    assert stats.lines == 1  # one line read, not the file
    texts.close()
    jsonl = _write_jsonl(tmp_path / "big.jsonl", rows=[{"text": f"row {i}"} for i in range(50_000)])
    stats = CorpusStats()
    rows = iter_texts([jsonl], stats=stats)
    assert next(rows) == "row 0" and stats.lines == 1
    rows.close()


def test_iter_sentences_splits_tokenizes_and_counts(tmp_path):
    path = _write_text(tmp_path / "c.txt")
    splitter = SentenceSplitter.from_sample(iter_texts([path]), train=True)
    stats = CorpusStats()
    sentences = list(iter_sentences([path], Tokenizer(), splitter, stats=stats))
    assert sentences == [["the", "first", "line", "."], ["it", "has", "two", "sentences", "."],
                         ["second", "line", "here"], ["third", "line", ",", "padded", "."]]
    assert stats.sentences == 4 and stats.tokens == 17
    assert len(list(iter_sentences([path], Tokenizer()))) == 3  # no splitter: a line is a sentence


def test_unreachable_hub_is_a_clear_error(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(InputError) as info:
        _read("hf:wikitext:wikitext-103-raw-v1")
    assert str(info.value) == ("hf:wikitext:wikitext-103-raw-v1: cannot reach the dataset hub (offline?); "
                               "download the data and pass local files instead")


@pytest.mark.network
def test_hub_dataset_streams():
    from auxpretrain.data.corpus import _hub_reachable

    if not _hub_reachable():
        pytest.skip("the dataset hub is not reachable")
    stats = CorpusStats()
    texts = iter_texts(["hf:wikitext:wikitext-2-raw-v1:validation"], stats=stats)
    first = [next(texts) for _ in range(5)]
    texts.close()
    assert all(isinstance(t, str) and t for t in first)
