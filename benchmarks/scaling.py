"""How `auxpretrain pretrain` costs grow with corpus size and vocabulary size.

Corpora: the real text of `auxpretrain corpus` (DIR/data/wiki.txt + DIR/data/reviews.txt,
about 4.4 MB, 819k words), concatenated into files of about 4, 40 and 400 MB (1, 9 and 90
copies). Plain copies would add no new word, so copies differ: in copy k (k >= 1) every
occurrence of a rare word (a plain \\w+ word seen at most twice in the base text: 24k of its
50k distinct words, 30k of its 819k words) gets the suffix `_k`. Each copy thus brings 24k new
distinct words, 6k of them seen twice (enough for the default --min-count 2), so the number of
distinct words to count and the vocabulary before the --max-vocab cap grow with the corpus, as
in real text. Sentences repeat across copies; that does not matter for cost.

For each corpus, `auxpretrain pretrain --max-steps N` (default model) runs in a subprocess
on a fresh run directory, then the same command again (a resume: the encoded corpus is
reused). Recorded per run: corpus preparation seconds (count + encode, from the export
manifest), sentences, tokens, vocabulary size, peak resident memory of the child (ru_maxrss
from wait4, plus VmRSS polled every 0.2 s to split it into the preparation phase and the
training phase), seconds per training step, export size, ids.bin size. On the largest corpus
the same for several --max-vocab values. With --baseline DIR, the corpus sizes again with
another copy of the package (e.g. the version that kept the corpus in memory). Finally, in
this process, the time to read a batch of 64 sentences from the disk-backed ids against the
same batch from memory (now, and as the in-memory code did it before), and the time of a whole
input batch (corruption and the context windows of all of a step's passes included), over
batches of the epoch order.

Timings are wall-clock on a shared machine: see the load averages recorded with each run.

Usage: python -m benchmarks.scaling --out DIR [--sizes 4,40,400] [--vocab-sizes 10000,50000,200000]
       [--max-steps 100] [--baseline DIR] [--reuse]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import numpy as np

from auxpretrain.config import CorpusConfig
from auxpretrain.files import atomic_write_json
from benchmarks.machine import proc_status_kib

BASE_FILES = ("wiki.txt", "reviews.txt")
DEFAULT_MAX_VOCAB = CorpusConfig().max_vocab  # pretrain's default vocabulary cap
WORD = re.compile(r"\w+(?:[-'\u2019]\w+|[.,]\d+)*|[^\w\s]")  # text.DEFAULT_PATTERN
PLAIN = re.compile(r"\w+")


def base_text(data_dir: str) -> str:
    """wiki.txt + reviews.txt of `auxpretrain corpus`, written first if missing."""
    if not all(os.path.exists(os.path.join(data_dir, f)) for f in BASE_FILES):
        subprocess.run([sys.executable, "-m", "auxpretrain.cli", "corpus", "--out", data_dir], check=True)
    parts = []
    for name in BASE_FILES:
        with open(os.path.join(data_dir, name), encoding="utf-8") as f:
            text = f.read()
        parts.append(text if text.endswith("\n") else text + "\n")
    return "".join(parts)


def copy_pieces(text: str):
    """(pieces, rare words, rare occurrences): joining the pieces with "_k" suffixes every
    occurrence of a rare word (plain word seen <= 2 times, case-insensitive)."""
    matches = list(WORD.finditer(text))
    counts = collections.Counter(m.group().lower() for m in matches)
    rare = {w for w, c in counts.items() if c <= 2 and PLAIN.fullmatch(w)}
    ends = [m.end() for m in matches if m.group().lower() in rare]
    pieces = [text[a:b] for a, b in zip([0] + ends, ends + [len(text)])]
    return pieces, rare, len(ends), counts


def build_corpus(path: str, text: str, pieces, copies: int) -> int:
    """Writes `copies` copies (copy 0 unchanged, copy k with rare words suffixed _k); bytes."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        for k in range(1, copies):
            f.write(f"_{k}".join(pieces))
    os.replace(tmp, path)
    return os.path.getsize(path)


def load_average() -> list:
    return [round(x, 2) for x in os.getloadavg()]


