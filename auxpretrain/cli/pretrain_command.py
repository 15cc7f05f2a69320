"""`auxpretrain pretrain`: one process, or one task of a TensorFlow cluster when TF_CONFIG is set.
TensorFlow is imported only once the flags, the --config file and TF_CONFIG are checked."""

from __future__ import annotations

import dataclasses

from auxpretrain.cli import flags
from auxpretrain.cli.data_commands import add_corpus_flags, add_corruption_flags, corruption_overrides
from auxpretrain.config import (CorpusConfig, CorruptionConfig, ModelConfig, PretrainConfig,
                                load_json_config)
from auxpretrain.errors import ConfigError

SECTIONS = {"model": ModelConfig, "pretrain": PretrainConfig, "corruption": CorruptionConfig,
            "corpus": CorpusConfig}
MODEL_FLAGS = ("embedding_size", "num_layers", "hidden_size", "activation", "pooling", "max_length")
PRETRAIN_FLAGS = ("epochs", "max_steps", "batch_size", "learning_rate", "seed", "deterministic", "context_passes",
                  "context_window", "eval_every", "checkpoint_every", "patience")


def add_pretrain(sub) -> None:
    p = sub.add_parser(
        "pretrain", help="pretrain an encoder on the auxiliary task and export it",
        description="Pretrain an encoder on unlabeled text (real sentences are good, corrupted "
                    "copies are bad) and write OUT/export/, the transferable collection. Rerunning "
                    "the same command on the same --out resumes from the last checkpoint. With "
                    "TF_CONFIG set, runs as one task (chief, worker or ps) of a TensorFlow cluster: "
                    "every task runs the same command; only the chief writes --out (docs/cli.md: "
                    "Training on a cluster).")
    p.add_argument("--corpus", nargs="+", required=True, metavar="FILE",
                   help="text files or globs (.txt .gz .bz2, one paragraph or sentence a line), "
                        ".jsonl/.csv/.parquet with --text-column, or hf:NAME[:CONFIG[:SPLIT]]")
    p.add_argument("--out", default="runs/pretrain", help="run directory (default: runs/pretrain)")
    p.add_argument("--config", metavar="FILE.json",
                   help='JSON with optional "model", "pretrain", "corruption" and "corpus" objects; '
                        "flags given on the command line override it; unknown keys are an error")
    flags.add(p, PretrainConfig, "objectives", metavar="NAME=W,...",
              help="objectives and their loss weights: sentence, ranking, window, token, context")
    for name in ("epochs", "max_steps", "batch_size", "learning_rate", "seed", "context_passes",
                 "context_window"):
        flags.add(p, PretrainConfig, name)
    for name in MODEL_FLAGS:
        choices = {"activation": ("tanh", "relu"), "pooling": ("mean_max", "max", "mean")}.get(name)
        flags.add(p, ModelConfig, name, choices=choices)
    add_corpus_flags(p)
    add_corruption_flags(p)
    p.add_argument("--init-embeddings", metavar="FILE",
                   help="start the embedding from word2vec/GloVe vectors (text or binary)")
    for name in ("eval_every", "checkpoint_every", "patience"):
        flags.add(p, PretrainConfig, name)
    flags.switch(p, PretrainConfig, "deterministic", "--deterministic", True,
                 "bit-identical runs and resumes without the compiled context kernel: sum the repeated "
                 "rows of the sparse updates first (slower steps; with the kernel, the default, runs "
                 "are bit-identical anyway)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--wait-for-workers", type=float, default=300.0, metavar="SECONDS",
                   help="cluster runs (TF_CONFIG): how long the chief waits at the end for the other "
                        "workers to finish before it exports and stops the ps tasks (default 300)")
    p.add_argument("--wait-for-ps", type=float, default=60.0, metavar="SECONDS",
                   help="cluster runs (TF_CONFIG): how long the chief and the workers wait for a parameter "
                        "server that stopped answering to come back (the job then recovers from the chief's "
                        "last checkpoint) before they exit with one line; the job started again resumes "
                        "(default 60)")
    p.set_defaults(func=run_pretrain)


def configs(args):
    """(model overrides, PretrainConfig, CorruptionConfig, CorpusConfig) from --config and the flags."""
    file_cfg = load_json_config(args.config) if args.config else {}
    unknown = sorted(set(file_cfg) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{args.config}: unknown section(s) {', '.join(unknown)}; "
                          f"use {', '.join(SECTIONS)}")
    where = args.config or "command line"
    sections = {}
    for name in SECTIONS:
        section = file_cfg.get(name, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{where}: {name}: expected a JSON object, got {type(section).__name__}")
        sections[name] = dict(section)
    model = dict(sections["model"], **flags.given(args, MODEL_FLAGS))
    if "vocab_size" in model:
        raise ConfigError("model.vocab_size is set by the corpus vocabulary; remove it")
    pre = dict(sections["pretrain"], **flags.given(args, PRETRAIN_FLAGS))
    if args.objectives is not None:
        pre["objectives"] = flags.parse_weights(args.objectives, "--objectives")
    cor = dict(sections["corruption"], **corruption_overrides(args))
    corpus = dict(sections["corpus"], **flags.given(args, [f.name for f in dataclasses.fields(CorpusConfig)]))
    pretrain_config = PretrainConfig.from_dict(pre, where=f"{where}: pretrain")
    corruption = CorruptionConfig.from_dict(cor, where=f"{where}: corruption")
    corpus_config = CorpusConfig.from_dict(corpus, where=f"{where}: corpus")
    ModelConfig.from_dict(dict(model, vocab_size=3), where=f"{where}: model")  # fail before reading
    return model, pretrain_config, corruption, corpus_config


def run_pretrain(args) -> int:
    from auxpretrain.pretraining.tf_config import task_from_environ

    task = task_from_environ()  # a bad TF_CONFIG fails here, before anything is read
    model, pretrain_config, corruption, corpus_config = configs(args)
    if task is not None:
        from auxpretrain.pretraining.cluster import run_task

        run_task(task, args.corpus, args.out, model, pretrain_config, corruption,
                 corpus_config=corpus_config, init_embeddings=args.init_embeddings,
                 wait_for_workers=args.wait_for_workers, wait_for_ps=args.wait_for_ps,
                 log=lambda line: print(line, flush=True))
        return 0
    from auxpretrain.pretraining.run import pretrain

    pretrain(args.corpus, args.out, model, pretrain_config, corruption, corpus_config=corpus_config,
             init_embeddings=args.init_embeddings, progress=not args.quiet)
    return 0
