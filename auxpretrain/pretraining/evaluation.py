"""Held-out evaluation of pretraining and the health checks written into the export.

- `evaluate`: sentence accuracy, pairwise accuracy (a good sentence scored above its own
  corruption), replaced-token top-1, per-objective losses, on fixed held-out batches;
- `HeldoutTracker`: evaluation during training (history, TensorBoard scalars, the log line,
  early stopping), shared by the single-process run and the cluster chief;
- `frequency_probe`: a two-feature logistic regression on word frequencies; if it nearly
  matches the encoder, the corruption is too easy;
- `activation_stats`: saturated, zero and dead units of the pooled features.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np


from auxpretrain.data.encoded import EncodedSentences
from auxpretrain.pretraining.batches import BatchMaker


def frequency_features(ids: np.ndarray, log_counts: np.ndarray) -> np.ndarray:
    """[n, 2]: mean and min log-count of each sentence's words (PAD excluded)."""
    mask = ids > 0
    lc = log_counts[ids]
    mean = np.where(mask, lc, 0.0).sum(1) / np.maximum(mask.sum(1), 1)
    low = np.where(mask, lc, np.inf).min(1)
    low[~np.isfinite(low)] = 0.0
    return np.stack([mean, low], axis=1)

def _fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 300):
    mu, sd = x.mean(0), x.std(0) + 1e-8
    z = (x - mu) / sd
    w = np.zeros(z.shape[1])
    b = 0.0
    for _ in range(steps):  # Newton would be overkill: 2 features, convex, gradient descent
        p = 1.0 / (1.0 + np.exp(-(z @ w + b)))
        w -= 0.5 * (z.T @ (p - y)) / len(y)
        b -= 0.5 * float(np.mean(p - y))
    return lambda q: ((q - mu) / sd) @ w + b

def frequency_probe(train_good, train_bad, held_good, held_bad, counts) -> Dict[str, float]:
    """A linear model on word-frequency features: if it nearly matches the encoder, the
    corruption is too easy (rare replacement words give the bad sentence away)."""
    log_counts = np.log1p(np.asarray(counts, dtype=np.float64))
    x = np.concatenate([frequency_features(train_good, log_counts), frequency_features(train_bad, log_counts)])
    y = np.concatenate([np.ones(len(train_good)), np.zeros(len(train_bad))])
    score = _fit_logistic(x, y)
    sg = score(frequency_features(held_good, log_counts))
    sb = score(frequency_features(held_bad, log_counts))
    return {"single_accuracy": round(float((np.mean(sg > 0) + np.mean(sb <= 0)) / 2), 4),
            "pairwise_accuracy": round(float(np.mean(sg > sb) + 0.5 * np.mean(sg == sb)), 4)}

def activation_stats(pooled: np.ndarray, activation: str) -> Dict[str, float]:
    """Health of the pooled features on held-out good sentences."""
    magnitude = np.abs(pooled)
    never = np.all(magnitude < 1e-6, axis=0)
    return {
        "saturated_fraction": round(float(np.mean(magnitude > 0.95)), 4) if activation == "tanh" else 0.0,
        "zero_fraction": round(float(np.mean(magnitude < 1e-6)), 4),
        "dead_units": int(never.sum()),
        "units": int(pooled.shape[1]),
        "mean_abs": round(float(magnitude.mean()), 4),
        "std_across_sentences": round(float(pooled.std(0).mean()), 4),
    }

class HeldoutTracker:
    """Held-out evaluation during pretraining (single process and cluster chief): the history,
    TensorBoard scalars, the log line, and early stopping on `early_stopping_key` after
    `patience` evaluations without gain."""

    def __init__(self, model, inputs, batches, writer, total_steps: int, patience: int,
                 log: Callable[[str], None]):
        self.model, self.inputs, self.batches, self.writer = model, inputs, batches, writer
        self.total_steps, self.patience, self.log = total_steps, patience, log
        self.history: List[Dict[str, Any]] = []
        self.best: Optional[float] = None
        self.stale = 0

    def _evaluate(self, sess, step: int, scalars: bool = True) -> Dict[str, float]:
        metrics = evaluate(sess, self.model, self.inputs, self.batches)
        self.history.append(dict(step=step, **metrics))
        if scalars:
            _write_scalars(self.writer, step, metrics)
        return metrics

    def check(self, sess, step: int, loss: float, speed: str) -> bool:
        """Evaluates and logs at `step`; True when training should stop early."""
        metrics = self._evaluate(sess, step)
        self.log(f"step {step}/{self.total_steps}: loss {loss:.4f}, held-out "
                 + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) + f", {speed}")
        key = early_stopping_key(metrics)
        if self.best is None or key > self.best:
            self.best, self.stale = key, 0
        else:
            self.stale += 1
        if self.patience and self.stale >= self.patience:
            self.log(f"early stop at step {step}: no held-out improvement in {self.stale} evaluations")
            return True
        return False

    def finish(self, sess, step: int, scalars: bool = True) -> Dict[str, Any]:
        """The final held-out metrics (evaluated now unless `step` already was)."""
        if not self.history or self.history[-1]["step"] != step:
            self._evaluate(sess, step, scalars)
        return self.history[-1]

