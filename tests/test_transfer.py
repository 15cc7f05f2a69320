"""fine_tune: restore + freeze + cache + schedules + auto search + save/load, on a toy task."""

import dataclasses
import json

import numpy as np
import pytest

from auxpretrain.errors import ConfigError, InputError
from conftest import make_tiny_export, make_toy_task


def _settings(**kw):
    from auxpretrain.config import TransferConfig

    base = dict(epochs=2, batch_size=16, learning_rate=1e-2, patience=0, seed=3)
    base.update(kw)
    return TransferConfig(**base)


@pytest.fixture
def export(tiny_export_dir):
    from auxpretrain.export import load_export

    return load_export(tiny_export_dir)


@pytest.mark.parametrize("freeze", ["2", "all"])
def test_cache_gives_the_same_model_as_no_cache(tf1, toy_task, export, freeze):
    from auxpretrain.transfer.fine_tuning import fine_tune

    with_cache = fine_tune(toy_task, export, _settings(freeze=freeze, cache=True))
    without = fine_tune(toy_task, export, _settings(freeze=freeze, cache=False))
    assert with_cache.cache["used"] and not without.cache["used"]
    assert with_cache.cache["boundary"] == ("layer_0" if freeze == "2" else "pooled")
    for a, b in zip(with_cache.epochs, without.epochs):
        assert a["dev_accuracy"] == pytest.approx(b["dev_accuracy"], abs=1e-6)
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-4)
    assert set(with_cache.values) == set(without.values)
    for name in with_cache.values:
        np.testing.assert_allclose(with_cache.values[name], without.values[name], atol=1e-5)
    assert with_cache.frozen == without.frozen
    assert with_cache.metrics["accuracy"] == pytest.approx(without.metrics["accuracy"])
    with with_cache.model() as a, without.model() as b:
        texts = toy_task.dev.texts
        np.testing.assert_allclose(a.predict_proba(texts), b.predict_proba(texts), atol=1e-5)


def test_frozen_layers_keep_the_export_values(tf1, toy_task, export):
    from auxpretrain.transfer.fine_tuning import fine_tune

    original = export.values()
    for cache in (True, False):
        result = fine_tune(toy_task, export, _settings(freeze="2", cache=cache))
        for name in ("embedding/table", "layer_0/kernel", "layer_0/bias"):
            assert result.values[name].tobytes() == original[name].tobytes()
        assert not np.array_equal(result.values["layer_1/kernel"], original["layer_1/kernel"])
        assert set(result.frozen) == {"embedding/table", "layer_0/kernel", "layer_0/bias"}
        assert set(result.report.frozen) == set(result.frozen)
        assert set(result.report.restored) == set(original)


def test_random_init_baseline_and_determinism(tf1, toy_task):
    from auxpretrain.config import ModelConfig
    from auxpretrain.transfer.fine_tuning import fine_tune

    config = ModelConfig(vocab_size=3, embedding_size=11, hidden_size=37, num_layers=2, max_length=16)
    a = fine_tune(toy_task, None, _settings(), model_config=config)
    b = fine_tune(toy_task, None, _settings(), model_config=config)
    assert a.report is None and a.pretrained is None and a.frozen == []
    assert a.config.vocab_size == len(a.vocab) == 94
    assert [e["train_loss"] for e in a.epochs] == [e["train_loss"] for e in b.epochs]
    for name in a.values:
        np.testing.assert_array_equal(a.values[name], b.values[name])
    m = a.metrics
    assert 0 <= m["accuracy"] <= 1 and 0 <= m["macro_f1"] <= 1 and m["train_size"] == 120
    d = a.to_dict()
    json.dumps(d)
    assert d["dev_accuracy_per_epoch"] == [e["dev_accuracy"] for e in a.epochs]


def test_train_size_subsample(tf1, toy_task, export):
    from auxpretrain.transfer.fine_tuning import fine_tune

    result = fine_tune(toy_task, export, _settings(epochs=1), train_size=40)
    assert result.metrics["train_size"] == 40
    with pytest.raises(InputError, match="train-size"):
        fine_tune(toy_task, export, _settings(epochs=1), train_size=10_000)


def test_early_stopping_keeps_the_best_epoch(tf1, toy_task, export):
    from auxpretrain.transfer.fine_tuning import fine_tune

    result = fine_tune(toy_task, export, _settings(epochs=4, patience=1, learning_rate=0.05))
    accs = [e["dev_accuracy"] for e in result.epochs]
    best = int(np.argmax(accs))
    assert result.metrics["best_epoch"] == best + 1
    assert result.metrics["dev_accuracy"] == pytest.approx(max(accs))
    assert len(accs) == 4 or accs[-1] <= max(accs)
    with result.model() as model:  # the kept weights are the best epoch's
        probs = model.predict_proba(make_toy_task().dev.texts)
    assert np.mean(probs.argmax(-1) == toy_task.dev.labels) == pytest.approx(max(accs), abs=1e-4)


