"""The library API: lazy public names, graph-level helpers (restore + var_list, tf-slim style
init_fn, in-memory transfer, import_meta_graph, shared layers) and TextClassifier."""

import os
import subprocess
import sys

import numpy as np
import pytest

from auxpretrain.config import ModelConfig
from auxpretrain.errors import ConfigError, InputError, NotFittedError, RestoreError

ENCODER = {"embedding/table", "layer_0/kernel", "layer_0/bias", "layer_1/kernel", "layer_1/bias"}


@pytest.fixture
def export(tiny_export_dir):
    from auxpretrain.export import load_export

    return load_export(tiny_export_dir)


def _graph_with_head(tf1, config, num_classes=2, seed=5):
    """A user's graph: encoder under the export's names + a head; returns (graph, handles)."""
    import tensorflow as tf

    import auxpretrain as ap

    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(seed)
        ids = tf1.placeholder(tf.int32, [None, None])
        labels = tf1.placeholder(tf.int32, [None])
        enc = ap.build_encoder(ids, config)
        logits = ap.build_classifier(enc.pooled, num_classes)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    return graph, ids, labels, loss


def _toy_batch(export, task, n=32):
    import auxpretrain as ap

    ids, _ = ap.encode_texts(task.train.texts[:n], export)
    return ids, task.train.labels[:n]


# ---------------------------------------------------------------- the package's public names

