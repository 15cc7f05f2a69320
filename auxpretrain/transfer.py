"""Downstream transfer: restore an export into a task model, freeze, train, evaluate, save.

`fine_tune(task, export_or_None, TransferConfig(...))` is what `auxpretrain transfer` runs:

- the task model is the export's encoder (same names: `embedding/`, `layer_i/`) + dropout +
  a softmax head (`head/`); `pretrained=None` builds the same architecture from random
  weights, the baseline every result is compared with;
- the export's layers are restored by name and shape (`restore.restore`, strict unless
  `allow_partial`), with a `RestoreReport`;
- freezing (`freeze`: none | all | embedding | N | auto) holds on every update path
  (`freezing.build_train_ops`);
- frozen-output cache: when the bottom layers are frozen, their outputs are computed once
  in a "lower" graph and the remaining layers train in an "upper" graph fed from the cache
  (same variable names, so the saved model is the same); all layers frozen caches the
  pooled vector and only the head trains;
- schedules: constant Adam, or ULMFiT's gradual unfreezing with discriminative learning rates
  and a slanted triangular learning rate (`schedule="gradual"`);
- early stopping on dev accuracy keeps the best epoch's weights;
- `freeze="auto"` tries freezing everything, unfreezing from the top one layer at a time,
  transferring only the embedding and random init, and keeps the best by dev accuracy;
- `checkpoint_dir`: a checkpoint after every epoch (all variables with the Adam slots, the
  early-stopping state, the history), so the same call resumes after a crash or `kill -9` and
  ends with the same weights and metrics as an uninterrupted run (see `_Checkpoints`). The
  run is a pure function of its settings: epoch e's shuffle is drawn from (seed, e), step s's
  dropout masks from (seed, s) by stateless ops.

The fine-tuned model is saved with `save_model(dir, result)` and used later with
`load_model(dir).predict(texts)`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from auxpretrain import export as export_lib
from auxpretrain import freezing
from auxpretrain.config import ModelConfig
from auxpretrain.errors import ConfigError, InputError, RestoreError
from auxpretrain.modeling import build_classifier, build_encoder, pool
from auxpretrain.restore import Assigner, RestoreReport, restore, values_from_session
from auxpretrain.training import _write_json_atomic
from auxpretrain.variables import TRANSFERABLE_VARIABLES, layer_of, parse_freeze, select_layers, strip_suffix

tf1 = tf.compat.v1

__all__ = [
    "TransferConfig", "TransferResult", "TaskModel", "fine_tune", "load_model", "save_model",
    "check_settings", "restore", "values_from_session", "RestoreReport", "macro_f1", "accuracy",
    "format_auto_table",
]

MODEL_FORMAT_VERSION = 1
MODEL_JSON = "model.json"
MODEL_CKPT = "model.ckpt"
MODEL_VOCAB = "vocab.txt"
HEAD = "head"
SCHEDULES = ("constant", "gradual")
VOCAB_MODES = ("export", "extend")
_POOLED = "pooled"  # cache boundary: the whole encoder is frozen
RUN_JSON = "run.json"  # checkpoint directory: the run's identity (settings, data, export)
STATE_JSON = "state.json"  # checkpoint directory: the last completed epoch (the commit point)
CHECKPOINT_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class TransferConfig:
    """Run settings of a downstream training (not part of any export)."""

    epochs: int = 20  # maximum passes over the training set
    batch_size: int = 32  # examples per step
    learning_rate: float = 1e-3  # Adam (peak) learning rate of the head
    dropout: float = 0.5  # dropout rate on the pooled sentence vector
    layer_dropout: float = 0.0  # dropout rate on each convolution's input (0: off; not below a cache)
    patience: int = 4  # epochs without a better dev accuracy before stopping (0: never)
    freeze: str = "none"  # none | all | embedding | N (bottom N layers) | auto
    schedule: str = "constant"  # constant | gradual (ULMFiT: unfreeze a layer per epoch + STLR)
    layer_lr_factor: Optional[float] = None  # lr / factor**depth per layer (None: 1.0, gradual 2.6)
    embedding_lr_scale: float = 1.0  # the embedding's learning rate = lr * this (after layer_lr_factor)
    cut_frac: float = 0.1  # slanted triangular: fraction of steps spent rising
    ratio: float = 32.0  # slanted triangular: peak / lowest learning rate
    weight_decay: float = 0.0  # decoupled (AdamW-style) decay of trained variables
    cache: bool = True  # cache the outputs of frozen bottom layers
    cache_limit_bytes: int = 2 * 1024 ** 3  # above this the cache is skipped (said in the log)
    bucket: bool = False  # length-sorted bucketing of training batches
    layers: Union[None, int, str, Tuple[str, ...]] = None  # export layers to transfer (None: all)
    allow_partial: bool = False  # restore what matches instead of stopping
    vocab: str = "export"  # export: the export's vocabulary; extend: + the task's new words
    noise_scale: float = 0.0  # noise on new words' rows (fraction of the rows' std), vocab=extend
    seed: int = 0  # graph seed, initialisers, dropout, shuffling
    eval_batch_size: int = 256  # examples per evaluation batch

    def __post_init__(self):
        def check(ok, message):
            if not ok:
                raise ConfigError(message)

        check(isinstance(self.epochs, int) and self.epochs >= 1, f"epochs must be >= 1, got {self.epochs!r}")
        check(isinstance(self.batch_size, int) and self.batch_size >= 1,
              f"batch size must be >= 1, got {self.batch_size!r}")
        check(self.learning_rate > 0, f"learning rate must be > 0, got {self.learning_rate}")
        check(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        check(0 <= self.layer_dropout < 1, f"layer dropout must be in [0, 1), got {self.layer_dropout}")
        check(self.patience >= 0, f"patience must be >= 0, got {self.patience}")
        check(self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        check(self.layer_lr_factor is None or self.layer_lr_factor > 0,
              f"layer lr factor must be > 0, got {self.layer_lr_factor}")
        check(0 < self.cut_frac < 1, f"cut_frac must be in (0, 1), got {self.cut_frac}")
        check(self.ratio >= 1, f"ratio must be >= 1, got {self.ratio}")
        check(self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}")
        check(self.vocab in VOCAB_MODES, f"vocab must be one of {', '.join(VOCAB_MODES)}, got {self.vocab!r}")
        check(self.eval_batch_size >= 1, "eval batch size must be >= 1")
        check(self.noise_scale >= 0, "noise scale must be >= 0")
        freeze = str(self.freeze)
        check(freeze in ("none", "all", "embedding", "auto") or freeze.isdigit(),
              f"--freeze {self.freeze!r}: use none, all, embedding, auto or a number of bottom layers")

    @property
    def lr_factor(self) -> float:
        if self.layer_lr_factor is not None:
            return float(self.layer_lr_factor)
        return freezing.DEFAULT_GRADUAL_FACTOR if self.schedule == "gradual" else 1.0

    def to_dict(self) -> Dict[str, Any]:
        out = dataclasses.asdict(self)
        if isinstance(out["layers"], tuple):
            out["layers"] = list(out["layers"])
        return out


def check_settings(settings: TransferConfig, pretrained: bool) -> None:
    """Conflicting options, one line each (ConfigError)."""
    freeze = str(settings.freeze)
    if not pretrained:
        if freeze != "none":
            raise ConfigError(f"--freeze {freeze} needs --pretrained EXPORT: with --pretrained none "
                              "every layer starts random, there is nothing pretrained to freeze")
        if settings.layers is not None:
            raise ConfigError("--layers needs --pretrained EXPORT: with --pretrained none nothing is restored")
        if settings.allow_partial:
            raise ConfigError("--allow-partial needs --pretrained EXPORT: with --pretrained none nothing is restored")
        if settings.vocab != "export":
            raise ConfigError("--vocab extend needs --pretrained EXPORT: with --pretrained none the "
                              "vocabulary is built from the task's training texts")
    if settings.schedule == "gradual" and freeze == "all":
        raise ConfigError("--schedule gradual unfreezes layers one by one; it cannot be combined with "
                          "--freeze all (use --freeze none, or --schedule constant to train the head only)")
    if settings.schedule == "gradual" and freeze == "auto":
        raise ConfigError("--schedule gradual and --freeze auto both decide what is frozen; choose one")


# ---------------------------------------------------------------- metrics

def macro_f1(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in labels or predictions."""
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    scores = []
    for c in range(num_classes):
        tp = int(np.sum((predictions == c) & (labels == c)))
        fp = int(np.sum((predictions == c) & (labels != c)))
        fn = int(np.sum((predictions != c) & (labels == c)))
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    return float(np.mean(np.asarray(labels) == np.asarray(predictions))) if len(labels) else float("nan")


