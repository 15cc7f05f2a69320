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
    p = sub.add_parser("corrupt", help="write good/bad sentence pairs from a corpus (JSON Lines)",
                       description="Turn each sentence of a corpus into a (good, bad) pair.")
    p.set_defaults(func=_run_corrupt)


def _run_corrupt(args) -> int:
    return _error("corrupt: not yet implemented")


# ---------------------------------------------------------------- pretrain

def _add_pretrain(sub) -> None:
    from auxpretrain.config import ModelConfig, PretrainConfig

    d = PretrainConfig()
    m = ModelConfig(vocab_size=3)
    p = sub.add_parser(
        "pretrain", help="pretrain an encoder on the auxiliary task and export it",
        description="Pretrain an encoder on unlabeled text (real sentences are good, corrupted "
                    "copies are bad) and write OUT/export/, the transferable collection. Rerunning "
                    "the same command on the same --out resumes from the last checkpoint.")
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
    from auxpretrain.config import CorruptionConfig, ModelConfig, PretrainConfig, load_json_config
    from auxpretrain.errors import ConfigError

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
    for flag in ("epochs", "max_steps", "batch_size", "learning_rate", "seed", "eval_every",
                 "checkpoint_every", "patience"):
        if getattr(args, flag) is not None:
            pre[flag] = getattr(args, flag)
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
    p = sub.add_parser("transfer", help="train a downstream task model from an export (or random init)",
                       description="Restore an export into a task model, freeze as asked, train, evaluate.")
    p.set_defaults(func=_run_transfer)


def _run_transfer(args) -> int:
    return _error("transfer: not yet implemented")


# ---------------------------------------------------------------- corpus (package-shipped data)

def _add_corpus(sub) -> None:
    p = sub.add_parser("corpus", help="build the demo corpora from text that installed packages ship")
    p.set_defaults(func=_run_corpus)


def _run_corpus(args) -> int:
    return _error("corpus: not yet implemented")


# ---------------------------------------------------------------- main

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
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
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
