"""The plots of a results.json (matplotlib, Agg backend): learning_curve.png (accuracy against
the number of labels per method) and objectives.png (transfer accuracy per pretraining variant)."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from benchmarks.results import aggregate, ordered_methods, pretrain_records

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
