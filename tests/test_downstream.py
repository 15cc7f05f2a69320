"""The downstream engineer's path: misuse that is an error (freezing after the optimizer), one
meaning of layers / freeze / max_length everywhere, the training loop and the frozen-output
cache for your own graph, and TextClassifier's fit / partial_fit agreeing."""

import os

import numpy as np
import pytest

from auxpretrain.config import TASK_LENGTH_MAX, TASK_LENGTH_MIN, ModelConfig, TransferConfig, task_max_length
from auxpretrain.errors import ConfigError


@pytest.fixture
def export(tiny_export_dir):
    from auxpretrain.export import load_export

    return load_export(tiny_export_dir)


@pytest.fixture(scope="module")
def embedding_default_export(tmp_path_factory, tiny_export_dir):
    """The tiny export, re-written with transfer.default_layers = ["embedding"] (as pretrain writes)."""
    from auxpretrain.export import load_export, write_export

    source = load_export(tiny_export_dir)
    path = tmp_path_factory.mktemp("defaults") / "export"
    return write_export(str(path), source.values(), source.config, source.vocab, source.tokenizer,
                        extra={"transfer": {"default_layers": ["embedding"]}})


def _user_graph(tf1, config, optimizer=None):
    """Encoder + head + loss in a new graph; with `optimizer`, its train op is built first."""
    import tensorflow as tf

    import auxpretrain as ap

    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(3)
        ids = tf1.placeholder(tf.int32, [None, None])
        labels = tf1.placeholder(tf.int32, [None])
        enc = ap.build_encoder(ids, config)
        logits = ap.build_classifier(enc.pooled, 2)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        if optimizer is not None:
            optimizer.minimize(loss)
    return graph, ids, labels, logits, loss, enc


# ---------------------------------------------------------------- 1. freezing after the optimizer

@pytest.mark.parametrize("make_optimizer", ["adam", "sgd"])
def test_freezing_after_the_optimizer_exists_is_an_error(tf1, export, make_optimizer):
    import auxpretrain as ap

    graph, _, _, _, loss, _ = _user_graph(tf1, export.config)
    with graph.as_default():
        opt = tf1.train.AdamOptimizer(1e-3) if make_optimizer == "adam" else tf1.train.GradientDescentOptimizer(0.1)
        opt.minimize(loss)  # the optimizer first: too late to freeze through var_list
        with pytest.raises(ConfigError) as e:
            ap.restore_pretrained(export, freeze="embedding")
        message = str(e.value)
        assert "embedding/table" in message and "call restore_pretrained before creating the optimizer" in message
        # Adam leaves slot variables; plain SGD only its update op (a scatter: the gradient is sparse)
        assert ("slot variable embedding/table/Adam" in message) == (make_optimizer == "adam")
        assert ("ResourceScatterAdd op" in message) == (make_optimizer == "sgd")
        ap.restore_pretrained(export)  # restoring without freezing is fine after the optimizer


def test_freezing_a_layer_the_optimizer_leaves_alone_is_fine(tf1, export):
    import auxpretrain as ap

    graph, _, _, _, loss, _ = _user_graph(tf1, export.config)
    with graph.as_default():
        head = [v for v in tf1.trainable_variables() if v.name.startswith("head/")]
        tf1.train.AdamOptimizer(1e-3).minimize(loss, var_list=head)  # the encoder is not trained anyway
        restored = ap.restore_pretrained(export, freeze="all")
    assert set(restored.frozen_names) == {"embedding/table", "layer_0/kernel", "layer_0/bias", "layer_1/kernel",
                                          "layer_1/bias"}


# ---------------------------------------------------------------- 5. freeze="all" and layers=None

def test_freeze_all_means_every_restored_layer(tf1, export):
    import auxpretrain as ap

    graph, *_ = _user_graph(tf1, export.config)
    with graph.as_default():
        restored = ap.restore_pretrained(export, layers=1, freeze="all")
    assert restored.frozen_names == ["embedding/table"]
    assert {v.name[:-2] for v in restored.var_list} >= {"layer_0/kernel", "layer_1/kernel", "head/kernel"}


