"""The n-gram ensemble member: features, the logistic regression, the fusion weight, saving it,
and fine_tune / TextClassifier / saved models with an ensemble."""

import json
import os

import numpy as np
import pytest

from auxpretrain.data.text import Tokenizer
from auxpretrain.errors import ConfigError, InputError
from auxpretrain.transfer import ngrams

TEXTS = ["a good film", "a good , good story", "a bad film", "bad bad acting", "good acting", "a bad story"]
LABELS = np.array([1, 1, 0, 0, 1, 0])


def test_features_are_l2_normalised_blocks_with_a_bias():
    f = ngrams.NgramFeaturizer.fit(TEXTS, Tokenizer())
    assert "good film" in f.word.index and " go" in f.char.index  # word bigrams, padded char n-grams
    x = f.transform(TEXTS + ["an unseen zzz"])
    assert x.rows == len(TEXTS) + 1 and x.columns == f.columns
    words = len(f.word.index)
    for i in range(x.rows):
        cols = x.indices[x.indptr[i]:x.indptr[i + 1]]
        vals = x.data[x.indptr[i]:x.indptr[i + 1]]
        assert cols[-1] == x.columns - 1 and vals[-1] == 1.0  # the bias
        w, c = vals[cols < words], vals[(cols >= words) & (cols < x.columns - 1)]
        for block in (w, c):
            assert block.size == 0 or abs(np.sum(block ** 2) - 1.0) < 1e-9
    dense = x.dot(np.eye(x.columns)[:, :3])  # dot and tdot agree with a dense product
    assert dense.shape == (x.rows, 3)
    g = np.arange(x.rows * 2, dtype=float).reshape(x.rows, 2)
    full = np.zeros((x.rows, x.columns))
    full[x.row_ids, x.indices] = x.data
    np.testing.assert_allclose(x.tdot(g), full.T @ g)
    np.testing.assert_allclose(x.dot(np.ones((x.columns, 1))), full.sum(1, keepdims=True))


def test_logistic_regression_reaches_the_optimum():
    f = ngrams.NgramFeaturizer.fit(TEXTS, Tokenizer())
    x = f.transform(TEXTS)
    w = ngrams.fit_logistic(x, LABELS, 2, c=10.0, tolerance=1e-12, iterations=500)
    assert (x.dot(w).argmax(1) == LABELS).all()
    # the gradient of the objective vanishes at the solution
    n = x.rows
    p = ngrams._softmax(x.dot(w))
    y = np.eye(2)[LABELS]
    grad = x.tdot(p - y) / n + w / (10.0 * n)
    assert np.abs(grad).max() < 1e-5
    warm = ngrams.fit_logistic(x, LABELS, 2, c=10.0, start=w, tolerance=1e-12)
    np.testing.assert_allclose(warm, w, atol=1e-4)


def test_the_fusion_weight_minimises_dev_cross_entropy():
    labels = np.array([0, 1, 1, 0])
    neural = np.array([[0.9, 0.1], [0.2, 0.8], [0.9, 0.1], [0.6, 0.4]])  # confident, one bad miss
    ngram = np.array([[0.6, 0.4], [0.4, 0.6], [0.4, 0.6], [0.6, 0.4]])
    weight, losses = ngrams.choose_weight(neural, ngram, labels)
    assert weight == min(losses, key=losses.get) and weight in ngrams.WEIGHT_GRID
    assert weight < 1.0
    same = ngrams.choose_weight(neural, neural, labels)[0]
    assert same == 1.0  # a tie keeps the larger neural weight
    np.testing.assert_allclose(ngrams.fuse(neural, ngram, 0.7), 0.7 * neural + 0.3 * ngram)


def test_model_save_load_round_trip(tmp_path):
    model, scores = ngrams.fit_ngram_model(TEXTS, LABELS, TEXTS[:4], LABELS[:4], 2, Tokenizer(), grid=(1.0, 3.0))
    assert set(scores) == {1.0, 3.0} and model.c in scores
    model.save(str(tmp_path))
    loaded = ngrams.NgramModel.load(str(tmp_path), Tokenizer())
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), model.predict_proba(TEXTS), atol=1e-6)
    meta = json.loads((tmp_path / ngrams.NGRAM_JSON).read_text())
    meta["word"]["idf"] = meta["word"]["idf"][:-1]
    (tmp_path / ngrams.NGRAM_JSON).write_text(json.dumps(meta))
    with pytest.raises(InputError, match="cannot read the n-gram model"):
        ngrams.NgramModel.load(str(tmp_path), Tokenizer())


