"""Corruption speed on real Wikipedia sentences, against nlpaug, in one run.

Data: the English Wikipedia sample inside the gensim wheel (no download), cleaned into
prose paragraphs (`auxpretrain.data.packaged.wikipedia_paragraphs`, or the same steps inline),
split into sentences with our Punkt splitter and written one sentence a line.

Measured:
1. core: `Corruptor.corrupt` on encoded, padded id batches (pairs per second), per setting;
2. end to end, as a whole process: `auxpretrain corrupt` in a subprocess, text file in,
   pairs file out (startup, reading, tokenizing, counting, corrupting, writing all included),
   on the sentence file and on that file repeated `--copies` times (startup amortised as on a
   real corpus; the peak memory shows that it does not grow with the corpus);
3. nlpaug `RandomWordAug(action="swap")` on the same sentences, in this process, import
   excluded (its most favourable setting), with its defaults and with one swap a sentence.

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


def bench_cli(path, out, extra):
    """Wall time, pairs and peak memory of `auxpretrain corrupt` run as a subprocess."""
    cmd = [sys.executable, "-m", "auxpretrain.cli", "corrupt", "--corpus", path, "--out", out] + extra
    peak = None
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
    return {"command": "auxpretrain corrupt " + " ".join(extra), "seconds": seconds, "pairs": pairs,
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
    args = parser.parse_args(argv)

    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        run(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="corruption_speed_") as workdir:
            run(args, workdir)


def run(args, workdir):
    """Builds the data in `workdir`, runs every measurement, prints (and writes --json)."""
    paragraphs, source = wikipedia_paragraphs()
    start = time.perf_counter()
    splitter = SentenceSplitter.from_sample(paragraphs)
    split_seconds = time.perf_counter() - start
    sentences = [s for p in paragraphs for s in splitter.split(p)]
    if args.max_sentences:
        sentences = sentences[: args.max_sentences]
    sentences_path = os.path.join(workdir, "wiki_sentences.txt")
    with open(sentences_path, "w", encoding="utf-8") as f:
        f.write("\n".join(sentences) + "\n")
    print(f"data: {len(paragraphs):,} Wikipedia paragraphs ({source}) -> {len(sentences):,} sentences "
          f"(Punkt {splitter.source}, {split_seconds:.1f} s) in {sentences_path}")

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
    runs = [  # (name, file, copies, options)
        ("no_split", sentences_path, 1, ["--no-split"]),
        ("no_split_swap", sentences_path, 1, ["--no-split", "--ops", "swap"]),
        ("punkt", sentences_path, 1, []),
        (f"no_split_x{args.copies}", big_path, args.copies, ["--no-split"]),
        (f"no_split_swap_x{args.copies}", big_path, args.copies, ["--no-split", "--ops", "swap"]),
    ]
    # rounds interleave the tools so that a change of machine load hits both; best of the rounds
    cli, nlpaug = {}, {}
    for _ in range(args.rounds):
        for name, path, copies, extra in runs:
            r = bench_cli(path, out, extra)
            if name not in cli or r["seconds"] < cli[name]["seconds"]:
                cli[name] = dict(r, sentences=len(sentences) * copies,
                                 sentences_per_s=len(sentences) * copies / r["seconds"])
        for name, kwargs in (("defaults", {}), ("one_swap", {"aug_min": 1, "aug_max": 1})):
            r = bench_nlpaug(sentences, **kwargs)
            if name not in nlpaug or r["seconds"] < nlpaug[name]["seconds"]:
                nlpaug[name] = r
    best_nlpaug = max(r["sentences_per_s"] for r in nlpaug.values())
    print(f"\nend to end, text file -> pairs file (whole `auxpretrain corrupt` process: startup, reading, "
          f"tokenizing, counting, corrupting, writing); x{args.copies} = the file repeated {args.copies} times:")
    for name, r in cli.items():
        peak = f"{r['peak_rss_mb']:5.0f} MB peak" if r["peak_rss_mb"] else ""
        print(f"  {name:<18} {r['command']:<42} {r['sentences']:>7,} sentences {r['seconds']:6.2f} s "
              f"{r['sentences_per_s']:>8,.0f}/s  {r['sentences_per_s'] / best_nlpaug:4.1f}x nlpaug  {peak}")
    for name, r in nlpaug.items():
        print(f"  nlpaug RandomWordAug(action='swap', {name}) in process, import excluded: "
              f"{len(sentences):,} sentences {r['seconds']:6.2f} s {r['sentences_per_s']:>8,.0f}/s")
    ratio = cli["no_split"]["sentences_per_s"] / best_nlpaug
    ratio_big = cli[f"no_split_x{args.copies}"]["sentences_per_s"] / best_nlpaug
    print(f"\nheadline: `auxpretrain corrupt --no-split` vs the faster nlpaug setting: {ratio:.1f}x on "
          f"{len(sentences):,} sentences, {ratio_big:.1f}x on {len(sentences) * args.copies:,} (target >= 3x); "
          f"core default mix {core['replace+swap (default)']['pairs_per_s'] / 1e6:.2f}M pairs/s (target > 1M)")

    if args.json:
        result = {"data": {"source": source, "paragraphs": len(paragraphs), "sentences": len(sentences),
                           "tokens": tokens, "vocab_size": vocab_size, "splitter": splitter.source},
                  "core": core, "cli": cli, "nlpaug": nlpaug, "ratio_vs_nlpaug": ratio,
                  f"ratio_vs_nlpaug_x{args.copies}": ratio_big,
                  "machine": {"python": platform.python_version(), "cpus": os.cpu_count()}}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
