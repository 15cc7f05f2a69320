"""docs/library.md is the downstream engineer's guide: every public name its code uses exists and
is listed in its name table, and its Python blocks run, in order, as one script on a tiny export
and toy task files (so the guide cannot drift from the package)."""

import ast
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import make_tiny_export, make_toy_task, write_task_tsv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDE = os.path.join(ROOT, "docs", "library.md")


def _blocks(path, language="python"):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.M | re.S)


def _keras_names():
    with open(os.path.join(ROOT, "auxpretrain", "keras.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    return {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


def _name_table():
    with open(GUIDE, encoding="utf-8") as f:
        text = f.read()
    return text[text.index("## Every name this page uses"):]


def test_every_public_name_in_the_guide_exists_and_is_listed():
    import auxpretrain as ap

    code = "\n".join(_blocks(GUIDE))
    used = set(re.findall(r"\bap\.([A-Za-z_]\w*)", code))
    keras_used = set(re.findall(r"\bapk\.([A-Za-z_]\w*)", code))
    assert {"load_task_files", "stratified_subsample", "encode_texts", "fit_loop", "run_batched", "pool",
            "restore_pretrained", "TextClassifier"} <= used
    missing = sorted(n for n in used if not hasattr(ap, n))
    assert not missing, f"not on the facade: {missing}"
    assert not keras_used - _keras_names(), keras_used - _keras_names()
    table = _name_table()
    unlisted = sorted(n for n in used if f"`ap.{n}`" not in table)
    unlisted += sorted(n for n in keras_used if f"`apk.{n}`" not in table)
    assert not unlisted, f"used in code but not in the name table: {unlisted}"
    readme = "\n".join(_blocks(os.path.join(ROOT, "README.md")))
    assert all(hasattr(ap, n) for n in re.findall(r"\bap\.([A-Za-z_]\w*)", readme))


@pytest.mark.slow
def test_the_guide_runs_end_to_end(tmp_path):
    task = make_toy_task()
    make_tiny_export(tmp_path / "runs" / "pretrain" / "export", task)
    os.makedirs(tmp_path / "data")
    names = ("negative", "positive")
    write_task_tsv(tmp_path / "data" / "sentiment_train.tsv", task.train, names)
    write_task_tsv(tmp_path / "data" / "sentiment_test.tsv", task.test, names)
    script = "\n\n".join(_blocks(GUIDE)) + "\nprint('GUIDE RAN')\n"
    (tmp_path / "guide.py").write_text(script, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "guide.py"], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "GUIDE RAN" in proc.stdout
    assert "already has an optimizer" in proc.stdout  # the misuse block printed its error
    assert (tmp_path / "models" / "sentiment").is_dir() and (tmp_path / "runs" / "projector").is_dir()
    shutil.rmtree(tmp_path / "runs")


def test_no_example_or_doc_recommends_the_deprecated_variable_load():
    paths = [os.path.join(ROOT, "examples", n) for n in os.listdir(os.path.join(ROOT, "examples"))]
    paths += [os.path.join(ROOT, "docs", n) for n in os.listdir(os.path.join(ROOT, "docs"))] + [GUIDE]
    for path in paths:
        if path.endswith((".py", ".md")):
            with open(path, encoding="utf-8") as f:
                assert not re.search(r"\bvar\.load\(|\.load\(value, sess", f.read()), path
