"""One downstream training run: build the task graph, restore the chosen layers, cache what is
frozen, train with early stopping on dev accuracy, evaluate.

- frozen-output cache: when the bottom layers are frozen, their outputs are computed once in a
  "lower" graph and the remaining layers train in an "upper" graph fed from the cache (same
  variable names); all layers frozen caches the pooled vector and only the head trains;
- schedules: constant Adam, or ULMFiT's gradual unfreezing with discriminative learning rates
  and a slanted triangular learning rate;
- early stopping keeps the best epoch's weights;
- with a checkpoint directory, every epoch is committed (see transfer.checkpoints) and a rerun
  resumes: epoch e's shuffle is drawn from (seed, e), step s's dropout masks from (seed, s).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from auxpretrain.config import ModelConfig, TransferConfig
from auxpretrain.model import freezing
from auxpretrain.model.schedules import discriminative_factors, gradual_stages, slanted_triangular
from auxpretrain.model.variables import EMBEDDING, HEAD, layer_of, strip_suffix
from auxpretrain.transfer.checkpoints import EpochCheckpoints
from auxpretrain.transfer.restore import Assigner, RestoreReport, restore, values_from_session
from auxpretrain.transfer.task_graph import (IDS, POOLED, SEQUENCE, EncodedSplit, Feeder, accuracy, batch_width,
                                             build_task_graph, length_batches, predict_probs)

tf1 = tf.compat.v1


@dataclasses.dataclass
class RunResult:
    label: str
    transferred: List[str]
    frozen_layers: List[str]
    epochs: List[Dict[str, Any]]
    best_epoch: int
    dev_accuracy: float
    dev_predictions: np.ndarray
    dev_probs: np.ndarray  # float [dev, classes] of the best epoch
    test_probs: Optional[np.ndarray]
    values: Dict[str, np.ndarray]
    report: Optional[RestoreReport]
    frozen_variables: List[str]
    trained_variables: List[str]
    cache: Dict[str, Any]
    timings: Dict[str, float]
    resumed_from: Optional[int] = None  # epochs restored from a checkpoint (None: trained from the start)


def _start_of_training(var_list, restored_layers, settings: TransferConfig):
    """The restored variables that are trained: with `settings.rescale`, an op multiplying
    those of the convolution layers by it; with `settings.l2_sp`, an anchor variable for each
    (their values at the start of training, copied by the same op), which the train op pulls
    them toward. -> ({name: anchor}, the op to run after the restore, or None)."""
    restored = [v for v in var_list if layer_of(strip_suffix(v.name)) in set(restored_layers)]
    ops, anchors = [], {}
    if settings.rescale != 1.0:
        ops = [tf1.assign(v, v * settings.rescale) for v in restored
               if layer_of(strip_suffix(v.name)) != EMBEDDING]
    if settings.l2_sp and restored:
        with tf.control_dependencies(ops), tf1.variable_scope("l2_sp_anchors"):
            for v in restored:
                name = strip_suffix(v.name)
                anchors[name] = tf1.get_variable(name, v.shape, v.dtype.base_dtype, tf1.zeros_initializer(),
                                                 trainable=False)
                ops.append(tf1.assign(anchors[name], v))
    return anchors, (tf.group(*ops) if ops else None)


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

def train_run(label: str, data: Dict[str, EncodedSplit], config: ModelConfig, num_classes: int,
               values: Optional[Dict[str, np.ndarray]], transferred: Sequence[str],
               frozen_layers: Sequence[str], settings: TransferConfig, vocab=None, source_vocab=None,
               source: Optional[str] = None, log: Callable[[str], None] = lambda s: None,
               checkpoint_dir: Optional[str] = None) -> RunResult:
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
    kind, first_layer, caches = IDS, 0, {}
    lower_values: Dict[str, np.ndarray] = {}
    lower_report = None
    if m == 1 and len(names) > 1 and settings.cache:
        # a frozen embedding alone: its lookup costs less than feeding a [n, T, E] cache
        cache_info["reason"] = "only the embedding is frozen: its lookup is as cheap as a cache"
    elif m and settings.cache:
        if m == len(names):
            kind, width = POOLED, config.pooled_size
            need = sum(len(d) for d in data.values() if d is not None) * width * 4
        elif config.pool_layers == "all":  # the sentence vector also pools the frozen layers' outputs
            cache_info["reason"] = "pool_layers all pools the frozen layers too: they run in the model"
            need = 0
        else:
            kind, width = SEQUENCE, config.embedding_size if m == 1 else config.hidden_size
            first_layer = m - 1
            need = sum(len(d) * batch_width(d.lengths) for d in data.values() if d is not None) * width * 4
        if kind != IDS:
            cache_info.update(boundary=names[m - 1] if kind == SEQUENCE else POOLED, bytes=int(need))
        if need > settings.cache_limit_bytes:
            log(f"frozen-output cache skipped: it would take {need / 2**30:.1f} GiB "
                f"(limit {settings.cache_limit_bytes / 2**30:.1f} GiB); training without it")
            cache_info["reason"] = "too large"
            kind, first_layer = IDS, 0
    elif m:
        cache_info["reason"] = "disabled (--no-cache)"

    if kind != IDS and settings.layer_dropout > 0:
        log("note: the frozen layers below the cache run without layer dropout (--no-cache keeps it)")
    if kind != IDS:
        t0 = time.perf_counter()
        lower_config = config if kind == POOLED else dataclasses.replace(config, num_layers=m - 1)
        lower = build_task_graph(lower_config, num_classes, seed, kind=IDS, frozen=names[:m])
        init_lower, lower_report = _restore_into(lower.graph, values, [n for n in names[:m] if n in transferred],
                                                 settings, source, remap_vocab, src_vocab, rng_vocab)
        target = lower.encoder.pooled if kind == POOLED else lower.encoder.sequence
        with lower.graph.as_default():
            init_all = tf1.global_variables_initializer()
        sess = tf1.Session(graph=lower.graph)
        try:
            sess.run(init_all)
            if init_lower:
                init_lower(sess)
            for split, d in data.items():
                if d is None:
                    continue
                shape = (len(d), width) if kind == POOLED else (len(d), batch_width(d.lengths), width)
                out = np.zeros(shape, np.float32)
                for idx in length_batches(d.lengths, settings.eval_batch_size):
                    value = sess.run(target, {lower.inputs["ids"]: d.ids[idx, :batch_width(d.lengths[idx])]})
                    if kind == POOLED:
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
    frozen_here = [n for n in frozen_layers if kind == IDS or n not in names[:m]]
    model = build_task_graph(config, num_classes, seed, kind=kind, first_layer=first_layer,
                         frozen=frozen_here, layer_dropout=settings.layer_dropout > 0)
    upper_layers = [n for n in transferred if n in model.layer_names]
    init_model, report = _restore_into(model.graph, values, upper_layers, settings, source,
                                       remap_vocab, src_vocab, rng_vocab)
    if lower_report is not None:
        report = lower_report if report is None else lower_report.merge(report)
    feeders = {split: Feeder(kind, d, caches.get(split)) for split, d in data.items() if d is not None}

    with model.graph.as_default():
        present = model.layer_names + [HEAD]
        all_vars = model.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
        var_list = freezing.trainable_var_list(model.graph, frozen=frozen_here)
        groups = freezing.layer_groups(var_list, present)
        stages = None
        if settings.schedule == "gradual":
            stages = gradual_stages(list(groups))
        if settings.schedule == "gradual" or settings.lr_factor != 1.0 or \
                (settings.embedding_lr_scale != 1.0 and "embedding" in groups):
            factors = discriminative_factors(list(groups), settings.lr_factor)
            if "embedding" in factors:
                factors["embedding"] *= settings.embedding_lr_scale
        else:
            groups, factors = {"all": var_list}, None
        anchors, start_op = _start_of_training(var_list, upper_layers, settings)
        train = freezing.build_train_ops(model.loss, groups, model.learning_rate,
                                         frozen=[v for v in all_vars if layer_of(strip_suffix(v.name)) in frozen_here],
                                         factors=factors, stages=stages,
                                         weight_decay=settings.weight_decay, anchors=anchors,
                                         anchor_weight=settings.l2_sp)
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

    sess = tf1.Session(graph=model.graph)
    epochs: List[Dict[str, Any]] = []
    prefix = f"[{label}] " if label else ""
    try:
        train_data = feeders["train"]
        n = len(train_data.data)
        steps_per_epoch = max(1, -(-n // settings.batch_size))
        total_steps = steps_per_epoch * settings.epochs
        best, best_epoch, best_values, since_best = -1.0, 0, None, 0
        separating = False  # the model has predicted more than one class on dev (patience counts from then)
        step, start, finished, resumed_from = 0, 0, False, None
        checkpoints = EpochCheckpoints(checkpoint_dir, saver, trained_names) if checkpoint_dir else None
        state = checkpoints.load() if checkpoints else None
        if state is None:
            sess.run(init_all)
            if init_model:
                init_model(sess)
            if start_op is not None:  # rescaling, L2-SP's anchors (a resumed run has both in its checkpoint)
                sess.run(start_op)
        else:
            best_values = checkpoints.restore(sess, state)
            start = resumed_from = int(state["epoch"])
            step, finished = int(state["step"]), bool(state["finished"])
            best, best_epoch = float(state["best_dev_accuracy"]), int(state["best_epoch"])
            since_best, epochs = int(state["epochs_since_best"]), list(state["history"])
            separating = bool(state.get("separating", True))
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
                batches = bucket_batches(order, train_data.data.lengths, settings.batch_size, rng)
            losses = []
            for idx in batches:
                lr = settings.learning_rate
                if settings.schedule == "gradual":
                    lr *= slanted_triangular(step, total_steps, settings.cut_frac, settings.ratio)
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
            dev_probs = predict_probs(sess, model, feeders["dev"], settings.eval_batch_size)
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
            # an epoch that predicts one class for all of dev (the majority, while the head is still
            # finding its way) does not count towards patience: a run never stops stuck there
            separating = separating or len(np.unique(dev_probs.argmax(-1))) > 1
            if dev_acc > best:
                best, best_epoch, best_values, since_best = dev_acc, epoch + 1, snapshot.get(sess), 0
            elif separating:
                since_best += 1
            stop = bool(settings.patience and all_unfrozen and since_best >= settings.patience)
            if checkpoints:
                checkpoints.save(sess, {"epoch": epoch + 1, "step": step,
                                        "finished": stop or epoch + 1 == settings.epochs,
                                        "best_dev_accuracy": best, "best_epoch": best_epoch,
                                        "epochs_since_best": since_best, "separating": separating,
                                        "history": epochs})
            if stop:
                break
        timings["train_seconds"] = train_seconds
        if not separating:
            log(f"{prefix}note: every epoch predicted one class for all of dev: the features do not separate "
                "this task yet (try a higher learning rate, more epochs, or freezing less)")
        snapshot.set(sess, best_values)
        t0 = time.perf_counter()
        dev_probs = predict_probs(sess, model, feeders["dev"], settings.eval_batch_size)
        test_probs = (predict_probs(sess, model, feeders["test"], settings.eval_batch_size)
                      if "test" in feeders and len(feeders["test"].data) else None)
        timings["eval_seconds"] = time.perf_counter() - t0
        model_values = everything.get(sess)
    finally:
        sess.close()
    values_out = dict(lower_values)
    values_out.update(model_values)
    timings["total_seconds"] = time.perf_counter() - t_start
    if kind == IDS and m == 0:
        cache_info.setdefault("reason", "nothing frozen at the bottom")
    return RunResult(label=label, transferred=transferred, frozen_layers=frozen_layers, epochs=epochs,
                      best_epoch=best_epoch, dev_accuracy=best, dev_predictions=dev_probs.argmax(-1), dev_probs=dev_probs,
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

def bucket_batches(order: np.ndarray, lengths: np.ndarray, batch_size: int, rng) -> List[np.ndarray]:
    """Length-sorted bucketing (`bucket`): sort chunks of 50 batches by length, shuffle the batches."""
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
