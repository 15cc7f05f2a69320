"""An export is data: crafted graph.meta files, checkpoints and tokenizers pointing elsewhere,
symbolic links. Each attack is first shown to work when the file is trusted
(`import_encoder(..., trust_graph_meta=True)`), then shown to do nothing by default."""

import json
import os
import shutil
import time

import numpy as np
import pytest

from auxpretrain.errors import AuxPretrainError, ExportError, InputError

from conftest import make_tiny_export


def _copy(src, dst):
    shutil.copytree(src, dst)
    return str(dst)


def _rewrite_manifest(path, edit):
    manifest_path = os.path.join(path, "manifest.json")
    manifest = json.load(open(manifest_path))
    edit(manifest)
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)


def _craft_meta_graph(src, dst, edit, edit_proto=None):
    """A copy of export `src` whose graph.meta `edit(graph, saver_def)` changed (and
    `edit_proto(meta_graph_def)` after export), with its sha256 in the manifest updated:
    what anyone can do to an export."""
    import tensorflow as tf

    from auxpretrain.files import sha256_file
    from auxpretrain.model.variables import TRANSFERABLE_VARIABLES

    tf1 = tf.compat.v1
    path = _copy(src, dst)
    meta = os.path.join(path, "graph.meta")
    graph = tf.Graph()
    with graph.as_default():
        saver = tf1.train.import_meta_graph(meta)
        saver_def = edit(graph, saver.as_saver_def())
        meta_def = tf1.train.export_meta_graph(graph=graph, saver_def=saver_def, collection_list=[
            TRANSFERABLE_VARIABLES, tf1.GraphKeys.GLOBAL_VARIABLES, tf1.GraphKeys.TRAINABLE_VARIABLES])
    if edit_proto is not None:
        edit_proto(meta_def)
    with open(meta, "wb") as f:
        f.write(meta_def.SerializeToString())
    _rewrite_manifest(path, lambda m: m["files"].__setitem__("graph.meta", sha256_file(meta)))
    return path


def _restore_and_read(export_path, trust, run_initializer=True):
    """import_encoder + the documented session code; -> the encoder's values after init_fn."""
    import tensorflow as tf

    import auxpretrain as ap

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        enc = ap.import_encoder(export_path, trust_graph_meta=trust)
        init = tf1.global_variables_initializer()
        with tf1.Session(graph=graph) as sess:
            if run_initializer:
                sess.run(init)
            enc.init_fn(sess)
            by_name = {v.op.name: v for v in enc.variables}
            return {name: sess.run(var) for name, var in by_name.items()}


def test_saver_restore_grouped_with_read_and_write_file(tiny_export_dir, tmp_path, tf1):
    """The saver's restore op also copies a file: with the default path nothing is written."""
    import tensorflow as tf

    secret = tmp_path / "secret.txt"
    secret.write_text("not for the export's eyes")
    stolen = tmp_path / "stolen.txt"

    def edit(graph, saver_def):
        restore = graph.get_operation_by_name(saver_def.restore_op_name)
        copy = tf.io.write_file(str(stolen), tf.io.read_file(str(secret)))
        saver_def.restore_op_name = tf.group(restore, copy, name="evil_restore").name
        return saver_def

    path = _craft_meta_graph(tiny_export_dir, tmp_path / "crafted", edit)
    expected = {n: v for n, v in _load_values(tiny_export_dir).items()}
    values = _restore_and_read(path, trust=False)
    assert not stolen.exists()
    for name, value in values.items():
        np.testing.assert_array_equal(value, expected[name])
    _restore_and_read(path, trust=True)  # the same file, trusted: the attack is real
    assert stolen.read_text() == secret.read_text()