def test_layers_none_means_every_layer_default_means_the_exports_choice(tf1, embedding_default_export, toy_task):
    import auxpretrain as ap

    texts, labels = toy_task.train.texts, toy_task.train.labels.tolist()
    every = ap.TextClassifier.from_pretrained(embedding_default_export, layers=None, epochs=1).fit(texts, labels)
    default = ap.TextClassifier.from_pretrained(embedding_default_export, epochs=1).fit(texts, labels)
    assert len(every.report_.restored) == 5
    assert default.report_.restored == ["embedding/table"]
    graph, *_ = _user_graph(tf1, embedding_default_export.config)
    with graph.as_default():
        assert len(ap.restore_pretrained(embedding_default_export, layers=None).report.restored) == 5
    # freeze="all" restores every layer by default (nothing random is left to train below the head)
    frozen = ap.TextClassifier.from_pretrained(embedding_default_export, freeze="all", epochs=1).fit(texts, labels)
    assert frozen.frozen_layers == ["embedding", "layer_0", "layer_1"]
    # and with layers=1 it freezes the one restored layer
    one = ap.TextClassifier.from_pretrained(embedding_default_export, freeze="all", layers=1, epochs=1)
    assert one.fit(texts, labels).frozen_layers == ["embedding"]
    for clf in (every, default, frozen, one):
        clf.close()


# ---------------------------------------------------------------- 3. max_length is the task's

def test_task_max_length_default():
    assert task_max_length([3] * 100) == TASK_LENGTH_MIN  # short texts: never cut
    lengths = list(range(1, 1001))  # the 99th percentile of 1..1000 is 990
    assert task_max_length(lengths) == min(990, TASK_LENGTH_MAX)
    assert task_max_length([80] * 98 + [100, 5000]) == 100
    assert task_max_length([]) == TASK_LENGTH_MAX
    with pytest.raises(ConfigError):
        TransferConfig(max_length=0)


def test_from_pretrained_takes_max_length_and_says_what_was_cut(export, toy_task):
    import auxpretrain as ap

    texts, labels = toy_task.train.texts, toy_task.train.labels.tolist()
    lines = []
    clf = ap.TextClassifier.from_pretrained(export, max_length=5, epochs=1)
    clf.verbose = True
    import builtins

    original = builtins.print
    builtins.print = lambda *a, **k: lines.append(" ".join(map(str, a)))
    try:
        clf.fit(texts, labels)
    finally:
        builtins.print = original
    n_cut = sum(len(t.split()) > 5 for t in texts)
    assert clf.config.max_length == 5 and clf.metrics_["max_length"] == 5
    assert sum(clf.metrics_["texts_cut"].values()) > 0 and clf.metrics_["texts_cut"]["train"] <= n_cut
    assert any(line.startswith("max length 5 tokens") and "texts cut:" in line for line in lines)
    ids, lengths = ap.encode_texts(["w1 " * 30], clf)  # the model cuts as it was trained
    assert lengths.tolist() == [5]
    # the default is the task's, not the export's pretraining length (16 for the tiny export)
    default = ap.TextClassifier.from_pretrained(export, epochs=1).fit(texts, labels)
    assert default.config.max_length == TASK_LENGTH_MIN > export.config.max_length
    assert default.metrics_["texts_cut"] == {"train": 0, "dev": 0}
    _, lengths = ap.encode_texts(["w1 " * 30], export)  # an export keeps every token
    assert lengths.tolist() == [30]
    clf.close()
    default.close()


# ---------------------------------------------------------------- 4. model_config without vocab_size

def test_random_init_model_config_needs_no_vocab_size(toy_task):
    import auxpretrain as ap

    texts, labels = toy_task.train.texts, toy_task.train.labels.tolist()
    for config in (ModelConfig(embedding_size=11, hidden_size=37, num_layers=1),
                   {"embedding_size": 11, "hidden_size": 37, "num_layers": 1}):
        clf = ap.TextClassifier(model_config=config, epochs=1).fit(texts, labels)
        assert clf.config.vocab_size == len(clf.vocab) and clf.config.hidden_size == 37
        clf.close()
    with pytest.raises(ConfigError, match="unknown key"):
        ap.TextClassifier(model_config={"hidden": 3})
    import tensorflow as tf

    with tf.Graph().as_default(), pytest.raises(ConfigError, match="vocab_size is None"):
        ap.build_encoder(tf.compat.v1.placeholder(tf.int32, [None, None]), ModelConfig())


