"""restore(): name/shape matching, strictness, layer selection, scope maps, vocabulary remap,
in-memory transfer and the report."""

import json
import os
import shutil

import numpy as np
import pytest

from auxpretrain.config import ModelConfig
from auxpretrain.errors import ExportError, RestoreError

CONFIG = ModelConfig(vocab_size=99, embedding_size=11, num_layers=2, hidden_size=37, max_length=16)
NAMES = {"embedding/table", "layer_0/kernel", "layer_0/bias", "layer_1/kernel", "layer_1/bias"}


def _encoder_graph(tf1, config=CONFIG, seed=1, head=None):
    import tensorflow as tf

    from auxpretrain.model.encoder import build_classifier, build_encoder

    graph = tf.Graph()
    with graph.as_default():
        ids = tf1.placeholder(tf.int32, [None, None])
        enc = build_encoder(ids, config, seed=seed)
        if head:
            build_classifier(enc.pooled, head)
    return graph


def _values(tf1, config=CONFIG, seed=1):
    from auxpretrain.transfer.restore import values_from_session

    graph = _encoder_graph(tf1, config, seed)
    with graph.as_default(), tf1.Session(graph=graph) as sess:
        sess.run(tf1.global_variables_initializer())
        return values_from_session(sess)


def _restored_values(tf1, graph, init_fn, names=None):
    with graph.as_default():
        init = tf1.global_variables_initializer()
        variables = {v.name[:-2]: v for v in tf1.global_variables()}
    with tf1.Session(graph=graph) as sess:
        sess.run(init)
        init_fn(sess)
        return {n: sess.run(v) for n, v in variables.items() if names is None or n in names}


def test_in_memory_transfer_between_graphs_with_different_heads(tf1):
    from auxpretrain.transfer.restore import restore

    values = _values(tf1)
    assert set(values) == NAMES  # the head is never transferable
    graph = _encoder_graph(tf1, seed=7, head=3)
    init_fn, report = restore(values, graph=graph)
    got = _restored_values(tf1, graph, init_fn)
    for name in NAMES:
        np.testing.assert_array_equal(got[name], values[name])
    assert set(report.restored) == NAMES
    assert report.missing == report.unexpected == report.mismatched == []
    assert report.method == "feed" and report.ok
    assert set(report.trainable) == NAMES and report.frozen == []


def test_restore_from_export_uses_the_checkpoint_and_verifies(tf1, tiny_export_dir):
    from auxpretrain.export import load_export
    from auxpretrain.transfer.restore import restore

    export = load_export(tiny_export_dir)
    graph = _encoder_graph(tf1, export.config, seed=5, head=2)
    init_fn, report = restore(tiny_export_dir, graph=graph)  # a path: loaded with verify=True
    assert report.method == "saver" and report.verified
    got = _restored_values(tf1, graph, init_fn)
    for name, value in export.values().items():
        np.testing.assert_array_equal(got[name], value)
    text = str(report)
    assert "5 restored, 0 missing" in text and "layer_1/kernel" in text
    json.dumps(report.to_dict())


def test_strict_restore_names_a_missing_variable(tf1):
    from auxpretrain.transfer.restore import restore

    values = _values(tf1)
    graph = _encoder_graph(tf1, ModelConfig(vocab_size=99, embedding_size=11, num_layers=1, hidden_size=37))
    with pytest.raises(RestoreError) as e:
        restore(values, graph=graph)
    message = str(e.value)
    assert "\n" not in message
    assert "layer_1/" in message and "missing" in message and "[3, 37, 37]" in message


def test_strict_restore_names_both_shapes_of_a_mismatch(tf1):
    from auxpretrain.transfer.restore import restore

    values = _values(tf1)
    graph = _encoder_graph(tf1, ModelConfig(vocab_size=99, embedding_size=11, num_layers=2, hidden_size=40))
    with pytest.raises(RestoreError) as e:
        restore(values, graph=graph)
    message = str(e.value)
    assert "\n" not in message
    assert "layer_0/" in message and "[3, 11, 37]" in message and "[3, 11, 40]" in message


def test_dtype_mismatch_is_reported(tf1):
    import tensorflow as tf

    from auxpretrain.transfer.restore import restore

    graph = tf.Graph()
    with graph.as_default():
        tf1.get_variable("layer_0/bias", [37], dtype=tf.float64)
    values = {"layer_0/bias": np.zeros(37, np.float32)}
    with pytest.raises(RestoreError, match="float32.*float64"):
        restore(values, graph=graph)


