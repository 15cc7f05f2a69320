"""Downstream transfer: `fine_tune(task, export_or_None, TransferConfig(...))`, what
`auxpretrain transfer` runs.

- the task model is the export's encoder (same names: `embedding/`, `layer_i/`) + dropout +
  a softmax head (`head/`), see transfer.task_graph; `pretrained=None` builds the same
  architecture from random weights, the baseline every result is compared with;
- the export's layers are restored by name and shape (`transfer.restore`, strict unless
  `allow_partial`), with a `RestoreReport`; unless told, the layers the export names in
  `transfer.default_layers`;
- freezing (`freeze`: none | all | embedding | N | auto) holds on every update path
  (`model.freezing.build_train_ops`); `freeze="auto"` tries freezing everything, unfreezing
  from the top one layer at a time, transferring only the embedding and random init, and keeps
  the best by dev accuracy;
- one configuration is trained by `transfer.training_run.train_run` (frozen-output cache,
  schedules, early stopping, per-epoch checkpoints).

The fine-tuned model is saved with `save_model(dir, result)` and used later with
`load_model(dir).predict(texts)` (transfer.saved).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from auxpretrain.config import TASK_LENGTH_RULE, ModelConfig, TransferConfig, task_max_length
from auxpretrain.data.tasks import stratified_subsample
from auxpretrain.data.text import Tokenizer
from auxpretrain.data.vocab import Vocabulary
from auxpretrain.errors import ConfigError, ExportError, InputError
from auxpretrain.export import expected_variables, load_export
from auxpretrain.model.variables import parse_freeze, select_layers
from auxpretrain.transfer.checkpoints import check_run_dir, run_spec
from auxpretrain.transfer.ngrams import choose_weight, fit_ngram_model, fuse
from auxpretrain.transfer.restore import RestoreReport
from auxpretrain.transfer.saved import TaskModel
from auxpretrain.transfer.task_graph import accuracy, encode_split, macro_f1
from auxpretrain.transfer.training_run import train_run


def check_settings(settings: TransferConfig, pretrained: bool) -> None:
    """Conflicting options, one line each (ConfigError)."""
    freeze = str(settings.freeze)
    if not pretrained:
        if freeze != "none":
            raise ConfigError(f"--freeze {freeze} needs --pretrained EXPORT: with --pretrained none "
                              "every layer starts random, there is nothing pretrained to freeze")
        if settings.layers not in (None, "default"):
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
    ngram: Any = None  # the n-gram member (transfer.ngrams.NgramModel) of the ensemble, or None
    ensemble_weight: float = 1.0  # the neural member's weight in the fused probabilities

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

    def model(self) -> TaskModel:
        """The fine-tuned model in memory (no disk)."""
        return TaskModel(self.config, self.values, self.vocab, self.tokenizer, self.label_names,
                         ngram=self.ngram, ensemble_weight=self.ensemble_weight)


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
    settings = settings or TransferConfig()
    log = log or (lambda line: None)
    t_start = time.perf_counter()
    if isinstance(pretrained, (str, os.PathLike)):
        pretrained = load_export(os.fspath(pretrained), verify=True)
    check_settings(settings, pretrained is not None)
    if pretrained is not None and model_config is not None:
        raise ConfigError("--model-config cannot be combined with --pretrained EXPORT: the "
                          "architecture comes from the export")
    if train_size is not None:
        if train_size > len(task.train):
            raise InputError(f"--train-size {train_size}: the training split has only "
                             f"{len(task.train)} examples")
        task = dataclasses.replace(task, train=stratified_subsample(task.train, train_size,
                                                                              settings.seed))
    _check_task(task)

    timings: Dict[str, float] = {}
    t0 = time.perf_counter()
    values = source_vocab = source = None
    if pretrained is None:
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
        check_run_dir(checkpoint_dir, run_spec(task, pretrained, config, settings, train_size))

    t0 = time.perf_counter()
    max_length = settings.max_length or task_max_length(map(len, tokenizer.tokenize_batch(task.train.texts)))
    config = dataclasses.replace(config, max_length=max_length)  # the task's length, not pretraining's
    data = {"train": encode_split(task.train.texts, task.train.labels, tokenizer, vocab, max_length),
            "dev": encode_split(task.dev.texts, task.dev.labels, tokenizer, vocab, max_length)}
    if len(task.test):
        data["test"] = encode_split(task.test.texts, task.test.labels, tokenizer, vocab, max_length)
    timings["encode_seconds"] = time.perf_counter() - t0
    texts_cut = {split: d.cut for split, d in data.items()}
    log(f"max length {max_length} tokens ({'max_length' if settings.max_length else TASK_LENGTH_RULE}); texts cut: "
        + ", ".join(f"{n} of {len(data[split])} {split}" for split, n in texts_cut.items()))
    oov = float(np.mean(data["train"].ids[data["train"].ids > 0] == 1)) if data["train"].ids.any() else 0.0

    names = config.layer_names()
    num_classes = len(task.label_names)
    run_args = dict(data=data, config=config, num_classes=num_classes, values=values,
                    settings=settings, vocab=vocab, source_vocab=source_vocab, source=source, log=log,
                    checkpoint_dir=checkpoint_dir)
    auto_rows: List[Dict[str, Any]] = []
    chosen = ""
    if pretrained is None:
        run_args["config"] = config = task_config(config, settings, [])
        run = train_run("", transferred=[], frozen_layers=[], **run_args)
    else:
        available = transfer_layers(settings, pretrained, log)
        freeze = parse_freeze(str(settings.freeze), names, restored=available)
        if freeze is None:  # auto
            runs = []
            for label, transferred, frozen in _candidates(names):
                transferred = [n for n in transferred if n in available]
                if any(n not in transferred for n in frozen):
                    continue  # freezing layers that are not transferred would freeze random weights
                if checkpoint_dir is not None:  # one run directory per candidate
                    run_args["checkpoint_dir"] = os.path.join(checkpoint_dir, label.replace(" ", "-"))
                run_args["config"] = task_config(config, settings, frozen)
                r = train_run(label, transferred=transferred, frozen_layers=frozen, **run_args)
                runs.append(r)
                auto_rows.append({"candidate": label, "transferred": transferred, "frozen": frozen,
                                  "dev_accuracy": round(r.dev_accuracy, 5), "best_epoch": r.best_epoch,
                                  "seconds": r.timings.get("total_seconds")})
            best = max(range(len(runs)), key=lambda i: (runs[i].dev_accuracy, -i))
            run, chosen = runs[best], runs[best].label
            config = task_config(config, settings, auto_rows[best]["frozen"])
            for i, row in enumerate(auto_rows):
                row["chosen"] = i == best
        else:
            not_transferred = [n for n in freeze if n not in available]
            if not_transferred:
                raise ConfigError(f"--freeze {settings.freeze} would freeze {', '.join(not_transferred)}, "
                                  f"which --layers does not transfer (it would stay random); "
                                  f"freeze fewer layers or transfer more")
            run_args["config"] = config = task_config(config, settings, freeze)
            if config.pool_layers == "all" and settings.pool_layers == "auto":
                log("pool_layers auto: every layer is frozen, so the sentence vector pools the embedding's "
                    "and every layer's outputs (--pool-layers top: the top layer's only)")
            run = train_run("", transferred=available, frozen_layers=freeze, **run_args)

    ngram, weight, members, test_probs = _ensemble(task, run, settings, tokenizer, num_classes, log)
    metrics: Dict[str, Any] = {"train_size": len(task.train), "dev_size": len(task.dev),
                               "test_size": len(task.test), "num_classes": num_classes,
                               "max_length": max_length, "texts_cut": texts_cut,
                               "dev_accuracy": round(run.dev_accuracy, 5), "best_epoch": run.best_epoch,
                               "train_oov_rate": round(oov, 5)}
    if members:
        metrics["ensemble"] = members
    if test_probs is not None:
        predictions = test_probs.argmax(-1)
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
                          values=run.values, auto=auto_rows, chosen=chosen, ngram=ngram, ensemble_weight=weight,
                          checkpoint={"dir": checkpoint_dir, "resumed_from_epoch": run.resumed_from}
                          if checkpoint_dir is not None else {})


def task_config(config: ModelConfig, settings: TransferConfig, frozen_layers) -> ModelConfig:
    """The task model's architecture: `config` with `settings.pool_layers` ("auto": every
    layer's output pooled when every layer is frozen, else `config`'s own)."""
    pool_layers = settings.pool_layers
    if pool_layers == "auto":
        pool_layers = "all" if set(config.layer_names()) <= set(frozen_layers) else config.pool_layers
    return dataclasses.replace(config, pool_layers=pool_layers)


def _ensemble(task, run, settings: TransferConfig, tokenizer, num_classes: int, log):
    """(the n-gram member, the neural weight, the members' metrics, the test probabilities):
    a TF-IDF word + character n-gram logistic regression (C on dev), averaged with the neural
    model's probabilities with the weight of the lowest dev cross-entropy; (None, 1.0, {}, the
    neural model's test probabilities) when the ensemble is off."""
    use = settings.ensemble == "ngram" or (settings.ensemble == "auto"
                                          and len(task.train) >= settings.ensemble_min_examples)
    if not use:
        if settings.ensemble == "auto":
            log(f"ensemble: neural model only ({len(task.train)} training examples, fewer than "
                f"ensemble_min_examples {settings.ensemble_min_examples})")
        return None, 1.0, {}, run.test_probs
    t0 = time.perf_counter()
    ngram, c_scores = fit_ngram_model(task.train.texts, task.train.labels, task.dev.texts, task.dev.labels,
                                      num_classes, tokenizer)
    ngram_dev = ngram.predict_proba(task.dev.texts)
    weight, losses = choose_weight(run.dev_probs, ngram_dev, task.dev.labels)
    fused_dev = accuracy(task.dev.labels, fuse(run.dev_probs, ngram_dev, weight).argmax(-1))
    members = {"neural_weight": weight, "dev_cross_entropy_by_weight": losses, "dev_accuracy": round(fused_dev, 5),
               "neural_dev_accuracy": round(run.dev_accuracy, 5),
               "ngram_dev_accuracy": round(accuracy(task.dev.labels, ngram_dev.argmax(-1)), 5),
               "ngram_c": ngram.c, "ngram_dev_accuracy_by_c": c_scores,
               "ngram_seconds": round(time.perf_counter() - t0, 3)}
    test_probs = None
    if run.test_probs is not None:
        ngram_test = ngram.predict_proba(task.test.texts)
        test_probs = fuse(run.test_probs, ngram_test, weight)
        members["neural_accuracy"] = round(accuracy(task.test.labels, run.test_probs.argmax(-1)), 5)
        members["ngram_accuracy"] = round(accuracy(task.test.labels, ngram_test.argmax(-1)), 5)
    log(f"ensemble: neural weight {weight} (dev cross-entropy {losses}); dev accuracy neural "
        f"{run.dev_accuracy:.4f}, n-gram {members['ngram_dev_accuracy']:.4f} (C {ngram.c}), fused {fused_dev:.4f}")
    return ngram, weight, members, test_probs


def transfer_layers(settings: TransferConfig, export, log: Optional[Callable[[str], None]] = None) -> List[str]:
    """The export layers a run restores: `settings.layers` resolved against the export.

    "default": the export's `transfer.default_layers` when fine-tuning with freeze none or
    embedding and the constant schedule (the layers that transferred well when it was
    benchmarked), else every layer; None or "all": every layer; n, a regex or names as in
    `select_layers`. `fit`, `partial_fit` and `fine_tune` all resolve layers here."""
    names = export.config.layer_names()
    layers = settings.layers
    if layers == "default":
        default_layers = (export.manifest.get("transfer") or {}).get("default_layers")
        if default_layers and str(settings.freeze) in ("none", "embedding") and settings.schedule == "constant":
            chosen = [n for n in default_layers if n in names]
            if log is not None:
                log(f"layers: {', '.join(chosen)} (the export's default_layers; --layers all restores every layer)")
            return chosen
        layers = None
    return select_layers(names, None if layers == "all" else layers)

def _check_export_config(export) -> None:
    """The manifest's model_config must describe the checkpoint's variables (an edited manifest,
    or one of another model, would otherwise fail later with a confusing shape error)."""
    for name, shape in expected_variables(export.config).items():
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