def test_import_is_light_and_every_public_name_resolves():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    code = ("import sys, auxpretrain\nnames = auxpretrain.__all__\nassert 'TextClassifier' in dir(auxpretrain)\n"
            "print('TF' if 'tensorflow' in sys.modules else 'NOTF')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "NOTF"

    import pkgutil

    import auxpretrain

    submodules = {m.name for m in pkgutil.iter_modules(auxpretrain.__path__)}
    for name in auxpretrain.__all__:
        assert getattr(auxpretrain, name) is not None, name
        assert name not in submodules  # `auxpretrain.restore` must not be both a module and a function
    with pytest.raises(AttributeError):
        auxpretrain.no_such_name  # noqa: B018


def test_public_functions_have_docstrings():
    import inspect

    import auxpretrain

    for name in auxpretrain.__all__:
        value = getattr(auxpretrain, name)
        if inspect.isfunction(value) or inspect.isclass(value):
            assert (value.__doc__ or "").strip(), name


# ---------------------------------------------------------------- graph level

def test_restore_pretrained_freezes_the_embedding_through_var_list(tf1, export, toy_task):
    import auxpretrain as ap

    graph, ids, labels, loss = _graph_with_head(tf1, export.config)
    with graph.as_default():
        restored = ap.restore_pretrained(export, freeze="embedding")
        train_op = tf1.train.AdamOptimizer(0.05).minimize(loss, var_list=restored.var_list)
        init = tf1.global_variables_initializer()
        variables = {v.name[:-2]: v for v in tf1.global_variables()}
    names = {v.name[:-2] for v in restored.var_list}
    assert names == ENCODER - {"embedding/table"} | {"head/kernel", "head/bias"}
    assert restored.frozen_names == ["embedding/table"] == restored.report.frozen
    assert restored.frozen == [variables["embedding/table"]]  # the variables themselves
    assert set(restored.report.restored) == ENCODER and restored.report.ok
    original = export.values()
    x, y = _toy_batch(export, toy_task)
    with tf1.Session(graph=graph) as sess:
        sess.run(init)
        restored.init_fn(None, sess)  # the tf1.train.Scaffold(init_fn=...) signature works too
        np.testing.assert_array_equal(sess.run(variables["layer_1/kernel"]), original["layer_1/kernel"])
        for _ in range(3):
            sess.run(train_op, {ids: x, labels: y})
        after = sess.run({n: variables[n] for n in ENCODER})
    assert after["embedding/table"].tobytes() == original["embedding/table"].tobytes()
    assert not np.array_equal(after["layer_0/kernel"], original["layer_0/kernel"])


def test_init_fn_runs_inside_a_monitored_session(tf1, export):
    import auxpretrain as ap

    graph, *_ = _graph_with_head(tf1, export.config)
    with graph.as_default():
        restored = ap.restore_pretrained(export)
        table = [v for v in tf1.global_variables() if v.name == "embedding/table:0"][0]
        scaffold = tf1.train.Scaffold(init_fn=restored.init_fn)
        creator = tf1.train.ChiefSessionCreator(scaffold=scaffold)
        with tf1.train.MonitoredSession(session_creator=creator) as sess:
            np.testing.assert_array_equal(sess.run(table), export.values()["embedding/table"])


def test_restore_pretrained_options_and_errors(tf1, export):
    import auxpretrain as ap

    graph, *_ = _graph_with_head(tf1, export.config)
    with graph.as_default():
        with pytest.raises(ConfigError, match="layer_1"):
            ap.restore_pretrained(export, layers=2, freeze=3)  # layer_1 would stay random
        with pytest.raises(ConfigError, match="auto"):
            ap.restore_pretrained(export, freeze="auto")
        restored = ap.restore_pretrained(export, layers="layer_[01]|embedding", freeze=2, remove_frozen=True)
        trainable = {v.name[:-2] for v in tf1.trainable_variables()}
    assert "embedding/table" not in trainable and "layer_0/kernel" not in trainable
    assert set(restored.frozen_names) == {"embedding/table", "layer_0/kernel", "layer_0/bias"}


def test_assign_from_export_fn_is_tf_slim_shaped(tf1, export):
    import dataclasses

    import auxpretrain as ap

    smaller = dataclasses.replace(export.config, num_layers=1)
    graph, *_ = _graph_with_head(tf1, smaller)
    with graph.as_default():
        with pytest.raises(RestoreError, match="layer_1/kernel .* missing from the graph"):
            ap.assign_from_export_fn(export)
        init_fn = ap.assign_from_export_fn(export, ignore_missing_vars=True)
        init = tf1.global_variables_initializer()
        table = [v for v in tf1.global_variables() if v.name == "embedding/table:0"][0]
    assert set(init_fn.report.missing) == {"layer_1/kernel", "layer_1/bias"}
    with tf1.Session(graph=graph) as sess:
        sess.run(init)
        init_fn(sess)
        np.testing.assert_array_equal(sess.run(table), export.values()["embedding/table"])


def test_transfer_between_sessions_in_memory_checks_names_and_shapes(tf1, export):
    import dataclasses

    import auxpretrain as ap

    graph_a, *_ = _graph_with_head(tf1, export.config, seed=1)
    graph_b, *_ = _graph_with_head(tf1, export.config, num_classes=5, seed=2)  # another head
    graph_c, *_ = _graph_with_head(tf1, dataclasses.replace(export.config, hidden_size=13), seed=3)
    sessions = []
    for graph in (graph_a, graph_b, graph_c):
        with graph.as_default():
            init = tf1.global_variables_initializer()
        graph.finalize()  # loading adds no op
        sess = tf1.Session(graph=graph)
        sess.run(init)
        sessions.append(sess)
    a, b, c = sessions
    try:
        report = ap.transfer_between_sessions(a, b)
        assert set(report.restored) == ENCODER and report.ok and report.method == "load"
        va, vb = ap.values_from_session(a), ap.values_from_session(b)
        for name in ENCODER:
            np.testing.assert_array_equal(va[name], vb[name])
        with pytest.raises(RestoreError, match=r"layer_0/kernel: export \[3, 11, 37\] float32, graph \[3, 11, 13\]"):
            ap.transfer_between_sessions(a, c)
        report = ap.transfer_between_sessions(a, c, layers=1)  # the embedding alone fits
        assert report.restored == ["embedding/table"]
        assert "layer_0/kernel" in report.not_selected
    finally:
        for sess in sessions:
            sess.close()


def test_import_encoder_new_head_on_a_named_tensor(tf1, export, toy_task):
    import tensorflow as tf

    import auxpretrain as ap

    graph = tf.Graph()
    with graph.as_default():
        enc = ap.import_encoder(export, scope="pretrained")
        assert enc.pooled.name == "pretrained/encoder/pooled:0"
        assert sorted(v.name for v in enc.variables) == sorted(f"pretrained/{n}:0" for n in ENCODER)
        labels = tf1.placeholder(tf.int32, [None])
        features = tf.stop_gradient(enc.pooled)  # the encoder stays fixed
        logits = ap.dense(features, 2, "new_head")
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        head = [v for v in tf1.trainable_variables() if v.name.startswith("new_head/")]
        assert all(g is None for g in tf.gradients(loss, enc.variables))
        train_op = tf1.train.AdamOptimizer(0.05).minimize(loss, var_list=head)
        init = tf1.global_variables_initializer()
    x, y = _toy_batch(export, toy_task)
    original = export.values()
    with tf1.Session(graph=graph) as sess:
        sess.run(init)
        enc.init_fn(sess)
        first = sess.run(loss, {enc.input_ids: x, labels: y})
        for _ in range(20):
            sess.run(train_op, {enc.input_ids: x, labels: y})
        assert sess.run(loss, {enc.input_ids: x, labels: y}) < first
        for v in enc.variables:
            name = v.name[len("pretrained/"):-2]
            assert sess.run(v).tobytes() == original[name].tobytes()


def test_build_shared_models_reuse_the_bottom_layers(tf1, export):
    import tensorflow as tf

    import auxpretrain as ap

    graph = tf.Graph()
    with graph.as_default():
        ids = tf1.placeholder(tf.int32, [None, None])
        models = ap.build_shared_models(ids, export.config, num_models=3, num_classes=4, shared_layers=2, seed=0)
        names = {v.name[:-2] for v in tf1.global_variables()}
        init_fn, report = models.restore(export)
        init = tf1.global_variables_initializer()
    assert models.shared_layers == ["embedding", "layer_0"] and models.private_layers == ["layer_1"]
    expected = {"embedding/table", "layer_0/kernel", "layer_0/bias"}
    for i in range(3):
        expected |= {f"model_{i}/layer_1/kernel", f"model_{i}/layer_1/bias",
                     f"model_{i}/head/kernel", f"model_{i}/head/bias"}
    assert names == expected
    assert report.ok and len(report.restored) == 3 + 3 * 2
    original = export.values()
    with tf1.Session(graph=graph) as sess:
        sess.run(init)
        init_fn(sess)
        variables = {v.name[:-2]: v for v in graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)}
        for i in range(3):
            np.testing.assert_array_equal(sess.run(variables[f"model_{i}/layer_1/kernel"]), original["layer_1/kernel"])
        heads = [sess.run(variables[f"model_{i}/head/kernel"]) for i in range(3)]
        out = sess.run(models.logits, {ids: [[2, 3, 4], [5, 6, 0]]})
    assert not np.array_equal(heads[0], heads[1])  # each model has its own head
    assert [o.shape for o in out] == [(2, 4)] * 3
    with pytest.raises(ConfigError, match="shared_layers"):
        with tf.Graph().as_default():
            ap.build_shared_models(tf1.placeholder(tf.int32, [None, None]), export.config, 2, 2, shared_layers=4)