# ---------------------------------------------------------------- data

@dataclasses.dataclass
class _Encoded:
    """A split as token ids: ids int32 [n, max_length] (0-padded), lengths, labels."""

    ids: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray

    def __len__(self):
        return len(self.labels)


def _encode(texts: Sequence[str], labels, tokenizer, vocab, max_length: int) -> _Encoded:
    tokens = [tokenizer.tokenize(t) for t in texts]
    ids, lengths = vocab.encode_batch(tokens, max_length, pad_to_max_length=True)
    return _Encoded(ids=np.asarray(ids, np.int32).reshape(len(tokens), max_length),
                    lengths=np.asarray(lengths, np.int32),
                    labels=np.asarray(labels, dtype=np.int32))


def _width(lengths: np.ndarray) -> int:
    return max(int(lengths.max()) if len(lengths) else 1, 1)


def _check_task(task) -> None:
    if len(task.train) == 0:
        raise InputError(f"task {task.name}: the training split is empty")
    if len(task.dev) == 0:
        raise InputError(f"task {task.name}: the dev split is empty; pass a dev file or more training rows")
    classes = sorted(set(task.train.labels.tolist()))
    if len(classes) < 2:
        name = task.label_names[classes[0]] if classes else "?"
        raise InputError(f"task {task.name}: only one class ({name!r}) in the training data; "
                         "a classifier needs at least two")
    for split_name in ("dev", "test"):
        split = getattr(task, split_name)
        unseen = sorted(set(split.labels.tolist()) - set(classes))
        if unseen:
            names = ", ".join(repr(task.label_names[i]) if 0 <= i < len(task.label_names) else str(i)
                              for i in unseen)
            raise InputError(f"task {task.name}: {split_name} label(s) {names} never occur in the "
                             "training data; add training examples of them or drop those rows")


# ---------------------------------------------------------------- graphs

@dataclasses.dataclass
class _Model:
    """Handles of one task graph (full, upper-from-sequence or upper-from-pooled)."""

    graph: Any
    kind: str  # "ids" | "sequence" | "pooled"
    inputs: Dict[str, Any]
    labels: Any
    dropout: Any
    layer_dropout: Any
    learning_rate: Any
    logits: Any
    probs: Any
    loss: Any
    layer_names: List[str]  # transferable layers present in this graph, bottom first
    dropout_seed: Any = None  # int64 [2]: (seed, step) of the training step's dropout masks
    encoder: Any = None  # EncoderOutputs when the graph starts from token ids


def _dropout(x, rate, seed_pair, site: int):
    """Stateless dropout: the mask is a function of (the fed seed pair, site), so a resumed run
    draws the masks an uninterrupted one would (a stateful op restarts with its session)."""
    return tf.nn.experimental.stateless_dropout(
        x, rate=rate, seed=tf.random.experimental.stateless_fold_in(seed_pair, site))


def _upper_layers(x, mask, config: ModelConfig, first: int, dropout, seed, frozen=(), dropout_seed=None):
    """Layers layer_{first} .. top on a sequence, exactly as build_encoder makes them (but for
    the stateless dropout, rate `dropout` seeded by `dropout_seed`, on each layer's input)."""
    activation = {"tanh": tf.tanh, "relu": tf.nn.relu}[config.activation]
    mask3 = tf.expand_dims(mask, -1)
    width = config.embedding_size if first == 0 else config.hidden_size
    for i in range(first, config.num_layers):
        name = f"layer_{i}"
        with tf1.variable_scope(name):
            kernel = tf1.get_variable(
                "kernel", [config.kernel_width, width, config.hidden_size], tf.float32,
                tf1.glorot_uniform_initializer(seed=None if seed is None else seed + i + 1),
                trainable=name not in frozen)
            bias = tf1.get_variable("bias", [config.hidden_size], tf.float32, tf1.zeros_initializer(),
                                    trainable=name not in frozen)
            for var in (kernel, bias):
                tf1.add_to_collection(TRANSFERABLE_VARIABLES, var)
            inputs = x if dropout is None else _dropout(x, dropout, dropout_seed, 1 + i)
            x = activation(tf.nn.conv1d(inputs, kernel, stride=1, padding="SAME") + bias) * mask3
        width = config.hidden_size
    return pool(x, mask, config.pooling)


def _build_model(config: ModelConfig, num_classes: int, seed: int, kind: str = "ids",
                 first_layer: int = 0, frozen=(), layer_dropout: bool = False) -> _Model:
    """A task graph: inputs -> (remaining) encoder layers -> dropout -> softmax head."""
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(seed)
        dropout = tf1.placeholder_with_default(0.0, [], name="dropout")
        layer_rate = tf1.placeholder_with_default(0.0, [], name="layer_dropout")
        labels = tf1.placeholder(tf.int32, [None], name="labels")
        learning_rate = tf1.placeholder(tf.float32, [], name="learning_rate")
        dropout_seed = tf1.placeholder_with_default(tf.constant([0, 0], tf.int64), [2], name="dropout_seed")
        names = config.layer_names()
        enc = None
        if kind == "ids":
            ids = tf1.placeholder(tf.int32, [None, None], name="input_ids")
            if layer_dropout:  # the layers are built here so that their dropout is stateless
                enc = build_encoder(ids, dataclasses.replace(config, num_layers=0), frozen=frozen, seed=seed)
                pooled = _upper_layers(enc.sequence, enc.mask, config, 0, layer_rate, seed, frozen,
                                       dropout_seed)
            else:
                enc = build_encoder(ids, config, frozen=frozen, seed=seed)
                pooled = enc.pooled
            inputs, present = {"ids": ids}, names
        elif kind == "sequence":
            width = config.embedding_size if first_layer == 0 else config.hidden_size
            seq = tf1.placeholder(tf.float32, [None, None, width], name="cached_sequence")
            lengths = tf1.placeholder(tf.int32, [None], name="lengths")
            mask = tf.sequence_mask(lengths, tf.shape(seq)[1], dtype=tf.float32)
            pooled = _upper_layers(seq, mask, config, first_layer,
                                   layer_rate if layer_dropout else None, seed, frozen, dropout_seed)
            inputs = {"sequence": seq, "lengths": lengths}
            present = [f"layer_{i}" for i in range(first_layer, config.num_layers)]
        else:
            pooled = tf1.placeholder(tf.float32, [None, config.pooled_size], name="cached_pooled")
            inputs, present = {"pooled": pooled}, []
        logits = build_classifier(_dropout(pooled, dropout, dropout_seed, 0), num_classes, scope=HEAD,
                                  seed=seed)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        probs = tf.nn.softmax(logits)
    return _Model(graph=graph, kind=kind, inputs=inputs, labels=labels, dropout=dropout,
                  layer_dropout=layer_rate, learning_rate=learning_rate, logits=logits, probs=probs,
                  loss=loss, layer_names=present, dropout_seed=dropout_seed, encoder=enc)


