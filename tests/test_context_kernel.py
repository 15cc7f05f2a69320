"""The compiled context kernel (auxpretrain/pretraining/ccontext.c) and the TensorFlow op that runs
it in place (auxpretrain/pretraining/context_op.cc): the same updates as the TensorFlow loop
they replace and as a float64 reference, for any dimension and number of threads; the same bits
whatever the threads and between the two; their inputs checked; and CI builds both."""

import os
import subprocess
import sys

import numpy as np
import pytest

from auxpretrain.pretraining import context_op, graph, kernels

from conftest import make_tiny_corpus
from test_training import _maker, _tables_after

needs_kernel = pytest.mark.skipif(kernels.compiled is None, reason="the C extension is not built")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return str(make_tiny_corpus(tmp_path_factory.mktemp("c") / "c.txt", lines=200))


def reference(inputs, outputs, ids, reach, noise, scale, negatives):
    """The passes in float64, as `objectives.context_windows` defines a pass: every sentence
    scored on the tables as the pass found them, then every delta added. -> (tables, loss, pairs)."""
    inputs, outputs = inputs.astype(np.float64), outputs.astype(np.float64)
    pool = noise.shape[-1]
    loss = pairs = 0.0
    for p in range(ids.shape[0]):
        d_in, d_out = np.zeros_like(inputs), np.zeros_like(outputs)
        for s in range(ids.shape[1]):
            n = int((reach[p, s] > 0).sum())
            words, columns = ids[p, s, :n], np.concatenate([noise[p, s], ids[p, s, :n]])
            distance = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
            real = ((distance > 0) & (distance <= reach[p, s, :n][None, :])).astype(np.float64)
            uses = real.sum(1, keepdims=True)
            weight = np.concatenate([np.repeat(uses * negatives / pool, pool, 1), real], 1)
            label = np.concatenate([np.zeros(pool), np.ones(n)])[None, :]
            score = inputs[words] @ outputs[columns].T
            loss += (weight * np.logaddexp(0.0, score * (1 - 2 * label))).sum()
            pairs += uses.sum()
            step = weight * scale * (1 / (1 + np.exp(-score)) - label)
            np.add.at(d_in, words, step @ outputs[columns])
            np.add.at(d_out, columns, step.T @ inputs[words])
        inputs, outputs = inputs + d_in, outputs + d_out
    return inputs, outputs, loss, pairs


def _problem(rng, dim, vocab=300, passes=3, sentences=7, width=9, pool=5):
    ids = np.zeros((passes, sentences, width), np.int32)
    reach = np.zeros_like(ids)
    for p in range(passes):
        for s in range(sentences):
            n = int(rng.integers(0, width + 1))  # empty and one-word sentences too
            ids[p, s, :n] = rng.integers(2, vocab, n)
            reach[p, s, :n] = rng.integers(1, 4, n)
    noise = rng.integers(2, vocab, (passes, sentences, pool)).astype(np.int32)
    tables = [rng.standard_normal((vocab, dim)).astype(np.float32) * 0.3 for _ in range(2)]
    return ids, reach, noise, tables


@needs_kernel
@pytest.mark.parametrize("dim", [1, 7, 8, 11, 37, 64])
def test_kernel_matches_the_float64_reference_with_the_same_bits_on_any_number_of_threads(dim):
    rng = np.random.default_rng(dim)
    ids, reach, noise, (inputs, outputs) = _problem(rng, dim)
    want_in, want_out, want_loss, want_pairs = reference(inputs, outputs, ids, reach, noise, -0.3, 3)
    in_rows, in_index, out_rows, out_index = kernels.block_indices(ids, noise, len(inputs))
    results = [kernels.sgd_passes(inputs[in_rows], outputs[out_rows], ids, reach, in_index, out_index, -0.3, 3,
                                  threads, deltas=False) for threads in (1, 2, 5)]
    new_in, new_out, loss, pairs = results[0]
    np.testing.assert_allclose(new_in, want_in[in_rows], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new_out, want_out[out_rows], rtol=1e-5, atol=1e-5)
    assert pairs == want_pairs > 0
    assert loss == pytest.approx(want_loss, rel=1e-5)
    for other in results[1:]:  # each row's deltas are added in one order, whatever the threads
        assert other[0].tobytes() == new_in.tobytes() and other[1].tobytes() == new_out.tobytes()
        assert other[2] == loss
    # deltas: what a worker sharing the tables adds
    d_in, d_out, _, _ = kernels.sgd_passes(inputs[in_rows], outputs[out_rows], ids, reach, in_index, out_index,
                                           -0.3, 3, 2, deltas=True)
    np.testing.assert_allclose(inputs[in_rows] + d_in, new_in, atol=1e-6)
    np.testing.assert_allclose(outputs[out_rows] + d_out, new_out, atol=1e-6)


