"""Resuming `fine_tune` / `auxpretrain transfer --checkpoint-dir` after an interruption, kill -9
included: the resumed run ends with the weights, metrics and history of an uninterrupted one."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from auxpretrain.errors import ConfigError, InputError
from conftest import make_toy_task


class _Interrupted(Exception):
    """Raised from the log callback: the run stops as a crash would, mid-training."""


def _settings(**kw):
    from auxpretrain.config import TransferConfig

    base = dict(epochs=5, batch_size=16, learning_rate=1e-2, patience=2, seed=3, layer_dropout=0.1)
    base.update(kw)
    return TransferConfig(**base)


def _stop_at(epoch):
    """A log callback that crashes once epoch `epoch` has trained (before its checkpoint)."""
    def log(line):
        if f"epoch {epoch}/" in line:
            raise _Interrupted(line)
    return log


def _history(rows):
    return [{k: v for k, v in row.items() if "seconds" not in k} for row in rows]


def _assert_same_run(a, b):
    assert set(a.values) == set(b.values)
    for name in a.values:
        assert a.values[name].tobytes() == b.values[name].tobytes(), name
    assert _history(a.epochs) == _history(b.epochs)
    assert a.metrics == b.metrics
    assert a.frozen == b.frozen


@pytest.fixture
def export(tiny_export_dir):
    from auxpretrain.export import load_export

    return load_export(tiny_export_dir)


@pytest.mark.parametrize("kw", [{}, {"schedule": "gradual"}, {"freeze": "2"}],
                         ids=["default", "gradual", "cache"])
def test_interrupted_then_resumed_equals_uninterrupted(tf1, toy_task, export, tmp_path, kw):
    from auxpretrain.transfer.fine_tuning import fine_tune

    settings = _settings(**kw)
    straight = fine_tune(toy_task, export, settings)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Interrupted):
        fine_tune(toy_task, export, settings, checkpoint_dir=str(ckpt), log=_stop_at(3))
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epoch"] == 2 and not state["finished"] and len(state["history"]) == 2
    # leftovers of a crash mid-save: a temporary state and a half-written epoch-3 checkpoint
    (ckpt / ".state.json.99999.0badf00d.tmp").write_text('{"epoch": 9')
    (ckpt / "epoch-3.ckpt.index").write_bytes(b"\0" * 7)
    (ckpt / "epoch-3.ckpt.data-00000-of-00001.tempstate123").write_bytes(b"\1" * 11)
    logs = []
    resumed = fine_tune(toy_task, export, settings, checkpoint_dir=str(ckpt), log=logs.append)
    assert any(line.startswith("resumed from epoch 2") for line in logs), logs
    assert not any("epoch 1/" in line or "epoch 2/" in line for line in logs)
    assert resumed.checkpoint["resumed_from_epoch"] == 2
    _assert_same_run(straight, resumed)
    if not kw:  # early stopping after the resume point: the restored counters decide it
        assert len(straight.epochs) == 4 and straight.metrics["best_epoch"] == 2
    if kw.get("freeze") == "2":
        assert resumed.cache["used"]
    if kw.get("schedule") == "gradual":
        assert [r["trained_groups"] for r in resumed.epochs] == [r["trained_groups"] for r in straight.epochs]
    names = set(os.listdir(ckpt))
    assert not {".state.json.99999.0badf00d.tmp", "epoch-3.ckpt.data-00000-of-00001.tempstate123"} & names
    assert "epoch-3.ckpt.index" not in names or (ckpt / "epoch-3.ckpt.index").stat().st_size != 7
    # finished: only the best epoch's checkpoint is kept; a rerun evaluates it, no training
    best = json.loads((ckpt / "state.json").read_text())["best_epoch"]
    assert {n for n in names if n.startswith("epoch-")} == {f"epoch-{best}.ckpt.index",
                                                           f"epoch-{best}.ckpt.data-00000-of-00001"}
    logs = []
    again = fine_tune(toy_task, export, settings, checkpoint_dir=str(ckpt), log=logs.append)
    assert sum("finished at epoch" in line for line in logs) == 1, logs
    assert not any(" train loss " in line for line in logs), logs
    _assert_same_run(straight, again)


def test_other_settings_or_data_in_the_same_directory_are_refused(tf1, toy_task, export, tmp_path):
    from auxpretrain.transfer.fine_tuning import fine_tune

    ckpt = str(tmp_path / "ckpt")
    fine_tune(toy_task, export, _settings(epochs=1), checkpoint_dir=ckpt)
    with pytest.raises(ConfigError, match=r"other settings \(epochs \(1 -> 2\); learning_rate "
                                          r"\(0\.01 -> 0\.02\)\); use another --checkpoint-dir"):
        fine_tune(toy_task, export, _settings(epochs=2, learning_rate=2e-2), checkpoint_dir=ckpt)
    with pytest.raises(ConfigError, match=r"\(data \(the training, dev or test texts"):
        fine_tune(make_toy_task(seed=5), export, _settings(epochs=1), checkpoint_dir=ckpt)
    with pytest.raises(ConfigError, match=r"\(pretrained \("):
        fine_tune(toy_task, None, _settings(epochs=1), checkpoint_dir=ckpt,
                  model_config=export.config)


_FINISHED = _settings(epochs=2, patience=0)


@pytest.fixture(scope="module")
def finished_dir(tiny_export_dir, tmp_path_factory):
    """A checkpoint directory of a finished 2-epoch run; tests damage copies of it."""
    from auxpretrain.transfer.fine_tuning import fine_tune

    path = tmp_path_factory.mktemp("finished") / "ckpt"
    fine_tune(make_toy_task(), tiny_export_dir, _FINISHED, checkpoint_dir=str(path))
    return path


@pytest.mark.parametrize("damage", ["state-json", "state-edited", "checkpoint-data", "checkpoint-missing"])
def test_damaged_checkpoint_is_one_clear_error(tf1, toy_task, export, finished_dir, tmp_path, damage):
    from auxpretrain.transfer.fine_tuning import fine_tune

    ckpt = tmp_path / "ckpt"
    shutil.copytree(finished_dir, ckpt)
    settings = _FINISHED
    state = ckpt / "state.json"
    data, = ckpt.glob("epoch-*.ckpt.data-00000-of-00001")  # the best epoch's, the only one kept
    if damage == "state-json":  # cut in the middle (what a non-atomic write would leave)
        state.write_bytes(state.read_bytes()[:40])
        expect = r"state\.json: not valid JSON .*; delete the directory"
    elif damage == "state-edited":
        edited = json.loads(state.read_text())
        del edited["best_epoch"]
        state.write_text(json.dumps(edited))
        expect = r"state\.json: incomplete or edited \(best_epoch is missing\)"
    elif damage == "checkpoint-data":
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        data.write_bytes(bytes(raw))
        expect = r"epoch-\d\.ckpt\.data-00000-of-00001: sha256 does not match"
    else:
        data.unlink()
        expect = r"epoch-\d\.ckpt\.data-00000-of-00001: missing from the transfer checkpoint"
    with pytest.raises(InputError, match=expect) as e:
        fine_tune(toy_task, export, settings, checkpoint_dir=str(ckpt))
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- the CLI, with a real kill -9

def _write_tsv(path, split, names=("neg", "pos")):
    with open(path, "w", encoding="utf-8") as f:
        f.write("text\tlabel\n")
        for text, label in zip(split.texts, split.labels):
            f.write(f"{text}\t{names[label]}\n")
    return str(path)


def test_cli_resume_after_kill_9(tiny_export_dir, tmp_path, capsys):
    """kill -9 of `auxpretrain transfer` once an epoch is checkpointed; the same command resumes
    and writes the metrics and model of an uninterrupted run. Only the killed run is a
    subprocess; the others call main() in this process (one TensorFlow start-up less each)."""
    from auxpretrain.cli import main
    from auxpretrain.transfer.saved import load_model

    task = make_toy_task(seed=1, n_train=300, n_dev=60, n_test=60)
    files = [_write_tsv(tmp_path / f"{s}.tsv", getattr(task, s)) for s in ("train", "dev", "test")]
    ckpt, out, metrics = tmp_path / "ckpt", tmp_path / "model", tmp_path / "m.json"
    argv = ["transfer", "--train", files[0], "--dev", files[1], "--test", files[2], "--pretrained",
            tiny_export_dir, "--epochs", "8", "--patience", "0", "--batch-size", "16", "--lr", "0.01",
            "--layer-dropout", "0.1", "--seed", "7", "--checkpoint-dir", str(ckpt), "--out", str(out),
            "--json", str(metrics)]
    proc = subprocess.Popen([sys.executable, "-m", "auxpretrain.cli", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (ckpt / "state.json").exists():
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    output = proc.communicate()[0].decode(errors="replace")
    assert proc.returncode == -signal.SIGKILL, output[-2000:]
    assert not out.exists() and not metrics.exists()
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err[-2000:]
    printed = capsys.readouterr().out
    assert "resumed from epoch " in printed, printed
    epoch = int(printed.split("resumed from epoch ")[1].split()[0])
    assert 1 <= epoch < 8

    straight = [tmp_path / "m2.json" if a == str(metrics) else tmp_path / "model2" if a == str(out) else a
                for a in argv[:argv.index("--checkpoint-dir")] + argv[argv.index("--checkpoint-dir") + 2:]]
    assert main([str(a) for a in straight]) == 0, capsys.readouterr().err[-2000:]
    assert "resumed" not in capsys.readouterr().out
    a, b = json.loads(metrics.read_text()), json.loads((tmp_path / "m2.json").read_text())
    for key in ("accuracy", "macro_f1", "dev_accuracy", "best_epoch", "dev_accuracy_per_epoch", "frozen"):
        assert a[key] == b[key], key
    assert _history(a["epochs"]) == _history(b["epochs"]) and len(a["epochs"]) == 8
    assert a["checkpoint"]["resumed_from_epoch"] == epoch and b["checkpoint"] is None
    with load_model(str(out)) as m1, load_model(str(tmp_path / "model2")) as m2:
        v1, v2 = m1.values(), m2.values()
        assert all(v1[name].tobytes() == v2[name].tobytes() for name in v1)
        texts = task.test.texts[:20]
        np.testing.assert_array_equal(m1.predict_proba(texts), m2.predict_proba(texts))


def test_cli_checkpoint_errors_are_one_line(tiny_export_dir, tmp_path, capsys):
    from auxpretrain.cli import main

    task = make_toy_task()
    train = _write_tsv(tmp_path / "train.tsv", task.train)
    ckpt = tmp_path / "ckpt"
    base = ["transfer", "--train", train, "--pretrained", tiny_export_dir, "--epochs", "1",
            "--batch-size", "16", "--checkpoint-dir", str(ckpt)]

    def one_line(argv):
        code = main(argv)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("auxpretrain: error: "), err
        return lines[0]

    assert main(base) == 0
    capsys.readouterr()
    assert "other settings (learning_rate (0.001 -> 0.002))" in one_line(base + ["--lr", "0.002"])
    assert "--checkpoint-dir must be outside --out" in one_line(base + ["--out", str(tmp_path)])
    (ckpt / "state.json").write_text("{")
    assert "state.json: not valid JSON" in one_line(base)
