"""The export: round trip, manifest, verification of every file, atomic replacement."""

import json
import os
import shutil

import numpy as np
import pytest

from auxpretrain.errors import ExportError


def _copy(src, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return str(dst)


def test_round_trip_and_manifest(tiny_export_dir):
    from auxpretrain.export import load_export

    exported = load_export(tiny_export_dir)
    m = exported.manifest
    assert {"vocab.txt", "graph.meta", "model.ckpt.index"} <= set(m["files"])
    assert [layer["name"] for layer in m["layers"]] == ["embedding", "layer_0", "layer_1"]
    names = [v["name"] for layer in m["layers"] for v in layer["variables"]]
    assert names == ["embedding/table", "layer_0/kernel", "layer_0/bias", "layer_1/kernel", "layer_1/bias"]
    assert m["vocab"]["size"] == len(exported.vocab) == exported.config.vocab_size
    values = exported.values()
    assert values["embedding/table"].shape == (exported.config.vocab_size, 11)
    assert values["layer_1/kernel"].shape == (3, 37, 37)


def test_graph_meta_has_named_tensors_and_collection(tiny_export_dir, tf1):
    import tensorflow as tf

    from auxpretrain.export import load_export
    from auxpretrain.model.variables import TRANSFERABLE_VARIABLES

    exported = load_export(tiny_export_dir)
    graph = tf.Graph()
    with graph.as_default():
        saver = tf1.train.import_meta_graph(os.path.join(tiny_export_dir, "graph.meta"))
        ids = graph.get_tensor_by_name(exported.manifest["tensors"]["input_ids"])
        pooled = graph.get_tensor_by_name(exported.manifest["tensors"]["pooled"])
        assert len(graph.get_collection(TRANSFERABLE_VARIABLES)) == 5
        with tf1.Session(graph=graph) as sess:
            saver.restore(sess, exported.checkpoint_prefix)
            out = sess.run(pooled, {ids: np.array([[2, 3, 4, 0]], np.int32)})
            by_name = {v.op.name: v for v in graph.get_collection(TRANSFERABLE_VARIABLES)}
            table = sess.run(by_name["embedding/table"])
    assert out.shape == (1, exported.config.pooled_size)
    np.testing.assert_array_equal(table, exported.values()["embedding/table"])


@pytest.mark.parametrize("damage", ["flip_vocab", "truncate_ckpt", "edit_manifest", "drop_file", "swap_vocab"])
def test_damaged_export_is_refused(tiny_export_dir, tmp_path, damage):
    from auxpretrain.export import load_export

    path = _copy(tiny_export_dir, tmp_path)
    if damage == "flip_vocab":
        data = bytearray(open(os.path.join(path, "vocab.txt"), "rb").read())
        data[-3] ^= 1
        open(os.path.join(path, "vocab.txt"), "wb").write(bytes(data))
        expect = "vocab.txt: sha256"
    elif damage == "truncate_ckpt":
        data_file = [f for f in os.listdir(path) if f.startswith("model.ckpt.data")][0]
        full = os.path.join(path, data_file)
        open(full, "r+b").truncate(os.path.getsize(full) // 2)
        expect = "sha256 does not match"
    elif damage == "edit_manifest":
        m = json.load(open(os.path.join(path, "manifest.json")))
        m["model_config"]["hidden_size"] = 38
        json.dump(m, open(os.path.join(path, "manifest.json"), "w"))
        expect = "do not match model_config"
    elif damage == "drop_file":
        os.remove(os.path.join(path, "graph.meta"))
        expect = "graph.meta: missing"
    else:
        with open(os.path.join(path, "vocab.txt"), "a") as f:
            f.write("extra\n")
        expect = "vocab.txt"
    with pytest.raises(ExportError, match=expect) as info:
        load_export(path)
    assert "\n" not in str(info.value)


def test_manifest_paths_cannot_leave_the_export(tiny_export_dir, tmp_path):
    from auxpretrain.export import load_export

    path = _copy(tiny_export_dir, tmp_path)
    m = json.load(open(os.path.join(path, "manifest.json")))
    m["files"]["../outside.txt"] = "0" * 64
    json.dump(m, open(os.path.join(path, "manifest.json"), "w"))
    with pytest.raises(ExportError, match="outside"):
        load_export(path)


def test_not_an_export(tmp_path):
    from auxpretrain.export import load_export

    with pytest.raises(ExportError, match="no such export"):
        load_export(str(tmp_path / "nope"))
    with pytest.raises(ExportError, match="manifest.json"):
        load_export(str(tmp_path))


def test_failed_write_keeps_previous_export(tiny_export_dir, tmp_path, monkeypatch):
    from auxpretrain import export as export_lib

    path = _copy(tiny_export_dir, tmp_path)
    before = export_lib.load_export(path)
    values = before.values()
    values["layer_0/bias"] = values["layer_0/bias"] + 1.0

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_lib, "atomic_write_json", disk_full)
    with pytest.raises(ExportError, match=r"cannot write the export \(\[Errno 28\] No space left on device\)"):
        export_lib.write_export(path, values, before.config, before.vocab, before.tokenizer)
    after = export_lib.load_export(path)  # intact and verified
    np.testing.assert_array_equal(after.values()["layer_0/bias"], before.values()["layer_0/bias"])
    assert [p for p in os.listdir(tmp_path) if ".tmp-" in p] == []  # no half export left behind


def test_write_rejects_wrong_values(tiny_export_dir, tmp_path):
    from auxpretrain.export import load_export, write_export

    before = load_export(tiny_export_dir)
    values = before.values()
    values.pop("layer_1/bias")
    with pytest.raises(ExportError, match="missing"):
        write_export(str(tmp_path / "x"), values, before.config, before.vocab, before.tokenizer)
    assert not os.path.exists(tmp_path / "x")


def test_readers_find_the_export_a_crashed_swap_renamed_aside(tiny_export_dir, tmp_path, capsys):
    """A writer killed between the swap's two renames leaves no OUT/export, the previous
    export renamed aside and the new one complete in its temporary directory (the crash points
    themselves: tests/test_files.py). Readers load the previous export; the next write puts it
    back and removes both leftovers."""
    import subprocess
    import sys

    from auxpretrain.cli import main
    from auxpretrain.export import load_export, write_export

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # the pid of a process that is gone
    out = tmp_path / "export"
    old = tmp_path / f".export.old-{dead}-0badcafe"
    shutil.copytree(tiny_export_dir, old)
    shutil.copytree(tiny_export_dir, tmp_path / f".export.tmp-{dead}-0badf00d")
    before = load_export(tiny_export_dir)
    found = load_export(str(out))
    assert found.path == str(old)
    np.testing.assert_array_equal(found.values()["layer_0/bias"], before.values()["layer_0/bias"])
    assert main(["inspect", str(out)]) == 0 and "embedding/table" in capsys.readouterr().out
    values = before.values()
    values["layer_0/bias"] = values["layer_0/bias"] + 1.0
    write_export(str(out), values, before.config, before.vocab, before.tokenizer)
    assert sorted(os.listdir(tmp_path)) == ["export"]
    np.testing.assert_array_equal(load_export(str(out)).values()["layer_0/bias"], values["layer_0/bias"])
