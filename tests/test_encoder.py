"""Graph builders: exact transferable names, shapes, freezing flags, pooling."""

import numpy as np
import pytest

from auxpretrain.config import ModelConfig
from auxpretrain.model.variables import TRANSFERABLE_VARIABLES

CONFIG = ModelConfig(vocab_size=99, embedding_size=11, num_layers=2, hidden_size=37, kernel_width=3)


def _build(tf1, config=CONFIG, **kwargs):
    import tensorflow as tf

    from auxpretrain.model.encoder import build_classifier, build_encoder

    graph = tf.Graph()
    with graph.as_default():
        ids = tf1.placeholder(tf.int32, [None, None])
        out = build_encoder(ids, config, **kwargs)
        logits = build_classifier(out.pooled, 3)
    return graph, ids, out, logits


def test_transferable_collection_is_exactly_the_encoder(tf1):
    graph, _, _, _ = _build(tf1)
    names = sorted(v.name for v in graph.get_collection(TRANSFERABLE_VARIABLES))
    assert names == ["embedding/table:0", "layer_0/bias:0", "layer_0/kernel:0",
                     "layer_1/bias:0", "layer_1/kernel:0"]
    trainable = {v.name for v in graph.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES)}
    assert {"head/kernel:0", "head/bias:0"} <= trainable  # the head is trained but never transferred


def test_shapes_and_padding(tf1):
    graph, ids, out, logits = _build(tf1)
    batch = np.array([[5, 6, 7, 0, 0], [8, 0, 0, 0, 0], [0, 0, 0, 0, 0]], np.int32)
    with graph.as_default(), tf1.Session(graph=graph) as sess:
        sess.run(tf1.global_variables_initializer())
        seq, pooled, lg, table = sess.run([out.sequence, out.pooled, logits, out.embedding_table], {ids: batch})
        # padding positions do not change the pooled vector of a sentence
        pooled_short = sess.run(out.pooled, {ids: batch[:, :3]})
    assert seq.shape == (3, 5, 37) and pooled.shape == (3, CONFIG.pooled_size) == (3, 74)
    assert lg.shape == (3, 3) and table.shape == (99, 11)
    assert np.all(seq[0, 3:] == 0) and np.all(seq[1, 1:] == 0)
    np.testing.assert_allclose(pooled, pooled_short, atol=1e-6)
    assert np.all(np.isfinite(pooled)) and np.all(pooled[2] == 0)  # an empty sentence pools to zeros


def test_frozen_at_creation_is_not_trainable(tf1):
    graph, _, _, _ = _build(tf1, frozen=("embedding", "layer_0"))
    trainable = {v.name for v in graph.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES)}
    assert "embedding/table:0" not in trainable and "layer_0/kernel:0" not in trainable
    assert "layer_1/kernel:0" in trainable
    assert len(graph.get_collection(TRANSFERABLE_VARIABLES)) == 5  # frozen ones still transfer


def test_stop_gradient_blocks_lower_layers(tf1):
    import tensorflow as tf

    graph, ids, out, logits = _build(tf1, stop_gradient_at="layer_0")
    with graph.as_default():
        grads = tf.gradients(tf.reduce_sum(logits), graph.get_collection(TRANSFERABLE_VARIABLES))
    by_name = {v.name: g for v, g in zip(graph.get_collection(TRANSFERABLE_VARIABLES), grads)}
    assert by_name["embedding/table:0"] is None and by_name["layer_0/kernel:0"] is None
    assert by_name["layer_1/kernel:0"] is not None


def test_unknown_stop_gradient_layer(tf1):
    with pytest.raises(ValueError, match="layer_7"):
        _build(tf1, stop_gradient_at="layer_7")


def test_pooling_variants_and_zero_layers(tf1):
    for pooling, width in (("mean", 37), ("max", 37), ("mean_max", 74)):
        cfg = ModelConfig(vocab_size=99, embedding_size=11, hidden_size=37, pooling=pooling)
        _, _, out, _ = _build(tf1, cfg)
        assert out.pooled.shape[-1] == width == cfg.pooled_size
    cfg = ModelConfig(vocab_size=99, embedding_size=11, num_layers=0)
    graph, _, out, _ = _build(tf1, cfg)
    assert out.pooled.shape[-1] == 22 and list(out.layers) == ["embedding"]


def test_model_config_rejects_unknown_keys():
    from auxpretrain.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown key"):
        ModelConfig.from_dict({"vocab_size": 10, "hiden_size": 3})
    with pytest.raises(ConfigError, match="activation"):
        ModelConfig(vocab_size=10, activation="sigmoid")