# ---------------------------------------------------------------- 8. partial_fit agrees with fit

def test_partial_fit_restores_what_fit_restores_and_takes_layers_all(embedding_default_export, toy_task):
    import auxpretrain as ap

    texts, labels = toy_task.train.texts[:40], toy_task.train.labels[:40].tolist()
    clf = ap.TextClassifier.from_pretrained(embedding_default_export).partial_fit(texts, labels)
    assert clf.report_.restored == ["embedding/table"]  # the export's default_layers, as fit
    every = ap.TextClassifier.from_pretrained(embedding_default_export, layers="all").partial_fit(texts, labels)
    assert len(every.report_.restored) == 5
    with pytest.raises(ConfigError, match="schedule"):
        ap.TextClassifier.from_pretrained(embedding_default_export, schedule="gradual").partial_fit(texts, labels)
    clf.close()
    every.close()


def test_partial_fit_draws_new_dropout_masks_and_honours_embedding_lr_scale_and_bucketing(export, toy_task):
    import auxpretrain as ap

    texts, labels = toy_task.train.texts[:40], toy_task.train.labels[:40].tolist()
    clf = ap.TextClassifier.from_pretrained(export, dropout=0.5, learning_rate=1e-12, batch_size=64)
    clf.partial_fit(texts, labels)
    first = clf.loss_
    clf.partial_fit(texts, labels)  # same batch, weights unchanged to 1e-12: only the masks differ
    assert abs(clf.loss_ - first) > 1e-6
    clf.close()

    scaled = ap.TextClassifier.from_pretrained(export, embedding_lr_scale=0.0, learning_rate=0.05, batch_size=8,
                                               bucket=True)
    before = export.values()
    scaled.partial_fit(texts, labels)
    assert scaled.n_steps_ == 5
    assert scaled.get_layer_params("embedding")["embedding/table"].tobytes() == before["embedding/table"].tobytes()
    assert not np.array_equal(scaled.get_layer_params("layer_0")["layer_0/kernel"], before["layer_0/kernel"])
    scaled.close()


# ---------------------------------------------------------------- 6. fit_loop and the frozen-output cache

def test_fit_loop_trains_stops_early_and_keeps_the_best_epoch(tf1, export, toy_task):
    import auxpretrain as ap

    graph, ids, labels, logits, loss, enc = _user_graph(tf1, export.config)
    with graph.as_default():
        restored = ap.restore_pretrained(export, freeze="embedding")
        train_op = tf1.train.AdamOptimizer(0.01).minimize(loss, var_list=restored.var_list)
        init = tf1.global_variables_initializer()
    graph.finalize()  # fit_loop adds no op
    train_ids, _ = ap.encode_texts(toy_task.train.texts, export)
    dev_ids, _ = ap.encode_texts(toy_task.dev.texts, export)
    with tf1.Session(graph=graph) as sess:
        sess.run(init)
        restored.init_fn(sess)
        table = sess.run(enc.embedding_table)
        history = ap.fit_loop(sess, train_op, ids, labels, (train_ids, toy_task.train.labels),
                              (dev_ids, toy_task.dev.labels), logits, epochs=6, patience=2, loss=loss, seed=1)
        final = ap.run_batched(sess, logits, ids, dev_ids).argmax(-1)
        assert sess.run(enc.embedding_table).tobytes() == table.tobytes()  # frozen stays bit-identical
    assert [row["epoch"] for row in history.epochs] == list(range(1, len(history.epochs) + 1))
    assert history.best_dev_accuracy == pytest.approx(max(row["dev_accuracy"] for row in history.epochs), abs=1e-5)
    assert "train_loss" in history.epochs[0]
    assert np.mean(final == toy_task.dev.labels) == pytest.approx(history.best_dev_accuracy, abs=1e-5)


