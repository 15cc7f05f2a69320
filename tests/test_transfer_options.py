"""Task-model options of transfer: pool_layers (the sentence vector pools the top layer's output,
or the embedding's and every layer's; "auto": every layer's when every layer is frozen), l2_sp
(a pull toward the pretrained values) and rescale (the restored convolutions scaled)."""

import dataclasses

import numpy as np
import pytest

from auxpretrain.config import ModelConfig, TransferConfig
from auxpretrain.errors import ConfigError

from conftest import make_tiny_export


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return make_tiny_export(tmp_path_factory.mktemp("pool") / "export")


def _settings(**kw):
    base = dict(epochs=2, batch_size=16, patience=0, seed=0, ensemble="none")
    base.update(kw)
    return TransferConfig(**base)


def test_pooled_width_and_values(tf1):
    """The pooled vector is [pool(embedding) ; pool(layer_0) ; ...], each mean_max, and
    pooled_size says its width."""
    import tensorflow as tf

    from auxpretrain.model.encoder import build_encoder, pool

    config = ModelConfig(vocab_size=20, embedding_size=5, num_layers=2, hidden_size=7, pool_layers="all")
    assert config.pooled_size == 2 * (5 + 7 + 7)
    assert dataclasses.replace(config, pool_layers="top").pooled_size == 14
    assert dataclasses.replace(config, pooling="max").pooled_size == 19
    with pytest.raises(ConfigError, match="pool_layers must be one of"):
        ModelConfig(pool_layers="every")
    with pytest.raises(ConfigError, match="pool_layers must be one of auto, top, all"):
        TransferConfig(pool_layers="every")
    graph = tf.Graph()
    with graph.as_default():
        ids = tf1.placeholder(tf.int32, [None, None])
        enc = build_encoder(ids, config, seed=0)
        parts = [pool(enc.layers[n], enc.mask, "mean_max") for n in config.layer_names()]
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            feed = {ids: [[3, 4, 5, 0], [6, 0, 0, 0], [0, 0, 0, 0]]}
            pooled, expected = sess.run([enc.pooled, tf.concat(parts, -1)], feed)
    assert pooled.shape == (3, config.pooled_size)
    np.testing.assert_array_equal(pooled, expected)
    assert not pooled[2].any()  # an empty text pools to zeros


@pytest.mark.parametrize("freeze, pool_layers, expected", [
    ("all", "auto", "all"), ("all", "top", "top"), ("none", "auto", "top"), ("none", "all", "all"),
    ("1", "all", "all"), ("2", "all", "all"), ("2", "auto", "top")])
def test_fine_tune_pools_what_it_is_told_frozen_layers_stay(tf1, toy_task, export, freeze, pool_layers, expected):
    from auxpretrain.transfer.fine_tuning import fine_tune

    lines = []
    result = fine_tune(toy_task, export, _settings(freeze=freeze, pool_layers=pool_layers), log=lines.append)
    assert result.config.pool_layers == expected
    names = export.config.layer_names()
    frozen = names if freeze == "all" else names[:int(freeze)] if freeze != "none" else []
    original = export.values()
    for name, value in result.values.items():
        if name.split("/")[0] in frozen:
            assert value.tobytes() == original[name].tobytes(), name
    if freeze == "all":  # the whole encoder is below the cache: its pooled output is cached
        assert result.cache["used"] and result.cache["boundary"] == "pooled"
    elif expected == "all" and freeze == "2":  # a cached sequence cannot feed every layer's pooling
        assert not result.cache["used"] and "pools the frozen layers too" in result.cache["reason"]
    assert any("pool_layers auto" in line for line in lines) == (freeze == "all" and pool_layers == "auto")
    assert result.values["head/kernel"].shape[0] == result.config.pooled_size


def test_saved_model_and_classifier_keep_the_pooling(tf1, toy_task, export, tmp_path):
    import auxpretrain as ap
    from auxpretrain.transfer.fine_tuning import fine_tune

    result = fine_tune(toy_task, export, _settings(freeze="all"))
    assert result.config.pool_layers == "all"
    ap.save_model(str(tmp_path / "model"), result)
    texts = toy_task.test.texts
    with result.model() as a, ap.load_model(str(tmp_path / "model")) as b:
        assert b.config.pool_layers == "all"
        np.testing.assert_allclose(a.predict_proba(texts), b.predict_proba(texts), atol=1e-6)
    clf = ap.TextClassifier.from_pretrained(export, settings=_settings(freeze="all", layers="all"))
    clf.partial_fit(toy_task.train.texts[:32], toy_task.train.labels[:32], classes=[0, 1])
    assert clf._h.shapes["head/kernel"][0] == dataclasses.replace(export.config, pool_layers="all").pooled_size
    with pytest.raises(ConfigError, match="build the task graph from ids"):
        from auxpretrain.transfer.task_graph import build_task_graph
        build_task_graph(dataclasses.replace(export.config, pool_layers="all"), 2, 0, kind="sequence", first_layer=1)


def test_l2_sp_pulls_restored_layers_toward_their_pretrained_values(tf1, toy_task, export):
    """l2_sp: the restored, trained variables end nearer their pretrained values than without
    it; the head (not restored) is not pulled; 0 is the plain run, bit for bit."""
    from auxpretrain.transfer.fine_tuning import fine_tune

    original = export.values()
    base = dict(layers="all", epochs=3, learning_rate=0.01)
    plain = fine_tune(toy_task, export, _settings(**base))
    again = fine_tune(toy_task, export, _settings(l2_sp=0.0, **base))
    pulled = fine_tune(toy_task, export, _settings(l2_sp=50.0, **base))
    for name in original:
        assert plain.values[name].tobytes() == again.values[name].tobytes()
        moved = np.abs(plain.values[name] - original[name]).sum()
        assert np.abs(pulled.values[name] - original[name]).sum() < 0.5 * moved, name
    assert not any(name.startswith("l2_sp_anchors") for name in pulled.values)


def test_rescale_multiplies_the_trained_convolutions_not_the_embedding_nor_frozen_layers(tf1, toy_task, export):
    from auxpretrain.transfer.fine_tuning import fine_tune

    original = export.values()
    tiny_lr = dict(layers="all", epochs=1, learning_rate=1e-9)
    result = fine_tune(toy_task, export, _settings(rescale=0.5, **tiny_lr))
    np.testing.assert_allclose(result.values["layer_1/kernel"], 0.5 * original["layer_1/kernel"], atol=1e-6)
    np.testing.assert_allclose(result.values["embedding/table"], original["embedding/table"], atol=1e-6)
    frozen = fine_tune(toy_task, export, _settings(rescale=0.5, freeze="2", **tiny_lr))
    for name in ("embedding/table", "layer_0/kernel", "layer_0/bias"):
        assert frozen.values[name].tobytes() == original[name].tobytes()
    np.testing.assert_allclose(frozen.values["layer_1/kernel"], 0.5 * original["layer_1/kernel"], atol=1e-6)
    with pytest.raises(ConfigError, match="rescale must be > 0"):
        TransferConfig(rescale=0)
    with pytest.raises(ConfigError, match="l2_sp must be >= 0"):
        TransferConfig(l2_sp=-1)