def test_variable_initializer_replaced_by_write_file(tiny_export_dir, tmp_path, tf1):
    """embedding/table's initializer also writes a file, run by sess.run(init)."""
    import tensorflow as tf
    from tensorflow.core.framework import variable_pb2

    marker = tmp_path / "written-by-the-export.txt"

    def edit(graph, saver_def):
        table = [v for v in graph.get_collection("variables") if v.op.name == "embedding/table"][0]
        tf.group(table.initializer, tf.io.write_file(str(marker), "pwned"), name="evil_init")
        return saver_def

    def edit_proto(meta_def):
        for collection in meta_def.collection_def.values():
            values = collection.bytes_list.value
            for i, raw in enumerate(values):
                var = variable_pb2.VariableDef.FromString(raw)
                if var.variable_name == "embedding/table:0":
                    var.initializer_name = "evil_init"
                    values[i] = var.SerializeToString()

    path = _craft_meta_graph(tiny_export_dir, tmp_path / "crafted", edit, edit_proto)
    _restore_and_read(path, trust=False)
    assert not marker.exists()
    _restore_and_read(path, trust=True)
    assert marker.read_text() == "pwned"


def test_saver_pointing_at_another_checkpoint(tiny_export_dir, tmp_path, tf1):
    """The saver restores a foreign checkpoint whatever path it is given: by default the
    export's own values are loaded."""
    import tensorflow as tf

    other = make_tiny_export(tmp_path / "other", seed=7)

    def edit(graph, saver_def):
        variables = {v.op.name: v for v in graph.get_collection("variables")}
        foreign = tf1.train.Saver(var_list=variables, filename=other.checkpoint_prefix, name="evil")
        ignored = tf1.placeholder(tf.string, [], name="ignored_path")
        evil = foreign.as_saver_def()
        evil.filename_tensor_name = ignored.name
        return evil

    path = _craft_meta_graph(tiny_export_dir, tmp_path / "crafted", edit)
    own, foreign = _load_values(tiny_export_dir), other.values()
    assert not np.array_equal(own["layer_0/kernel"], foreign["layer_0/kernel"])
    values = _restore_and_read(path, trust=False)
    np.testing.assert_array_equal(values["layer_0/kernel"], own["layer_0/kernel"])
    trusted = _restore_and_read(path, trust=True)
    np.testing.assert_array_equal(trusted["layer_0/kernel"], foreign["layer_0/kernel"])


def test_default_import_ignores_graph_meta_entirely(tiny_export_dir, tmp_path, tf1):
    """graph.meta replaced by garbage (sha256 updated): the default path does not read it."""
    from auxpretrain.files import sha256_file

    path = _copy(tiny_export_dir, tmp_path / "garbage")
    meta = os.path.join(path, "graph.meta")
    with open(meta, "wb") as f:
        f.write(b"\x00not a MetaGraphDef")
    _rewrite_manifest(path, lambda m: m["files"].__setitem__("graph.meta", sha256_file(meta)))
    values = _restore_and_read(path, trust=False)
    np.testing.assert_array_equal(values["layer_1/bias"], _load_values(tiny_export_dir)["layer_1/bias"])
    with pytest.raises(ExportError, match="graph.meta: cannot import"):
        _restore_and_read(path, trust=True)


def _load_values(path):
    from auxpretrain.export import load_export

    return load_export(path).values()


# ---------------------------------------------------------------- paths outside the directory

@pytest.mark.parametrize("where", ["absolute", "parent"])
def test_manifest_checkpoint_outside_the_export(tiny_export_dir, tmp_path, where):
    from auxpretrain.export import load_export

    other = make_tiny_export(tmp_path / "other", seed=7)
    path = _copy(tiny_export_dir, tmp_path / "copy")
    target = other.checkpoint_prefix if where == "absolute" else "../other/model.ckpt"
    _rewrite_manifest(path, lambda m: m.__setitem__("checkpoint", target))
    with pytest.raises(ExportError, match=r"checkpoint must be a file name inside the directory") as e:
        load_export(path)
    assert "\n" not in str(e.value)


def test_unlisted_checkpoint_file_is_refused(tiny_export_dir, tmp_path):
    from auxpretrain.export import load_export

    path = _copy(tiny_export_dir, tmp_path / "copy")
    shutil.copy(os.path.join(path, "model.ckpt.index"), os.path.join(path, "model.ckpt.data-00001-of-00002"))
    with pytest.raises(ExportError, match="model.ckpt.data-00001-of-00002: not listed in manifest.json"):
        load_export(path)


