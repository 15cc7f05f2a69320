"""`auxpretrain pretrain` in one process: corpus -> vocabulary -> good/bad batches -> TF1
training loop -> checkpoints, TensorBoard logs, held-out metrics -> the export.

Layout of OUT/:
  run.json             the run's configuration (a rerun with another config is refused)
  vocab.txt, counts.txt the vocabulary and its corpus counts (fixed for the run)
  data/                the corpus encoded as int32 ids (see data.encoded); training reads its
                       batches from there, a rerun reuses it
  checkpoints/         Saver checkpoints (model, Adam slots, global step); rerun resumes
  logs/                TensorBoard event files
  export/              the transferable collection (see export.py), written at the end

`prepare_run` and `write_run_export` are shared with the cluster run (pretraining.cluster).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from auxpretrain import export as export_lib
from auxpretrain.config import RENAMED, CorpusConfig, CorruptionConfig, ModelConfig, PretrainConfig, default_of
from auxpretrain.data.embeddings import load_word_vectors
from auxpretrain.data.encoded import PreparedCorpus, prepare_corpus
from auxpretrain.data.text import Tokenizer
from auxpretrain.data.vocab import Vocabulary
from auxpretrain.errors import ConfigError
from auxpretrain.files import atomic_write_json
from auxpretrain.model.variables import TRANSFERABLE_VARIABLES, strip_suffix
from auxpretrain.pretraining import context_op, evaluation, kernels
from auxpretrain.pretraining.batches import BatchMaker
from auxpretrain.pretraining.graph import build_train_graph, start_batches
from auxpretrain.pretraining.profiling import performance
from auxpretrain.pretraining.run_dir import (RunDirectory, check_run_files, read_run_json, restore_checkpoint,
                                             run_files, save_checkpoint)

tf1 = tf.compat.v1

# settings a rerun on the same OUT may change (they do not change what is learned so far)
RESUMABLE_KEYS = {"epochs", "max_steps", "eval_every", "checkpoint_every", "checkpoint_minutes",
                  "keep_checkpoints", "patience", "deterministic"}


def pretrain(corpus: Sequence[str], out_dir: str, model_overrides: Mapping[str, Any],
             config: PretrainConfig, corruption: CorruptionConfig, *,
             corpus_config: CorpusConfig = CorpusConfig(), init_embeddings: Optional[str] = None,
             progress: bool = True, measure_speed: bool = True,
             log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Pretrains on `corpus` and writes OUT/export; resumes an interrupted run in `out_dir`.

    One run at a time on `out_dir` (another is refused while this one runs); a run that fails
    before its first checkpoint leaves no run directory behind (pretraining.run_dir). With
    `config.deterministic` the same command gives the same export bytes, resumed or not
    (docs/cli.md says what is reproduced without it).

    Args:
      corpus: corpus specs (files, globs, hf:NAME; see `data.corpus.resolve`).
      out_dir: the run directory (see this module's docstring).
      model_overrides: ModelConfig fields other than vocab_size (set by the vocabulary).
      corpus_config: how the corpus is read (text column, lowercasing, vocabulary bounds).
      init_embeddings: a word2vec / GloVe file the embedding starts from.
      measure_speed: count FLOPs per step with TF's profiler and measure the machine's matmul
        peak (a few seconds) to report FLOP utilisation.

    Returns a summary dict (steps, metrics, throughput, export path).
    """
    with RunDirectory(out_dir):
        return _pretrain(corpus, out_dir, model_overrides, config, corruption, corpus_config=corpus_config,
                         init_embeddings=init_embeddings, progress=progress, measure_speed=measure_speed,
                         log=log)