class _Feeder:
    """Feeds one split to a model: token ids, a cached sequence [n, T, W] or cached pooled [n, P]."""

    def __init__(self, kind: str, data: _Encoded, cache: Optional[np.ndarray] = None):
        self.kind, self.data, self.cache = kind, data, cache

    def feed(self, model: _Model, idx: np.ndarray) -> Dict[Any, Any]:
        lengths = self.data.lengths[idx]
        if self.kind == "ids":
            return {model.inputs["ids"]: self.data.ids[idx, :_width(lengths)]}
        if self.kind == "sequence":
            return {model.inputs["sequence"]: self.cache[idx, :_width(lengths)],
                    model.inputs["lengths"]: lengths}
        return {model.inputs["pooled"]: self.cache[idx]}


def _length_batches(lengths: np.ndarray, size: int) -> List[np.ndarray]:
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + size] for i in range(0, len(order), size)]


def _predict(sess, model: _Model, feeder: _Feeder, batch_size: int) -> np.ndarray:
    """Class probabilities [n, C], in the split's order (batches sorted by length)."""
    n = len(feeder.data)
    out = np.zeros((n, int(model.probs.shape[-1])), np.float32)
    for idx in _length_batches(feeder.data.lengths, batch_size):
        out[idx] = sess.run(model.probs, feed_dict=feeder.feed(model, idx))
    return out


def _session(graph):
    return tf1.Session(graph=graph)


# ---------------------------------------------------------------- one training run

@dataclasses.dataclass
class _RunResult:
    label: str
    transferred: List[str]
    frozen_layers: List[str]
    epochs: List[Dict[str, Any]]
    best_epoch: int
    dev_accuracy: float
    dev_predictions: np.ndarray
    test_probs: Optional[np.ndarray]
    values: Dict[str, np.ndarray]
    report: Optional[RestoreReport]
    frozen_variables: List[str]
    trained_variables: List[str]
    cache: Dict[str, Any]
    timings: Dict[str, float]
    resumed_from: Optional[int] = None  # epochs restored from a checkpoint (None: trained from the start)


# ---------------------------------------------------------------- checkpoints (resume)

_CKPT_FILE = re.compile(r"epoch-\d+\.ckpt[._-]")  # our checkpoint files and TF's temporaries of them
_CHECKPOINT_FIX = "delete the directory (or pass another --checkpoint-dir) to start over"


class _Checkpoints:
    """Per-epoch checkpoints of one training run in `directory`, committed by state.json.

    After epoch k: a Saver checkpoint `epoch-k.ckpt` of every variable of the graph (weights,
    Adam slots and beta powers), then state.json, written atomically and last, naming it, the
    best epoch's checkpoint (whose trained variables are the best weights), the sha256 of their
    files and the loop's state (step, early stopping, history). A crash at any point leaves the
    previous state.json and the files it names intact; files no state.json names are leftovers
    of an interrupted save and are removed. A damaged state.json or checkpoint file is one
    InputError, never a silent fresh start. A finished run keeps only the best checkpoint.
    """

    def __init__(self, directory: str, saver, trained_names: Sequence[str]):
        self.directory, self.saver, self.trained_names = directory, saver, list(trained_names)
        self.path = os.path.join(directory, STATE_JSON)
        self.files: Dict[str, str] = {}  # file name -> sha256 of the files the state names

    def load(self) -> Optional[Dict[str, Any]]:
        """The committed state, its files verified; None before the first epoch's commit."""
        os.makedirs(self.directory, exist_ok=True)
        if not os.path.exists(self.path):
            self._clean()
            return None
        path, state = export_lib.read_descriptor(self.directory, STATE_JSON, "a transfer checkpoint state",
                                                 _CHECKPOINT_FIX, error=InputError)
        try:
            if state["format_version"] != CHECKPOINT_FORMAT_VERSION:
                raise ValueError(f"format_version {state['format_version']!r}")
            files = {str(k): str(v) for k, v in dict(state["files"]).items()}
            for key in ("epoch", "step", "best_epoch", "epochs_since_best"):
                int(state[key])
            float(state["best_dev_accuracy"])
            bool(state["finished"])
            list(state["history"])
            for key in ("checkpoint", "best_checkpoint"):
                if not any(name.startswith(str(state[key]) + ".") for name in files):
                    raise ValueError(f"{key} {state[key]!r} has no files")
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{path}: incomplete or edited ({e}); {_CHECKPOINT_FIX}") from None
        export_lib.check_file_names(files, path, error=InputError)
        export_lib.verify_files(self.directory, files, "transfer checkpoint", _CHECKPOINT_FIX, error=InputError)
        self.files = files
        self._clean()
        return state

    def restore(self, sess, state: Mapping[str, Any]) -> Dict[str, np.ndarray]:
        """Restores the state's checkpoint into `sess`; returns the best epoch's trained values."""
        try:
            with sess.graph.as_default():  # outside a graph, Saver calls run eagerly
                self.saver.restore(sess, os.path.join(self.directory, state["checkpoint"]))
            reader = tf1.train.NewCheckpointReader(os.path.join(self.directory, state["best_checkpoint"]))
            return {name: reader.get_tensor(name) for name in self.trained_names}
        except Exception as e:  # TF raises several error types for a checkpoint of another graph
            first = (str(getattr(e, "message", e)).strip().splitlines() or [type(e).__name__])[0][:200]
            raise InputError(f"{self.directory}: cannot restore the checkpoint {state['checkpoint']} "
                             f"({first}); {_CHECKPOINT_FIX}") from None

    def save(self, sess, state: Dict[str, Any]) -> None:
        """Writes epoch state["epoch"]'s checkpoint (unless a finished run does not need it),
        then commits `state` (+ checkpoint names and digests) and removes what it no longer names."""
        epoch, best_epoch = int(state["epoch"]), int(state["best_epoch"])
        prefix, best = f"epoch-{epoch}.ckpt", f"epoch-{best_epoch}.ckpt"
        if state["finished"]:
            prefix = best  # only the best weights are needed from now on
        if prefix == f"epoch-{epoch}.ckpt":
            with sess.graph.as_default():
                self.saver.save(sess, os.path.join(self.directory, prefix), write_meta_graph=False,
                                write_state=False)
        try:
            names = os.listdir(self.directory)
            files = {}
            for p in sorted({prefix, best}):
                pattern = re.compile(re.escape(p) + r"\.(index|data-\d+-of-\d+)")
                for name in sorted(n for n in names if pattern.fullmatch(n)):
                    files[name] = self.files.get(name) or export_lib.sha256_file(os.path.join(self.directory, name))
            state = dict(state, format_version=CHECKPOINT_FORMAT_VERSION, checkpoint=prefix,
                         best_checkpoint=best, files=files)
            _write_json_atomic(self.path, state)
            self.files = files
            self._clean()
        except OSError as e:
            raise InputError(f"{self.directory}: cannot write the checkpoint ({e.strerror or e}); free "
                             "some space or pass another --checkpoint-dir") from None

    def _clean(self) -> None:
        """Removes checkpoint files the state does not name and temporary state files."""
        for name in os.listdir(self.directory):
            if name in self.files:
                continue
            if _CKPT_FILE.match(name) or name.startswith(STATE_JSON + ".tmp-") or \
                    name.startswith(RUN_JSON + ".tmp-"):
                path = os.path.join(self.directory, name)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)


