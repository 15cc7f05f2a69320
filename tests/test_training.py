"""Pretraining end to end on a tiny generated corpus: export, metrics, determinism, resume,
refusals."""

import dataclasses
import json
import os

import numpy as np
import pytest

from auxpretrain.config import CorpusConfig, CorruptionConfig
from auxpretrain.errors import ConfigError, InputError

from conftest import PRETRAIN_MODEL as MODEL
from conftest import make_tiny_corpus
from conftest import pretrain_config as _config
from conftest import run_pretrain as _run


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return str(make_tiny_corpus(tmp_path_factory.mktemp("c") / "c.txt", lines=200))


def test_pretrain_writes_a_verified_export_with_metrics(corpus, tmp_path):
    from auxpretrain.export import load_export

    summary, logs = _run(corpus, tmp_path / "run")
    exported = load_export(str(tmp_path / "run" / "export"))
    metrics = exported.manifest["metrics"]
    assert metrics["steps"] == 24
    assert {"accuracy", "pairwise_accuracy", "sentence_loss", "context_loss"} <= set(metrics["heldout"])
    assert set(metrics["frequency_probe"]) == {"single_accuracy", "pairwise_accuracy"}
    assert metrics["pooled_features"]["units"] == 74
    assert exported.manifest["corpus"]["sentences"] > 200
    assert exported.manifest["corruption"]["ops"] == {"replace": 0.5, "swap": 0.5}
    assert os.listdir(tmp_path / "run" / "logs")  # TensorBoard events
    # the held-out losses fell from the first to the last evaluation
    first, last = metrics["history"][0], metrics["history"][-1]
    assert last["context_loss"] < first["context_loss"] or last["sentence_loss"] < first["sentence_loss"]


def test_sentence_objective_learns_the_tiny_grammar(corpus, tmp_path):
    config = _config(objectives={"sentence": 1.0}, max_steps=120, eval_every=120, learning_rate=1e-2)
    summary, _ = _run(corpus, tmp_path / "run", config)
    assert summary["heldout"]["pairwise_accuracy"] > 0.7  # swaps/replacements break the grammar


def test_same_seed_same_export(corpus, tmp_path):
    from auxpretrain.export import load_export

    config = _config(max_steps=6, eval_every=6)
    _run(corpus, tmp_path / "a", config)
    _run(corpus, tmp_path / "b", config)
    va = load_export(str(tmp_path / "a" / "export")).values()
    vb = load_export(str(tmp_path / "b" / "export")).values()
    for name in va:
        np.testing.assert_array_equal(va[name], vb[name])


