"""The pretraining run directory (--out): nothing left by a failed run, flags checked before
anything is written, its state checked before it is trusted (vocab.txt, counts.txt, run.json,
damaged checkpoints), and full or read-only disks as one line. The disks are real where the
machine allows it (a small tmpfs mounted in a user namespace); the same failures are also
injected, so they are tested everywhere."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from auxpretrain.cli import main
from auxpretrain.errors import InputError

from conftest import make_tiny_corpus, pretrain_config, run_pretrain

MODEL = {"embedding_size": 11, "hidden_size": 37, "num_layers": 2, "max_length": 20}
PRETRAIN = dict(batch_size=16, eval_every=12, checkpoint_every=4, warmup_steps=4, heldout_fraction=0.1,
                min_heldout=20, learning_rate=5e-3, context_window=2, negatives=3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return str(make_tiny_corpus(tmp_path_factory.mktemp("c") / "c.txt", lines=200))


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "config.json"
    path.write_text(json.dumps({"model": MODEL, "pretrain": PRETRAIN}))
    return str(path)


def _one_line(code, err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("auxpretrain: error: "), err[-2000:]
    return lines[0]


def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- nothing left behind

def test_a_failed_run_leaves_no_run_directory(tmp_path):
    small = str(make_tiny_corpus(tmp_path / "small.txt", lines=10))
    with pytest.raises(InputError, match="too few to hold out"):
        run_pretrain(small, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # not OUT, nor OUT/data, nor run.json
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("kept")
    with pytest.raises(InputError):
        run_pretrain(small, tmp_path / "mine")
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]  # an OUT that existed keeps what it had
    # ... also entries with the names a run writes (`--out .` in a project with data/ and logs/)
    for name in ("data", "logs"):
        (tmp_path / "mine" / name).mkdir()
        (tmp_path / "mine" / name / "keep.txt").write_text(name)
    (tmp_path / "mine" / "vocab.txt").write_text("my words\n")
    with pytest.raises(InputError, match="too few to hold out"):
        run_pretrain(small, tmp_path / "mine")
    assert sorted(os.listdir(tmp_path / "mine")) == ["data", "logs", "notes.txt", "vocab.txt"]
    assert (tmp_path / "mine" / "data" / "keep.txt").read_text() == "data"
    assert (tmp_path / "mine" / "logs" / "keep.txt").read_text() == "logs"
    assert (tmp_path / "mine" / "vocab.txt").read_text() == "my words\n"


@pytest.mark.parametrize("command, flag, message", [
    ("pretrain", ["--seed", "-1"], "--seed must be >= 0, got -1"),
    ("pretrain", ["--epochs", "inf"], "epochs must be a finite number, got inf"),
    ("pretrain", ["--max-steps", "-5"], r"--max-steps must be >= 0 \(0: --epochs decides\), got -5"),
    ("pretrain", ["--max-vocab", "0"], "--max-vocab must be >= 3, got 0"),
    ("corrupt", ["--seed", "-1"], "--seed must be >= 0, got -1"),
    ("corrupt", ["--max-vocab", "0"], "--max-vocab must be >= 3, got 0"),
    ("transfer", ["--seed", "-1"], "--seed must be >= 0, got -1"),
    ("corpus", ["--seed", "-1"], "--seed must be >= 0, got -1"),
])
def test_bad_flags_name_the_flag_and_write_nothing(capsys, corpus, tmp_path, command, flag, message):
    import re

    out = tmp_path / "out"
    argv = {"pretrain": ["--corpus", corpus, "--out", str(out)],
            "corrupt": ["--corpus", corpus, "--out", str(out)],
            "transfer": ["--task", "sentiment", "--out", str(out)],
            "corpus": ["--out", str(out)]}[command]
    line = _one_line(*_cli(capsys, command, *argv, *flag)[::2])
    assert re.search(message, line), line
    assert not out.exists()


def test_out_naming_a_regular_file(capsys, corpus, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = _one_line(*_cli(capsys, "pretrain", "--corpus", corpus, "--out", str(blocker))[::2])
    assert line.endswith("file: exists and is not a directory; choose another --out")
    assert blocker.read_text() == "x"


# ---------------------------------------------------------------- the run directory's state

@pytest.fixture(scope="module")
def pristine_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("pristine") / "run"
    run_pretrain(corpus, out, pretrain_config(max_steps=24))
    return out


@pytest.fixture
def finished_run(pristine_run, tmp_path):
    """A copy of a finished 24-step run (checkpoints at steps 8, 16, 24) to damage."""
    return shutil.copytree(pristine_run, tmp_path / "run")


@pytest.mark.parametrize("damage", ["swap-vocab", "swap-counts", "drop-vocab-line", "delete-vocab"])
def test_an_edited_vocabulary_is_refused_before_resuming(corpus, finished_run, damage):
    name = "counts.txt" if damage == "swap-counts" else "vocab.txt"
    path = finished_run / name
    lines = path.read_text().splitlines(keepends=True)
    if damage.startswith("swap"):
        lines[5], lines[6] = lines[6], lines[5]
    elif damage == "drop-vocab-line":
        del lines[-1]
    path.write_text("".join(lines))
    if damage == "delete-vocab":
        path.unlink()
    expect = "missing, but run.json records it" if damage == "delete-vocab" else \
        r"sha256 does not match run.json \(edited or damaged"
    with pytest.raises(InputError, match=rf"run/{name}: {expect}") as e:
        run_pretrain(corpus, finished_run, pretrain_config(max_steps=32))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("content", ['{"corpus": ["c.txt"], "pretr', "[1, 2]", '{"corpus": 5, "pretrain": {}}'])
def test_a_damaged_run_json_is_one_line(corpus, finished_run, content):
    (finished_run / "run.json").write_text(content)
    with pytest.raises(InputError, match=r"run/run.json: (not valid JSON|not a pretraining run directory|"
                                         r"incomplete or edited \(corpus must be)"):
        run_pretrain(corpus, finished_run, pretrain_config(max_steps=32))


def _flip_a_byte(prefix):
    data_file = [f for f in os.listdir(os.path.dirname(prefix))
                 if f.startswith(os.path.basename(prefix) + ".data")][0]
    path = os.path.join(os.path.dirname(prefix), data_file)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(corpus, finished_run):
    ckpt = finished_run / "checkpoints"
    _flip_a_byte(str(ckpt / "model.ckpt-24"))
    summary, logs = run_pretrain(corpus, finished_run, pretrain_config(max_steps=32))
    assert any(line.startswith("checkpoint model.ckpt-24 cannot be restored (") and
               line.endswith("; trying the previous one") for line in logs), logs
    assert "resumed from step 16 (checkpoints/model.ckpt-16)" in logs
    assert summary["steps"] == 32
    kept = sorted(n[:-len(".index")] for n in os.listdir(ckpt) if n.endswith(".index"))
    assert kept == ["model.ckpt-16", "model.ckpt-24", "model.ckpt-32"]  # keep_checkpoints still holds
    for prefix in kept:
        _flip_a_byte(str(ckpt / prefix))
    with pytest.raises(InputError, match=r"checkpoints: none of the 3 checkpoints can be restored \(the newest: "):
        run_pretrain(corpus, finished_run, pretrain_config(max_steps=40))


# ---------------------------------------------------------------- full and read-only disks, injected

def test_full_disk_at_a_checkpoint_is_one_line_and_resumable(capsys, corpus, config_file, tmp_path, monkeypatch):
    import tensorflow as tf

    saver_class = tf.compat.v1.train.Saver
    real_save = saver_class.save
    calls = []

    def save(self, sess, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise tf.errors.ResourceExhaustedError(None, None, f"{path}.tempstate; No space left on device")
        return real_save(self, sess, path, *args, **kwargs)

    monkeypatch.setattr(saver_class, "save", save)
    argv = ["pretrain", "--corpus", corpus, "--out", str(tmp_path / "run"), "--config", config_file,
            "--min-count", "1", "--max-steps", "12", "--quiet"]
    line = _one_line(*_cli(capsys, *argv)[::2])
    assert "run/checkpoints: cannot write the checkpoint of step 8 (" in line and "No space left" in line
    monkeypatch.setattr(saver_class, "save", real_save)
    code, out, err = _cli(capsys, *argv)
    assert code == 0 and "resumed from step 4" in out, err[-2000:]


def test_full_disk_while_exporting_keeps_the_previous_export(capsys, corpus, config_file, tmp_path, monkeypatch):
    from auxpretrain import export as export_lib
    from auxpretrain.export import load_export

    argv = ["pretrain", "--corpus", corpus, "--out", str(tmp_path / "run"), "--config", config_file,
            "--min-count", "1", "--quiet"]
    assert _cli(capsys, *argv, "--max-steps", "8")[0] == 0
    before = load_export(str(tmp_path / "run" / "export")).values()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_lib, "fsync_dir", disk_full)
    line = _one_line(*_cli(capsys, *argv, "--max-steps", "12")[::2])
    assert "run/export: cannot write the export ([Errno 28] No space left on device)" in line
    after = load_export(str(tmp_path / "run" / "export"))
    assert after.manifest["metrics"]["steps"] == 8
    np.testing.assert_array_equal(after.values()["layer_0/kernel"], before["layer_0/kernel"])
    assert [n for n in os.listdir(tmp_path / "run") if n.startswith(".export.")] == []


def test_read_only_out_is_one_line(capsys, corpus, tmp_path, monkeypatch):
    def read_only(path, *args, **kwargs):
        raise OSError(30, "Read-only file system", path)

    monkeypatch.setattr(os, "makedirs", read_only)
    line = _one_line(*_cli(capsys, "pretrain", "--corpus", corpus, "--out", str(tmp_path / "ro" / "run"))[::2])
    assert line.endswith("ro/run: cannot write the run directory there (Read-only file system); choose another --out")


# ---------------------------------------------------------------- full and read-only disks, real

# Runs inside `unshare -rm` (its own mounts): tmpfs file systems, one remounted read-only, one
# filled up at the second checkpoint, then while exporting. Prints what happened as JSON.
IN_NAMESPACE = textwrap.dedent("""
    import contextlib, io, json, os, shutil, subprocess, sys
    from auxpretrain.cli import main
    from auxpretrain.export import load_export
    from auxpretrain.pretraining import run
    root, corpus, config = sys.argv[1:4]
    ro, rw = os.path.join(root, "ro"), os.path.join(root, "rw")
    for path in (ro, rw):
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", path], check=True)
    subprocess.run(["mount", "-o", "remount,ro", ro], check=True)

    def fill():
        fd = os.open(os.path.join(rw, "filler"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, b"x" * size)
            except OSError:
                pass
        os.close(fd)

    def cli(*argv):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
            code = main(list(argv))
        return {"code": code, "err": err.getvalue(), "out": out.getvalue()}

    results = {}
    base = ["pretrain", "--corpus", corpus, "--config", config, "--min-count", "1", "--quiet"]
    results["read_only"] = cli(*base, "--out", os.path.join(ro, "run"))
    real_save, saves = run.save_checkpoint, []

    def save(*args):
        saves.append(args[-1])
        if len(saves) == 2:
            fill()
        return real_save(*args)

    run.save_checkpoint = save
    out = os.path.join(rw, "run")
    results["full_checkpoint"] = cli(*base, "--out", out, "--max-steps", "12")
    os.remove(os.path.join(rw, "filler"))
    run.save_checkpoint = real_save
    results["resumed"] = cli(*base, "--out", out, "--max-steps", "12")
    real_write = run.export_lib.write_export

    def write(*args, **kwargs):
        fill()
        return real_write(*args, **kwargs)

    run.export_lib.write_export = write
    results["full_export"] = cli(*base, "--out", out, "--max-steps", "16")
    os.remove(os.path.join(rw, "filler"))
    results["export_steps"] = load_export(os.path.join(out, "export")).manifest["metrics"]["steps"]
    results["leftovers"] = [n for n in os.listdir(out) if n.startswith(".export.")]
    print("RESULTS " + json.dumps(results))
""")


def test_real_read_only_and_full_disks(corpus, config_file, tmp_path):
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("no user namespaces here to mount a small file system in (the injected tests cover it)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(["unshare", "-rm", sys.executable, "-c", IN_NAMESPACE, str(tmp_path), corpus,
                           config_file], capture_output=True, text=True, env=env, timeout=600)
    found = [line for line in proc.stdout.splitlines() if line.startswith("RESULTS ")]
    if proc.returncode != 0 and "mount" in proc.stderr and not found:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip().splitlines()[-1][:200]})")
    assert found, proc.stderr[-3000:]
    results = json.loads(found[0][len("RESULTS "):])
    line = _one_line(results["read_only"]["code"], results["read_only"]["err"])
    assert "ro/run: cannot write the run directory there (Read-only file system)" in line
    line = _one_line(results["full_checkpoint"]["code"], results["full_checkpoint"]["err"])
    assert "rw/run/checkpoints: cannot write the checkpoint of step 8 (" in line
    assert results["resumed"]["code"] == 0 and "resumed from step 4" in results["resumed"]["out"]
    line = _one_line(results["full_export"]["code"], results["full_export"]["err"])
    assert "rw/run/export: cannot write the export (" in line
    assert results["export_steps"] == 12 and results["leftovers"] == []