# ---------------------------------------------------------------- TextClassifier

def _clf(export, **kw):
    from auxpretrain import TextClassifier

    base = dict(epochs=2, batch_size=16, learning_rate=1e-2, patience=0, seed=3)
    base.update(kw)
    return TextClassifier.from_pretrained(export, **base)


def _string_labels(task, split="train"):
    part = getattr(task, split)
    return part.texts, ["pos" if y else "neg" for y in part.labels]


def test_predict_before_fit_and_unknown_settings(tf1, export):
    from auxpretrain import TextClassifier

    clf = _clf(export)
    for call in (lambda: clf.predict(["a good one"]), lambda: clf.predict_proba(["x"]),
                 lambda: clf.evaluate(["x"], ["pos"]), lambda: clf.save("/nonexistent"),
                 lambda: clf.get_layer_params(0)):
        with pytest.raises(NotFittedError, match="not fitted|no weights"):
            call()
    with pytest.raises(ConfigError, match="unknown setting.*epoch_count"):
        TextClassifier(epoch_count=3)
    with pytest.raises(ConfigError, match="dropout"):
        TextClassifier(dropout=1.5)
    with pytest.raises(NotFittedError, match="from_pretrained"):
        TextClassifier().partial_fit(["a b"], [0])


def test_fit_predict_evaluate_save_load(tf1, export, toy_task, tmp_path):
    from auxpretrain import TextClassifier
    from auxpretrain.transfer.saved import load_model

    texts, labels = _string_labels(toy_task)
    clf = _clf(export, freeze="embedding").fit(texts, labels, dev=_string_labels(toy_task, "dev"))
    assert clf.classes_ == ["neg", "pos"] and clf.frozen_layers == ["embedding"]
    assert len(clf.history_) == 2 and set(clf.report_.frozen) == {"embedding/table"}
    test_texts, test_labels = _string_labels(toy_task, "test")
    probs = clf.predict_proba(test_texts)
    assert probs.shape == (60, 2) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    predictions = clf.predict(test_texts)
    assert set(predictions) <= {"neg", "pos"}
    scores = clf.evaluate(test_texts, test_labels)
    assert scores["accuracy"] == pytest.approx(np.mean(np.array(predictions) == np.array(test_labels)))
    assert set(scores) == {"accuracy", "macro_f1", "loss", "n"}
    with pytest.raises(InputError, match="'maybe'"):
        clf.evaluate(test_texts[:2], ["pos", "maybe"])

    path = clf.save(str(tmp_path / "model"))
    loaded = TextClassifier.load(path)
    assert loaded.classes_ == ["neg", "pos"] and loaded.frozen_layers == ["embedding"]
    np.testing.assert_allclose(loaded.predict_proba(test_texts), probs, atol=1e-6)
    assert load_model(path).predict(test_texts[:5]) == predictions[:5]  # the CLI's format
    loaded.partial_fit(texts[:16], labels[:16])  # a loaded model keeps training
    clf.close()
    loaded.close()