def test_resume_after_kill_9(corpus, tmp_path, capsys):
    """kill -9 mid-run, rerun the same command (--deterministic): it resumes and ends
    bit-identical to an uninterrupted run. While the first run runs, a second one on its --out is refused; once
    it is killed, its lock does not block the rerun. Only the killed run is a subprocess; the
    rerun and the uninterrupted run call the CLI's main() in this process (the same code,
    without two more TensorFlow start-ups)."""
    import signal
    import subprocess
    import sys
    import time

    from auxpretrain.cli import main
    from auxpretrain.export import load_export

    out = tmp_path / "run"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model": MODEL, "pretrain": dict(
        batch_size=16, max_steps=40, eval_every=20, checkpoint_every=4, warmup_steps=4,
        heldout_fraction=0.1, min_heldout=20, learning_rate=5e-3, context_window=9, negatives=3)}))
    cmd = [sys.executable, "-m", "auxpretrain.cli", "pretrain", "--corpus", corpus, "--out", str(out),
           "--config", str(config), "--min-count", "1", "--quiet", "--context-window", "2",
           "--context-passes", "3", "--deterministic"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    ckpt = out / "checkpoints"
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and any(f.endswith(".index") for f in os.listdir(ckpt)):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGSTOP)  # frozen mid-run, holding its lock on --out
    capsys.readouterr()
    assert main(cmd[3:] + ["--learning-rate", "0.002"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"run is in use by another run (pid {proc.pid}); wait for it" in err, err
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "export").exists()  # killed before the end: no export, not a half one
    assert main(cmd[3:]) == 0, capsys.readouterr().err[-2000:]
    done = capsys.readouterr().out
    assert "resumed from step" in done
    step = int(done.split("resumed from step ")[1].split()[0])
    assert 4 <= step < 40
    assert main([str(tmp_path / "straight") if c == str(out) else c for c in cmd[3:]]) == 0, \
        capsys.readouterr().err[-2000:]
    assert "resumed" not in capsys.readouterr().out
    recorded = json.load(open(out / "run.json"))["pretrain"]  # the flags override the file
    assert (recorded["context_window"], recorded["context_passes"], recorded["deterministic"]) == (2, 3, True)
    a = load_export(str(out / "export")).values()
    b = load_export(str(tmp_path / "straight" / "export")).values()
    for name in a:  # same batches, same Adam state, each row updated once a pass: the same weights
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_other_config_in_same_out_is_refused(corpus, tmp_path):
    out = tmp_path / "run"
    _run(corpus, out, _config(max_steps=4, eval_every=4))
    with pytest.raises(ConfigError, match=r"another configuration \(pretrain.learning_rate"):
        _run(corpus, out, _config(max_steps=4, eval_every=4, learning_rate=1e-3))


def test_corpus_too_small_for_heldout(tmp_path):
    small = make_tiny_corpus(tmp_path / "small.txt", lines=10)
    with pytest.raises(InputError, match="too few to hold out"):
        _run(str(small), tmp_path / "run")
    assert not os.path.exists(tmp_path / "run" / "export")


def test_empty_vocabulary_after_min_count(corpus, tmp_path):
    from auxpretrain.pretraining.run import pretrain

    with pytest.raises(InputError, match="vocabulary is empty"):
        pretrain([corpus], str(tmp_path / "run"), MODEL, _config(), CorruptionConfig(),
                 corpus_config=CorpusConfig(min_count=10 ** 6), progress=False, measure_speed=False,
                 log=lambda s: None)


def test_init_embeddings_from_word2vec_text(corpus, tmp_path):
    from auxpretrain.export import load_export

    vectors = tmp_path / "vec.txt"
    vectors.write_text("2 11\nthe " + " ".join(["0.5"] * 11) + "\nriver " + " ".join(["-0.25"] * 11) + "\n")
    config = _config(max_steps=1, eval_every=1, objectives={"sentence": 1.0}, learning_rate=1e-9)
    summary, logs = _run(corpus, tmp_path / "run", config, init_embeddings=str(vectors))
    assert any("2 of" in line for line in logs)
    exported = load_export(str(tmp_path / "run" / "export"))
    row = exported.values()["embedding/table"][exported.vocab.id_of("river")]
    np.testing.assert_allclose(row, -0.25, atol=1e-4)
    bad = tmp_path / "bad.txt"
    bad.write_text("the 1 2 3\n")
    with pytest.raises(InputError, match="bad.txt:1: a vector of 3 numbers"):
        _run(corpus, tmp_path / "run2", config, init_embeddings=str(bad))


def test_run_json_records_the_configuration(corpus, tmp_path):
    _run(corpus, tmp_path / "run", _config(max_steps=2, eval_every=2))
    spec = json.load(open(tmp_path / "run" / "run.json"))
    assert spec["model"] == MODEL and spec["pretrain"]["batch_size"] == 16


def _maker(corpus, **kw):
    from auxpretrain.config import ModelConfig
    from auxpretrain.data.text import Tokenizer
    from auxpretrain.pretraining.batches import BatchMaker
    from auxpretrain.data.encoded import prepare_corpus

    config = _config(**kw)
    data = prepare_corpus([corpus], Tokenizer(), 1, None, 0.1, 20, 0, log=lambda _: None)
    model = ModelConfig.from_dict(dict(MODEL, vocab_size=len(data.vocab)))
    return BatchMaker(data.train, data.vocab, model, config, CorruptionConfig()), model, config


def test_each_context_pass_covers_the_sentences_once_an_epoch_in_its_own_order(corpus):
    maker, _, _ = _maker(corpus, context_passes=3, subsample=0.0)
    orders = [maker.epoch_order(0, k) for k in range(3)]
    assert len({len(o) for o in orders}) == 1
    n, b = len(maker.data), maker.config.batch_size
    for order in orders:  # every sentence once, but for the last partial batch left out
        flat = np.concatenate(order)
        assert len(np.unique(flat)) == len(flat) > n - b
    assert not np.array_equal(np.concatenate(orders[0]), np.concatenate(orders[1]))  # ... reordered
    from auxpretrain.model.objectives import INPUT_SPECS

    batch = dict(zip(INPUT_SPECS, next(maker.stream(0, 1))))
    ids, reach = batch["ctx_ids"], batch["ctx_reach"]
    assert ids.shape[:2] == (3, b) and reach.shape == ids.shape
    assert batch["ctx_negatives"].shape == (3, b, 7) and batch["ctx_negatives"].min() > 1
    for k, order in enumerate(orders):  # no subsampling: pass k holds batch 0 of order k, all its words
        words, _ = maker.data.batch(order[0], maker.model_config.max_length)
        np.testing.assert_array_equal(ids[k][:, :words.shape[1]], words)
        assert not ids[k][:, words.shape[1]:].any()  # padded to the widest pass
    assert ((reach > 0) == (ids > 0)).all() and reach.max() <= maker.config.context_window
    single, _, _ = _maker(corpus, context_passes=1, subsample=0.0)
    assert dict(zip(INPUT_SPECS, next(single.stream(0, 1))))["ctx_ids"].shape[0] == 1


def test_pass_orders_spooled_to_disk_give_the_same_rows_and_batches(corpus, monkeypatch):
    from auxpretrain.model.objectives import INPUT_SPECS
    from auxpretrain.pretraining import batches

    maker, _, _ = _maker(corpus, context_passes=4)
    expected = [maker.epoch_order(1, k) for k in range(1, 4)]
    memory, disk = batches.PassOrders(maker, 1), batches.PassOrders(maker, 1, max_bytes=0)
    assert not memory.on_disk and disk.on_disk
    for b in range(len(expected[0])):
        for rows in (memory.batch(b), disk.batch(b)):
            assert len(rows) == 3
            for row, order in zip(rows, expected):
                assert row.dtype == np.int32
                np.testing.assert_array_equal(row, order[b])
    disk.close()
    assert not disk.on_disk
    # the stream draws the same batches with every order on disk
    before = list(maker.stream(0, 3))
    monkeypatch.setattr(batches, "MAX_ORDERS_IN_MEMORY", 0)
    for a, b in zip(before, maker.stream(0, 3)):
        for name, x, y in zip(INPUT_SPECS, a, b):
            np.testing.assert_array_equal(x, y, err_msg=name)

    class FullDisk:  # the first pass is written, the second fails: all stay in memory
        def __init__(self, *args, **kwargs):
            self.writes = 0

        def write(self, data):
            self.writes += 1
            if self.writes > 1:
                raise OSError(28, "No space left on device")

        def close(self):
            pass

    for opener in (FullDisk, lambda *a, **k: (_ for _ in ()).throw(PermissionError(13, "read-only"))):
        monkeypatch.setattr(batches.tempfile, "TemporaryFile", opener)
        orders = batches.PassOrders(maker, 1, max_bytes=0)
        assert not orders.on_disk
        for row, order in zip(orders.batch(2), expected):
            np.testing.assert_array_equal(row, order[2])


def _tables_after(model_config, feeds, context_lr=0.5, partitioner=None, start=None, deterministic=False,
                  shared_tables=False):
    """(the two context tables before, after) one train step per feed, context objective alone;
    the tables start at `start` (two arrays) or at random values (seeded)."""
    import tensorflow as tf

    from auxpretrain.model.objectives import INPUT_SPECS, build_pretrain_model
    from auxpretrain.pretraining.graph import build_train_op, table_parts

    tf1 = tf.compat.v1
    if start is None:
        rng = np.random.default_rng(2)
        start = [rng.uniform(-0.1, 0.1, (model_config.vocab_size, model_config.embedding_size)).astype(np.float32)
                 for _ in range(2)]
    graph = tf.Graph()
    with graph.as_default():
        inputs = {n: tf1.placeholder(d, s, name=n) for n, (d, s) in INPUT_SPECS.items()}
        model = build_pretrain_model(inputs, model_config, {"context": 1.0}, True, seed=0,
                                     partitioner=partitioner, negatives=3)
        op, _ = build_train_op(model, 1e-3, context_lr, 5.0, tf1.train.get_or_create_global_step(), 3,
                               deterministic, shared_tables)
        tables = [table_parts(t) for t in (model.encoder.embedding_table, model.context_table)]
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            for parts, values in zip(tables, start):
                offset = 0
                for part in parts:
                    rows = int(part.shape[0])
                    part.load(values[offset:offset + rows], sess)
                    offset += rows
            for feed in feeds:
                sess.run(op, {inputs[n]: feed[n] for n in INPUT_SPECS})
            return start, [np.concatenate(sess.run(parts)) for parts in tables]


def test_context_passes_update_one_after_the_other(corpus):
    """Two passes in one step equal two one-pass steps: pass 2 reads the tables pass 1 wrote
    (one summed update over both passes' sentences would not)."""
    maker, model_config, _ = _maker(corpus, context_passes=1, subsample=0.0)
    batch = maker.make(maker.epoch_order(0)[0], np.random.default_rng(5))
    names = ("ctx_ids", "ctx_reach", "ctx_negatives")
    doubled = dict(batch, **{k: np.concatenate([batch[k], batch[k]]) for k in names})
    merged = dict(batch, **{k: np.concatenate([batch[k], batch[k]], axis=1) for k in names})
    _, sequential = _tables_after(model_config, [batch, batch])
    _, chained = _tables_after(model_config, [doubled])
    _, summed = _tables_after(model_config, [merged])
    for a, b in zip(sequential, chained):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(sequential[0], summed[0], atol=1e-4)


def _zipf_corpus(path, words=5000, lines=1500, seed=0):
    """Lines of words drawn from a Zipf law over `words` words: enough distinct and repeated
    rows per step that the context objective's sparse updates take TensorFlow's parallel path."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(words)])
    p = 1.0 / np.arange(1, words + 1)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(lines):
            f.write(" ".join(rng.choice(vocab, size=int(rng.integers(5, 15)), p=p / p.sum())) + " .\n")
    return str(path)


@pytest.mark.parametrize("kernel", [True, False])
def test_a_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path, monkeypatch, kernel):
    """With `deterministic`, a run interrupted after a checkpoint and resumed ends with the
    bytes of an uninterrupted run. Without it, TensorFlow's sparse updates of this corpus (the
    context kernel's fallback) add their repeated rows in a varying order: even two
    uninterrupted runs may differ; the compiled kernel adds them in a fixed order."""
    from auxpretrain.export import load_export
    from auxpretrain.pretraining import kernels, run

    if not kernel:
        monkeypatch.setattr(kernels, "compiled", None)
    elif kernels.compiled is None:
        pytest.skip("the C extension is not built")

    corpus = _zipf_corpus(tmp_path / "zipf.txt")
    config = _config(batch_size=128, context_window=8, negatives=5, max_steps=24, eval_every=24, checkpoint_every=4,
                     deterministic=True)
    _run(corpus, tmp_path / "a", config)
    real_save = run.save_checkpoint

    def crash_after_step_12(saver, sess, ckpt_dir, step):
        real_save(saver, sess, ckpt_dir, step)
        if step == 12:
            raise KeyboardInterrupt  # as a kill would, right after the checkpoint

    def interrupted_and_resumed(out, config):
        monkeypatch.setattr(run, "save_checkpoint", crash_after_step_12)
        with pytest.raises(KeyboardInterrupt):
            _run(corpus, out, config)
        monkeypatch.setattr(run, "save_checkpoint", real_save)
        _, logs = _run(corpus, out, config)
        assert "resumed from step 12 (checkpoints/model.ckpt-12)" in logs
        return load_export(str(out / "export")).values()

    a = load_export(str(tmp_path / "a" / "export")).values()
    c = interrupted_and_resumed(tmp_path / "c", config)
    for name in a:
        np.testing.assert_array_equal(a[name], c[name], err_msg=name)
    # without it (the default), what docs/cli.md promises: with the kernel the same bytes, with
    # the TensorFlow loop the same run up to float rounding
    d = interrupted_and_resumed(tmp_path / "d", dataclasses.replace(config, deterministic=False))
    for name in a:
        if kernel:
            np.testing.assert_array_equal(a[name], d[name], err_msg=name)
        else:
            np.testing.assert_allclose(a[name], d[name], rtol=1e-3, atol=1e-4, err_msg=name)


def test_context_update_is_minus_lr_times_the_loss_gradient_on_sharded_tables_too(corpus):
    """The hand-written update of a pass equals -lr x TensorFlow's gradient of the summed pair
    losses (`context_windows`), and a table sharded in 3 parts gets the same update."""
    import tensorflow as tf

    from auxpretrain.model.objectives import context_windows

    tf1 = tf.compat.v1
    maker, model_config, _ = _maker(corpus, context_passes=1, subsample=1e-2)
    batch = maker.make(maker.epoch_order(0)[0], np.random.default_rng(6))
    start = [np.random.default_rng(k).uniform(-0.1, 0.1, (model_config.vocab_size, model_config.embedding_size))
             .astype(np.float32) for k in (2, 3)]
    for table in start:
        table[0, ::3] = 0.0
    before, after = _tables_after(model_config, [batch], context_lr=0.5, start=start)
    # padding is never written: row 0 (PAD) keeps its bits
    assert (batch["ctx_ids"] == 0).any()
    for b, a in zip(before, after):
        assert a[0].tobytes() == b[0].tobytes()
    graph = tf.Graph()
    with graph.as_default():
        tables = [tf1.Variable(t) for t in before]
        w = context_windows(*tables, batch["ctx_ids"][0], batch["ctx_reach"][0], batch["ctx_negatives"][0], 3)
        grads = [tf.convert_to_tensor(g) for g in tf.gradients(w.loss, tables)]
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            grads, pairs = sess.run([grads, w.pairs])
    assert pairs > 50
    for b, a, g in zip(before, after, grads):
        assert np.abs(g).max() > 1e-3
        np.testing.assert_allclose(a - b, -0.5 * g, rtol=1e-4, atol=1e-6)
    _, sharded = _tables_after(model_config, [batch], context_lr=0.5,
                               partitioner=tf1.fixed_size_partitioner(3), start=before)
    for a, s in zip(after, sharded):
        np.testing.assert_allclose(a, s, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel", [False, True])
def test_deterministic_updates_are_the_same_updates(corpus, monkeypatch, kernel):
    """--deterministic makes the TensorFlow loop (the compiled kernel's fallback) sum each row's
    deltas before adding them: the same update (to float rounding), and two runs give the same
    bits. The kernel always adds them in a fixed order."""
    import tensorflow as tf

    from auxpretrain.pretraining import kernels

    if not kernel:
        monkeypatch.setattr(kernels, "compiled", None)
    elif kernels.compiled is None:
        pytest.skip("the C extension is not built")
    maker, model_config, _ = _maker(corpus, context_passes=2, subsample=0.0, noise_pool=23)
    batch = dict(zip(__import__("auxpretrain.model.objectives", fromlist=["INPUT_SPECS"]).INPUT_SPECS,
                     next(maker.stream(0, 1))))
    assert len(np.unique(batch["ctx_negatives"])) < batch["ctx_negatives"].size  # repeated rows
    start, plain = _tables_after(model_config, [batch])
    _, exact = _tables_after(model_config, [batch], start=start, deterministic=True)
    _, again = _tables_after(model_config, [batch], start=start, deterministic=True)
    _, sharded = _tables_after(model_config, [batch], start=start, deterministic=True,
                               partitioner=tf.compat.v1.fixed_size_partitioner(2))
    for p, e, a, s in zip(plain, exact, again, sharded):
        np.testing.assert_allclose(e, p, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(e, a)
        np.testing.assert_allclose(s, e, rtol=1e-5, atol=1e-6)