def test_partial_restore_restores_what_matches_and_reports_the_rest(tf1):
    from auxpretrain.transfer.restore import restore

    values = _values(tf1)
    config = ModelConfig(vocab_size=99, embedding_size=11, num_layers=3, hidden_size=37)
    graph = _encoder_graph(tf1, config)
    # make layer_1 mis-shaped by giving the values another one
    values = dict(values, **{"layer_1/bias": np.zeros(5, np.float32)})
    init_fn, report = restore(values, graph=graph, strict=False)
    assert set(report.restored) == NAMES - {"layer_1/bias"}
    assert [m.name for m in report.mismatched] == ["layer_1/bias"]
    assert set(report.unexpected) == {"layer_2/kernel", "layer_2/bias"}
    got = _restored_values(tf1, graph, init_fn)
    np.testing.assert_array_equal(got["layer_1/kernel"], values["layer_1/kernel"])
    assert "MISMATCHED" in str(report) and "not in export" in str(report)


def test_missing_is_listed_when_partial(tf1):
    from auxpretrain.transfer.restore import restore

    values = _values(tf1)
    graph = _encoder_graph(tf1, ModelConfig(vocab_size=99, embedding_size=11, num_layers=1, hidden_size=37))
    _, report = restore(values, graph=graph, strict=False)
    assert set(report.missing) == {"layer_1/kernel", "layer_1/bias"}
    assert not report.ok


def test_layer_selection_first_n_and_regex(tf1):
    from auxpretrain.transfer.restore import restore

    values = _values(tf1)
    graph = _encoder_graph(tf1, seed=9)
    init_fn, report = restore(values, graph=graph, layers=2)
    assert report.layers == ["embedding", "layer_0"]
    assert set(report.restored) == {"embedding/table", "layer_0/kernel", "layer_0/bias"}
    assert set(report.not_selected) == {"layer_1/kernel", "layer_1/bias"}
    got = _restored_values(tf1, graph, init_fn)
    assert not np.array_equal(got["layer_1/kernel"], values["layer_1/kernel"])  # kept its init

    graph = _encoder_graph(tf1, seed=9)
    _, report = restore(values, graph=graph, layers="layer_[01]")
    assert report.layers == ["layer_0", "layer_1"]
    with pytest.raises(RestoreError, match="matches none"):
        restore(values, graph=_encoder_graph(tf1), layers="conv.*")


def test_scope_map_restores_into_user_code_under_other_scopes(tf1):
    import tensorflow as tf

    from auxpretrain.transfer.restore import restore

    values = _values(tf1)
    graph = tf.Graph()
    with graph.as_default():  # the user's own model, other scope names, no collection
        with tf1.variable_scope("my_model/encoder/conv0"):
            tf1.get_variable("kernel", [3, 11, 37])
            tf1.get_variable("bias", [37])
        tf1.get_variable("my_model/words/table", [99, 11])
    scope_map = {"layer_0/": "my_model/encoder/conv0/", "embedding/": "my_model/words/"}
    init_fn, report = restore(values, graph=graph, layers=["embedding", "layer_0"], scope_map=scope_map)
    got = _restored_values(tf1, graph, init_fn)
    np.testing.assert_array_equal(got["my_model/encoder/conv0/kernel"], values["layer_0/kernel"])
    np.testing.assert_array_equal(got["my_model/words/table"], values["embedding/table"])
    assert report.mapping["layer_0/kernel"] == "my_model/encoder/conv0/kernel"
    assert "layer_0/kernel -> my_model/encoder/conv0/kernel" in str(report)
    with pytest.raises(RestoreError, match="scope_map key"):
        restore(values, graph=graph, scope_map={"lyr_0/": "x/"})


def test_vocabulary_rows_are_remapped_by_token(tf1):
    import tensorflow as tf

    from auxpretrain.model.encoder import build_encoder
    from auxpretrain.transfer.restore import restore

    source = ["<pad>", "<unk>"] + [f"w{i}" for i in range(97)]
    target = ["<pad>", "<unk>", "new1"] + [f"w{i}" for i in range(96, -1, -2)] + ["new2", "new3"]
    values = _values(tf1)
    table = values["embedding/table"]
    config = ModelConfig(vocab_size=len(target), embedding_size=11, num_layers=2, hidden_size=37)
    for rng, check_noise in ((None, False), (np.random.default_rng(0), True)):
        graph = tf.Graph()
        with graph.as_default():
            build_encoder(tf1.placeholder(tf.int32, [None, None]), config)
        init_fn, report = restore(values, graph=graph, vocab=target, source_vocab=source, rng=rng)
        got = _restored_values(tf1, graph, init_fn)["embedding/table"]
        assert report.vocab_rows_copied == len(target) - 3 and report.vocab_rows_new == 3
        for i, token in enumerate(target):
            if token in source:
                np.testing.assert_array_equal(got[i], table[source.index(token)])
        mean = table[1:].mean(axis=0)
        new = [target.index(t) for t in ("new1", "new2", "new3")]
        if check_noise:
            assert not np.allclose(got[new], mean)
            np.testing.assert_allclose(got[new], np.tile(mean, (3, 1)), atol=0.05)
        else:
            np.testing.assert_allclose(got[new], np.tile(mean, (3, 1)), rtol=1e-6)
        assert "rows copied" in str(report)


