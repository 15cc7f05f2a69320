"""Every freezing mechanism leaves frozen variables bit-identical, creates no optimizer slots for
them, never decays them and drops update ops that write to them; ULMFiT schedules."""

import numpy as np
import pytest

from auxpretrain.config import ModelConfig

CONFIG = ModelConfig(vocab_size=99, embedding_size=11, num_layers=2, hidden_size=37, max_length=16)
FROZEN = {"embedding/table", "layer_0/kernel", "layer_0/bias"}
TRAINED = {"layer_1/kernel", "layer_1/bias", "head/kernel", "head/bias"}


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, 99, size=(16, 9)).astype(np.int32)
    ids[:, 6:] *= rng.integers(0, 2, size=(16, 1)).astype(np.int32)  # some padding
    labels = rng.integers(0, 2, size=16).astype(np.int32)
    return ids, labels


def _model(tf1, frozen=(), stop_gradient_at=None):
    """Graph with encoder + head + loss. Returns (graph, loss, placeholders)."""
    import tensorflow as tf

    from auxpretrain.model.encoder import build_classifier, build_encoder

    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(0)
        ids = tf1.placeholder(tf.int32, [None, None])
        labels = tf1.placeholder(tf.int32, [None])
        enc = build_encoder(ids, CONFIG, frozen=frozen, stop_gradient_at=stop_gradient_at, seed=3)
        logits = build_classifier(enc.pooled, 2, seed=3)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    return graph, loss, ids, labels


def _train(tf1, graph, loss, ids, labels, train_op, steps=5, feed_extra=None):
    """Runs `steps` updates; returns (values before, values after, variable names in graph)."""
    with graph.as_default():
        init = tf1.global_variables_initializer()
        model_vars = {v.name[:-2]: v for v in tf1.global_variables()
                      if v.name.split("/")[0] in ("embedding", "layer_0", "layer_1", "head")
                      and "Adam" not in v.name}
    x, y = _batch()
    with tf1.Session(graph=graph) as sess:
        sess.run(init)
        before = sess.run(model_vars)
        losses = []
        for _ in range(steps):
            feed = {ids: x, labels: y}
            feed.update(feed_extra or {})
            losses.append(sess.run([loss, train_op], feed)[0])
        after = sess.run(model_vars)
    assert losses[-1] < losses[0]  # training happened
    names = [v.name[:-2] for v in graph.get_collection("variables")]
    return before, after, names


def _check(before, after, names, frozen=FROZEN, trained=TRAINED):
    for n in frozen:
        assert np.array_equal(before[n], after[n]), f"{n} moved"
        assert before[n].tobytes() == after[n].tobytes()
        assert not [s for s in names if s.startswith(n + "/")], f"{n} has optimizer slots"
    for n in trained:
        assert not np.array_equal(before[n], after[n]), f"{n} did not train"
        assert any(s.startswith(n + "/Adam") for s in names), f"{n} has no Adam slot"


def test_trainable_false_at_creation(tf1):
    from auxpretrain.model import freezing

    graph, loss, ids, labels = _model(tf1, frozen=["embedding", "layer_0"])
    ops = freezing.build_train_ops(loss, learning_rate=1e-2)  # TRAINABLE_VARIABLES by default
    assert {v.name[:-2] for v in ops.var_lists[0]} == TRAINED
    _check(*_train(tf1, graph, loss, ids, labels, ops.stages[0]))


def test_removed_from_trainable_collection_before_the_optimizer(tf1):
    from auxpretrain.model import freezing

    graph, loss, ids, labels = _model(tf1)
    with graph.as_default():
        removed = freezing.remove_from_trainable(["embedding", "layer_0"])
        assert {v.name[:-2] for v in removed} == FROZEN
        opt = tf1.train.AdamOptimizer(1e-2)
        train_op = opt.minimize(loss)  # a plain TF1 optimizer never sees them
    _check(*_train(tf1, graph, loss, ids, labels, train_op))


def test_var_list(tf1):
    from auxpretrain.model import freezing

    graph, loss, ids, labels = _model(tf1)
    with graph.as_default():
        var_list = freezing.trainable_var_list(frozen=["embedding", "layer_0"])
        assert {v.name[:-2] for v in var_list} == TRAINED
        train_op = tf1.train.AdamOptimizer(1e-2).minimize(loss, var_list=var_list)
    _check(*_train(tf1, graph, loss, ids, labels, train_op))
    # build_train_ops with frozen= does the same and never lists a frozen variable
    graph, loss, ids, labels = _model(tf1)
    ops = freezing.build_train_ops(loss, learning_rate=1e-2, frozen=["embedding", "layer_0"])
    assert {v.name[:-2] for v in ops.var_lists[0]} == TRAINED
    _check(*_train(tf1, graph, loss, ids, labels, ops.stages[0]))


