"""`auxpretrain transfer`: end to end on files, outputs, and one clear line for bad input."""

import json
import os
import shutil

import pytest

from auxpretrain.cli import main
from conftest import make_toy_task

TINY = ["--epochs", "1", "--batch-size", "16", "--lr", "0.01"]


def _write_tsv(path, split, names=("neg", "pos"), text="text", label="label"):
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{text}\t{label}\n")
        for t, y in zip(split.texts, split.labels):
            f.write(f"{t}\t{names[y]}\n")
    return str(path)


@pytest.fixture
def files(tmp_path):
    task = make_toy_task()
    return {"train": _write_tsv(tmp_path / "train.tsv", task.train),
            "dev": _write_tsv(tmp_path / "dev.tsv", task.dev),
            "test": _write_tsv(tmp_path / "test.tsv", task.test)}


def _run(capsys, *argv):
    code = main(["transfer", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code, err):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("auxpretrain: error: ")
    assert "Traceback" not in err
    return lines[0]


def test_transfer_from_export_on_files(capsys, files, tiny_export_dir, tmp_path):
    from auxpretrain.transfer.saved import load_model

    metrics, out_dir = tmp_path / "m.json", tmp_path / "model"
    code, out, err = _run(capsys, "--train", files["train"], "--dev", files["dev"], "--test", files["test"],
                          "--pretrained", tiny_export_dir, "--freeze", "1", "--json", str(metrics),
                          "--out", str(out_dir), *TINY)
    assert code == 0, err
    assert "epoch 1/1" in out and "test accuracy" in out and "restored" in out
    assert "frozen variables: embedding/table" in out and "frozen-output cache" in out
    data = json.loads(metrics.read_text())
    for key in ("accuracy", "macro_f1", "train_size", "dev_accuracy_per_epoch", "timings", "restore", "frozen"):
        assert key in data
    assert data["train_size"] == 120 and data["frozen"] == ["embedding/table"]
    assert len(data["restore"]["restored"]) == 5
    with load_model(str(out_dir)) as model:
        assert set(model.predict(["w1 good w2", "bad w3"])) <= {"neg", "pos"}


def test_random_init_baseline_without_dev_file(capsys, files, tmp_path):
    config = tmp_path / "model.json"
    config.write_text(json.dumps({"embedding_size": 11, "hidden_size": 37, "max_length": 16}))
    code, out, err = _run(capsys, "--train", files["train"], "--test", files["test"], "--pretrained", "none",
                          "--model-config", str(config), "--train-size", "60", *TINY)
    assert code == 0, err
    assert "random init" in out and "test accuracy" in out


def test_sentiment_task_runs(capsys, tiny_export_dir, tmp_path):
    from auxpretrain.data import packaged as sources
    from auxpretrain.errors import InputError

    try:
        sources.rotten_tomatoes_path()
    except InputError as e:  # the data package is not installed here
        pytest.skip(f"sentiment data unavailable: {e}")
    config = tmp_path / "model.json"
    config.write_text(json.dumps({"embedding_size": 11, "hidden_size": 37, "max_length": 16, "num_layers": 1}))
    code, out, err = _run(capsys, "--task", "sentiment", "--data-source", "package", "--train-size", "80",
                          "--model-config", str(config), *TINY)
    assert code == 0, err
    assert "task sentiment" in out and "test accuracy" in out


@pytest.mark.parametrize("argv, expect", [
    (["--pretrained", "none", "--freeze", "all"], "--freeze all needs --pretrained"),
    (["--pretrained", "EXPORT", "--freeze", "all", "--schedule", "gradual"], "gradual"),
    (["--pretrained", "EXPORT", "--freeze", "auto", "--schedule", "gradual"], "gradual"),
    (["--pretrained", "none", "--layers", "1"], "--layers needs"),
    (["--pretrained", "EXPORT", "--model-config", "x.json"], "--model-config"),
    (["--pretrained", "EXPORT", "--freeze", "some"], "--freeze"),
    (["--pretrained", "EXPORT", "--layers", "conv.*"], "matches none"),
])
def test_conflicting_flags(capsys, files, tiny_export_dir, argv, expect):
    argv = [tiny_export_dir if a == "EXPORT" else a for a in argv]
    code, out, err = _run(capsys, "--train", files["train"], *argv, *TINY)
    assert expect in _one_line_error(code, err)


def test_task_flags_conflict(capsys, files):
    line = _one_line_error(*_run(capsys, "--task", "sentiment", "--train", files["train"])[::2])
    assert "either --task or --train" in line
    line = _one_line_error(*_run(capsys)[::2])
    assert "say which task" in line


def test_bad_files(capsys, files, tmp_path):
    task = make_toy_task()
    no_label = _write_tsv(tmp_path / "nolabel.tsv", task.train, label="y")
    line = _one_line_error(*_run(capsys, "--train", no_label, *TINY)[::2])
    assert "nolabel.tsv" in line and "label" in line
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    line = _one_line_error(*_run(capsys, "--train", str(empty), *TINY)[::2])
    assert "empty" in line
    one = _write_tsv(tmp_path / "one.tsv", task.train, names=("same", "same"))
    line = _one_line_error(*_run(capsys, "--train", one, *TINY)[::2])
    assert "one" in line
    unseen = _write_tsv(tmp_path / "unseen.tsv", task.test, names=("neg", "other"))
    line = _one_line_error(*_run(capsys, "--train", files["train"], "--test", unseen, *TINY)[::2])
    assert "other" in line


@pytest.mark.parametrize("damage", ["vocab", "checkpoint", "manifest", "missing"])
def test_damaged_export(capsys, files, tiny_export_dir, tmp_path, damage):
    path = tmp_path / "export"
    shutil.copytree(tiny_export_dir, path)
    if damage == "vocab":
        text = (path / "vocab.txt").read_text(encoding="utf-8").replace("good", "gold")
        (path / "vocab.txt").write_text(text, encoding="utf-8")
    elif damage == "checkpoint":
        data = [n for n in os.listdir(path) if n.startswith("model.ckpt.data")][0]
        with open(path / data, "r+b") as f:
            f.truncate(os.path.getsize(path / data) // 2)
    elif damage == "manifest":  # another model's config
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["model_config"]["embedding_size"] = 12
        (path / "manifest.json").write_text(json.dumps(manifest))
    else:
        os.remove(path / "vocab.txt")
    line = _one_line_error(*_run(capsys, "--train", files["train"], "--pretrained", str(path), *TINY)[::2])
    assert "export" in line


def test_freeze_auto_prints_the_table(capsys, files, tiny_export_dir, tmp_path):
    metrics = tmp_path / "auto.json"
    code, out, err = _run(capsys, "--train", files["train"], "--dev", files["dev"], "--pretrained",
                          tiny_export_dir, "--freeze", "auto", "--json", str(metrics), *TINY)
    assert code == 0, err
    assert "--freeze auto tried" in out and "random init" in out and "embedding only" in out
    data = json.loads(metrics.read_text())
    assert len(data["auto"]) == 6 and data["chosen"]
    assert data["accuracy"] is None  # no test file


def test_unwritable_outputs_are_one_line(capsys, files, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = _one_line_error(*_run(capsys, "--train", files["train"], "--out", str(blocker), *TINY)[::2])
    assert "--out" in line