def test_fine_tune_with_an_ngram_member_saves_and_reloads_it(toy_task, tiny_export_dir, tmp_path):
    from auxpretrain.config import TransferConfig
    from auxpretrain.transfer.fine_tuning import fine_tune
    from auxpretrain.transfer.saved import load_model, save_model

    settings = TransferConfig(epochs=2, seed=0, ensemble="ngram")
    result = fine_tune(toy_task, tiny_export_dir, settings)
    members = result.metrics["ensemble"]
    assert result.ngram is not None and result.ensemble_weight == members["neural_weight"]
    assert {"neural_accuracy", "ngram_accuracy", "ngram_c", "dev_accuracy"} <= set(members)
    with result.model() as model:
        probs = model.predict_proba(toy_task.test.texts)
    assert abs(result.metrics["accuracy"] - float(np.mean(probs.argmax(1) == toy_task.test.labels))) < 1e-4
    out = save_model(str(tmp_path / "model"), result)
    assert {ngrams.NGRAM_JSON, ngrams.NGRAM_WEIGHTS} <= set(os.listdir(out))
    with load_model(out) as reloaded:
        np.testing.assert_allclose(reloaded.predict_proba(toy_task.test.texts), probs, atol=1e-5)
    # the n-gram files are checksummed like the rest of the model
    with open(os.path.join(out, ngrams.NGRAM_WEIGHTS), "r+b") as f:
        f.seek(-1, 2)
        f.write(b"\x01")
    with pytest.raises(InputError, match="sha256"):
        load_model(out)


def test_a_saved_member_is_read_only_when_its_files_are_listed_and_fit_the_labels(toy_task, tiny_export_dir,
                                                                                  tmp_path):
    """model.json without the member's files in `files` (their sha256) is refused, even when the
    files are there (e.g. symbolic links to files elsewhere); weights for another number of
    classes are one line at load, not a NumPy error at predict."""
    import json

    from auxpretrain.config import TransferConfig
    from auxpretrain.files import sha256_file
    from auxpretrain.transfer.fine_tuning import fine_tune
    from auxpretrain.transfer.saved import load_model, save_model

    result = fine_tune(toy_task, tiny_export_dir, TransferConfig(epochs=1, seed=0, ensemble="ngram"))
    out = save_model(str(tmp_path / "model"), result)
    meta_path = os.path.join(out, "model.json")
    meta = json.load(open(meta_path))
    unlisted = dict(meta, files={k: v for k, v in meta["files"].items() if not k.startswith("ngram")})
    json.dump(unlisted, open(meta_path, "w"))
    with pytest.raises(InputError, match="ngram"):
        load_model(out)
    weights = np.load(os.path.join(out, ngrams.NGRAM_WEIGHTS))
    np.save(os.path.join(out, ngrams.NGRAM_WEIGHTS), np.concatenate([weights, weights[:, :1]], axis=1))
    meta["files"][ngrams.NGRAM_WEIGHTS] = sha256_file(os.path.join(out, ngrams.NGRAM_WEIGHTS))
    json.dump(meta, open(meta_path, "w"))
    with pytest.raises(InputError, match=r"weights for 3 classes, the model has 2 labels; save the model again"):
        load_model(out)


def test_auto_adds_the_member_only_from_enough_examples(toy_task, tiny_export_dir):
    from auxpretrain.config import TransferConfig
    from auxpretrain.transfer.fine_tuning import fine_tune

    logs = []
    few = fine_tune(toy_task, tiny_export_dir, TransferConfig(epochs=1, seed=0), log=logs.append)
    assert few.ngram is None and "ensemble" not in few.metrics
    assert any("neural model only" in line for line in logs)
    many = fine_tune(toy_task, tiny_export_dir, TransferConfig(epochs=1, seed=0, ensemble_min_examples=len(toy_task.train)))
    assert many.ngram is not None
    off = fine_tune(toy_task, tiny_export_dir, TransferConfig(epochs=1, seed=0, ensemble="none"))
    assert off.ngram is None
    with pytest.raises(ConfigError, match="ensemble must be one of"):
        TransferConfig(ensemble="bagging")


def test_text_classifier_keeps_the_member_through_save_and_load(toy_task, tiny_export_dir, tmp_path):
    import auxpretrain as ap

    clf = ap.TextClassifier.from_pretrained(tiny_export_dir, epochs=1, ensemble="ngram")
    names = ["neg", "pos"]
    clf.fit(toy_task.train.texts, [names[i] for i in toy_task.train.labels],
            dev=(toy_task.dev.texts, [names[i] for i in toy_task.dev.labels]))
    assert clf.ngram_ is not None
    probs = clf.predict_proba(toy_task.test.texts)
    clf.save(str(tmp_path / "clf"))
    again = ap.TextClassifier.load(str(tmp_path / "clf"))
    np.testing.assert_allclose(again.predict_proba(toy_task.test.texts), probs, atol=1e-5)
    clf.close()
    again.close()