def test_stop_gradient_at_layer_boundary(tf1):
    from auxpretrain.model import freezing

    graph, loss, ids, labels = _model(tf1, stop_gradient_at="layer_0")
    # every variable is still "trainable"; they get no gradient, so no slots and no update
    ops = freezing.build_train_ops(loss, learning_rate=1e-2)
    assert {v.name[:-2] for v in ops.no_gradient} == FROZEN
    _check(*_train(tf1, graph, loss, ids, labels, ops.stages[0]))


def test_weight_decay_skips_frozen_variables(tf1):
    from auxpretrain.model import freezing

    graph, loss, ids, labels = _model(tf1)
    ops = freezing.build_train_ops(loss, learning_rate=1e-2, frozen=["embedding", "layer_0"],
                                   weight_decay=0.5)
    before, after, names = _train(tf1, graph, loss, ids, labels, ops.stages[0])
    _check(before, after, names)
    # the decay acts on trained variables: the head bias (zero init, pulled by Adam) shrinks
    # relative to a run without decay
    graph2, loss2, ids2, labels2 = _model(tf1)
    ops2 = freezing.build_train_ops(loss2, learning_rate=1e-2, frozen=["embedding", "layer_0"])
    _, after2, _ = _train(tf1, graph2, loss2, ids2, labels2, ops2.stages[0])
    assert np.abs(after["layer_1/kernel"]).sum() < np.abs(after2["layer_1/kernel"]).sum()


def test_update_ops_writing_to_frozen_variables_are_dropped(tf1):
    import tensorflow as tf

    from auxpretrain.model import freezing

    graph, loss, ids, labels = _model(tf1)
    with graph.as_default():
        table = [v for v in tf1.global_variables() if v.name == "embedding/table:0"][0]
        counter = tf1.get_variable("layer_1/steps", [], tf.float32, tf1.zeros_initializer(),
                                   trainable=False)
        bad = tf1.assign_add(table, tf.ones_like(table))  # e.g. a moving average of a frozen layer
        good = tf1.assign_add(counter, 1.0)
        tf1.add_to_collection(tf1.GraphKeys.UPDATE_OPS, bad)
        tf1.add_to_collection(tf1.GraphKeys.UPDATE_OPS, good)
    ops = freezing.build_train_ops(loss, learning_rate=1e-2, frozen=["embedding", "layer_0"])
    assert ops.dropped_update_ops == [bad]
    before, after, names = _train(tf1, graph, loss, ids, labels, ops.stages[0], steps=3)
    _check(before, after, names)
    with graph.as_default():
        assert freezing.frozen_update_ops(graph, [table]) == [bad]


def test_gradual_unfreezing_stages_leave_frozen_groups_bit_identical(tf1):
    import tensorflow as tf

    from auxpretrain.model import freezing, schedules

    graph, loss, ids, labels = _model(tf1)
    with graph.as_default():
        lr = tf1.placeholder(tf.float32, [])
        groups = freezing.layer_groups(tf1.trainable_variables(), CONFIG.layer_names() + ["head"])
        assert list(groups) == ["head", "layer_1", "layer_0", "embedding"]
        stages = schedules.gradual_stages(list(groups))
        factors = schedules.discriminative_factors(list(groups), 2.6)
        ops = freezing.build_train_ops(loss, groups, lr, factors=factors, stages=stages)
        init = tf1.global_variables_initializer()
        variables = {v.name[:-2]: v for v in tf1.trainable_variables()}
    assert ops.stage_groups == [["head"], ["head", "layer_1"], ["head", "layer_1", "layer_0"],
                                ["head", "layer_1", "layer_0", "embedding"]]
    assert factors["layer_1"] == pytest.approx(1 / 2.6) and factors["embedding"] == pytest.approx(2.6 ** -3)
    x, y = _batch()
    with tf1.Session(graph=graph) as sess:
        sess.run(init)
        for k, stage_op in enumerate(ops.stages):
            before = sess.run(variables)
            for _ in range(3):
                sess.run(stage_op, {ids: x, labels: y, lr: 1e-2})
            after = sess.run(variables)
            trained = set(ops.stage_groups[k])
            for name in variables:
                moved = not np.array_equal(before[name], after[name])
                assert moved == (name.split("/")[0] in trained), (k, name)


def test_slanted_triangular_schedule():
    from auxpretrain.model.schedules import slanted_triangular

    total = 100
    values = [slanted_triangular(t, total) for t in range(total)]
    assert values[0] == pytest.approx(1 / 32)
    assert max(values) == pytest.approx(1.0) and int(np.argmax(values)) == 10
    assert values[-1] == pytest.approx(1 / 32, abs=0.02)
    assert all(a <= b for a, b in zip(values[:10], values[1:11]))
    assert all(a >= b for a, b in zip(values[10:], values[11:]))


def test_nothing_to_train_is_an_error(tf1):
    from auxpretrain.model import freezing

    graph, loss, ids, labels = _model(tf1)
    with pytest.raises(ValueError, match="every variable is frozen"):
        freezing.build_train_ops(loss, frozen=["embedding", "layer_0", "layer_1", "head"])
