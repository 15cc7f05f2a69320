"""The time estimate printed before a run: the cost model (seconds per fine-tuning epoch,
pretraining step, ... measured on the 2-core reference machine) and the expected seconds of
each stage still to run."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, Mapping, Sequence

from benchmarks.profiles import ALL, DEFAULT_VARIANT, WORD2VEC
from benchmarks.results import curve_key, objective_key

if TYPE_CHECKING:
    from benchmarks.run import Bench

REFERENCE_PEAK_GFLOPS = 170.0  # fp32 matmul peak measured on the 2-core reference machine

# Measured on the 2-core reference machine with the default model (ModelConfig defaults,
# vocabulary ~26k) while another job shared the cores; an idle machine is faster.
COST = {
    "ft_ms_per_example_epoch": 2.0,  # fine-tuning all layers (random init: ~1.6)
    "ft_dev_eval_s": 0.4,  # dev evaluation (1,000 sentences) per epoch
    "ft_overhead_s": 3.0,  # graph, encoding, restore, test evaluation
    "ft_expected_epochs": 6,  # early stopping: best epoch ~2-4 + patience 3
    "frozen_s": 6.0,  # frozen encoder: cache the pooled vectors once, train the head
    "tfidf_ms_per_example": 1.5,  # all C values
    "pretrain_step_s": 0.15,  # default objectives: batch 64 and 20 context passes
    "context_step_s": 0.09,  # context objective alone, 20 passes (no convolution in the loss)
    "pretrain_overhead_s": 45.0,  # corpus pass, held-out batches, probe, profiler, matmul peak
    "steps_per_epoch": 551,  # demo corpus (36k sentences) / batch 64
    "word2vec_s": 45.0,  # tokenizing + 5 epochs of gensim skip-gram
    "corpus_s": 15.0,
    "corruption_round_s": 25.0,
    "word_vectors_s": 300.0,  # our context objective and gensim, 20 passes each, 3 seeds, and the probes
    "restore_s_per_million_rows_x300": 40.0,  # writing the export + repeats of both restores
}


def model_scale(model: Mapping[str, Any]) -> float:
    """Per-token compute of a model relative to the default (floored: overheads remain)."""
    e = model.get("embedding_size", 128)
    h = model.get("hidden_size", 256)
    n = model.get("num_layers", 2)
    flops = e * h + max(n - 1, 0) * h * h
    return max(flops / (128 * 256 + 256 * 256), 0.15)


def finetune_seconds(method: str, n: int, epochs: int, patience: int, scale: float, num_layers: int = 2) -> float:
    if method == "tfidf_lr":
        return 1.0 + n * COST["tfidf_ms_per_example"] / 1000
    if method == "pretrained_frozen":
        return COST["frozen_s"] + n * 0.0003 * epochs
    run = min(epochs, COST["ft_expected_epochs"]) if patience else epochs
    if method == "pretrained_gradual":  # patience starts once all is unfrozen; frozen-bottom epochs cost ~half
        partial = min(epochs, num_layers + 1)  # epochs before the embedding is unfrozen
        run = 0.5 * partial + min(epochs - partial, 1 + patience if patience else epochs)
    return COST["ft_overhead_s"] + run * (n * COST["ft_ms_per_example_epoch"] / 1000 * scale + COST["ft_dev_eval_s"])


def pretrain_seconds(objectives: Mapping[str, float], steps: int, scale: float) -> float:
    step = COST["context_step_s"] if set(objectives) == {"context"} else COST["pretrain_step_s"] * scale
    return COST["pretrain_overhead_s"] * (0.5 if steps < 100 else 1.0) + steps * step


def fmt_minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def estimate(b: Bench, stages: Sequence[str]) -> Dict[str, float]:
    """Expected seconds per stage, leaving out cached artifacts and rows already done."""
    from auxpretrain import PretrainConfig

    p = b.profile
    scale = model_scale(b.model)
    out: Dict[str, float] = {}
    have = lambda name: os.path.exists(os.path.join(b.out, "pretrain", name, "export", "manifest.json"))
    default_steps = b.pretrain_steps or int(PretrainConfig().epochs * COST["steps_per_epoch"])
    need_default = not b.args.pretrained and not have(DEFAULT_VARIANT) and any(
        s in stages for s in ("pretrain", "objectives", "learning_curve", "cache"))
    full = 9749
    n_of = lambda s: full if s == ALL else int(s)
    if "corpus" in stages:
        out["corpus"] = 0 if os.path.exists(os.path.join(b.out, "data", "reviews.txt")) else COST["corpus_s"]
    if "corruption" in stages and not b.results.get("corruption"):
        out["corruption"] = 10 + COST["corruption_round_s"] * p.corruption_rounds * (
            (p.corruption_sentences or 30000) / 30000) * (1 + p.corruption_copies) / 6
    if "pretrain" in stages or need_default:
        out["pretrain"] = pretrain_seconds(PretrainConfig().objectives, default_steps, scale) if need_default else 0
    if "word_vectors" in stages and not b.results.get("word_vectors"):
        out["word_vectors"] = COST["word_vectors_s"]
    if "objectives" in stages:
        done = {objective_key(r) for r in b.results.get("objectives", [])}
        seconds = 0.0
        n = min(p.objective_size, full)
        ep, pat = p.finetune_schedule(n)
        for name, objectives, epochs in b.variants():
            if name != DEFAULT_VARIANT and not have(name):
                if b.pretrain_steps:
                    steps = max(4, round(b.pretrain_steps * (epochs or 3.0) / 3.0))
                else:
                    steps = int((epochs or PretrainConfig().epochs) * COST["steps_per_epoch"])
                seconds += pretrain_seconds(objectives, steps, scale)
            for seed in b.seeds:
                if (name, n, seed) not in done and name != DEFAULT_VARIANT:
                    seconds += finetune_seconds("pretrained_finetune", n, ep, pat, scale)
        out["objectives"] = seconds
    if "learning_curve" in stages:
        done = {curve_key(r) for r in b.results.get("learning_curve", [])}
        seconds = sum(COST["word2vec_s"] * WORD2VEC[m][1] / 5 for m in WORD2VEC if m in b.methods
                      and not os.path.exists(os.path.join(b.out, m, "export", "manifest.json")))
        for size in b.sizes:
            for seed in b.seeds:
                for method in b.methods:
                    ep, pat = p.finetune_schedule(size, method, b.num_layers())
                    if (method, n_of(size), seed) not in done:
                        seconds += finetune_seconds(method, n_of(size), ep, pat, scale, b.num_layers())
        out["learning_curve"] = seconds
    if "cache" in stages and not b.results.get("cache"):
        n = p.cache_size or full
        out["cache"] = 2 * COST["ft_overhead_s"] + p.cache_epochs * (n * 0.0006 * scale + 0.4) + 5
    if "restore" in stages and not b.results.get("restore"):
        out["restore"] = COST["restore_s_per_million_rows_x300"] * p.restore_vocab / 1e6 * p.restore_dim / 300 \
            * (1 + p.restore_repeats) / 4 + 5
    return out
