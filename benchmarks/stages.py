"""The stages of a benchmark run, each a function of the Bench: corpus, corruption (pairs per
second against nlpaug), pretrain, learning_curve, objectives, cache (frozen-output cache on vs
off) and restore (a large export into a new graph vs Saver.restore). STAGE_FUNCS maps the
--stages names to them."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Tuple

from benchmarks.estimate import fmt_minutes
from auxpretrain.files import atomic_write_text
from benchmarks.profiles import ALL, DEFAULT_VARIANT, DEMO_COPIES
from benchmarks.results import curve_key, objective_key, upsert

if TYPE_CHECKING:
    from benchmarks.run import Bench


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
    from auxpretrain import SentenceSplitter
    from auxpretrain.data.pairs import write_pairs
    from benchmarks import corruption_speed as bc

    p = b.profile
    work = os.path.join(b.out, "corruption")
    os.makedirs(work, exist_ok=True)
    demo, demo_big, demo_paragraphs = bc.demo_files(work, DEMO_COPIES)
    splitter = SentenceSplitter.from_sample(demo_paragraphs)
    demo_sentences = [s for par in demo_paragraphs for s in splitter.split(par)]
    paragraphs, source = bc.wikipedia_paragraphs()
    sentences = [s for par in paragraphs for s in splitter.split(par)]
    if p.corruption_sentences:
        sentences = sentences[:p.corruption_sentences]
        demo_sentences = demo_sentences[:p.corruption_sentences]
    path = os.path.join(work, "wiki_sentences.txt")
    atomic_write_text(path, "\n".join(sentences) + "\n")
    big = os.path.join(work, f"wiki_sentences_x{p.corruption_copies}.txt")
    atomic_write_text(big, ("\n".join(sentences) + "\n") * p.corruption_copies)
    out = os.path.join(work, "pairs.jsonl")

    core, vocab_size, tokens = bc.bench_core(sentences, p.corruption_repeats, 8192)
    best: Dict[str, Dict[str, Any]] = {}
    nlpaug: Dict[str, Dict[str, Any]] = {}

    def keep(name, seconds, pairs, **extra):
        if name not in best or seconds < best[name]["seconds"]:
            best[name] = dict(extra, seconds=seconds, pairs=pairs)

    for _ in range(p.corruption_rounds):  # interleaved: a change of load hits every tool
        seconds, report = bc.timed(lambda: write_pairs([path], out, split=False))
        keep("in_process", seconds, report.pairs)
        for name, file, extra in (("demo", demo, []), ("demo_big", demo_big, []),
                                  ("cli", path, ["--no-split"]), ("cli_big", big, ["--no-split"])):
            r = bc.bench_cli(file, out, extra)
            keep(name, r["seconds"], r["pairs"], peak_rss_mb=r.get("peak_rss_mb"), summary=r["summary"])
        for name, kwargs in (("defaults", {}), ("one_swap", {"aug_min": 1, "aug_max": 1})):
            r = bc.bench_nlpaug(demo_sentences, **kwargs)
            if name not in nlpaug or r["seconds"] < nlpaug[name]["seconds"]:
                nlpaug[name] = r
    best_nlpaug = max(r["sentences_per_s"] for r in nlpaug.values())
    rate = {name: r["pairs"] / r["seconds"] for name, r in best.items()}
    default_core = core["replace+swap (default)"]
    b.results["corruption"] = {
        "sentences": len(sentences), "tokens": tokens, "vocab_size": vocab_size, "source": source,
        "demo_paragraphs": len(demo_paragraphs), "demo_sentences": len(demo_sentences),
        "splitter": splitter.source,
        "demo_pairs_per_s": round(rate["demo"], 1), "demo_pairs": best["demo"]["pairs"],
        "demo_big_pairs_per_s": round(rate["demo_big"], 1), "demo_big_pairs": best["demo_big"]["pairs"],
        "demo_copies": DEMO_COPIES, "demo_summary": best["demo"]["summary"],
        "ratio_vs_nlpaug": round(rate["demo"] / best_nlpaug, 2),
        "ratio_vs_nlpaug_big": round(rate["demo_big"] / best_nlpaug, 2),
        "pairs_per_s": round(rate["in_process"], 1),
        "pairs_per_s_note": "corpus.write_pairs in process, sentence file -> pairs file, import excluded (as nlpaug)",
        "nlpaug_per_s": round(best_nlpaug, 1),
        "nlpaug": {k: {"sentences_per_s": round(v["sentences_per_s"], 1), "seconds": round(v["seconds"], 3),
                       "settings": v["settings"]} for k, v in nlpaug.items()},
        "cli_pairs_per_s": round(rate["cli"], 1),
        "cli_pairs_per_s_copies": round(rate["cli_big"], 1),
        "copies": p.corruption_copies,
        "cli_peak_rss_mb": best["cli_big"].get("peak_rss_mb"),
        "ids_pairs_per_s": round(default_core["pairs_per_s"], 1),
        "ids_by_setting": {k: round(v["pairs_per_s"], 1) for k, v in core.items()},
        "rounds": p.corruption_rounds,
    }
    b.save()
    c = b.results["corruption"]
    b.say(f"corruption: whole `auxpretrain corrupt` process on the demo text (paragraphs, split): "
          f"{c['demo_pairs_per_s']:,.0f} pairs/s ({c['ratio_vs_nlpaug']:.1f}x nlpaug's {c['nlpaug_per_s']:,.0f} "
          f"sentences/s on the same sentences; x{DEMO_COPIES} text {c['demo_big_pairs_per_s']:,.0f}/s, "
          f"{c['ratio_vs_nlpaug_big']:.1f}x); sentence file in process {c['pairs_per_s']:,.0f}/s, "
          f"encoded ids {c['ids_pairs_per_s']:,.0f}/s")


def stage_word_vectors(b: Bench) -> None:
    """The context objective alone against gensim word2vec at the same settings (speed and
    word-vector quality), one run each, side by side."""
    if b.results.get("word_vectors") and not b.args.redo:
        b.say("word_vectors: already measured (in results.json)")
        return
    from auxpretrain import PretrainConfig
    from benchmarks.word_vectors import compare

    config = PretrainConfig()
    passes = b.profile.word_vector_passes or int(round(config.epochs * config.context_passes))
    b.results["word_vectors"] = compare(b.corpus(), os.path.join(b.out, "word_vectors"), passes=passes,
                                        say=b.say)
    b.save()


def stage_pretrain(b: Bench) -> None:
    export = b.default_export()
    p = b.results["pretrain"]
    b.say(f"pretrain: {export.path}: "
          + (f"{p['tokens_per_s']:,.0f} tokens/s" if p.get("tokens_per_s") else "no speed recorded")
          + (f", model {p['model_gflops']:.1f} GFLOP/s, MFU {100 * p['mfu']:.1f}%" if p.get("mfu") is not None else "")
          + (f", the sentence part alone {100 * p['sentence_mfu']:.1f}%" if p.get("sentence_mfu") is not None else "")
          + (f", {p['wall_seconds'] / 60:.1f} min wall" if p.get("wall_seconds") else "")
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
    from auxpretrain import TransferConfig, fine_tune

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

    from auxpretrain import (TRANSFERABLE_VARIABLES, ModelConfig, Tokenizer, Vocabulary, build_encoder,
                             load_export, write_export)
    from auxpretrain.export import expected_variables
    from auxpretrain.transfer.restore import restore
    from auxpretrain.model.variables import strip_suffix

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
               "word_vectors": stage_word_vectors,
               "objectives": stage_objectives, "learning_curve": stage_learning_curve, "cache": stage_cache,
               "restore": stage_restore}
