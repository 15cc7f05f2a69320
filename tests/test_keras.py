"""auxpretrain.keras: an export in a Keras model, in the same process as the graph-mode API.

Each test runs in a fresh interpreter: Keras needs eager execution, which other tests turn off
for the rest of their process (the `tf1` fixture)."""

import os
import subprocess
import sys
import textwrap

AFTER_GRAPH_MODE = """
import numpy as np, tensorflow as tf
import auxpretrain as ap
tf1 = tf.compat.v1
export = ap.load_export(EXPORT)
texts = ["w1 good w3 w4", "bad", "w5 w6 w7 w8 w9 w10 zzz good bad", "Good. BAD!"]
ids, _ = ap.encode_texts(texts, export)
graph = tf.Graph()  # the graph-mode API first, in the same process
with graph.as_default():
    x = tf1.placeholder(tf.int32, [None, None])
    enc = ap.build_encoder(x, export.config)
    restored = ap.restore_pretrained(export)
    init = tf1.global_variables_initializer()
with tf1.Session(graph=graph) as sess:
    sess.run(init); restored.init_fn(sess)
    pooled, sequence = sess.run([enc.pooled, enc.sequence], {x: ids})
every = tf.Graph()  # pool_layers="all": the embedding's and every layer's outputs, pooled
with every.as_default():
    x = tf1.placeholder(tf.int32, [None, None])
    enc = ap.build_encoder(x, export.config.__class__(**dict(export.config.to_dict(), pool_layers="all")))
    restored = ap.restore_pretrained(export)
    init = tf1.global_variables_initializer()
with tf1.Session(graph=every) as sess:
    sess.run(init); restored.init_fn(sess)
    pooled_all = sess.run(enc.pooled, {x: ids})

import keras
import auxpretrain.keras as apk
to_ids = apk.TextToIds(export)
np.testing.assert_array_equal(to_ids(tf.constant(texts)).numpy(), ids)
np.testing.assert_array_equal(apk.TextToIds(export, max_length=2)(tf.constant(texts)).numpy(),
                              ap.encode_texts(texts, export, max_length=2)[0])
np.testing.assert_allclose(apk.PretrainedEncoder(export, layers=None)(ids).numpy(), pooled, atol=1e-5)
np.testing.assert_allclose(apk.PretrainedEncoder(export, layers=None, pool_layers="all")(ids).numpy(), pooled_all,
                           atol=1e-5)
frozen_all = apk.PretrainedEncoder(export, layers=None, freeze="all")  # auto: every layer's outputs
assert frozen_all.config.pool_layers == "all" and frozen_all(ids).shape[-1] == pooled_all.shape[-1]
np.testing.assert_allclose(apk.PretrainedEncoder(export, layers="all", output="sequence")(ids).numpy(),
                           sequence, atol=1e-5)

encoder = apk.PretrainedEncoder(export, layers=2, freeze="all", seed=3)  # freeze: every restored layer
report = encoder.report
assert report.restored == [encoder.weight_of("embedding/table").path, encoder.weight_of("layer_0/kernel").path,
                           encoder.weight_of("layer_0/bias").path], report.restored
assert report.frozen == report.restored and report.trainable == [], report
assert report.not_selected == ["layer_1/kernel", "layer_1/bias"]
assert "restore from" in str(report) and "frozen" in str(report)
texts_in = keras.Input(shape=(), dtype="string")
probs = keras.layers.Dense(2, activation="softmax")(encoder(to_ids(texts_in)))
model = keras.Model(texts_in, probs)
model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
before = {n: encoder.weight_of(n).numpy().copy() for n in ("embedding/table", "layer_0/kernel", "layer_1/kernel")}
model.fit(tf.constant(texts * 4), np.array([1, 0, 1, 0] * 4), epochs=2, batch_size=4, verbose=0)
assert encoder.weight_of("embedding/table").numpy().tobytes() == before["embedding/table"].tobytes()
assert encoder.weight_of("layer_0/kernel").numpy().tobytes() == before["layer_0/kernel"].tobytes()
assert not np.array_equal(encoder.weight_of("layer_1/kernel").numpy(), before["layer_1/kernel"])
encoder.trainable = False
assert encoder.report.trainable == [] and len(encoder.report.frozen) == 3

table = apk.embedding_layer(export, trainable=False)
assert table.report.restored == [table.name + "/embeddings"] and table.report.frozen == table.report.restored
np.testing.assert_array_equal(table(ids).numpy()[0, 0], export.values()["embedding/table"][ids[0, 0]])
print("KERAS OK")
"""

EAGER_OFF = """
import tensorflow as tf
import auxpretrain as ap
tf.compat.v1.disable_eager_execution()
import auxpretrain.keras as apk
try:
    apk.PretrainedEncoder(EXPORT)
except ap.ConfigError as e:
    print("ERROR:", e)
"""


def _run(code, export):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), TF_CPP_MIN_LOG_LEVEL="3")
    script = f"EXPORT = {export!r}\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)


def test_keras_layers_match_the_graph_api_and_freeze(tiny_export_dir):
    proc = _run(AFTER_GRAPH_MODE, tiny_export_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "KERAS OK" in proc.stdout


def test_keras_without_eager_execution_is_a_clear_error(tiny_export_dir):
    proc = _run(EAGER_OFF, tiny_export_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("ERROR:")]
    assert line and "needs eager execution" in line[0] and "disable_eager_execution" in line[0]
