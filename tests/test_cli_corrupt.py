"""`auxpretrain corrupt` end to end: pairs file, summary, determinism, bad input."""

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from auxpretrain.cli import main


def _run(capsys, *argv):
    status = main(["corrupt", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def _pairs(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _check_pairs(rows, edits=1):
    """Every row: keys, bad != good, positions match the op's definition."""
    for row in rows:
        assert set(row) == {"good", "bad", "op", "positions"}
        good, bad, pos = row["good"].split(" "), row["bad"].split(" "), row["positions"]
        assert row["good"] != row["bad"] and len(good) == len(bad)
        assert sorted(i for i in range(len(good)) if good[i] != bad[i]) == sorted(pos)
        if row["op"] == "replace":
            assert len(pos) == edits and "<unk>" not in bad and "<pad>" not in bad
        else:
            assert row["op"] == "swap" and len(pos) == 2 * edits and sorted(good) == sorted(bad)
            for p, q in zip(pos[0::2], pos[1::2]):
                assert good[p] != good[q] and bad[p] == good[q] and bad[q] == good[p]


def test_writes_pairs_and_a_summary(tmp_path, tiny_corpus, capsys):
    out = tmp_path / "pairs.jsonl"
    status, stdout, stderr = _run(capsys, "--corpus", tiny_corpus, "--out", str(out), "--min-count", "1")
    assert status == 0 and stderr == ""
    rows = _pairs(out)
    _check_pairs(rows)
    assert len(rows) > 100  # 60 lines of 1-3 sentences, split by Punkt
    assert {row["op"] for row in rows} == {"replace", "swap"}
    assert "<unk>" not in " ".join(row["good"] for row in rows)
    for needle in ("sentences", "pairs written: ", "skipped:", "decode errors: 0", "vocabulary:",
                   "sentence splitter: shipped English parameters (the text looks English", "pairs/s"):
        assert needle in stdout
    assert f"pairs written: {len(rows):,}" in stdout
    assert sorted(os.listdir(tmp_path)) == ["pairs.jsonl", "tiny.txt"]  # no temp or spool files


# sha256 of the pairs file the code before the shipped splitter parameters wrote for the tiny corpus
# (Punkt trained on it every run: the same split as the shipped parameters give this text)
BEFORE = {("--no-split", "--seed", "3"): "1bfaf7368a90b039ea61af807864a607c1defd8839239b4cebb70ed2b6604c0e",
          ("--seed", "3", "--min-count", "1"): "b1ff3c9389bf5e0e69685e716bb070dead65a8fe91fc56a02879abd8b0c6cbc4",
          ("--no-split", "--seed", "0", "--ops", "swap", "--edits", "2"):
              "fcbc8222684f37d53dd04957f46760b0aaca72a3dc58563d99ab6db8666c50b7"}


@pytest.mark.parametrize("flags", list(BEFORE))
def test_same_bytes_as_before_for_the_same_input_seed_and_flags(tmp_path, tiny_corpus, capsys, flags):
    import hashlib

    runs = [list(flags)] + ([list(flags) + ["--train-splitter"]] if "--no-split" not in flags else [])
    for i, extra in enumerate(runs):
        out = tmp_path / f"{i}.jsonl"
        status, stdout, _ = _run(capsys, "--corpus", tiny_corpus, "--out", str(out), *extra)
        assert status == 0
        assert hashlib.sha256(out.read_bytes()).hexdigest() == BEFORE[flags]
        if "--train-splitter" in extra:
            assert "sentence splitter: trained on 4,150 chars (asked)" in stdout


def test_same_seed_same_file(tmp_path, tiny_corpus, capsys):
    paths = [tmp_path / name for name in ("a.jsonl", "b.jsonl", "c.jsonl")]
    for path, seed in zip(paths, ("3", "3", "4")):
        assert _run(capsys, "--corpus", tiny_corpus, "--out", str(path), "--seed", seed, "--no-split")[0] == 0
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_options(tmp_path, tiny_corpus, capsys):
    out = str(tmp_path / "p.jsonl")
    assert _run(capsys, "--corpus", tiny_corpus, "--out", out, "--ops", "swap", "--swap", "adjacent",
                "--edits", "2", "--no-split")[0] == 0
    rows = _pairs(out)
    _check_pairs(rows, edits=2)
    assert {r["op"] for r in rows} == {"swap"}
    assert all(q - p == 1 for r in rows for p, q in zip(r["positions"][0::2], r["positions"][1::2]))

    assert _run(capsys, "--corpus", tiny_corpus, "--out", out, "--ops", "replace=0.7,swap=0.3", "--band",
                "--limit", "40", "--no-lowercase", "--min-count", "1")[0] == 0
    rows = _pairs(out)
    _check_pairs(rows)
    assert len(rows) <= 40 and any(r["good"][0].isupper() for r in rows)


def test_rare_words_stay_in_good_and_replacements_come_from_the_vocabulary(tmp_path, tiny_corpus, capsys):
    out = str(tmp_path / "p.jsonl")
    assert _run(capsys, "--corpus", tiny_corpus, "--out", out, "--min-count", "40", "--ops", "replace",
                "--no-split")[0] == 0
    rows = _pairs(out)
    words = Counter(w for r in rows for w in r["good"].split(" "))
    frequent = {w for w, n in words.items() if n >= 40}
    assert len(frequent) < len(words)  # some words were rare
    for row in rows:
        good, bad = row["good"].split(" "), row["bad"].split(" ")
        assert all(bad[p] in frequent for p in row["positions"])


def test_text_column_input(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(30):
            f.write(json.dumps({"id": i, "body": f"The fox number {i} jumps over the lazy dog."}) + "\n")
    out = str(tmp_path / "p.jsonl")
    assert _run(capsys, "--corpus", str(path), "--out", out, "--text-column", "body", "--min-count", "1")[0] == 0
    assert len(_pairs(out)) == 30


def _assert_clean_failure(status, stdout, stderr, directory, needle):
    assert status == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("auxpretrain: error: ") and needle in lines[0]
    assert "Traceback" not in stderr
    assert not [n for n in os.listdir(directory) if n.endswith((".jsonl", ".tmp")) or n.startswith(".")]


@pytest.mark.parametrize("make, extra, needle", [
    (lambda d: None, [], "no such file"),
    (lambda d: (d / "c.txt").write_text(""), [], "empty file"),
    (lambda d: (d / "c.txt").write_bytes(b"\x00\x01binary\x00" * 100), [], "looks binary"),
    (lambda d: (d / "c.txt").write_text("one two three\n"), ["--ops", "replace,shuffle"], "unknown op 'shuffle'"),
    (lambda d: (d / "c.txt").write_text("one two three\n"), ["--ops", "replace=x"], "not a number"),
    (lambda d: (d / "c.txt").write_text("one two three\n"), ["--edits", "0"], "--edits must be >= 1"),
    (lambda d: (d / "c.txt").write_text("one two three\n"), ["--ops", "replace", "--min-count", "5"],
     "at least 2 words"),
])
def test_bad_input_one_line_exit_2_no_file(tmp_path, capsys, make, extra, needle):
    make(tmp_path)
    status, stdout, stderr = _run(capsys, "--corpus", str(tmp_path / "c.txt"), "--out",
                                  str(tmp_path / "p.jsonl"), *extra)
    _assert_clean_failure(status, stdout, stderr, tmp_path, needle)


def test_wrong_text_column_says_which_exist(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text("title,body\nA,Some text here.\n", encoding="utf-8")
    status, stdout, stderr = _run(capsys, "--corpus", str(path), "--out", str(tmp_path / "p.jsonl"),
                                  "--text-column", "text")
    _assert_clean_failure(status, stdout, stderr, tmp_path, "no column 'text'; columns: title, body")


def test_failure_keeps_an_existing_output(tmp_path, tiny_corpus, capsys):
    out = tmp_path / "p.jsonl"
    out.write_text("previous\n")
    bad = tmp_path / "bad.gz"
    data = __import__("gzip").compress(b"a few words here\n" * 20000)
    bad.write_bytes(data[: len(data) // 2])
    status, _, stderr = _run(capsys, "--corpus", tiny_corpus, str(bad), "--out", str(out))
    assert status == 2 and "truncated gz data" in stderr
    assert out.read_text() == "previous\n"
    assert sorted(os.listdir(tmp_path)) == ["bad.gz", "p.jsonl", "tiny.txt"]


def test_out_must_not_overwrite_the_corpus(tmp_path, tiny_corpus, capsys):
    status, _, stderr = _run(capsys, "--corpus", tiny_corpus, "--out", tiny_corpus)
    assert status == 2 and "would overwrite the corpus" in stderr
    status, _, stderr = _run(capsys, "--corpus", tiny_corpus, "--out", str(tmp_path / "no" / "p.jsonl"))
    assert status == 2 and "does not exist" in stderr


def test_real_subprocess(tmp_path, tiny_corpus):
    out = tmp_path / "p.jsonl"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-m", "auxpretrain.cli", "corrupt", "--corpus", tiny_corpus,
                           "--out", str(out), "--no-split", "--min-count", "1"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "pairs written" in proc.stdout
    _check_pairs(_pairs(out))
    bad = subprocess.run([sys.executable, "-m", "auxpretrain.cli", "corrupt", "--corpus",
                          str(tmp_path / "missing.txt"), "--out", str(tmp_path / "q.jsonl")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [f"auxpretrain: error: {tmp_path / 'missing.txt'}: no such file"]
    assert not (tmp_path / "q.jsonl").exists()