def run_pretrain(corpus: str, out: str, max_steps: int, extra=(), fresh: bool = True,
                 pythonpath: str = None) -> dict:
    """One `auxpretrain pretrain` child: its peak memory (whole run and per phase), wall time,
    and what its export manifest says about the corpus, the steps and the export size."""
    if fresh and os.path.exists(out):
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "auxpretrain.cli", "pretrain", "--corpus", corpus, "--out", out,
           "--max-steps", str(max_steps), "--eval-every", str(max_steps), "--quiet", *extra]
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)  # the children's working directory
    if pythonpath:  # another copy of the package (a baseline) is imported first
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    load = load_average()
    start = time.time()
    package = subprocess.run([sys.executable, "-c", "import auxpretrain; print(auxpretrain.__file__)"],
                             env=env, cwd=os.path.dirname(os.path.abspath(out)), capture_output=True,
                             text=True, check=True).stdout.strip()  # which copy the child imports
    # cwd: not the checkout (`python -m` puts the working directory first on sys.path, before
    # PYTHONPATH), so that a baseline copy is really the one imported
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                            cwd=os.path.dirname(os.path.abspath(out)))
    samples = []  # (seconds, VmRSS KiB)
    done = threading.Event()

    def poll():
        while not done.is_set():
            rss = proc_status_kib(proc.pid, "VmRSS")
            if rss is not None:
                samples.append((time.time() - start, rss))
            done.wait(0.2)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    lines, marks = [], {}
    for line in proc.stdout:
        now = time.time() - start
        lines.append(line.rstrip("\n"))
        for key in ("corpus:", "pretraining:"):
            if line.startswith(key) and key not in marks:
                marks[key] = now
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    poller.join()
    wall = time.time() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n" + "\n".join(lines[-20:]))
    corpus_done = marks.get("corpus:", wall)
    train_from = marks.get("pretraining:", wall)
    manifest = json.load(open(os.path.join(out, "export", "manifest.json"), encoding="utf-8"))
    c, m = manifest["corpus"], manifest["metrics"]
    export_dir = os.path.join(out, "export")
    steps = m["steps"] - m["resumed_from"]
    ids = os.path.join(out, "data", "ids.bin")
    count = {}
    if os.path.exists(os.path.join(out, "data", "meta.json")):
        count = json.load(open(os.path.join(out, "data", "meta.json"), encoding="utf-8")).get("count") or {}
    return {
        "command": " ".join(["auxpretrain"] + cmd[3:]),
        "load_average_at_start": load,
        "wall_seconds": round(wall, 1),
        "prepare_seconds": c["seconds"],
        "sentences": c["sentences"], "tokens": c["tokens"], "vocab_size": c["vocab_size"],
        "heldout_sentences": c["heldout_sentences"],
        "count_prunes": c.get("count_prunes", 0), "count_threshold": c.get("count_threshold", 0),
        "counted_distinct_peak": count.get("peak_entries"),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "peak_rss_prepare_mb": round(max([r for t, r in samples if t <= corpus_done], default=0) / 1024, 1),
        "peak_rss_train_mb": round(max([r for t, r in samples if t >= train_from], default=0) / 1024, 1),
        "steps": steps,
        "seconds_per_step": round(m["train_seconds_this_session"] / steps, 4) if steps else None,
        "tokens_per_second": m.get("tokens_per_second"),
        "export_mb": round(sum(os.path.getsize(os.path.join(export_dir, f))
                               for f in os.listdir(export_dir)) / 1e6, 2),
        "ids_bin_mb": round(os.path.getsize(ids) / 1e6, 1) if os.path.exists(ids) else None,
        "reused_encoding": any("encoded ids reused" in line for line in lines),
        "package": package,
        "log_tail": lines[-6:],
    }


def input_timing(run_dir: str, corpus: str, batches: int = 300, in_memory: bool = True) -> dict:
    """Milliseconds per batch of 64: reading ids from disk vs memory, and a whole input batch."""
    from auxpretrain import CorruptionConfig, ModelConfig, PretrainConfig, Tokenizer, Vocabulary
    from auxpretrain.pretraining.batches import BatchMaker
    from auxpretrain.data.encoded import prepare_corpus

    vocab = Vocabulary.load(os.path.join(run_dir, "vocab.txt"), os.path.join(run_dir, "counts.txt"))
    config = PretrainConfig()
    data = prepare_corpus([corpus], Tokenizer(), CorpusConfig().min_count, DEFAULT_MAX_VOCAB, config.heldout_fraction,
                          config.min_heldout, config.seed, vocab=vocab, log=lambda s: None,
                          cache_dir=os.path.join(run_dir, "data"))
    model = ModelConfig(vocab_size=len(vocab))
    maker = BatchMaker(data.train, vocab, model, config, CorruptionConfig())
    order = maker.epoch_order(0)[:batches]
    extra = [maker.epoch_order(0, k)[:batches] for k in range(1, config.context_passes)]

    def per_batch(fn) -> float:
        t0 = time.perf_counter()
        for j, index in enumerate(order):
            fn(j, index)
        return round(1000 * (time.perf_counter() - t0) / len(order), 3)

    out = {"disk_read_ms": per_batch(lambda j, i: data.train.batch(i, model.max_length))}
    rng = np.random.default_rng(0)
    # a step's whole input: its batch, its corruption, the context windows of all its passes
    out["input_batch_ms"] = per_batch(lambda j, i: maker.make(i, rng, [e[j] for e in extra]))
    if in_memory:
        memory = data.train.to_memory()
        out["memory_read_ms"] = per_batch(lambda j, i: memory.batch(i, model.max_length))
        out["memory_read_before_ms"] = per_batch(lambda j, i: _batch_before(memory, i, model.max_length))
    return out


