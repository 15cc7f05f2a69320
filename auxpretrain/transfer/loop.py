"""A training loop for your own tf.compat.v1 graph and session, and batched inference.

- `fit_loop(sess, train_op, inputs, labels, train=(x, y), dev=(x, y), logits=...)`: shuffled
  minibatches (each epoch's order drawn from (seed, epoch)), each batch of token ids cut to its
  longest text, dev accuracy after every epoch in length-sorted batches, early stopping after
  `patience` epochs without a better dev accuracy (counted once the model predicts more than one
  class on dev: it never stops stuck at the majority class), and the best epoch's weights put
  back at the end. What `TextClassifier.fit` and `fine_tune` do for their own graphs.
- `run_batched(sess, tensor, inputs, x)`: a tensor's value for every row of x, in batches; with
  a frozen encoder's `pooled` (or `sequence`) tensor it is the frozen-output cache: compute it
  once, then train a head fed from it.

Neither adds an op to the graph (the best weights go back through each variable's initializer
feed, as `load_values` does), so both work on a finalized graph.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from auxpretrain.config import TransferConfig, default_of
from auxpretrain.errors import ConfigError, InputError

tf1 = tf.compat.v1


def _is_ids(x: np.ndarray) -> bool:
    return x.ndim == 2 and np.issubdtype(x.dtype, np.integer)


def _lengths(x: np.ndarray) -> np.ndarray:
    """Tokens per row of 0-padded ids (0 is padding, and only padding)."""
    return (x != 0).sum(axis=1) if _is_ids(x) else np.ones(len(x), np.int64)


def batch_of(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows `idx` of x; token ids [n, T] are cut to the batch's longest text (at least 1 column)."""
    if not _is_ids(x):
        return x[idx]
    width = max(int((x[idx] != 0).sum(axis=1).max(initial=0)), 1)
    return x[idx, :width]


def run_batched(sess, tensor, inputs, x, batch_size: int = default_of(TransferConfig, "eval_batch_size"),
                feed: Optional[Mapping[Any, Any]] = None) -> np.ndarray:
    """The value of `tensor` for every row of `x`, computed in batches and returned in x's order.

    Args:
      sess: the session of `tensor`'s graph.
      tensor: what to compute, e.g. logits, or a frozen encoder's `pooled` [batch, P] or
        `sequence` [batch, time, W] (the frozen-output cache).
      inputs: the placeholder that takes x's rows.
      x: int token ids [n, T] (0 = padding; batches are sorted by length and each cut to its
        longest text), or any array [n, ...] (fed as is).
      batch_size: rows per batch.
      feed: more feeds for every batch.

    Returns:
      ndarray [n, ...]; an output with a time axis is zero-padded to the longest batch.
    """
    x = np.asarray(x)
    order = np.argsort(_lengths(x), kind="stable")
    parts = []
    for i in range(0, len(x), batch_size):
        idx = order[i:i + batch_size]
        parts.append((idx, sess.run(tensor, {**(feed or {}), inputs: batch_of(x, idx)})))
    if not parts:
        raise InputError("run_batched: no rows to run")
    first = parts[0][1]
    width = max(p.shape[1] for _, p in parts) if first.ndim >= 3 else None
    shape = (len(x),) + ((width,) + first.shape[2:] if width is not None else first.shape[1:])
    out = np.zeros(shape, first.dtype)
    for idx, value in parts:
        if width is None:
            out[idx] = value
        else:
            out[idx, :value.shape[1]] = value
    return out


@dataclasses.dataclass
class FitHistory:
    """What `fit_loop` returns: one row per epoch (epoch, train_loss when `loss` was given,
    dev_accuracy, seconds), the best epoch (1-based; its weights are the variables' values now),
    its dev accuracy, and whether early stopping ended the run."""

    epochs: List[Dict[str, Any]]
    best_epoch: int
    best_dev_accuracy: float
    stopped_early: bool


def _checked(name: str, pair) -> Tuple[np.ndarray, np.ndarray]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise InputError(f"fit_loop: {name} must be an (x, labels) pair")
    x, y = np.asarray(pair[0]), np.asarray(pair[1])
    if len(x) != len(y) or not len(x):
        raise InputError(f"fit_loop: {name} has {len(x)} rows and {len(y)} labels; give the same number (> 0)")
    return x, y