def test_load_a_model_saved_by_fine_tune(tf1, export, toy_task, tmp_path):
    from auxpretrain import TextClassifier
    from auxpretrain.config import TransferConfig
    from auxpretrain.transfer.fine_tuning import fine_tune
    from auxpretrain.transfer.saved import save_model

    result = fine_tune(toy_task, export, TransferConfig(epochs=1, batch_size=16, seed=1))
    path = save_model(str(tmp_path / "cli_model"), result)
    clf = TextClassifier.load(path)
    assert clf.classes_ == ["neg", "pos"]  # the CLI's model.json has label names only
    with result.model() as model:
        assert clf.predict(toy_task.test.texts) == model.predict(toy_task.test.texts)
    clf.close()


def test_random_init_with_integer_labels(tf1, toy_task):
    from auxpretrain import TextClassifier

    config = ModelConfig(vocab_size=3, embedding_size=11, hidden_size=37, num_layers=1, max_length=16)
    clf = TextClassifier(config, epochs=1, batch_size=16, seed=1)
    clf.fit(toy_task.train.texts, toy_task.train.labels.tolist())
    assert clf.classes_ == [0, 1] and clf.config.vocab_size == len(clf.vocab) > 3
    report = clf.report_  # random init: nothing restored, every variable from its initialiser
    assert report.restored == [] and "embedding/table" in report.unexpected and "head/kernel" in report.trainable
    assert str(report).startswith("no restore, random init:")
    assert all(p in (0, 1) and isinstance(p, int) for p in clf.predict(toy_task.test.texts))
    assert clf.layer_names == ["embedding", "layer_0", "head"]


def test_partial_fit_keeps_optimizer_state_and_frozen_layers(tf1, export, toy_task):
    texts, labels = _string_labels(toy_task)
    clf = _clf(export, freeze="embedding", batch_size=8)
    clf.partial_fit(texts[:8], labels[:8], classes=["neg", "pos"])
    clf.partial_fit(texts[8:24], labels[8:24])  # two steps
    assert clf.n_steps_ == 3
    beta1_power = [v for v in clf._graph.get_collection("variables") if "beta1_power" in v.name]
    assert clf._session.run(beta1_power[0]) == pytest.approx(0.9 ** 4)  # Adam's step count carried over
    assert clf.get_layer_params(0)["embedding/table"].tobytes() == export.values()["embedding/table"].tobytes()
    assert not np.array_equal(clf.get_layer_params("layer_1")["layer_1/kernel"], export.values()["layer_1/kernel"])
    with pytest.raises(InputError, match="'meh'"):
        clf.partial_fit(texts[:2], ["pos", "meh"])
    with pytest.raises(ConfigError, match="differ"):
        clf.partial_fit(texts[:2], labels[:2], classes=["a", "b", "c"])
    with pytest.raises(ConfigError, match="auto"):
        _clf(export, freeze="auto").partial_fit(texts[:4], labels[:4])


