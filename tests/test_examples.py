"""The runnable examples in examples/ (they are documentation): each runs as a subprocess on a
tiny export and toy task files, and prints its `accuracy: X` lines."""

import os
import re
import subprocess
import sys

import pytest

from conftest import make_tiny_export, make_toy_task

EXAMPLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")

# example -> (extra arguments, number of `accuracy:` lines it prints)
EXAMPLES = {
    "example_graph_api.py": (["--epochs", "2"], 1),
    "example_in_memory_transfer.py": (["--epochs", "1"], 2),
    "example_meta_graph_head.py": (["--epochs", "3"], 1),
    "example_shared_layers.py": (["--epochs", "1"], 8),
    "example_layer_params.py": (["--epochs", "1"], 4),
    "example_keras.py": (["--epochs", "2"], 1),
}


def _write_tsv(path, split, names):
    with open(path, "w", encoding="utf-8") as f:
        f.write("text\tlabel\n")
        for text, label in zip(split.texts, split.labels):
            f.write(f"{text}\t{names[label]}\n")
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(export dir, train.tsv, test.tsv): the tiny export and the toy task as files."""
    root = tmp_path_factory.mktemp("examples")
    task = make_toy_task()
    export = make_tiny_export(root / "export", task)
    names = ["neg", "pos"]
    return (str(export.path), _write_tsv(root / "train.tsv", task.train, names),
            _write_tsv(root / "test.tsv", task.test, names))


def _run(script, args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, os.path.join(EXAMPLES_DIR, script)] + args, capture_output=True,
                          text=True, env=env, timeout=600)


@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_prints_accuracy_lines(script, files):
    export, train, test = files
    extra, expected = EXAMPLES[script]
    proc = _run(script, ["--pretrained", export, "--train", train, "--test", test] + extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    values = [float(m.group(1)) for m in re.finditer(r"^accuracy: ([0-9.]+)", proc.stdout, re.M)]
    assert len(values) == expected, proc.stdout
    assert all(0.0 <= v <= 1.0 for v in values)


def test_example_reports_a_bad_export_in_one_line(files, tmp_path):
    _, train, test = files
    proc = _run("example_graph_api.py", ["--pretrained", str(tmp_path / "missing"), "--train", train, "--test", test])
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "no such export directory" in lines[-1]
    assert "Traceback" not in proc.stderr