def test_gradual_unfreezing(tf1, toy_task, export):
    from auxpretrain.transfer.fine_tuning import fine_tune

    result = fine_tune(toy_task, export, _settings(epochs=5, schedule="gradual"))
    groups = [e["trained_groups"] for e in result.epochs]
    assert groups[:4] == [["head"], ["head", "layer_1"], ["head", "layer_1", "layer_0"],
                          ["head", "layer_1", "layer_0", "embedding"]]
    assert groups[4] == groups[3]
    # with the bottom layers frozen for good: cache + gradual over the upper layers
    result = fine_tune(toy_task, export, _settings(epochs=2, schedule="gradual", freeze="2"))
    assert result.cache["used"]
    assert [e["trained_groups"] for e in result.epochs] == [["head"], ["head", "layer_1"]]
    assert result.values["layer_0/kernel"].tobytes() == export.values()["layer_0/kernel"].tobytes()


def test_freeze_auto_tries_every_candidate_and_keeps_the_best(tf1, toy_task, export):
    from auxpretrain.transfer.fine_tuning import fine_tune, format_auto_table

    result = fine_tune(toy_task, export, _settings(epochs=1, freeze="auto"))
    labels = [r["candidate"] for r in result.auto]
    assert labels == ["freeze all", "freeze 2", "freeze 1", "fine-tune all", "embedding only", "random init"]
    best = max(result.auto, key=lambda r: r["dev_accuracy"])
    assert result.metrics["dev_accuracy"] == pytest.approx(best["dev_accuracy"])
    assert sum(r["chosen"] for r in result.auto) == 1
    assert result.chosen == [r["candidate"] for r in result.auto if r["chosen"]][0]
    assert "random init" in format_auto_table(result.auto)


def test_layer_lr_factor_and_weight_decay_run(tf1, toy_task, export):
    from auxpretrain.transfer.fine_tuning import fine_tune

    result = fine_tune(toy_task, export, _settings(epochs=1, layer_lr_factor=2.6, weight_decay=0.01,
                                                   freeze="embedding", bucket=True, layer_dropout=0.1))
    assert result.frozen == ["embedding/table"]
    assert result.values["embedding/table"].tobytes() == export.values()["embedding/table"].tobytes()


def test_cache_falls_back_when_too_large(tf1, toy_task, export):
    from auxpretrain.transfer.fine_tuning import fine_tune

    lines = []
    result = fine_tune(toy_task, export, _settings(epochs=1, freeze="2", cache_limit_bytes=10),
                       log=lines.append)
    assert not result.cache["used"] and result.cache["reason"] == "too large"
    assert any("cache skipped" in line for line in lines)


def test_layers_selection_and_vocab_extension(tf1, toy_task, export):
    from auxpretrain.transfer.fine_tuning import fine_tune

    result = fine_tune(toy_task, export, _settings(epochs=1, layers=1))
    assert result.report.restored == ["embedding/table"]
    assert result.report.not_selected == ["layer_0/kernel", "layer_0/bias", "layer_1/kernel", "layer_1/bias"]
    with pytest.raises(ConfigError, match="would freeze layer_0"):
        fine_tune(toy_task, export, _settings(epochs=1, layers=1, freeze="2"))
    other = make_toy_task(seed=5, words=120)  # words the export has never seen
    result = fine_tune(other, export, _settings(epochs=1, vocab="extend"))
    assert result.report.vocab_rows_new > 0
    assert result.report.vocab_rows_copied + result.report.vocab_rows_new == len(result.vocab)
    assert result.config.vocab_size == len(result.vocab) > len(export.vocab)


def test_conflicting_settings(tf1, toy_task, export):
    from auxpretrain.transfer.fine_tuning import check_settings, fine_tune

    with pytest.raises(ConfigError, match="--pretrained"):
        check_settings(_settings(freeze="all"), pretrained=False)
    with pytest.raises(ConfigError, match="gradual"):
        check_settings(_settings(freeze="all", schedule="gradual"), pretrained=True)
    with pytest.raises(ConfigError, match="freeze"):
        _settings(freeze="some")
    with pytest.raises(ConfigError, match="model-config"):
        from auxpretrain.config import ModelConfig
        fine_tune(toy_task, export, _settings(), model_config=ModelConfig(vocab_size=9))