def test_remapped_vocabulary_without_vocab_argument_is_a_clear_mismatch(tf1):
    from auxpretrain.transfer.restore import restore

    values = _values(tf1)
    graph = _encoder_graph(tf1, ModelConfig(vocab_size=120, embedding_size=11, num_layers=2, hidden_size=37))
    with pytest.raises(RestoreError, match="vocab"):
        restore(values, graph=graph)


def test_damaged_exports_fail_with_one_line(tf1, tiny_export_dir, tmp_path):
    from auxpretrain.export import load_export
    from auxpretrain.transfer.restore import restore

    for damage in ("vocab", "checkpoint", "manifest"):
        path = tmp_path / damage
        shutil.copytree(tiny_export_dir, path)
        if damage == "vocab":
            with open(path / "vocab.txt", "a", encoding="utf-8") as f:
                f.write("extra\n")
        elif damage == "checkpoint":
            data = [n for n in os.listdir(path) if n.startswith("model.ckpt.data")][0]
            size = os.path.getsize(path / data)
            with open(path / data, "r+b") as f:
                f.truncate(size // 2)
        else:
            manifest = json.loads((path / "manifest.json").read_text())
            manifest["layers"][1]["variables"][0]["shape"] = [3, 11, 40]  # another model's manifest
            (path / "manifest.json").write_text(json.dumps(manifest))
        graph = _encoder_graph(tf1, load_export(tiny_export_dir).config)
        with pytest.raises(ExportError) as e:
            restore(str(path), graph=graph)
        assert "\n" not in str(e.value)


def test_finalized_graph_is_refused(tf1):
    from auxpretrain.transfer.restore import restore

    values = _values(tf1)
    graph = _encoder_graph(tf1)
    graph.finalize()
    with pytest.raises(RestoreError, match="finalized"):
        restore(values, graph=graph)


def test_report_merge_and_trainable(tf1):
    from auxpretrain.transfer.report import RestoreReport

    a = RestoreReport(source="x", verified=True, layers=["embedding"], restored=["embedding/table"],
                      mapping={"embedding/table": "embedding/table"}, frozen=["embedding/table"],
                      not_selected=["layer_0/kernel"])
    b = RestoreReport(source="x", verified=True, layers=["layer_0"], restored=["layer_0/kernel"],
                      mapping={"layer_0/kernel": "layer_0/kernel"}, trainable=["layer_0/kernel"],
                      not_selected=["embedding/table"])
    merged = a.merge(b)
    assert merged.restored == ["embedding/table", "layer_0/kernel"]
    assert merged.not_selected == []
    assert merged.frozen == ["embedding/table"] and merged.trainable == ["layer_0/kernel"]
    merged.set_trainable(["embedding/table:0"])
    assert merged.frozen == ["layer_0/kernel"] and merged.trainable == ["embedding/table"]


def test_assigner_round_trip(tf1):
    import tensorflow as tf

    from auxpretrain.transfer.restore import Assigner

    graph = tf.Graph()
    with graph.as_default():
        v = tf1.get_variable("a", [2, 3])
        w = tf1.get_variable("b/c", [4])
        assigner = Assigner([v, w])
        init = tf1.global_variables_initializer()
    graph.finalize()  # set() creates no ops
    with tf1.Session(graph=graph) as sess:
        sess.run(init)
        values = {"a": np.ones((2, 3), np.float32), "b/c": np.arange(4, dtype=np.float32)}
        assigner.set(sess, values)
        got = assigner.get(sess)
    for k in values:
        np.testing.assert_array_equal(got[k], values[k])


def test_remap_rows_counts():
    from auxpretrain.transfer.restore import remap_rows

    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    out, copied, new = remap_rows(table, ["<pad>", "<unk>", "a", "b"], ["<pad>", "<unk>", "b", "z"])
    assert (copied, new) == (3, 1)
    np.testing.assert_array_equal(out[2], table[3])
    np.testing.assert_allclose(out[3], table[1:].mean(axis=0))
