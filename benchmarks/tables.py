"""The tables of a results.json, as text or Markdown: the learning curve (accuracy per method
and train size, then the gain over random init), the objectives, the speed measurements, the
headline against the targets, and summary_text (all of them: the printout and summary.md)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from benchmarks.profiles import PRETRAINED_METHODS, TARGETS
from benchmarks.results import aggregate, gains, ordered_methods, pretrain_records, reference_at


def size_label(size: int, full_size: Optional[int]) -> str:
    return f"all ({size:,})" if full_size is not None and size == full_size else f"{size:,}"


def format_table(rows: Sequence[Mapping[str, Any]], full_size: Optional[int] = None,
                 majority: Optional[float] = None, markdown: bool = False) -> str:
    """The learning-curve table: test accuracy % mean ± std over seeds per method and size,
    then the gain over random in points. A row fused with the n-gram member (its
    `neural_accuracy`) also gives a "METHOD, neural alone" row and, once per size and seed, an
    "ngram member alone" row."""
    agg = aggregate(list(rows) + member_rows(rows))
    if not agg:
        return "(no learning-curve rows yet)"
    sizes = sorted({s for by_size in agg.values() for s in by_size})
    methods = ordered_methods(agg)
    gain = gains(agg)  # neural-alone rows against random's neural alone
    alone = gains(agg, "random" + NEURAL_ALONE)
    gain.update({m: alone[m] for m in alone if m.endswith(NEURAL_ALONE)})
    gain.pop("random" + NEURAL_ALONE, None)
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
    gain_rows = [[m] + [gain_cell(m, s) for s in sizes] for m in methods if m in gain]
    title = f"test accuracy %, mean ± std over {seeds} seed(s) (a cell with fewer seeds shows their number)"
    if majority is not None:
        title += f"; majority class {100 * majority:.1f}"
    parts = [_render(title, head, acc, markdown)]
    if gain_rows:
        parts.append(_render("gain over random init, points (difference of the means; a neural-alone row against "
                             "random's neural alone)", head, gain_rows, markdown))
    return "\n\n".join(parts)


NGRAM_MEMBER = "ngram member alone"


NEURAL_ALONE = ", neural alone"


def member_rows(rows: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """The ensemble members' accuracies of fused rows as rows of their own ("METHOD, neural
    alone": a neural row without the member, below ensemble_min_examples, is its own)."""
    out: List[Dict[str, Any]] = []
    seen = set()
    fused = {r["method"] for r in rows if r.get("neural_accuracy") is not None}
    for r in rows:
        if r["method"] in fused and r.get("neural_accuracy") is None and r.get("accuracy") is not None:
            out.append(dict(r, method=r["method"] + NEURAL_ALONE))
        if r.get("neural_accuracy") is None:
            continue
        out.append(dict(r, method=r["method"] + NEURAL_ALONE, accuracy=r["neural_accuracy"]))
        if r.get("ngram_accuracy") is not None and (r["train_size"], r["seed"]) not in seen:
            seen.add((r["train_size"], r["seed"]))
            out.append(dict(r, method=NGRAM_MEMBER, accuracy=r["ngram_accuracy"]))
    return out


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
    if c.get("demo_pairs_per_s"):
        body.append(["corruption, whole `auxpretrain corrupt` process, demo text (paragraphs, split)",
                     f"{c['demo_pairs_per_s']:,.0f} pairs/s",
                     f"nlpaug swap {c['nlpaug_per_s']:,.0f} sentences/s (same sentences, in process)",
                     f"{c['ratio_vs_nlpaug']:.1f}x (target >= {TARGETS['corruption_ratio']:g}x)"])
        body.append([f"the same, demo text x{c.get('demo_copies')}", f"{c['demo_big_pairs_per_s']:,.0f} pairs/s",
                     "", f"{c['ratio_vs_nlpaug_big']:.1f}x"])
    if c.get("pairs_per_s"):
        body.append(["corruption, sentence file -> pairs file (in process, --no-split)",
                     f"{c['pairs_per_s']:,.0f} pairs/s", "", f"{c['pairs_per_s'] / c['nlpaug_per_s']:.1f}x"])
        if c.get("cli_pairs_per_s"):
            body.append(["the same as a whole process", f"{c['cli_pairs_per_s']:,.0f} pairs/s",
                         f"x{c.get('copies')} file: {c.get('cli_pairs_per_s_copies', 0):,.0f} pairs/s",
                         f"{c['cli_pairs_per_s'] / c['nlpaug_per_s']:.1f}x"])
        body.append(["corruption on encoded id batches", f"{c['ids_pairs_per_s']:,.0f} pairs/s", "", ""])
    p = results.get("pretrain") or {}
    if p.get("tokens_per_s"):
        mfu = p.get("mfu")
        body.append(["pretraining (default objectives)", f"{p['tokens_per_s']:,.0f} tokens/s",
                     f"model {p.get('model_gflops') or 0:.1f} GFLOP/s, peak {p.get('peak_gflops') or 0:.0f} GFLOP/s",
                     "-" if mfu is None else f"MFU {100 * mfu:.1f}% (whole step)"])
    if p.get("sentence_mfu") is not None:
        body.append(["the sentence part alone (convolutions + Adam)", f"{p.get('sentence_gflops') or 0:.1f} GFLOP/s",
                     f"peak {p.get('peak_gflops') or 0:.0f} GFLOP/s, timed in turns",
                     f"{100 * p['sentence_mfu']:.1f}% (target >= {100 * TARGETS['sentence_mfu']:.0f}%)"])
    if p.get("heldout_accuracy") is not None:
        body.append(["held-out good/bad (single / pairwise)",
                     f"{p['heldout_accuracy']:.3f} / {p.get('heldout_pairwise_accuracy') or 0:.3f}",
                     f"frequency-only probe {p.get('frequency_probe_accuracy') or 0:.3f} / "
                     f"{p.get('frequency_probe_pairwise_accuracy') or 0:.3f}",
                     f"{(p.get('wall_seconds') or 0) / 60:.1f} min wall (target < {TARGETS['pretrain_minutes']:g})"
                     if p.get("wall_seconds") else ""])
    w = results.get("word_vectors") or {}
    if w.get("speed_ratio"):
        seeds = len(w["settings"].get("seeds") or [0])
        body.append([f"context objective alone vs gensim, {w['settings']['passes']} passes, {seeds} seed(s)",
                     f"{w['ours']['tokens_per_s']:,.0f} tokens/s",
                     f"gensim {w['gensim']['tokens_per_s']:,.0f} tokens/s ({w['settings']['gensim_workers']} workers)",
                     f"{w['speed_ratio']:.1f}x (target >= {TARGETS['context_vs_gensim']:g}x)"])
        for name, sim in w.get("similarity", {}).items():
            body.append([f"  Spearman on {name} ({sim['pairs']} pairs, mean)", f"{sim['spearman'][0]:.3f}",
                         f"gensim {sim['spearman'][1]:.3f}", f"{sim['spearman'][0] - sim['spearman'][1]:+.3f}"])
        if w["ours"].get("probe"):
            ours, theirs = (100 * sum(w[k]["probe"]) / len(w[k]["probe"]) for k in ("ours", "gensim"))
            body.append(["  sentiment linear probe (mean of 3 seeds)", f"{ours:.1f}", f"gensim {theirs:.1f}",
                         f"{ours - theirs:+.1f} points"])
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
        lines.append(f"corruption, whole process on the demo text: {c['ratio_vs_nlpaug']:.1f}x nlpaug "
                     f"(x{c.get('demo_copies')} text {c.get('ratio_vs_nlpaug_big') or 0:.1f}x; "
                     f"target >= {TARGETS['corruption_ratio']:g}x)")
    p = results.get("pretrain") or {}
    if p.get("sentence_mfu") is not None:
        lines.append(f"FLOP utilisation of the sentence part: {100 * p['sentence_mfu']:.1f}% "
                     f"(target >= {100 * TARGETS['sentence_mfu']:.0f}%); whole step {100 * (p.get('mfu') or 0):.1f}%")
    if p.get("wall_seconds"):
        lines.append(f"default pretraining: {p['wall_seconds'] / 60:.1f} min (target < {TARGETS['pretrain_minutes']:g})")
    w = results.get("word_vectors") or {}
    if w.get("speed_ratio"):
        lines.append(f"context objective alone: {w['speed_ratio']:.1f}x gensim's tokens/s "
                     f"(target >= {TARGETS['context_vs_gensim']:g}x)")
    k = results.get("cache") or {}
    if k.get("speedup"):
        lines.append(f"frozen-output cache: {k['speedup']:.1f}x per epoch (target >= 2x)")
    return lines


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