def _pretrain(corpus, out_dir, model_overrides, config, corruption, *, corpus_config, init_embeddings,
              progress, measure_speed, log) -> Dict[str, Any]:
    """`pretrain` inside its locked run directory."""
    tokenizer, data, model_config = prepare_run(
        corpus, out_dir, model_overrides, config, corruption, corpus_config=corpus_config,
        init_embeddings=init_embeddings, log=log)
    vocab = data.vocab
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    maker = BatchMaker(data.train, vocab, model_config, config, corruption)
    total_steps = config.max_steps or int(math.ceil(config.epochs * maker.batches_per_epoch))
    # the context updates' fastest path: built at first use, said so (the train op uses it)
    op, why_no_op = context_op.load(say=log) if maker.want_context and kernels.compiled else (None, "")

    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(config.seed)
        built = build_train_graph(maker, model_config, config, total_steps)
        global_step = built.global_step
        inputs, model, train_op = built.inputs, built.model, built.train_op
        total_loss, summary_op = built.total_loss, built.summary_op
        saver = tf1.train.Saver(max_to_keep=config.keep_checkpoints)
        transferable = tf1.get_collection(TRANSFERABLE_VARIABLES)
        init = tf1.global_variables_initializer()
    graph.finalize()

    heldout_batches = evaluation.heldout_batches(data.heldout, vocab, model_config, config, corruption)
    session_config = tf1.ConfigProto(intra_op_parallelism_threads=0, inter_op_parallelism_threads=0)
    with tf1.Session(graph=graph, config=session_config) as sess:
        latest = restore_checkpoint(saver, sess, ckpt_dir, log)
        if latest:
            start = int(sess.run(global_step))
            log(f"resumed from step {start} ({os.path.relpath(latest, out_dir)})")
        else:
            sess.run(init)
            start = 0
            if init_embeddings:
                table = model.encoder.embedding_table
                rows, found = load_word_vectors(init_embeddings, vocab, model_config.embedding_size,
                                                sess.run(table))
                table.load(rows, sess)
                log(f"init embeddings: {found} of {len(vocab)} vocabulary words found in {init_embeddings}")
        start_batches(sess, built, start)
        writer = tf1.summary.FileWriter(os.path.join(out_dir, "logs"), graph if start == 0 else None)
        log(f"pretraining: {total_steps} steps of {config.batch_size} sentence pairs, objectives "
            + ", ".join(f"{k}={v:g}" for k, v in config.objectives.items())
            + f"; {maker.batches_per_epoch} steps per epoch"
            + (f"; context pairs from {config.context_passes} passes per epoch"
               if maker.want_context and config.context_passes > 1 else "")
            + _context_path(maker.want_context, op is not None, why_no_op))
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total_steps, initial=start, unit="step", file=sys.stderr,
                       dynamic_ncols=True, mininterval=1.0, disable=not sys.stderr.isatty())
        tokens = context_width = 0
        train_seconds = 0.0
        last_ckpt_time = time.time()
        step = start
        heldout = evaluation.HeldoutTracker(model, inputs, heldout_batches, writer, total_steps, config.patience, log)
        fetches = {"train": train_op, "loss": total_loss, "good": inputs["good"], "bad": inputs["bad"],
                   "context": inputs["ctx_ids"]}
        while step < total_steps:
            t0 = time.perf_counter()
            try:
                want_summary = (step + 1) % 50 == 0
                out = sess.run(dict(fetches, summary=summary_op) if want_summary else fetches)
            except tf.errors.OutOfRangeError:
                break
            train_seconds += time.perf_counter() - t0
            step += 1
            tokens += int(np.count_nonzero(out["good"])) + int(np.count_nonzero(out["bad"]))  # sentences read
            context_width += (out["context"] > 0).sum(-1).max(-1, initial=0).mean()  # the passes' widths
            if want_summary:
                writer.add_summary(out["summary"], step)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{out['loss']:.3f}", tok_s=f"{tokens / max(train_seconds, 1e-9):,.0f}")
            if step % config.eval_every == 0 or step == total_steps:
                if heldout.check(sess, step, out["loss"], f"{tokens / max(train_seconds, 1e-9):,.0f} tokens/s"):
                    save_checkpoint(saver, sess, ckpt_dir, step)
                    break
            if step % config.checkpoint_every == 0 or \
                    time.time() - last_ckpt_time > 60 * config.checkpoint_minutes:
                save_checkpoint(saver, sess, ckpt_dir, step)
                last_ckpt_time = time.time()
        if bar is not None:
            bar.close()
        final = heldout.finish(sess, step, scalars=False)
        history = heldout.history
        save_checkpoint(saver, sess, ckpt_dir, step)
        writer.close()
        values = {strip_suffix(v.name): value for v, value in zip(transferable, sess.run(transferable))}
        pooled = evaluation.pooled_on(sess, model, inputs, heldout_batches)
    act = evaluation.activation_stats(pooled, model_config.activation)
    probe = evaluation.frequency_probe(*evaluation.probe_sets(maker, heldout_batches), vocab.counts)
    throughput = tokens / max(train_seconds, 1e-9) if tokens else None
    steps_run = max(step - start, 1)
    perf = performance(model_config, config, data.train, throughput, context_width / steps_run, log) \
        if throughput and measure_speed else {}
    summary = {
        "steps": step, "total_steps": total_steps, "resumed_from": start,
        "heldout": {k: v for k, v in final.items() if k != "step"}, "history": history,
        "frequency_probe": probe, "pooled_features": act,
        "train_seconds_this_session": round(train_seconds, 1),
        "tokens_per_second": round(throughput, 1) if throughput else None, **perf,
    }
    write_run_export(out_dir, values, summary, data, corpus, model_config, config, corruption,
                      tokenizer, log)
    return summary


def _context_path(want_context: bool, have_op: bool, why_no_op: str) -> str:
    """What the `pretraining:` line says of the context updates when they are not the in-place op's."""
    if not want_context or (have_op and kernels.compiled is not None):
        return ""
    if kernels.compiled is None:
        return f"; context updates in TensorFlow ops, slower: {kernels.why_not_compiled}"
    return f"; context updates on gathered rows, slower: {why_no_op}"