@needs_kernel
def test_block_indices_are_the_sorted_distinct_rows_and_each_words_place():
    rng = np.random.default_rng(0)
    ids, _, noise, _ = _problem(rng, 4, vocab=50)
    in_rows, in_index, out_rows, out_index = kernels.block_indices(ids, noise, 50)
    rows, where = np.unique(ids, return_inverse=True)
    np.testing.assert_array_equal(in_rows, rows)
    np.testing.assert_array_equal(in_index, where.ravel())
    both = np.concatenate([noise, ids], axis=-1)
    rows, where = np.unique(both, return_inverse=True)
    np.testing.assert_array_equal(out_rows, rows)
    np.testing.assert_array_equal(out_index, where.ravel())
    empty = np.zeros((2, 0, 3), np.int32)
    assert [len(a) for a in kernels.block_indices(empty, np.zeros((2, 0, 4), np.int32), 50)] == [0, 0, 0, 0]


@needs_kernel
def test_bad_inputs_raise_instead_of_writing_outside_the_blocks():
    rng = np.random.default_rng(1)
    ids, reach, noise, (inputs, outputs) = _problem(rng, 8)
    in_rows, in_index, out_rows, out_index = kernels.block_indices(ids, noise, len(inputs))
    ok = (inputs[in_rows], outputs[out_rows], ids, reach, in_index, out_index, -0.1, 3, 2)
    for k, value, message in [(4, in_index + len(in_rows), "in_index outside in_rows"),
                              (5, out_index - 1 - out_index.max(), "out_index outside out_rows"),
                              (0, inputs[in_rows][:, :5], "inconsistent shapes")]:
        args = list(ok)
        args[k] = value
        with pytest.raises(ValueError, match=message):
            kernels.sgd_passes(*args, deltas=False)
    block = inputs[in_rows]
    with pytest.raises(ValueError, match="in_source: expected a 2-d buffer of float32"):
        kernels.compiled.sgd_passes(block, outputs[out_rows], block.astype(np.float64), outputs[out_rows],
                                    in_index.reshape(-1, ids.shape[-1]), out_index.reshape(len(in_index) // ids.shape[-1], -1),
                                    reach.reshape(-1, ids.shape[-1]), ids.shape[0], -0.1, 3, 1)
    for bad, message in [(ids + 1000, "outside"), (ids.astype(np.int64), "int32")]:
        with pytest.raises(ValueError, match=message):
            kernels.compiled.rows_of(np.ascontiguousarray(bad).ravel(), 300, np.empty(bad.size, np.int32),
                                     np.empty(bad.size, np.int32))


@needs_kernel
@pytest.mark.parametrize("shared_tables", [False, True])
def test_train_op_with_the_kernel_equals_the_tensorflow_loop(corpus, monkeypatch, shared_tables):
    """Whole train steps (3 passes each) give the same tables with the kernel and with the
    TensorFlow loop (`AUXPRETRAIN_PURE_PYTHON=1`, or no C compiler), overwriting the rows or
    adding their changes (workers sharing tables), up to TensorFlow's approximate sigmoid; the
    PAD row keeps its bits."""
    maker, model_config, _ = _maker(corpus, context_passes=3, subsample=0.0)
    feeds = [dict(zip(graph.INPUT_SPECS, b)) for b in maker.stream(0, 2)]
    start, with_kernel = _tables_after(model_config, feeds, shared_tables=shared_tables)
    monkeypatch.setattr(kernels, "compiled", None)
    _, with_loop = _tables_after(model_config, feeds, start=start)
    for k, l, s in zip(with_kernel, with_loop, start):
        assert np.abs(k - s).max() > 0.1  # it trained
        np.testing.assert_allclose(k, l, rtol=1e-4, atol=1e-3)
        assert k[0].tobytes() == s[0].tobytes()


@pytest.mark.skipif(not os.environ.get("CI"), reason="CI builds the extension; elsewhere it is optional")
def test_ci_builds_the_context_kernel():
    assert kernels.compiled is not None, "pip install did not build auxpretrain/pretraining/ccontext.c"


def test_the_environment_variable_turns_the_kernel_off():
    code = "from auxpretrain.pretraining import kernels; print(kernels.compiled is None, kernels.why_not_compiled)"
    env = dict(os.environ, AUXPRETRAIN_PURE_PYTHON="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True AUXPRETRAIN_PURE_PYTHON is set"


# the TensorFlow op updating the tables in place (auxpretrain/pretraining/context_op.cc)

def _op_or_skip():
    op, why = context_op.load()
    if op is None:
        pytest.skip(f"the context op is not available: {why}")
    return op


def test_the_in_place_op_gives_the_kernels_bytes(corpus, monkeypatch):
    """Train steps through the op (on the variables' memory) and through the compiled kernel on
    gathered rows give the same bytes: the same updates in the same order."""
    _op_or_skip()
    if kernels.compiled is None:
        pytest.skip("the C extension is not built")
    maker, model_config, _ = _maker(corpus, context_passes=3, subsample=0.0)
    feeds = [dict(zip(graph.INPUT_SPECS, b)) for b in maker.stream(0, 3)]
    start, with_op = _tables_after(model_config, feeds)
    monkeypatch.setattr(graph, "_in_place_op", lambda model: None)
    _, with_kernel = _tables_after(model_config, feeds, start=start)
    for o, k, s in zip(with_op, with_kernel, start):
        assert np.abs(o - s).max() > 0.1  # it trained
        assert o.tobytes() == k.tobytes()


def test_the_in_place_op_rejects_ids_outside_the_tables():
    import tensorflow as tf

    op = _op_or_skip()
    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        tables = [tf1.get_variable(name, [10, 4], initializer=tf1.ones_initializer()) for name in ("a", "b")]
        ids = tf1.placeholder(tf.int32, [None, None, None])
        noise = tf1.placeholder(tf.int32, [None, None, None])
        step = op.auxpretrain_context_passes(tables[0].handle, tables[1].handle, ids, tf.ones_like(ids), noise,
                                             -0.1, negatives=1, threads=2)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            loss, pairs = sess.run(step, {ids: [[[1, 2, 3]]], noise: [[[4, 5]]]})
            assert pairs > 0 and np.isfinite(loss)
            for bad_ids, bad_noise in [([[[1, 2, 10]]], [[[4, 5]]]), ([[[1, 2, 3]]], [[[-1, 5]]])]:
                before = sess.run(tables)
                with pytest.raises(tf.errors.InvalidArgumentError, match="outside its table"):
                    sess.run(step, {ids: bad_ids, noise: bad_noise})
                for b, a in zip(before, sess.run(tables)):  # nothing written
                    assert b.tobytes() == a.tobytes()
            with pytest.raises(tf.errors.InvalidArgumentError, match="noise must be"):
                sess.run(step, {ids: [[[1, 2, 3]]], noise: np.zeros((1, 2, 2), np.int32)})


def test_the_op_build_says_why_it_failed_and_reuses_a_build(tmp_path, monkeypatch):
    _op_or_skip()
    monkeypatch.setenv("AUXPRETRAIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    assert context_op.build() == (None, "no C and C++ compiler found (set CC and CXX)")
    monkeypatch.setenv("CXX", "c++")
    built, why = context_op.build()
    assert why == "" and os.path.dirname(built) == str(tmp_path / "cache")
    assert [name for name in os.listdir(tmp_path / "cache")] == [os.path.basename(built)]  # no leftovers
    stamp = os.stat(built).st_mtime_ns
    assert context_op.build() == (built, "") and os.stat(built).st_mtime_ns == stamp  # not built again
    # a compiler that fails: said, recorded, and not run again by the next process
    monkeypatch.setenv("CXX", "false")
    built, why = context_op.build()
    assert built is None and why.startswith("the context op did not build: ")
    failed = [name for name in os.listdir(tmp_path / "cache") if name.endswith(".failed")]
    assert len(failed) == 1
    again = context_op.build()[1]
    assert again.startswith(why) and f"delete {tmp_path / 'cache' / failed[0]} to try again" in again


@pytest.mark.skipif(not os.environ.get("CI"), reason="CI has C and C++ compilers; elsewhere the op is optional")
def test_ci_builds_the_context_op():
    op, why = context_op.load()
    assert op is not None, why


def test_an_environment_variable_turns_the_op_off():
    code = "from auxpretrain.pretraining import context_op; print(context_op.load())"
    env = dict(os.environ, AUXPRETRAIN_NO_OP="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(None, 'AUXPRETRAIN_NO_OP is set')"


def test_the_pretraining_line_says_which_path_the_context_updates_take(monkeypatch):
    from auxpretrain.pretraining.run import _context_path

    assert _context_path(False, False, "") == ""
    if kernels.compiled is not None:
        assert _context_path(True, True, "") == ""
        assert _context_path(True, False, "AUXPRETRAIN_NO_OP is set") == \
            "; context updates on gathered rows, slower: AUXPRETRAIN_NO_OP is set"
    monkeypatch.setattr(kernels, "compiled", None)
    monkeypatch.setattr(kernels, "why_not_compiled", "AUXPRETRAIN_PURE_PYTHON is set")
    assert _context_path(True, True, "") == "; context updates in TensorFlow ops, slower: AUXPRETRAIN_PURE_PYTHON is set"