def test_bad_task_data(tf1, toy_task, export):
    from auxpretrain.data.tasks import Split
    from auxpretrain.transfer.fine_tuning import fine_tune

    one_class = dataclasses.replace(toy_task, train=Split(toy_task.train.texts, np.zeros(120, np.int32)))
    with pytest.raises(InputError, match="only one class"):
        fine_tune(one_class, export, _settings())
    labels = toy_task.test.labels.copy()
    labels[0] = 1
    train = Split(toy_task.train.texts, np.zeros(120, np.int32))
    train.labels[:60] = 2
    unseen = dataclasses.replace(toy_task, label_names=["a", "b", "c"], train=train,
                                 dev=Split(toy_task.dev.texts, np.full(60, 2, np.int32)),
                                 test=Split(toy_task.test.texts, labels))
    with pytest.raises(InputError, match="never occur in the training data"):
        fine_tune(unseen, export, _settings())


def test_edited_manifest_of_another_model_is_refused(tf1, toy_task, tiny_export_dir, tmp_path):
    import shutil

    from auxpretrain.errors import ExportError
    from auxpretrain.export import load_export
    from auxpretrain.transfer.fine_tuning import fine_tune

    path = tmp_path / "export"
    shutil.copytree(tiny_export_dir, path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["model_config"]["hidden_size"] = 40
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match="model_config"):  # load_export or fine_tune refuses it
        fine_tune(toy_task, load_export(str(path)), _settings())


def test_save_load_predict(tf1, toy_task, export, tmp_path):
    from auxpretrain.transfer.fine_tuning import fine_tune
    from auxpretrain.transfer.saved import load_model, save_model

    result = fine_tune(toy_task, export, _settings(freeze="1"))
    out = tmp_path / "model"
    save_model(str(out), result)
    save_model(str(out), result)  # replacing an existing model works
    with result.model() as memory, load_model(str(out)) as disk:
        texts = toy_task.test.texts[:20]
        assert disk.predict(texts) == memory.predict(texts)
        assert set(disk.predict(texts)) <= {"neg", "pos"}
        np.testing.assert_allclose(disk.predict_proba(texts), memory.predict_proba(texts), atol=1e-6)
        # skflow-style access to one layer's parameters
        params = disk.get_layer_params(1)
        assert set(params) == {"layer_0/kernel", "layer_0/bias"}
        disk.set_layer_params("layer_0", {"bias": np.ones(37, np.float32)})
        assert np.array_equal(disk.get_layer_params("layer_0")["layer_0/bias"], np.ones(37))
    meta = json.loads((out / "model.json").read_text())
    assert meta["label_names"] == ["neg", "pos"] and meta["model_config"]["hidden_size"] == 37
    with open(out / "vocab.txt", "a", encoding="utf-8") as f:
        f.write("tampered\n")
    with pytest.raises(InputError, match="sha256"):
        load_model(str(out))
    with pytest.raises(InputError, match="no model.json"):
        load_model(str(tmp_path))


def test_export_with_three_layers_into_partial_restore(tf1, toy_task, tmp_path):
    from auxpretrain.transfer.fine_tuning import fine_tune

    export = make_tiny_export(tmp_path / "e3", num_layers=3)
    result = fine_tune(toy_task, export, _settings(epochs=1, freeze="3"))
    assert result.cache["boundary"] == "layer_1"
    assert set(result.frozen) == {"embedding/table", "layer_0/kernel", "layer_0/bias",
                                  "layer_1/kernel", "layer_1/bias"}


def test_export_default_layers_decide_what_is_restored(tf1, toy_task, export, tmp_path):
    """An export that names default_layers gets only those restored unless --layers says
    otherwise; freezing or gradual unfreezing restore every layer."""
    from auxpretrain.export import load_export, write_export
    from auxpretrain.transfer.fine_tuning import fine_tune

    path = tmp_path / "with_default"
    write_export(str(path), export.values(), export.config, export.vocab, export.tokenizer,
                 {"transfer": {"default_layers": ["embedding"]}})
    narrowed = load_export(str(path))
    logs = []
    result = fine_tune(toy_task, narrowed, _settings(epochs=1), log=logs.append)
    assert result.report.restored == ["embedding/table"]
    assert any("default_layers" in line for line in logs)
    every = fine_tune(toy_task, narrowed, _settings(epochs=1, layers="all"))
    assert len(every.report.restored) == 5
    frozen = fine_tune(toy_task, narrowed, _settings(epochs=1, freeze="all"))
    assert len(frozen.report.restored) == 5
    plain = fine_tune(toy_task, export, _settings(epochs=1))  # no default_layers: everything
    assert len(plain.report.restored) == 5