def test_run_batched_is_the_frozen_output_cache(tf1, export, toy_task):
    import auxpretrain as ap

    graph, ids, _, _, _, enc = _user_graph(tf1, export.config)
    with graph.as_default():
        restored = ap.restore_pretrained(export)
        init = tf1.global_variables_initializer()
    texts = toy_task.train.texts[:37]
    x, lengths = ap.encode_texts(texts, export)
    with tf1.Session(graph=graph) as sess:
        sess.run(init)
        restored.init_fn(sess)
        pooled = ap.run_batched(sess, enc.pooled, ids, x, batch_size=8)
        sequence = ap.run_batched(sess, enc.sequence, ids, x, batch_size=8)
        direct = sess.run([enc.pooled, enc.sequence], {ids: x})
    np.testing.assert_allclose(pooled, direct[0], atol=1e-5)
    assert sequence.shape == direct[1].shape
    np.testing.assert_allclose(sequence, direct[1], atol=1e-5)
    with pytest.raises(ConfigError):
        ap.fit_loop(None, None, ids, None, (x, np.zeros(37)), (x, np.zeros(37)), None, epochs=0)


# ---------------------------------------------------------------- 7. never stopped at the majority class

def test_a_run_predicting_one_class_is_not_stopped_by_patience(export):
    from auxpretrain.data.tasks import Split, TaskData
    from auxpretrain.transfer.fine_tuning import fine_tune

    same = ["w1 w2 w3"] * 12  # every text alike: every prediction is one class, whatever the weights
    task = TaskData("same", ["neg", "pos"], Split(same, [0] * 8 + [1] * 4), Split(same[:6], [0, 0, 0, 0, 1, 1]),
                    Split.empty(), "test")
    lines = []
    result = fine_tune(task, export, TransferConfig(epochs=4, patience=1, batch_size=4), log=lines.append)
    assert len(result.epochs) == 4  # patience 1 would have stopped after epoch 2, at the majority class
    assert any("predicted one class for all of dev" in line for line in lines)


def test_fit_loop_is_not_stopped_at_the_majority_class(tf1):
    import tensorflow as tf

    import auxpretrain as ap

    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, [None, 3])
        y = tf1.placeholder(tf.int32, [None])
        bias = tf1.get_variable("bias", [2], initializer=tf1.zeros_initializer())
        logits = 0.0 * x[:, :2] + bias  # a bias alone: one class for every example
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        train_op = tf1.train.AdamOptimizer(0.1).minimize(loss)
        init = tf1.global_variables_initializer()
    data = (np.ones((10, 3), np.float32), np.array([0] * 7 + [1] * 3))
    with tf1.Session(graph=graph) as sess:
        sess.run(init)
        history = ap.fit_loop(sess, train_op, x, y, data, data, logits, epochs=5, patience=1)
    assert len(history.epochs) == 5 and not history.stopped_early


# ---------------------------------------------------------------- pretraining's early stopping

def test_pretraining_early_stopping_watches_the_objectives_that_are_on():
    from auxpretrain.pretraining.evaluation import early_stopping_key

    assert early_stopping_key({"pairwise_accuracy": 0.8, "sentence_loss": 0.5}) == 0.8
    assert early_stopping_key({"context_loss": 2.5}) == -2.5
    better, worse = {"token_top1": 0.5, "token_loss": 0.3}, {"token_top1": 0.4, "token_loss": 0.6}
    assert early_stopping_key(better) > early_stopping_key(worse)  # token alone: not a constant
    assert early_stopping_key({"window_loss": 0.2}) > early_stopping_key({"window_loss": 0.9})


def test_pyproject_installs_tensorflow_on_every_machine():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from packaging.markers import Marker
    from packaging.requirements import Requirement

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        dependencies = [Requirement(r) for r in tomllib.load(f)["project"]["dependencies"]]
    for machine in ("x86_64", "AMD64", "arm64", "aarch64"):
        env = {"platform_machine": machine}
        tf = [r.name for r in dependencies if r.name.startswith("tensorflow")
              and (r.marker is None or Marker(str(r.marker)).evaluate(env))]
        assert len(tf) == 1, (machine, tf)
        assert tf == (["tensorflow"] if machine in ("arm64", "aarch64") else ["tensorflow-cpu"])