def _load(sess, variables: Sequence, values: Sequence[np.ndarray]) -> None:
    """Each value into its variable through the initializer feed (what Variable.load does): no new op."""
    for var, value in zip(variables, values):
        sess.run(var.initializer, {var.initializer.inputs[1]: value})


def fit_loop(sess, train_op, inputs, labels, train, dev, logits, *,
             epochs: int = default_of(TransferConfig, "epochs"),
             batch_size: int = default_of(TransferConfig, "batch_size"),
             patience: int = default_of(TransferConfig, "patience"),
             seed: int = default_of(TransferConfig, "seed"),
             eval_batch_size: int = default_of(TransferConfig, "eval_batch_size"),
             loss=None, train_feed: Optional[Mapping[Any, Any]] = None, variables: Optional[Sequence] = None,
             log: Optional[Callable[[str], None]] = None) -> FitHistory:
    """Trains `train_op` on minibatches with early stopping on dev accuracy; keeps the best epoch.

    Args:
      sess: a session of your graph, variables initialised (and restored: `init_fn(sess)`).
      train_op: one training step (e.g. `optimizer.minimize(loss, var_list=restored.var_list)`).
      inputs: the placeholder of the examples: token ids int32 [batch, time] (each batch is cut
        to its longest text, so the placeholder's time axis must be None), or cached features.
      labels: the int placeholder [batch] of the class ids.
      train, dev: (x, labels): x as `inputs` takes it (ids from `encode_texts`, or
        `run_batched` outputs), labels int [n].
      logits: float [batch, classes]; the dev accuracy is the share of argmax == label.
      epochs, batch_size, patience (0: never stop early), seed: as TransferConfig's.
      loss: a scalar tensor; when given, each row has the epoch's mean training loss.
      train_feed: feeds for training steps only, e.g. {dropout_rate: 0.5}.
      variables: the variables whose best-epoch values are kept and put back at the end
        (default: the graph's TRAINABLE_VARIABLES; frozen ones do not change anyway).
      log: called with one line per epoch.

    Returns:
      FitHistory. The variables hold the best epoch's values when it returns.
    """
    x, y = _checked("train", train)
    dx, dy = _checked("dev", dev)
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"fit_loop: {name} must be an integer >= 1, got {value!r}")
    if variables is None:
        variables = sess.graph.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES)
    variables = list(variables)
    fetches = [train_op] if loss is None else [train_op, loss]
    rows, best, best_epoch, best_values, since_best = [], -1.0, 0, None, 0
    stopped = separating = False
    for epoch in range(epochs):
        t0 = time.perf_counter()
        order = np.random.default_rng([seed, epoch]).permutation(len(x))
        losses = []
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            out = sess.run(fetches, {**(train_feed or {}), inputs: batch_of(x, idx), labels: y[idx]})
            if loss is not None:
                losses.append(float(out[1]) * len(idx))
        predictions = run_batched(sess, logits, inputs, dx, eval_batch_size).argmax(-1)
        dev_accuracy = float(np.mean(predictions == dy))
        row = {"epoch": epoch + 1, "dev_accuracy": round(dev_accuracy, 5)}
        if loss is not None:
            row["train_loss"] = round(sum(losses) / len(x), 5)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        rows.append(row)
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}  " + "  ".join(f"{k.replace('_', ' ')} {v}" for k, v in row.items()
                                                            if k != "epoch"))
        separating = separating or len(np.unique(predictions)) > 1  # as TextClassifier.fit: never stop
        if dev_accuracy > best:                                      # while every prediction is one class
            best, best_epoch, best_values, since_best = dev_accuracy, epoch + 1, sess.run(variables), 0
        elif separating:
            since_best += 1
        if patience and since_best >= patience:
            stopped = True
            break
    if variables and best_epoch != len(rows):
        _load(sess, variables, best_values)
    return FitHistory(epochs=rows, best_epoch=best_epoch, best_dev_accuracy=best, stopped_early=stopped)