def _frozen_prefix(frozen_layers: Sequence[str], names: Sequence[str]) -> int:
    """How many bottom layers are frozen without a gap (the cache boundary)."""
    m = 0
    while m < len(names) and names[m] in frozen_layers:
        m += 1
    return m


def _restore_into(model_graph, values, layers, settings, source, vocab, source_vocab, rng):
    """restore() of the chosen layers; None when nothing is asked for."""
    if not layers:
        return None, None
    init_fn, report = restore(values, graph=model_graph, layers=list(layers),
                              strict=not settings.allow_partial,
                              vocab=vocab if source_vocab is not None else None,
                              source_vocab=source_vocab, rng=rng, noise_scale=settings.noise_scale)
    if source is not None:
        report.source, report.verified = source, True
    return init_fn, report


def _train_run(label: str, data: Dict[str, _Encoded], config: ModelConfig, num_classes: int,
               values: Optional[Dict[str, np.ndarray]], transferred: Sequence[str],
               frozen_layers: Sequence[str], settings: TransferConfig, vocab=None, source_vocab=None,
               source: Optional[str] = None, log: Callable[[str], None] = lambda s: None,
               checkpoint_dir: Optional[str] = None) -> _RunResult:
    """Builds, restores, (caches), trains with early stopping, evaluates one configuration;
    with `checkpoint_dir`, checkpoints every epoch and resumes from the last one there."""
    t_start = time.perf_counter()
    names = config.layer_names()
    frozen_layers = [n for n in names if n in set(frozen_layers)]
    transferred = [n for n in names if n in set(transferred)]
    seed = settings.seed
    rng_vocab = np.random.default_rng(seed) if settings.noise_scale > 0 else None
    remap_vocab = vocab if source_vocab is not None and list(vocab.tokens) != list(source_vocab.tokens) else None
    src_vocab = source_vocab if remap_vocab is not None else None
    timings: Dict[str, float] = {}
    cache_info: Dict[str, Any] = {"used": False}

    # ---- the cache boundary and its memory
    m = _frozen_prefix(frozen_layers, names)
    kind, first_layer, caches = "ids", 0, {}
    lower_values: Dict[str, np.ndarray] = {}
    lower_report = None
    if m == 1 and len(names) > 1 and settings.cache:
        # a frozen embedding alone: its lookup costs less than feeding a [n, T, E] cache
        cache_info["reason"] = "only the embedding is frozen: its lookup is as cheap as a cache"
    elif m and settings.cache:
        if m == len(names):
            kind, width = "pooled", config.pooled_size
            need = sum(len(d) for d in data.values() if d is not None) * width * 4
        else:
            kind, width = "sequence", config.embedding_size if m == 1 else config.hidden_size
            first_layer = m - 1
            need = sum(len(d) * _width(d.lengths) for d in data.values() if d is not None) * width * 4
        cache_info.update(boundary=names[m - 1] if kind == "sequence" else _POOLED,
                          bytes=int(need))
        if need > settings.cache_limit_bytes:
            log(f"frozen-output cache skipped: it would take {need / 2**30:.1f} GiB "
                f"(limit {settings.cache_limit_bytes / 2**30:.1f} GiB); training without it")
            cache_info["reason"] = "too large"
            kind, first_layer = "ids", 0
    elif m:
        cache_info["reason"] = "disabled (--no-cache)"

    if kind != "ids" and settings.layer_dropout > 0:
        log("note: the frozen layers below the cache run without layer dropout (--no-cache keeps it)")
    if kind != "ids":
        t0 = time.perf_counter()
        lower_config = config if kind == "pooled" else dataclasses.replace(config, num_layers=m - 1)
        lower = _build_model(lower_config, num_classes, seed, kind="ids", frozen=names[:m])
        init_lower, lower_report = _restore_into(lower.graph, values, [n for n in names[:m] if n in transferred],
                                                 settings, source, remap_vocab, src_vocab, rng_vocab)
        target = lower.encoder.pooled if kind == "pooled" else lower.encoder.sequence
        with lower.graph.as_default():
            init_all = tf1.global_variables_initializer()
        sess = _session(lower.graph)
        try:
            sess.run(init_all)
            if init_lower:
                init_lower(sess)
            for split, d in data.items():
                if d is None:
                    continue
                shape = (len(d), width) if kind == "pooled" else (len(d), _width(d.lengths), width)
                out = np.zeros(shape, np.float32)
                for idx in _length_batches(d.lengths, settings.eval_batch_size):
                    value = sess.run(target, {lower.inputs["ids"]: d.ids[idx, :_width(d.lengths[idx])]})
                    if kind == "pooled":
                        out[idx] = value
                    else:
                        out[idx, :value.shape[1]] = value
                caches[split] = out
            lower_values = values_from_session(sess, lower.graph)
        finally:
            sess.close()
        timings["cache_seconds"] = time.perf_counter() - t0
        cache_info.update(used=True, bytes=int(sum(c.nbytes for c in caches.values())),
                          seconds=round(timings["cache_seconds"], 3))

    # ---- the trained model
    frozen_here = [n for n in frozen_layers if kind == "ids" or n not in names[:m]]
    model = _build_model(config, num_classes, seed, kind=kind, first_layer=first_layer,
                         frozen=frozen_here, layer_dropout=settings.layer_dropout > 0)
    upper_layers = [n for n in transferred if n in model.layer_names]
    init_model, report = _restore_into(model.graph, values, upper_layers, settings, source,
                                       remap_vocab, src_vocab, rng_vocab)
    if lower_report is not None:
        report = lower_report if report is None else lower_report.merge(report)
    feeders = {split: _Feeder(kind, d, caches.get(split)) for split, d in data.items() if d is not None}

    with model.graph.as_default():
        present = model.layer_names + [HEAD]
        all_vars = model.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
        var_list = freezing.trainable_var_list(model.graph, frozen=frozen_here)
        groups = freezing.layer_groups(var_list, present)
        stages = None
        if settings.schedule == "gradual":
            stages = freezing.gradual_stages(list(groups))
        if settings.schedule == "gradual" or settings.lr_factor != 1.0 or \
                (settings.embedding_lr_scale != 1.0 and "embedding" in groups):
            factors = freezing.discriminative_factors(list(groups), settings.lr_factor)
            if "embedding" in factors:
                factors["embedding"] *= settings.embedding_lr_scale
        else:
            groups, factors = {"all": var_list}, None
        train = freezing.build_train_ops(model.loss, groups, model.learning_rate,
                                         frozen=[v for v in all_vars if layer_of(strip_suffix(v.name)) in frozen_here],
                                         factors=factors, stages=stages,
                                         weight_decay=settings.weight_decay)
        model_vars = [v for v in all_vars if layer_of(strip_suffix(v.name)) in set(present)]
        trained = _unique_vars(v for vs in train.var_lists for v in vs)
        snapshot = Assigner(trained, model.graph, name="best_weights")
        everything = Assigner(model_vars, model.graph, name="model_values")
        # every variable, Adam's slots and beta powers included: a resumed step is the same step
        saver = tf1.train.Saver(var_list=tf1.global_variables(), max_to_keep=None) if checkpoint_dir else None
        init_all = tf1.global_variables_initializer()
    model.graph.finalize()
    trained_names = [strip_suffix(v.name) for v in trained]
    frozen_names = [n for n in list(lower_values) + [strip_suffix(v.name) for v in model_vars]
                    if n not in set(trained_names)]
    if report is not None:
        report.set_trainable(trained_names)

    sess = _session(model.graph)
    epochs: List[Dict[str, Any]] = []
    prefix = f"[{label}] " if label else ""
    try:
        train_data = feeders["train"]
        n = len(train_data.data)
        steps_per_epoch = max(1, -(-n // settings.batch_size))
        total_steps = steps_per_epoch * settings.epochs
        best, best_epoch, best_values, since_best = -1.0, 0, None, 0
        step, start, finished, resumed_from = 0, 0, False, None
        checkpoints = _Checkpoints(checkpoint_dir, saver, trained_names) if checkpoint_dir else None
        state = checkpoints.load() if checkpoints else None
        if state is None:
            sess.run(init_all)
            if init_model:
                init_model(sess)
        else:
            best_values = checkpoints.restore(sess, state)
            start = resumed_from = int(state["epoch"])
            step, finished = int(state["step"]), bool(state["finished"])
            best, best_epoch = float(state["best_dev_accuracy"]), int(state["best_epoch"])
            since_best, epochs = int(state["epochs_since_best"]), list(state["history"])
            if finished:
                log(f"{prefix}{checkpoint_dir}: this run finished at epoch {start} (best dev accuracy "
                    f"{best:.4f} at epoch {best_epoch}); evaluating its best weights, no training")
            else:
                log(f"{prefix}resumed from epoch {start} ({checkpoint_dir})")
        train_seconds = 0.0
        for epoch in range(start, 0 if finished else settings.epochs):
            t0 = time.perf_counter()
            stage = min(epoch, len(train.stages) - 1)
            rng = np.random.default_rng([seed, epoch])  # the epoch's order depends on nothing else
            order = rng.permutation(n)
            batches = [order[i:i + settings.batch_size] for i in range(0, n, settings.batch_size)]
            if settings.bucket:
                batches = _bucket(order, train_data.data.lengths, settings.batch_size, rng)
            losses = []
            for idx in batches:
                lr = settings.learning_rate
                if settings.schedule == "gradual":
                    lr *= freezing.slanted_triangular(step, total_steps, settings.cut_frac, settings.ratio)
                feed = train_data.feed(model, idx)
                feed.update({model.labels: train_data.data.labels[idx], model.learning_rate: lr,
                             model.dropout: settings.dropout, model.dropout_seed: [seed, step]})
                if settings.layer_dropout > 0:
                    feed[model.layer_dropout] = settings.layer_dropout
                loss, _ = sess.run([model.loss, train.stages[stage]], feed_dict=feed)
                losses.append(float(loss) * len(idx))
                step += 1
            seconds_train = time.perf_counter() - t0
            train_seconds += seconds_train
            dev_probs = _predict(sess, model, feeders["dev"], settings.eval_batch_size)
            dev_acc = accuracy(feeders["dev"].data.labels, dev_probs.argmax(-1))
            seconds = time.perf_counter() - t0
            row = {"epoch": epoch + 1, "train_loss": round(sum(losses) / n, 5),
                   "dev_accuracy": round(dev_acc, 5), "seconds": round(seconds, 3),
                   "train_seconds": round(seconds_train, 3)}
            if settings.schedule == "gradual":
                row["trained_groups"] = list(train.stage_groups[stage])
            epochs.append(row)
            log(_epoch_line(label, row, settings.epochs))
            all_unfrozen = stage == len(train.stages) - 1
            if dev_acc > best:
                best, best_epoch, best_values, since_best = dev_acc, epoch + 1, snapshot.get(sess), 0
            else:
                since_best += 1
            stop = bool(settings.patience and all_unfrozen and since_best >= settings.patience)
            if checkpoints:
                checkpoints.save(sess, {"epoch": epoch + 1, "step": step,
                                        "finished": stop or epoch + 1 == settings.epochs,
                                        "best_dev_accuracy": best, "best_epoch": best_epoch,
                                        "epochs_since_best": since_best, "history": epochs})
            if stop:
                break
        timings["train_seconds"] = train_seconds
        snapshot.set(sess, best_values)
        t0 = time.perf_counter()
        dev_probs = _predict(sess, model, feeders["dev"], settings.eval_batch_size)
        test_probs = (_predict(sess, model, feeders["test"], settings.eval_batch_size)
                      if "test" in feeders and len(feeders["test"].data) else None)
        timings["eval_seconds"] = time.perf_counter() - t0
        model_values = everything.get(sess)
    finally:
        sess.close()
    values_out = dict(lower_values)
    values_out.update(model_values)
    timings["total_seconds"] = time.perf_counter() - t_start
    if kind == "ids" and m == 0:
        cache_info.setdefault("reason", "nothing frozen at the bottom")
    return _RunResult(label=label, transferred=transferred, frozen_layers=frozen_layers, epochs=epochs,
                      best_epoch=best_epoch, dev_accuracy=best, dev_predictions=dev_probs.argmax(-1),
                      test_probs=test_probs, values=values_out, report=report,
                      frozen_variables=frozen_names, trained_variables=trained_names,
                      cache=cache_info, timings={k: round(v, 3) for k, v in timings.items()},
                      resumed_from=resumed_from)


def _unique_vars(variables) -> List:
    seen, out = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def _bucket(order: np.ndarray, lengths: np.ndarray, batch_size: int, rng) -> List[np.ndarray]:
    """Length-sorted bucketing: sort chunks of 50 batches by length, shuffle the batches."""
    chunk = batch_size * 50
    batches = []
    for i in range(0, len(order), chunk):
        part = order[i:i + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[j:j + batch_size] for j in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _epoch_line(label: str, row: Mapping[str, Any], epochs: int) -> str:
    prefix = f"[{label}] " if label else ""
    line = (f"{prefix}epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f}  "
            f"dev acc {row['dev_accuracy']:.4f}  {row['seconds']:.1f} s")
    if "trained_groups" in row:
        line += f"  training {', '.join(row['trained_groups'])}"
    return line


# ---------------------------------------------------------------- the public entry point

@dataclasses.dataclass
class TransferResult:
    """A fine-tuned task model and how it was obtained."""

    task: str
    label_names: List[str]
    config: ModelConfig
    vocab: Any  # Vocabulary used to encode the task's texts
    tokenizer: Any  # Tokenizer used to split them
    pretrained: Optional[str]  # export path, or None for random init
    settings: TransferConfig
    metrics: Dict[str, Any]  # accuracy, macro_f1 (test), dev_accuracy, train_size, ...
    epochs: List[Dict[str, Any]]  # per-epoch train loss / dev accuracy / seconds (chosen run)
    report: Optional[RestoreReport]  # None without an export
    frozen: List[str]  # variables that were not trained
    cache: Dict[str, Any]  # frozen-output cache: used, boundary, bytes, seconds or reason
    timings: Dict[str, float]
    values: Dict[str, np.ndarray]  # every model variable (encoder + head), name -> value
    auto: List[Dict[str, Any]] = dataclasses.field(default_factory=list)  # freeze=auto table
    chosen: str = ""  # freeze=auto: the label of the configuration kept
    checkpoint: Dict[str, Any] = dataclasses.field(default_factory=dict)  # dir, resumed_from_epoch

    def to_dict(self) -> Dict[str, Any]:
        """The metrics JSON (`--json`): no weights."""
        return {
            "task": self.task,
            "pretrained": self.pretrained,
            **self.metrics,
            "epochs": self.epochs,
            "dev_accuracy_per_epoch": [e["dev_accuracy"] for e in self.epochs],
            "timings": self.timings,
            "cache": self.cache,
            "restore": self.report.to_dict() if self.report is not None else None,
            "frozen": self.frozen,
            "auto": self.auto,
            "chosen": self.chosen,
            "checkpoint": self.checkpoint or None,
            "settings": self.settings.to_dict(),
            "model_config": self.config.to_dict(),
            "label_names": self.label_names,
        }

    def model(self) -> "TaskModel":
        """The fine-tuned model in memory (no disk)."""
        return TaskModel(self.config, self.values, self.vocab, self.tokenizer, self.label_names)


def _candidates(names: Sequence[str]) -> List[Tuple[str, List[str], List[str]]]:
    """freeze=auto: (label, transferred layers, frozen layers), tried in this order."""
    out = []
    for k in range(len(names), -1, -1):
        label = "freeze all" if k == len(names) else ("fine-tune all" if k == 0 else f"freeze {k}")
        out.append((label, list(names), list(names[:k])))
    out.append(("embedding only", list(names[:1]), []))
    out.append(("random init", [], []))
    return out


def fine_tune(task, pretrained=None, settings: Optional[TransferConfig] = None,
              model_config: Optional[ModelConfig] = None, train_size: Optional[int] = None,
              log: Optional[Callable[[str], None]] = None,
              checkpoint_dir: Optional[str] = None) -> TransferResult:
    """Trains a task model from an export (or from random weights) and evaluates it.

    Args:
      task: a `tasks.TaskData` (train/dev/test splits, label names).
      pretrained: an `export.Export`, an export directory (verified), or None for the
        random-init baseline (vocabulary from the training texts, min count 1).
      settings: TransferConfig (default: TransferConfig()).
      model_config: architecture for random init (default ModelConfig defaults); with an
        export the export's config is used and passing one is an error.
      train_size: draw a stratified, seeded subsample of this many training examples.
      log: called with one line per epoch and notes (the CLI prints them).
      checkpoint_dir: checkpoint after every epoch here (`run.json`, `state.json`,
        `epoch-N.ckpt.*`; with freeze="auto" one subdirectory per candidate). Calling again with
        the same arguments resumes from the last completed epoch and returns the result an
        uninterrupted call would (same weights, metrics and history); a finished run is
        evaluated again from its best checkpoint, not retrained. Other settings, data or
        export in the same directory raise ConfigError naming what differs.

    Returns:
      TransferResult.
    """
    from auxpretrain import tasks as tasks_lib

    settings = settings or TransferConfig()
    log = log or (lambda line: None)
    t_start = time.perf_counter()
    if isinstance(pretrained, (str, os.PathLike)):
        pretrained = export_lib.load_export(os.fspath(pretrained), verify=True)
    check_settings(settings, pretrained is not None)
    if pretrained is not None and model_config is not None:
        raise ConfigError("--model-config cannot be combined with --pretrained EXPORT: the "
                          "architecture comes from the export")
    if train_size is not None:
        if train_size > len(task.train):
            raise InputError(f"--train-size {train_size}: the training split has only "
                             f"{len(task.train)} examples")
        task = dataclasses.replace(task, train=tasks_lib.stratified_subsample(task.train, train_size,
                                                                              settings.seed))
    _check_task(task)

    timings: Dict[str, float] = {}
    t0 = time.perf_counter()
    values = source_vocab = source = None
    if pretrained is None:
        from auxpretrain.text import Tokenizer
        from auxpretrain.vocab import Vocabulary

        tokenizer = Tokenizer()
        vocab = Vocabulary.build((tokenizer.tokenize(t) for t in task.train.texts), min_count=1)
        base = model_config or ModelConfig(vocab_size=len(vocab))
        config = dataclasses.replace(base, vocab_size=len(vocab))
    else:
        _check_export_config(pretrained)
        tokenizer, config, source = pretrained.tokenizer, pretrained.config, str(pretrained.path)
        values = pretrained.values()
        vocab = pretrained.vocab
        if settings.vocab == "extend":
            vocab = _extended_vocab(vocab, (tokenizer.tokenize(t) for t in task.train.texts))
            config = dataclasses.replace(config, vocab_size=len(vocab))
            log(f"vocabulary: {len(pretrained.vocab)} export words + "
                f"{len(vocab) - len(pretrained.vocab)} new task words")
        source_vocab = pretrained.vocab
    timings["load_seconds"] = time.perf_counter() - t0
    if checkpoint_dir is not None:
        checkpoint_dir = os.fspath(checkpoint_dir)
        _check_run_dir(checkpoint_dir, _run_spec(task, pretrained, config, settings, train_size))

    t0 = time.perf_counter()
    data = {"train": _encode(task.train.texts, task.train.labels, tokenizer, vocab, config.max_length),
            "dev": _encode(task.dev.texts, task.dev.labels, tokenizer, vocab, config.max_length)}
    if len(task.test):
        data["test"] = _encode(task.test.texts, task.test.labels, tokenizer, vocab, config.max_length)
    timings["encode_seconds"] = time.perf_counter() - t0
    oov = float(np.mean(data["train"].ids[data["train"].ids > 0] == 1)) if data["train"].ids.any() else 0.0

    names = config.layer_names()
    num_classes = len(task.label_names)
    run_args = dict(data=data, config=config, num_classes=num_classes, values=values,
                    settings=settings, vocab=vocab, source_vocab=source_vocab, source=source, log=log,
                    checkpoint_dir=checkpoint_dir)
    auto_rows: List[Dict[str, Any]] = []
    chosen = ""
    if pretrained is None:
        run = _train_run("", transferred=[], frozen_layers=[], **run_args)
    else:
        layers = settings.layers
        default_layers = (pretrained.manifest.get("transfer") or {}).get("default_layers")
        if layers is None and default_layers and str(settings.freeze) in ("none", "embedding") \
                and settings.schedule == "constant":
            # the export says which layers transferred well when it was benchmarked
            layers = [n for n in default_layers if n in names]
            log(f"layers: {', '.join(layers)} (the export's default_layers; --layers all restores "
                f"every layer)")
        available = select_layers(names, None if layers == "all" else layers)
        freeze = parse_freeze(str(settings.freeze), names)
        if freeze is None:  # auto
            runs = []
            for label, transferred, frozen in _candidates(names):
                transferred = [n for n in transferred if n in available]
                if any(n not in transferred for n in frozen):
                    continue  # freezing layers that are not transferred would freeze random weights
                if checkpoint_dir is not None:  # one run directory per candidate
                    run_args["checkpoint_dir"] = os.path.join(checkpoint_dir, label.replace(" ", "-"))
                r = _train_run(label, transferred=transferred, frozen_layers=frozen, **run_args)
                runs.append(r)
                auto_rows.append({"candidate": label, "transferred": transferred, "frozen": frozen,
                                  "dev_accuracy": round(r.dev_accuracy, 5), "best_epoch": r.best_epoch,
                                  "seconds": r.timings.get("total_seconds")})
            best = max(range(len(runs)), key=lambda i: (runs[i].dev_accuracy, -i))
            run, chosen = runs[best], runs[best].label
            for i, row in enumerate(auto_rows):
                row["chosen"] = i == best
        else:
            not_transferred = [n for n in freeze if n not in available]
            if not_transferred:
                raise ConfigError(f"--freeze {settings.freeze} would freeze {', '.join(not_transferred)}, "
                                  f"which --layers does not transfer (it would stay random); "
                                  f"freeze fewer layers or transfer more")
            run = _train_run("", transferred=available, frozen_layers=freeze, **run_args)

    metrics: Dict[str, Any] = {"train_size": len(task.train), "dev_size": len(task.dev),
                               "test_size": len(task.test), "num_classes": num_classes,
                               "dev_accuracy": round(run.dev_accuracy, 5), "best_epoch": run.best_epoch,
                               "train_oov_rate": round(oov, 5)}
    if run.test_probs is not None:
        predictions = run.test_probs.argmax(-1)
        metrics["accuracy"] = round(accuracy(task.test.labels, predictions), 5)
        metrics["macro_f1"] = round(macro_f1(task.test.labels, predictions, num_classes), 5)
    else:
        metrics["accuracy"] = metrics["macro_f1"] = None
        metrics["note"] = "no test split: accuracy and macro_f1 are not measured"
    timings.update(run.timings)
    timings["total_seconds"] = round(time.perf_counter() - t_start, 3)
    timings = {k: round(v, 3) for k, v in timings.items()}
    return TransferResult(task=task.name, label_names=list(task.label_names), config=config,
                          vocab=vocab, tokenizer=tokenizer, pretrained=source, settings=settings,
                          metrics=metrics, epochs=run.epochs, report=run.report,
                          frozen=run.frozen_variables, cache=run.cache, timings=timings,
                          values=run.values, auto=auto_rows, chosen=chosen,
                          checkpoint={"dir": checkpoint_dir, "resumed_from_epoch": run.resumed_from}
                          if checkpoint_dir is not None else {})


def _run_spec(task, pretrained, config: ModelConfig, settings: TransferConfig,
              train_size: Optional[int]) -> Dict[str, Any]:
    """What decides a transfer run's result: a checkpoint directory holds one such run."""
    data = hashlib.sha256()
    for split in (task.train, task.dev, task.test):
        data.update(json.dumps([list(split.texts), np.asarray(split.labels).tolist()]).encode("utf-8"))
    export = None
    if pretrained is not None:
        files = json.dumps(pretrained.manifest.get("files", {}), sort_keys=True).encode("utf-8")
        export = hashlib.sha256(files).hexdigest()[:16]
    return {"kind": "transfer", "format_version": CHECKPOINT_FORMAT_VERSION, "task": task.name,
            "label_names": list(task.label_names), "data": data.hexdigest()[:16], "train_size": train_size,
            "pretrained": export, "model_config": config.to_dict(), "settings": settings.to_dict()}


_SPEC_NOTES = {"data": "the training, dev or test texts or labels differ",
               "pretrained": "another export, or none instead of one or the reverse"}


def _spec_diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> List[str]:
    """'key (old -> new)' for every difference; settings are named by their own keys."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _spec_diff(a, b, "" if key == "settings" else f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} ({_SPEC_NOTES.get(key) or f'{a!r} -> {b!r}'})")
    return out


def _check_run_dir(directory: str, spec: Mapping[str, Any]) -> None:
    """Refuses a directory holding another run; records `spec` in a new one."""
    path = os.path.join(directory, RUN_JSON)
    if os.path.exists(path):
        _, old = export_lib.read_descriptor(directory, RUN_JSON, "a transfer checkpoint directory",
                                            _CHECKPOINT_FIX, error=InputError)
        if old.get("kind") != "transfer":
            raise InputError(f"{path}: not written by `auxpretrain transfer` (another command's run "
                             "directory?); pass another --checkpoint-dir")
        diff = _spec_diff(old, spec)
        if diff:
            raise ConfigError(f"{directory} holds a transfer run with other settings ({'; '.join(diff)}); "
                              "use another --checkpoint-dir, or the same settings to resume")
        return
    try:
        os.makedirs(directory, exist_ok=True)
        _write_json_atomic(path, dict(spec))
    except OSError as e:
        raise InputError(f"{directory}: cannot write checkpoints there ({e.strerror or e}); "
                         "pass another --checkpoint-dir") from None


def _check_export_config(export) -> None:
    """The manifest's model_config must describe the checkpoint's variables (an edited manifest,
    or one of another model, would otherwise fail later with a confusing shape error)."""
    from auxpretrain.errors import ExportError

    for name, shape in export_lib.expected_variables(export.config).items():
        if name not in export.variables:
            raise ExportError(f"{export.path}: model_config has {name} but the export does not; the "
                              "manifest was edited or belongs to another model, re-export it")
        got = tuple(export.variables[name][0])
        if got != shape:
            raise ExportError(f"{export.path}: model_config implies {name} of shape {list(shape)} but the "
                              f"checkpoint has {list(got)}; the manifest was edited or belongs to another "
                              "model, re-export it")


def _extended_vocab(vocab, token_lists):
    """The export's vocabulary + the task's words it lacks (in first-seen order)."""
    from auxpretrain.vocab import Vocabulary

    seen = set(vocab.tokens)
    extra = []
    for tokens in token_lists:
        for t in tokens:
            if t not in seen:
                seen.add(t)
                extra.append(t)
    counts = list(vocab.counts) + [0] * len(extra)
    return Vocabulary(list(vocab.tokens) + extra, counts)


def format_auto_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The freeze=auto table: one line per configuration tried."""
    lines = ["  candidate        transferred                 frozen                      dev acc  epoch  seconds"]
    for r in rows:
        mark = "*" if r.get("chosen") else " "
        lines.append(f"{mark} {r['candidate']:<16} {','.join(r['transferred']) or '-':<27} "
                     f"{','.join(r['frozen']) or '-':<27} {r['dev_accuracy']:.4f}  {r['best_epoch']:>5}  "
                     f"{r['seconds'] if r['seconds'] is not None else 0:>7.1f}")
    return "\n".join(lines)


# ---------------------------------------------------------------- saving and predicting

class TaskModel:
    """A fine-tuned task model for prediction: `predict(texts)` -> label names.

    Built in its own graph from variable values (encoder under the export's names + `head/`).
    """

    def __init__(self, config: ModelConfig, values: Mapping[str, np.ndarray], vocab, tokenizer,
                 label_names: Sequence[str], batch_size: int = 256):
        self.config, self.vocab, self.tokenizer = config, vocab, tokenizer
        self.label_names = list(label_names)
        self.batch_size = batch_size
        self.graph = tf.Graph()
        with self.graph.as_default():
            self._ids = tf1.placeholder(tf.int32, [None, None], name="input_ids")
            enc = build_encoder(self._ids, config)
            logits = build_classifier(enc.pooled, len(self.label_names), scope=HEAD)
            self._probs = tf.nn.softmax(logits, name="probabilities")
            self.variables = {strip_suffix(v.name): v for v in tf1.global_variables()}
            missing = sorted(set(self.variables) - set(values))
            if missing:
                raise RestoreError(f"model values lack {', '.join(missing)}; the saved model is incomplete")
            self._assign = Assigner(list(self.variables.values()), self.graph, name="load")
            self._saver = tf1.train.Saver(var_list=self.variables, save_relative_paths=True)
        self.graph.finalize()
        self.session = tf1.Session(graph=self.graph)
        for name, v in self.variables.items():
            if tuple(np.shape(values[name])) != tuple(v.shape.as_list()):
                raise RestoreError(f"model value {name} has shape {list(np.shape(values[name]))}, "
                                   f"the model expects {v.shape.as_list()}")
        self._assign.set(self.session, values)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), num_classes] class probabilities."""
        tokens = [self.tokenizer.tokenize(t) for t in texts]
        if not tokens:
            return np.zeros((0, len(self.label_names)), np.float32)
        ids, lengths = self.vocab.encode_batch(tokens, self.config.max_length)
        out = np.zeros((len(tokens), len(self.label_names)), np.float32)
        for idx in _length_batches(np.asarray(lengths), self.batch_size):
            out[idx] = self.session.run(self._probs, {self._ids: ids[idx, :_width(lengths[idx])]})
        return out

    def predict(self, texts: Sequence[str]) -> List[str]:
        """Label names of `texts`."""
        return [self.label_names[i] for i in self.predict_proba(texts).argmax(-1)]

    def values(self) -> Dict[str, np.ndarray]:
        return self._assign.get(self.session)

    def get_layer_params(self, layer: Union[int, str]) -> Dict[str, np.ndarray]:
        """Values of one layer (index in config.layer_names() + head, or a name), skflow style."""
        name = self._layer_name(layer)
        return {k: v for k, v in self.values().items() if layer_of(k) == name}

    def set_layer_params(self, layer: Union[int, str], values: Mapping[str, np.ndarray]) -> None:
        """Sets one layer's variables from `values` (keys: full names or the part after 'layer/')."""
        name = self._layer_name(layer)
        current = self.values()
        for key, value in values.items():
            full = key if "/" in key else f"{name}/{key}"
            if full not in current or layer_of(full) != name:
                raise RestoreError(f"{full}: not a variable of layer {name} "
                                   f"({', '.join(k for k in current if layer_of(k) == name)})")
            if np.shape(value) != current[full].shape:
                raise RestoreError(f"{full}: shape {list(np.shape(value))}, expected {list(current[full].shape)}")
            current[full] = np.asarray(value, np.float32)
        self._assign.set(self.session, current)

    def _layer_name(self, layer) -> str:
        names = self.config.layer_names() + [HEAD]
        if isinstance(layer, int):
            if not 0 <= layer < len(names):
                raise RestoreError(f"layer {layer}: choose 0..{len(names) - 1} ({', '.join(names)})")
            return names[layer]
        if layer not in names:
            raise RestoreError(f"unknown layer {layer!r}; the model has {', '.join(names)}")
        return layer

    def save(self, out_dir: str, extra: Optional[Mapping[str, Any]] = None) -> str:
        """Writes the model directory atomically: model.json, vocab.txt, model.ckpt.*."""
        out_dir = os.path.abspath(out_dir)
        parent = os.path.dirname(out_dir)
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.tmp-", dir=parent)
        try:
            with self.graph.as_default():
                self._saver.save(self.session, os.path.join(tmp, MODEL_CKPT), write_meta_graph=False,
                                 write_state=False)
            self.vocab.save(os.path.join(tmp, MODEL_VOCAB))
            files = {n: export_lib.sha256_file(os.path.join(tmp, n)) for n in sorted(os.listdir(tmp))}
            meta = {"format_version": MODEL_FORMAT_VERSION, "package": "auxpretrain",
                    "kind": "task_model", "label_names": self.label_names,
                    "model_config": self.config.to_dict(), "tokenizer": self.tokenizer.to_dict(),
                    "checkpoint": MODEL_CKPT, "files": files}
            meta.update(dict(extra or {}))
            with open(os.path.join(tmp, MODEL_JSON), "w", encoding="utf-8") as f:
                json.dump(meta, f, indent=2)
                f.write("\n")
            export_lib.replace_dir(tmp, out_dir, error=InputError)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out_dir

    def close(self) -> None:
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def save_model(out_dir: str, result: TransferResult) -> str:
    """Saves a fine-tuned model (see TaskModel.save); the metrics go into model.json too."""
    with result.model() as model:
        return model.save(out_dir, extra={"task": result.task, "pretrained": result.pretrained,
                                          "metrics": result.metrics, "frozen": result.frozen})


def load_model(path: str) -> TaskModel:
    """Opens a directory written by `save_model` / `auxpretrain transfer --out` (files verified)."""
    from auxpretrain.text import Tokenizer
    from auxpretrain.vocab import Vocabulary

    if not os.path.isdir(path):
        raise InputError(f"{path}: no such model directory (written by `auxpretrain transfer --out`)")
    meta_path, meta = export_lib.read_descriptor(path, MODEL_JSON, "a model saved by `auxpretrain "
                                                 "transfer --out`", "save the model again", error=InputError)
    if meta.get("kind") != "task_model":
        raise InputError(f"{meta_path}: not an auxpretrain task model")
    if meta.get("format_version") != MODEL_FORMAT_VERSION:
        raise InputError(f"{meta_path}: format_version {meta.get('format_version')} is not supported "
                         f"(this auxpretrain reads {MODEL_FORMAT_VERSION})")
    try:
        files = dict(meta["files"])
        config = ModelConfig.from_dict(meta["model_config"], where=f"{meta_path}: model_config")
        tokenizer = Tokenizer.from_dict(meta["tokenizer"])
        label_names = list(meta["label_names"])
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{meta_path}: incomplete or edited ({e}); save the model again") from None
    export_lib.check_file_names(files, meta_path, error=InputError)
    export_lib.verify_files(path, files, "saved model", "save the model again", error=InputError)
    vocab = Vocabulary.load(os.path.join(path, MODEL_VOCAB))
    if len(vocab) != config.vocab_size:
        raise InputError(f"{os.path.join(path, MODEL_VOCAB)}: {len(vocab)} tokens, the model has "
                         f"{config.vocab_size} embedding rows")
    prefix = os.path.join(path, meta.get("checkpoint", MODEL_CKPT))
    try:
        reader = tf1.train.NewCheckpointReader(prefix)
        values = {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}
    except Exception as e:  # TF raises several error types for a damaged checkpoint
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InputError(f"{prefix}: cannot read the checkpoint ({first}); save the model again") from None
    return TaskModel(config, values, vocab, tokenizer, label_names)