def _batch_before(data, index, max_length):
    """EncodedSentences.batch as it was before the ids went to disk: `lengths` was np.diff of
    all the offsets, computed for every batch."""
    lengths = np.minimum(np.diff(data.offsets)[index], max_length).astype(np.int32)
    width = max(int(lengths.max()) if len(index) else 1, 1)
    out = np.zeros((len(index), width), dtype=np.int32)
    pos = np.arange(width)
    mask = pos[None, :] < lengths[:, None]
    out[mask] = data.ids[(data.offsets[index][:, None] + pos[None, :])[mask]]
    return out, lengths


def table(rows, columns) -> str:
    head = "| " + " | ".join(title for title, _ in columns) + " |"
    rule = "|" + "---|" * len(columns)
    body = ["| " + " | ".join(fmt(row) for _, fmt in columns) + " |" for row in rows]
    return "\n".join([head, rule] + body)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="work directory (corpora, runs, scaling.json)")
    parser.add_argument("--sizes", default="4,40,400", help="corpus sizes in MB (default 4,40,400)")
    parser.add_argument("--vocab-sizes", default="10000,50000,200000",
                        help="--max-vocab values run on the largest corpus ('' for none)")
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--reuse", action="store_true", help="keep results already in scaling.json")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also run the corpus sizes with the package copy in DIR first on PYTHONPATH "
                             "(e.g. the previous version), recorded under 'baseline'")
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "corpora"), exist_ok=True)
    result_path = os.path.join(out, "scaling.json")
    results = {"sizes": {}, "vocab": {}, "input": {}, "baseline": {}}
    if args.reuse and os.path.exists(result_path):
        results.update(json.load(open(result_path, encoding="utf-8")))

    def save():
        atomic_write_json(result_path, results)

    text = base_text(os.path.join(out, "data"))
    pieces, rare, occurrences, counts = copy_pieces(text)
    base_bytes = len(text.encode("utf-8"))
    results["base"] = {"bytes": base_bytes, "distinct_words": len(counts), "rare_words": len(rare),
                       "rare_occurrences": occurrences, "words": sum(counts.values()),
                       "cpus": os.cpu_count()}
    print(f"base text: {base_bytes / 1e6:.1f} MB, {len(counts):,} distinct words, {len(rare):,} rare "
          f"({occurrences:,} occurrences suffixed per copy)", flush=True)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    corpora = {}
    for size in sizes:
        copies = max(1, round(size * 1e6 / base_bytes))
        path = os.path.join(out, "corpora", f"corpus_{size}mb.txt")
        if not os.path.exists(path):
            build_corpus(path, text, pieces, copies)
        corpora[size] = path

    for size in sizes:
        key = str(size)
        if key in results["sizes"]:
            continue
        run_dir = os.path.join(out, "runs", f"size_{size}mb")
        print(f"pretrain on {size} MB ...", flush=True)
        row = run_pretrain(corpora[size], run_dir, args.max_steps)
        row["corpus_mb"] = round(os.path.getsize(corpora[size]) / 1e6, 1)
        again = run_pretrain(corpora[size], run_dir, args.max_steps, fresh=False)  # resume
        row["resume"] = {k: again[k] for k in ("prepare_seconds", "peak_rss_mb", "wall_seconds",
                                               "reused_encoding", "load_average_at_start")}
        results["sizes"][key] = row
        save()
        print(json.dumps({k: v for k, v in row.items() if k != "log_tail"}), flush=True)

    largest = max(sizes)
    for vocab_size in [int(v) for v in args.vocab_sizes.split(",") if v]:
        key = str(vocab_size)
        if key in results["vocab"]:
            continue
        if vocab_size == DEFAULT_MAX_VOCAB and str(largest) in results["sizes"]:
            results["vocab"][key] = dict(results["sizes"][str(largest)], same_run_as=f"size {largest} MB")
        else:
            run_dir = os.path.join(out, "runs", f"vocab_{vocab_size}")
            print(f"pretrain on {largest} MB with --max-vocab {vocab_size} ...", flush=True)
            results["vocab"][key] = run_pretrain(corpora[largest], run_dir, args.max_steps,
                                                 ["--max-vocab", str(vocab_size)])
            shutil.rmtree(os.path.join(run_dir, "data"), ignore_errors=True)  # 300 MB of ids each
        save()

    for size in sizes if args.baseline else ():
        key = str(size)
        if key not in results["baseline"]:
            print(f"baseline pretrain on {size} MB ...", flush=True)
            run_dir = os.path.join(out, "runs", f"baseline_{size}mb")
            results["baseline"][key] = run_pretrain(corpora[size], run_dir, args.max_steps,
                                                    pythonpath=os.path.abspath(args.baseline))
            save()

    for size in sizes:
        key = str(size)
        if key not in results["input"]:
            results["input"][key] = input_timing(os.path.join(out, "runs", f"size_{size}mb"), corpora[size])
            save()

    mb = lambda v: f"{v:,.0f}"  # noqa: E731
    print("\nCorpus size (default model and vocabulary cap, --max-steps "
          f"{args.max_steps}; times under contention, see load averages in scaling.json):\n")
    rss_column = ("peak RSS: prepare / training / whole run", lambda r: f"{mb(r['peak_rss_prepare_mb'])} / "
                  f"{mb(r['peak_rss_train_mb'])} / {mb(r['peak_rss_mb'])} MB")
    step_column = ("s / step", lambda r: f"{r['seconds_per_step']:.3f}")
    rows = [dict(results["sizes"][str(s)], input=results["input"].get(str(s), {})) for s in sizes]
    print(table(rows, [
        ("corpus", lambda r: f"{r['corpus_mb']:.0f} MB"),
        ("sentences", lambda r: f"{r['sentences']:,}"),
        ("tokens", lambda r: f"{r['tokens'] / 1e6:.1f} M"),
        ("vocabulary", lambda r: f"{r['vocab_size']:,}"),
        ("distinct words counted (prunings)", lambda r: f"{r['counted_distinct_peak'] or 0:,} ({r['count_prunes']})"),
        ("prepare (count + encode)", lambda r: f"{r['prepare_seconds']:,.0f} s"),
        ("prepare on resume", lambda r: f"{r['resume']['prepare_seconds']:,.1f} s"),
        rss_column,
        step_column,
        ("batch read: disk / memory / memory before", lambda r: (
            f"{r['input']['disk_read_ms']:.2f} / {r['input'].get('memory_read_ms', float('nan')):.2f} / "
            f"{r['input'].get('memory_read_before_ms', float('nan')):.2f} ms") if r["input"] else "-"),
        ("input batch", lambda r: f"{r['input']['input_batch_ms']:.1f} ms" if r["input"] else "-"),
        ("ids.bin", lambda r: f"{r['ids_bin_mb']:,.0f} MB"),
        ("export", lambda r: f"{r['export_mb']:.1f} MB"),
    ]))
    if results.get("baseline"):
        print("\nBaseline (--baseline package copy), same corpora and command:\n")
        brows = [dict(results["baseline"][str(s)], size=s) for s in sizes if str(s) in results["baseline"]]
        print(table(brows, [
            ("corpus", lambda r: f"{r['size']} MB"),
            ("prepare", lambda r: f"{r['prepare_seconds']:,.0f} s"),
            rss_column,
            step_column,
        ]))
    if results["vocab"]:
        print(f"\nVocabulary size (--max-vocab, {largest} MB corpus):\n")
        vrows = [dict(results["vocab"][k], max_vocab=int(k)) for k in sorted(results["vocab"], key=int)]
        print(table(vrows, [
            ("--max-vocab", lambda r: f"{r['max_vocab']:,}"),
            ("vocabulary", lambda r: f"{r['vocab_size']:,}"),
            ("prepare", lambda r: f"{r['prepare_seconds']:,.0f} s"),
            rss_column,
            step_column,
            ("export", lambda r: f"{r['export_mb']:.1f} MB"),
        ]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