def early_stopping_key(metrics: Mapping[str, float]) -> float:
    """What pretraining's early stopping watches (higher is better): the held-out pairwise
    accuracy when a sentence-level objective scores sentences, else minus the sum of the held-out
    losses of the objectives that are on (context, token, window, ...), never a constant."""
    if "pairwise_accuracy" in metrics:
        return metrics["pairwise_accuracy"]
    return -sum(v for k, v in metrics.items() if k.endswith("_loss"))

def _write_scalars(writer, step: int, metrics: Mapping[str, float]) -> None:
    import tensorflow as tf

    tf1 = tf.compat.v1
    values = [tf1.Summary.Value(tag=f"heldout/{k}", simple_value=float(v)) for k, v in metrics.items()]
    writer.add_summary(tf1.Summary(value=values), step)
    writer.flush()

def heldout_batches(heldout: EncodedSentences, vocab, model_config, config, corruption,
                     batch_size: int = 256) -> List[Dict[str, np.ndarray]]:
    """Fixed held-out batches (one corruption draw, seeded) so every evaluation is comparable."""
    maker = BatchMaker(heldout, vocab, model_config, config, corruption)
    order = np.argsort(heldout.lengths, kind="stable")
    out = []
    for i, start in enumerate(range(0, len(order), batch_size)):
        rng = np.random.default_rng([config.seed, 99991, i])
        out.append(maker.make(order[start:start + batch_size], rng))
    return out

def evaluate(sess, model, inputs, batches) -> Dict[str, float]:
    """Held-out metrics: sentence accuracy, pairwise accuracy, per-objective losses."""
    good_scores, bad_scores, losses = [], [], {k: [] for k in model.losses}
    token_hits = []
    for batch in batches:
        feed = {inputs[k]: v for k, v in batch.items()}
        fetch = {"losses": model.losses}
        if model.sentence_logits is not None:
            fetch["logits"] = model.sentence_logits
        if model.token_logits is not None:
            fetch["tokens"] = model.token_logits
        out = sess.run(fetch, feed)
        for k, v in out["losses"].items():
            losses[k].append(v)
        n = len(batch["good"])
        if "logits" in out:
            good_scores.append(out["logits"][:n])
            bad_scores.append(out["logits"][n:])
        if "tokens" in out:
            bad_tokens = out["tokens"][n:]
            changed = batch["changed"]
            valid = batch["bad"] > 0
            # a replaced position scored below every original position of its sentence
            for row in range(n):
                if changed[row].any():
                    pos, neg = bad_tokens[row][changed[row]], bad_tokens[row][valid[row] & ~changed[row]]
                    if neg.size:
                        token_hits.append(float(np.mean(pos.min() > neg)))
    metrics: Dict[str, float] = {}
    if good_scores:
        g, b = np.concatenate(good_scores), np.concatenate(bad_scores)
        metrics["accuracy"] = float((np.mean(g > 0) + np.mean(b <= 0)) / 2)
        metrics["pairwise_accuracy"] = float(np.mean(g > b))
        metrics["good_recall"] = float(np.mean(g > 0))
    if token_hits:
        metrics["token_top1"] = float(np.mean(token_hits))
    for k, v in losses.items():
        metrics[f"{k}_loss"] = float(np.mean(v))
    return {k: round(v, 4) for k, v in metrics.items()}

def pooled_on(sess, model, inputs, batches) -> np.ndarray:
    pooled = []
    for batch in batches:
        feed = {inputs[k]: v for k, v in batch.items()}
        n = len(batch["good"])
        pooled.append(sess.run(model.encoder.pooled, feed)[:n])
    return np.concatenate(pooled)

def probe_sets(maker: BatchMaker, heldout_batches):
    rng = np.random.default_rng([maker.config.seed, 4242])
    n = min(len(maker.data), 20000)
    index = rng.choice(len(maker.data), size=n, replace=False)
    ids, lengths = maker.data.batch(index, maker.model_config.max_length)
    corrupted = maker.corruptor.corrupt(ids, lengths, rng)
    width = max(max(b["good"].shape[1] for b in heldout_batches), ids.shape[1])

    def pad(a):
        return np.pad(a, ((0, 0), (0, width - a.shape[1])))

    held_good = np.concatenate([pad(b["good"]) for b in heldout_batches])
    held_bad = np.concatenate([pad(b["bad"]) for b in heldout_batches])
    return pad(ids[corrupted.ok]), pad(corrupted.bad[corrupted.ok]), held_good, held_bad

def format_metrics(metrics: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "step")
