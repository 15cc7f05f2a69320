"""Model-level API: `TextClassifier`, an estimator that owns its tf.Graph and Session.

`from_pretrained`, `fit`, `partial_fit`, `predict`, `predict_proba`, `evaluate`, `save`, `load`,
`get_layer_params` / `set_layer_params` / `copy_layers_from` (skflow style), and
`partial_fit_shared`: M models that share their first n layers across graphs, the shared
layers copied after every step.

`fit` is `fine_tune` (restore, freezing, frozen-output cache, schedules, early stopping
on dev accuracy); `partial_fit` trains the classifier's own graph one pass at a time and keeps
the optimizer's state between calls.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from auxpretrain.config import LayerSpec, ModelConfig, TransferConfig, task_max_length
from auxpretrain.data.tasks import check_examples, check_texts, label_list, sorted_classes, task_from_examples
from auxpretrain.errors import ConfigError, InputError, NotFittedError
from auxpretrain.export import as_export, write_export
from auxpretrain.model.variables import HEAD, layer_of, parse_freeze, select_layers
from auxpretrain.transfer.classifier_graph import ClassifierGraph, build_classifier_graph
from auxpretrain.transfer.fine_tuning import check_settings, fine_tune, task_config, transfer_layers
from auxpretrain.transfer.layers import checked_layer_values, resolve_layer
from auxpretrain.transfer.saved import MODEL_JSON, TaskModel, load_model
from auxpretrain.transfer.ngrams import fuse
from auxpretrain.transfer.report import RestoreReport, initialiser_report
from auxpretrain.transfer.task_graph import Feeder, accuracy, encode_split, macro_f1, predict_probs
from auxpretrain.transfer.training_run import bucket_batches


def _settings(base: Optional[TransferConfig], overrides: Mapping[str, Any]) -> TransferConfig:
    """`base` (default TransferConfig()) with keyword overrides; unknown names raise ConfigError."""
    return (base or TransferConfig()).replace(where="TextClassifier", **overrides)


class TextClassifier:
    """An estimator for text classification on a pretrained (or random) encoder.

    Owns one tf.Graph and one Session, built at the first `fit` / `partial_fit` (the number of
    classes comes from the labels) or by `load`. Labels may be strings or integers; `classes_`
    lists them in column order of `predict_proba`.

    Settings are `transfer.TransferConfig` fields, given as keyword arguments (`epochs=3,
    freeze="2", learning_rate=1e-3, dropout=0.5, patience=3, schedule="gradual", seed=0, ...`);
    an unknown one raises ConfigError.

    Example:
      clf = TextClassifier.from_pretrained("runs/pretrain/export", freeze="embedding", epochs=3)
      clf.fit(train_texts, train_labels)
      clf.evaluate(test_texts, test_labels)["accuracy"]
    """

    def __init__(self, model_config: Union[None, ModelConfig, Mapping[str, Any]] = None, settings=None, *,
                 verbose: bool = False, **overrides):
        """A classifier trained from random weights. `model_config`: the architecture, a
        ModelConfig or a dict of its fields (default: ModelConfig's defaults); leave out
        vocab_size, which the training texts' vocabulary sets. Use `from_pretrained` for an export."""
        self.settings = _settings(settings, overrides)
        self._export = None
        if isinstance(model_config, Mapping):
            model_config = ModelConfig.from_dict(model_config, where="TextClassifier(model_config=...)")
        self._model_config = model_config
        self.verbose = verbose
        self.config: Optional[ModelConfig] = None
        self.vocab = None
        self.tokenizer = None
        self.classes_: Optional[list] = None
        self._class_index: Dict[Any, int] = {}
        self.frozen_layers: List[str] = []
        self.history_: List[Dict[str, Any]] = []  # fit: one row per epoch (loss, dev accuracy)
        self.metrics_: Dict[str, Any] = {}  # fit: dev accuracy, best epoch, sizes
        self.report_: Optional[RestoreReport] = None  # what was restored (random init: every initialiser)
        self.n_steps_ = 0  # optimizer steps of partial_fit since the graph was built
        self.loss_: Optional[float] = None  # mean training loss of the last partial_fit
        self._graph = None
        self._session = None
        self._h: Optional[ClassifierGraph] = None
        self._fitted = False
        # the n-gram member of the ensemble `fit` may add (settings.ensemble), and the neural weight;
        # partial_fit updates the neural member only
        self.ngram_, self.ensemble_weight_ = None, 1.0
        self._rng = np.random.default_rng(self.settings.seed)

    # ------------------------------------------------------------ construction

    @classmethod
    def from_pretrained(cls, export, freeze: Union[None, str, int] = None, settings=None, *,
                        verbose: bool = False, **overrides) -> "TextClassifier":
        """A classifier whose encoder starts from an export.

        Args:
          export: export directory (checksums verified) or Export.
          freeze: none | all (every restored layer) | embedding | N (bottom N layers, embedding
            counted first) | auto (fit only: tries several and keeps the best on dev); default:
            settings.freeze ("none").
          settings: a TransferConfig; keyword overrides (any of its fields: `layers=`,
            `max_length=`, `epochs=`, ...) are applied on top. `layers`: "default" (the export's
            default_layers, see TransferConfig), None or "all" (every layer), n, a regex or
            names; the layers not restored start random.
        """
        overrides = dict(overrides)
        if freeze is not None:
            overrides["freeze"] = freeze
        clf = cls(None, settings, verbose=verbose, **overrides)
        clf._export = as_export(export)
        check_settings(clf.settings, pretrained=True)
        return clf

    @classmethod
    def load(cls, path: str, *, verbose: bool = False) -> "TextClassifier":
        """Opens a model written by `save` (or by `auxpretrain transfer --out`); files verified."""
        task_model = load_model(path)
        try:
            with open(os.path.join(path, MODEL_JSON), "r", encoding="utf-8") as f:
                meta = json.load(f)
            settings = TransferConfig()
            if isinstance(meta.get("settings"), Mapping):
                names = {f.name for f in dataclasses.fields(TransferConfig)}
                known = {k: v for k, v in meta["settings"].items() if k in names}
                settings = _settings(None, known)
            clf = cls(None, settings, verbose=verbose)
            classes = meta.get("classes")
            if not isinstance(classes, list) or len(classes) != len(task_model.label_names):
                classes = list(task_model.label_names)
            frozen = [n for n in meta.get("frozen_layers", []) if n in task_model.config.layer_names()]
            clf._build(task_model.config, task_model.vocab, task_model.tokenizer, classes, frozen,
                       values=task_model.values())
            clf.metrics_ = dict(meta.get("metrics") or {})
            clf.ngram_, clf.ensemble_weight_ = task_model.ngram, task_model.ensemble_weight
            clf._fitted = True
        finally:
            task_model.close()
        return clf

    # ------------------------------------------------------------ training

    def fit(self, texts: Sequence[str], labels: Sequence, dev: Optional[Tuple[Sequence[str], Sequence]] = None,
            epochs: Optional[int] = None, validation_fraction: float = 0.1) -> "TextClassifier":
        """Trains from the pretrained (or random) weights: `fine_tune` with this
        classifier's settings (restore, freezing, frozen-output cache, schedule, early stopping
        on dev accuracy keeping the best epoch). Starts over on every call.

        Args:
          texts: list of str [n].
          labels: n labels (str or int); the classes are the distinct labels, sorted.
          dev: (texts, labels) for early stopping; default: a stratified `validation_fraction`
            of the training data is held out.
          epochs: overrides settings.epochs for this call.

        Returns:
          self. `history_`, `metrics_` and `report_` describe the run.
        """
        task, classes = task_from_examples(texts, labels, dev, validation_fraction, self.settings.seed)
        settings = self.settings if epochs is None else _settings(self.settings, {"epochs": epochs})
        log = print if self.verbose else None
        result = fine_tune(task, self._export, settings,
                                        model_config=None if self._export is not None else self._model_config,
                                        log=log)
        names = result.config.layer_names()
        frozen = [n for n in names if any(layer_of(v) == n for v in result.frozen)]
        self.close()
        self._build(result.config, result.vocab, result.tokenizer, classes, frozen, values=result.values)
        self.history_ = list(result.epochs)
        self.metrics_ = dict(result.metrics)
        self.report_ = result.report or initialiser_report(self._h.shapes, result.frozen)
        self.ngram_, self.ensemble_weight_ = result.ngram, result.ensemble_weight
        self._fitted = True
        return self

    def partial_fit(self, texts: Sequence[str], labels: Sequence, classes: Optional[Sequence] = None
                    ) -> "TextClassifier":
        """One pass over (texts, labels) in shuffled batches of settings.batch_size (one step
        when they fit in one batch), with the constant learning rate; the optimizer's state
        (Adam moments) carries over between calls.

        The first call builds the graph (from the export, or from a previous `fit`): pass
        `classes=` there when a batch may not show every class. Frozen layers (`freeze`) stay
        fixed; `freeze="auto"`, `vocab="extend"` and the frozen-output cache need `fit`.

        Returns:
          self; `loss_` is the pass's mean training loss, `n_steps_` counts steps.
        """
        texts, labels = check_examples(texts, labels, "partial_fit", "no examples")
        self.prepare(labels, classes)
        ids = self._label_ids(labels, "partial_fit")
        data = encode_split(texts, ids, self.tokenizer, self.vocab, self.config.max_length)
        feeder = Feeder("ids", data)
        m, s = self._h.model, self.settings
        order = self._rng.permutation(len(data))
        batches = [order[i:i + s.batch_size] for i in range(0, len(order), s.batch_size)]
        if s.bucket:
            batches = bucket_batches(order, data.lengths, s.batch_size, self._rng)
        losses = []
        for idx in batches:
            feed = feeder.feed(m, idx)
            feed.update({m.labels: data.labels[idx], m.learning_rate: s.learning_rate, m.dropout: s.dropout,
                         m.dropout_seed: [s.seed, self.n_steps_]})  # fresh masks every step
            if s.layer_dropout > 0:
                feed[m.layer_dropout] = s.layer_dropout
            loss, _ = self._session.run([m.loss, self._h.train_op], feed_dict=feed)
            losses.append(float(loss) * len(idx))
            self.n_steps_ += 1
        self.loss_ = sum(losses) / len(data)
        self._fitted = True
        return self

    def prepare(self, labels: Sequence, classes: Optional[Sequence] = None) -> None:
        """Builds the graph and session for `partial_fit` now, if they do not exist yet (the classes
        from `classes` or `labels`): before layers are copied into a new classifier."""
        if classes is not None:
            wanted = sorted_classes(label_list(classes, "classes"))
            if self.classes_ is not None and wanted != self.classes_:
                raise ConfigError(f"classes={wanted!r} differ from the model's {self.classes_!r}; "
                                  "a model's classes are fixed when it is built")
        if self._h is not None:
            return
        if self._export is None:
            raise NotFittedError("partial_fit needs a vocabulary: start from TextClassifier.from_pretrained"
                                 "(export), or call fit(texts, labels) first (it builds one from the texts)")
        s = self.settings
        for wrong, why in ((str(s.freeze) == "auto", "freeze='auto' picks the freezing on dev data in fit(); "
                            "give partial_fit a fixed freeze (none, all, embedding or N)"),
                           (s.vocab != "export", "vocab='extend' adds the training texts' words in fit(); "
                            "partial_fit uses the export's vocabulary (vocab='export')"),
                           (s.schedule != "constant", f"schedule={s.schedule!r} unfreezes one layer per epoch "
                            "in fit(); partial_fit has no epochs: use schedule='constant'"),
                           (s.l2_sp != 0 or s.rescale != 1, "l2_sp and rescale act at the start of fit()'s "
                            "training; partial_fit trains without them (l2_sp=0, rescale=1)")):
            if wrong:
                raise ConfigError(why)
        classes_list = sorted_classes(label_list(classes, "classes")) if classes is not None \
            else sorted_classes(labels)
        if len(classes_list) < 2:
            raise InputError(f"partial_fit: only one class ({classes_list[0]!r}) in the first batch; "
                             "pass classes=[...] with every class on the first call")
        names = self._export.config.layer_names()
        transferred = transfer_layers(s, self._export)  # the layers fit() restores
        frozen = parse_freeze(str(s.freeze), names, restored=transferred)
        not_transferred = [n for n in frozen if n not in transferred]
        if not_transferred:
            raise ConfigError(f"freeze={s.freeze!r} would freeze {', '.join(not_transferred)}, which "
                              f"layers={s.layers!r} does not transfer; freeze fewer layers or transfer more")
        # no training set to measure: the cap of the default length (set max_length= to choose)
        config = dataclasses.replace(self._export.config, max_length=s.max_length or task_max_length([]))
        config = task_config(config, s, frozen)
        self._build(config, self._export.vocab, self._export.tokenizer, classes_list, frozen,
                    restore_layers=transferred)

    def _build(self, config: ModelConfig, vocab, tokenizer, classes: list, frozen_layers: Sequence[str],
               values: Optional[Mapping[str, np.ndarray]] = None,
               restore_layers: Optional[Sequence[str]] = None) -> None:
        """The classifier's graph + session (transfer.classifier_graph); variables from `values` or
        restored from the export."""
        self._h, self._session, report = build_classifier_graph(
            config, len(classes), self.settings, frozen_layers, export=self._export,
            restore_layers=restore_layers, values=values)
        self._graph = self._h.model.graph
        if report is not None:
            self.report_ = report
        self.config, self.vocab, self.tokenizer = config, vocab, tokenizer
        self.classes_ = list(classes)
        self._class_index = {c: i for i, c in enumerate(self.classes_)}
        self.frozen_layers = [n for n in config.layer_names() if n in set(frozen_layers)]
        self.n_steps_ = 0

    def _label_ids(self, labels: list, where: str) -> List[int]:
        unseen = sorted({repr(y) for y in labels if y not in self._class_index})
        if unseen:
            raise InputError(f"{where}: label(s) {', '.join(unseen)} are not among the model's classes "
                             f"{self.classes_!r}; a model's classes are fixed when it is built")
        return [self._class_index[y] for y in labels]

    # ------------------------------------------------------------ prediction

    def _check_built(self, what: str) -> None:
        if self._h is None:
            raise NotFittedError(f"{what}: this TextClassifier has no weights yet; call fit(texts, labels) "
                                 "or partial_fit(texts, labels) first")

    def _check_fitted(self, what: str) -> None:
        if not self._fitted or self._h is None:
            raise NotFittedError(f"{what}: this TextClassifier is not fitted yet; call fit(texts, labels) "
                                 "or partial_fit(texts, labels) first")

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), len(classes_)] class probabilities (columns in `classes_` order)."""
        self._check_fitted("predict_proba")
        texts = check_texts(texts)
        data = encode_split(texts, np.zeros(len(texts), np.int32), self.tokenizer, self.vocab,
                                    self.config.max_length)
        probs = predict_probs(self._session, self._h.model, Feeder("ids", data), self.settings.eval_batch_size)
        if self.ngram_ is not None:
            probs = fuse(probs, self.ngram_.predict_proba(texts), self.ensemble_weight_).astype(np.float32)
        return probs

    def predict(self, texts: Sequence[str]) -> list:
        """The predicted class of each text (elements of `classes_`), a list of len(texts)."""
        probs = self.predict_proba(texts)
        return [self.classes_[i] for i in probs.argmax(-1)]

    def evaluate(self, texts: Sequence[str], labels: Sequence) -> Dict[str, float]:
        """{"accuracy", "macro_f1", "loss" (mean cross-entropy), "n"} on labeled texts."""
        self._check_fitted("evaluate")
        labels = label_list(labels)
        texts = check_texts(texts)
        if len(texts) != len(labels) or not texts:
            raise InputError(f"evaluate: {len(texts)} texts and {len(labels)} labels; give the same number (> 0)")
        ids = np.asarray(self._label_ids(labels, "evaluate"), np.int64)
        probs = self.predict_proba(texts)
        predictions = probs.argmax(-1)
        loss = float(-np.mean(np.log(np.maximum(probs[np.arange(len(ids)), ids], 1e-12))))
        return {"accuracy": accuracy(ids, predictions),
                "macro_f1": macro_f1(ids, predictions, len(self.classes_)),
                "loss": loss, "n": len(ids)}

    # ------------------------------------------------------------ layer parameters

    @property
    def layer_names(self) -> List[str]:
        """["embedding", "layer_0", ..., "head"]: what layer indices of get/set_layer_params mean."""
        config = self.config or (self._export.config if self._export is not None else None)
        if config is None:
            raise NotFittedError("layer_names: the architecture is not known before fit(); call fit first")
        return config.layer_names() + [HEAD]

    def get_layer_params(self, layer: Union[int, str]) -> Dict[str, np.ndarray]:
        """Values of one layer: index into `layer_names` (0 = embedding, last = head) or a name.

        Returns:
          dict variable name -> float32 ndarray (a copy), e.g. {"layer_0/kernel": [3, E, H],
          "layer_0/bias": [H]}.
        """
        name = resolve_layer(self.layer_names, layer)
        self._check_built("get_layer_params")
        return {k: np.array(v) for k, v in self._h.layers[name].get(self._session).items()}

    def set_layer_params(self, layer: Union[int, str],
                         values: Union[Mapping[str, np.ndarray], Sequence[np.ndarray]]) -> None:
        """Sets one layer's variables (skflow's set_layer_params).

        Args:
          layer: index into `layer_names` or a name.
          values: a dict keyed by full ("layer_0/kernel") or short ("kernel") names, some or all
            of the layer's variables; or a list in `get_layer_params` order (all of them).

        Raises:
          RestoreError: wrong layer, unknown variable, or a shape that differs (both shapes named).
        """
        name = resolve_layer(self.layer_names, layer)
        self._check_built("set_layer_params")
        assigner = self._h.layers[name]
        current = checked_layer_values(name, assigner.get(self._session), values)
        assigner.set(self._session, current)

    def copy_layers_from(self, other: "TextClassifier", layers: LayerSpec = None) -> List[str]:
        """Copies layers of another fitted classifier into this one (no disk).

        Args:
          other: the source TextClassifier.
          layers: None (every encoder layer), n (the first n, embedding first), a regex, or names
            (may include "head").

        Returns:
          the names of the copied layers.

        Raises:
          ConfigError: the models' layers differ in shape (their configs differ) or their
            vocabularies differ while the embedding is copied.
          NotFittedError: either model is not fitted.
        """
        self._check_built("copy_layers_from (target)")
        if not isinstance(other, TextClassifier):
            raise ConfigError(f"copy_layers_from: expected a TextClassifier, got {type(other).__name__}")
        other._check_built("copy_layers_from (source)")
        if layers is None:
            chosen = list(self.config.layer_names())
        else:
            chosen = select_layers(self.layer_names, layers)
        missing = [n for n in chosen if n not in other.layer_names]
        if missing:
            raise ConfigError(f"cannot copy {', '.join(missing)}: the source model has only "
                              f"{', '.join(other.layer_names)}{_differences(other.config, self.config)}")
        for name in chosen:
            for var in self._h.layers[name].names:
                src, dst = other._h.shapes.get(var), self._h.shapes[var]
                if src != dst:
                    raise ConfigError(f"cannot copy {name}: {var} is {list(src) if src else 'absent'} in the source "
                                      f"model but {list(dst)} here{_differences(other.config, self.config)}; "
                                      "copy fewer layers or build both models with the same ModelConfig")
        if "embedding" in chosen and list(other.vocab.tokens) != list(self.vocab.tokens):
            raise ConfigError("cannot copy the embedding: the models have different vocabularies (rows would "
                              "mean other words); copy the layers above it, or start both from the same export")
        for name in chosen:
            self._h.layers[name].set(self._session, other._h.layers[name].get(other._session))
        return chosen

    # ------------------------------------------------------------ saving

    def values(self) -> Dict[str, np.ndarray]:
        """Every model variable (encoder + head), name -> ndarray."""
        self._check_fitted("values")
        return self._h.all_vars.get(self._session)

    def save(self, path: str) -> str:
        """Writes the model directory atomically (model.json, vocab.txt, model.ckpt.*); the same
        format as `auxpretrain transfer --out`, readable by `load` and `transfer.load_model`."""
        self._check_fitted("save")
        classes = self.classes_
        try:
            json.dumps(classes)
        except (TypeError, ValueError):
            classes = None
        extra = {"classes": classes, "settings": self.settings.to_dict(), "frozen_layers": self.frozen_layers,
                 "pretrained": str(self._export.path) if self._export is not None else None,
                 "metrics": self.metrics_}
        task_model = TaskModel(self.config, self.values(), self.vocab, self.tokenizer,
                               [str(c) for c in self.classes_], ngram=self.ngram_,
                               ensemble_weight=self.ensemble_weight_)
        try:
            return task_model.save(path, extra=extra)
        finally:
            task_model.close()

    def export_encoder(self, out_dir: str, extra: Optional[Mapping[str, Any]] = None):
        """Writes this classifier's (fine-tuned) encoder as a new export; returns the Export."""
        self._check_fitted("export_encoder")
        names = set(self.config.layer_names())
        values = {k: v for k, v in self.values().items() if layer_of(k) in names}
        return write_export(out_dir, values, self.config, self.vocab, self.tokenizer,
                                       extra=dict(extra or {}, source="TextClassifier.export_encoder"))

    def close(self) -> None:
        """Closes the session (the classifier is unfitted afterwards)."""
        if self._session is not None:
            self._session.close()
        self._session, self._graph, self._h, self._fitted = None, None, None, False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        source = f"export={self._export.path!r}" if self._export is not None else "random init"
        state = f"classes={self.classes_!r}" if self._fitted else "not fitted"
        return f"TextClassifier({source}, freeze={self.settings.freeze!r}, {state})"


def _differences(a: ModelConfig, b: ModelConfig) -> str:
    """' (the configs differ: hidden_size 37 vs 40)' or ''."""
    diffs = a.differences(b)
    return f" (the configs differ: {', '.join(diffs)})" if diffs else ""