def prepare_run(corpus: Sequence[str], out_dir: Optional[str], model_overrides: Mapping[str, Any],
                config: PretrainConfig, corruption: CorruptionConfig, *, corpus_config: CorpusConfig,
                init_embeddings: Optional[str], log: Callable[[str], None],
                extra_spec: Optional[Mapping[str, Any]] = None):
    """Reads the corpus for a run in `out_dir`: records the run there (run.json, vocab.txt,
    counts.txt, the encoded ids in data/) or, if it holds one already, refuses another
    configuration and reuses its vocabulary. `out_dir` None writes nothing (a cluster worker:
    the ids go to a temporary directory). `extra_spec`: more run.json entries.
    -> (tokenizer, PreparedCorpus, ModelConfig)"""
    c = corpus_config
    tokenizer = Tokenizer(lowercase=c.lowercase)
    run_spec = {
        "corpus": list(corpus), "text_column": c.text_column, "tokenizer": tokenizer.to_dict(),
        "min_count": c.min_count, "max_vocab": c.max_vocab, "split_sample_chars": c.split_sample_chars,
        "train_splitter": c.train_splitter,
        "init_embeddings": init_embeddings,
        "model": dict(model_overrides), "pretrain": config.to_dict(), "corruption": corruption.to_dict(),
        **dict(extra_spec or {}),
    }
    vocab, record, cache_dir = None, False, None
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        run_file = os.path.join(out_dir, "run.json")
        vocab_path, counts_path = os.path.join(out_dir, "vocab.txt"), os.path.join(out_dir, "counts.txt")
        cache_dir = os.path.join(out_dir, "data")
        old = read_run_json(out_dir)
        if old is not None:
            recorded = old.pop("files", None)
            diff = _config_diff(_upgraded(old), run_spec)
            if diff:
                raise ConfigError(f"{out_dir} holds a run with another configuration ({'; '.join(diff)}); "
                                  "use a new --out or the same settings to resume")
            if check_run_files(out_dir, recorded):
                vocab = Vocabulary.load(vocab_path, counts_path)
        record = vocab is None
    data = prepare_corpus(corpus, tokenizer, c.min_count, c.max_vocab, config.heldout_fraction,
                          config.min_heldout, config.seed, text_column=c.text_column, vocab=vocab, log=log,
                          cache_dir=cache_dir, split_sample_chars=c.split_sample_chars,
                          train_splitter=c.train_splitter)
    if record:
        data.vocab.save(vocab_path)
        data.vocab.save_counts(counts_path)
        atomic_write_json(run_file, dict(run_spec, files=run_files(out_dir)))
    model_config = ModelConfig.from_dict(dict(model_overrides, vocab_size=len(data.vocab)),
                                         where="model config")
    return tokenizer, data, model_config


def write_run_export(out_dir: str, values: Mapping[str, np.ndarray], summary: Dict[str, Any],
                     data: PreparedCorpus, corpus: Sequence[str], model_config: ModelConfig,
                     config: PretrainConfig, corruption: CorruptionConfig, tokenizer,
                     log: Callable[[str], None]) -> None:
    """Writes OUT/export from the encoder's `values` (name -> ndarray) with the run's manifest
    entries; `summary` (heldout, frequency_probe, pooled_features, ...) becomes its metrics and
    gets the export's path."""
    default_layers = model_config.layer_names() if config.default_layers == "all" else \
        [n.strip() for n in config.default_layers.split(",") if n.strip()]
    extra = {
        "transfer": {"default_layers": default_layers},
        "corpus": dict(data.stats, files=list(corpus)),
        "corruption": corruption.to_dict(), "pretrain": config.to_dict(),
        "metrics": summary,
    }
    exported = export_lib.write_export(os.path.join(out_dir, "export"), values, model_config,
                                       data.vocab, tokenizer, extra)
    summary["export"] = exported.path
    probe, act = summary["frequency_probe"], summary["pooled_features"]
    log(f"held-out: {evaluation.format_metrics(summary['heldout'])}; frequency-only probe: single "
        f"{probe['single_accuracy']:.3f}, pairwise {probe['pairwise_accuracy']:.3f}")
    log(f"pooled features: {act['saturated_fraction']:.1%} saturated, {act['zero_fraction']:.1%} zero, "
        f"{act['dead_units']} of {act['units']} units dead")
    log(f"export written to {os.path.join(out_dir, 'export')}")


def _upgraded(old: Any) -> Any:
    """An earlier version's run.json in today's terms: renamed keys under their new names, and
    the settings it did not record at the defaults it ran with."""
    if not isinstance(old, dict):
        return old
    old = dict(old)
    if isinstance(old.get("pretrain"), dict):
        pre = {RENAMED.get(k, k): v for k, v in old["pretrain"].items()}
        for f in dataclasses.fields(PretrainConfig):
            pre.setdefault(f.name, PretrainConfig().to_dict()[f.name])
        old["pretrain"] = pre
    old.setdefault("split_sample_chars", default_of(CorpusConfig, "split_sample_chars"))
    old.setdefault("train_splitter", False)  # earlier runs trained Punkt; their encoded ids are reused
    return old


def _config_diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> List[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        if key in RESUMABLE_KEYS:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key not in ("objectives", "ops"):
            keys += _config_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key} ({a!r} -> {b!r})")
    return keys