def test_symbolic_link_in_an_export_is_refused(tiny_export_dir, tmp_path):
    from auxpretrain.export import load_export

    path = _copy(tiny_export_dir, tmp_path / "copy")
    outside = tmp_path / "vocab-outside.txt"
    shutil.move(os.path.join(path, "vocab.txt"), outside)
    os.symlink(outside, os.path.join(path, "vocab.txt"))  # same bytes, same sha256
    with pytest.raises(ExportError, match="vocab.txt: a symbolic link"):
        load_export(path)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, tiny_export_dir):
    """A model saved by fine_tune on the toy task (1 epoch)."""
    from auxpretrain.config import TransferConfig
    from auxpretrain.export import load_export
    from auxpretrain.transfer.fine_tuning import fine_tune
    from auxpretrain.transfer.saved import save_model
    from conftest import make_toy_task

    path = tmp_path_factory.mktemp("saved") / "model"
    result = fine_tune(make_toy_task(), load_export(tiny_export_dir), TransferConfig(epochs=1, batch_size=32),
                       log=lambda _: None)
    save_model(str(path), result)
    return str(path)


def test_model_json_checkpoint_outside_the_model(saved_model, tmp_path):
    from auxpretrain.transfer.saved import load_model

    path = _copy(saved_model, tmp_path / "copy")
    meta_path = os.path.join(path, "model.json")
    meta = json.load(open(meta_path))
    meta["checkpoint"] = os.path.join(saved_model, "model.ckpt")
    json.dump(meta, open(meta_path, "w"))
    with pytest.raises(InputError, match="checkpoint must be a file name inside the directory"):
        load_model(path)


# ---------------------------------------------------------------- the tokenizer pattern

EVIL_PATTERN = r"(\w+\s?)+!"


def test_a_crafted_tokenizer_pattern_is_never_run(tiny_export_dir, saved_model, tmp_path, capsys):
    """(\\w+\\s?)+! takes seconds to hours on one text: refused at load, in well under a second."""
    from auxpretrain.cli import main
    from auxpretrain.export import load_export
    from auxpretrain.transfer.saved import load_model

    path = _copy(tiny_export_dir, tmp_path / "export")
    _rewrite_manifest(path, lambda m: m["tokenizer"].__setitem__("pattern", EVIL_PATTERN))
    start = time.perf_counter()
    with pytest.raises(ExportError, match=r"tokenizer: pattern .* is not this package's tokenizer pattern"):
        load_export(path)
    train = tmp_path / "train.tsv"
    train.write_text("text\tlabel\n" + "".join(f"{'word ' * 40}\t{i % 2}\n" for i in range(20)))
    assert main(["transfer", "--pretrained", path, "--train", str(train), "--epochs", "1"]) == 2
    assert "is not this package's tokenizer pattern" in capsys.readouterr().err
    assert time.perf_counter() - start < 60  # the pattern itself would not finish
    model = _copy(saved_model, tmp_path / "model")
    meta = json.load(open(os.path.join(model, "model.json")))
    meta["tokenizer"]["pattern"] = EVIL_PATTERN
    json.dump(meta, open(os.path.join(model, "model.json"), "w"))
    with pytest.raises(InputError, match="is not this package's tokenizer pattern"):
        load_model(model)


def test_write_export_refuses_a_pattern_loading_would_refuse(tiny_export_dir, tmp_path):
    from auxpretrain.data.text import Tokenizer
    from auxpretrain.export import load_export, write_export

    before = load_export(tiny_export_dir)
    with pytest.raises(ExportError, match="not this package's"):
        write_export(str(tmp_path / "x"), before.values(), before.config, before.vocab,
                     Tokenizer(pattern=r"\w+"))
    assert not os.path.exists(tmp_path / "x")


def test_every_error_here_is_an_auxpretrain_error():
    assert issubclass(ExportError, AuxPretrainError) and issubclass(InputError, AuxPretrainError)