def test_layer_params_get_set_and_errors(tf1, export, toy_task):
    texts, labels = _string_labels(toy_task)
    clf = _clf(export).partial_fit(texts[:32], labels[:32])
    assert clf.layer_names == ["embedding", "layer_0", "layer_1", "head"]
    params = clf.get_layer_params(1)
    assert set(params) == {"layer_0/kernel", "layer_0/bias"} and params["layer_0/kernel"].shape == (3, 11, 37)
    with pytest.raises(RestoreError, match=r"layer index 4 is out of range.*0\.\.3"):
        clf.get_layer_params(4)
    with pytest.raises(RestoreError, match="unknown layer 'layer_9'"):
        clf.set_layer_params("layer_9", params)
    with pytest.raises(RestoreError, match=r"layer_0/kernel has shape \[3, 11, 37\], got \[3, 11, 36\]"):
        clf.set_layer_params(1, {"kernel": np.zeros((3, 11, 36))})
    with pytest.raises(RestoreError, match="2 variables"):
        clf.set_layer_params(1, [params["layer_0/kernel"]])
    with pytest.raises(RestoreError, match="not a variable of layer layer_0"):
        clf.set_layer_params(1, {"layer_1/kernel": params["layer_0/kernel"]})
    bias = params["layer_0/bias"].copy()
    bias[3] = 2.0  # change one value by hand, then set it
    clf.set_layer_params(1, {"bias": bias})
    np.testing.assert_array_equal(clf.get_layer_params(1)["layer_0/bias"], bias)
    clf.set_layer_params("layer_0", [params["layer_0/kernel"], params["layer_0/bias"]])  # list form
    np.testing.assert_array_equal(clf.get_layer_params(1)["layer_0/bias"], params["layer_0/bias"])


def test_copy_layers_between_models(tf1, export, toy_task):
    import dataclasses

    from auxpretrain import TextClassifier, copy_layers

    texts, labels = _string_labels(toy_task)
    a = _clf(export, seed=1).partial_fit(texts, labels)
    b = _clf(export, seed=2).partial_fit(texts[:16], labels[:16])
    assert copy_layers(a, b, 2) == ["embedding", "layer_0"]
    for i in (0, 1):
        for name, value in a.get_layer_params(i).items():
            np.testing.assert_array_equal(b.get_layer_params(i)[name], value)
    assert not np.array_equal(a.get_layer_params(2)["layer_1/kernel"], b.get_layer_params(2)["layer_1/kernel"])
    b.copy_layers_from(a, ["head"])
    np.testing.assert_array_equal(a.get_layer_params("head")["head/kernel"], b.get_layer_params(3)["head/kernel"])

    other = dataclasses.replace(export.config, hidden_size=13, vocab_size=3)
    c = TextClassifier(other, epochs=1, batch_size=16).fit(texts, labels)
    with pytest.raises(ConfigError, match=r"layer_1/kernel is \[3, 37, 37\].*hidden_size 37 vs 13"):
        c.copy_layers_from(a, ["layer_1"])
    with pytest.raises(ConfigError, match="vocabularies|vocab_size"):
        c.copy_layers_from(a, 1)
    with pytest.raises(NotFittedError):
        c.copy_layers_from(_clf(export), 1)


def test_partial_fit_shared_keeps_the_first_layers_identical(tf1, export, toy_task):
    from auxpretrain import partial_fit_shared

    texts, labels = _string_labels(toy_task)
    models = [_clf(export, seed=s) for s in (1, 2, 3)]
    for start in (0, 16, 32):
        partial_fit_shared(models, texts[start:start + 16], labels[start:start + 16], shared_layers=2,
                           classes=["neg", "pos"])
    first = models[0]
    for m in models[1:]:
        for i in (0, 1):
            for name, value in first.get_layer_params(i).items():
                np.testing.assert_array_equal(m.get_layer_params(i)[name], value)
        assert not np.array_equal(m.get_layer_params(2)["layer_1/kernel"], first.get_layer_params(2)["layer_1/kernel"])
    assert not np.array_equal(first.get_layer_params(0)["embedding/table"], export.values()["embedding/table"])
    with pytest.raises(ConfigError, match="at least two"):
        partial_fit_shared(models[:1], texts[:4], labels[:4])
