"""`auxpretrain pretrain` as one task of a TensorFlow cluster, when TF_CONFIG is set (see
pretraining.tf_config for its format).

Between-graph replication with asynchronous updates (no SyncReplicas, so a dead worker slows
the job down but does not stop it):
  ps      holds the variables; `embedding/table` and `context/output_table` are sharded over
          all ps tasks (fixed_size_partitioner). Needs no corpus and no disk.
  chief   worker 0. Initialises or restores OUT/checkpoints (MonitoredTrainingSession), trains
          on its shard, evaluates on the held-out split, checkpoints, writes OUT/export (the
          format of single-process `pretrain`), then tells the ps tasks to exit.
  worker  worker i + 1 for `worker` task i. Trains on its shard; writes nothing.

Every chief/worker reads the same corpus files and builds the same vocabulary and held-out
split (deterministic), then trains on the training sentences i with i % num_workers == its
worker index. Only the chief's --out needs a disk. A task whose corpus, vocabulary or settings
differ from the chief's refuses to start (a fingerprint variable on the ps).

Shutdown: each worker stops once the global step reaches the end (or the chief's stop flag is
set: early stop), puts its index on a queue on ps task 0 and exits 0. The chief waits for them
(at most `wait_for_workers` seconds: a dead worker is not waited for forever), evaluates,
closes its session (last checkpoint), writes the export, then puts one token on each ps task's
stop queue; each ps blocks dequeuing from that queue (shared_name) and exits when it gets it.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from auxpretrain.config import CorpusConfig
from auxpretrain.data.embeddings import load_word_vectors
from auxpretrain.errors import ConfigError, InputError
from auxpretrain.files import first_line
from auxpretrain.model.variables import TRANSFERABLE_VARIABLES, strip_suffix
from auxpretrain.pretraining import evaluation
from auxpretrain.pretraining.batches import BatchMaker
from auxpretrain.pretraining.cluster_control import (ParameterServerWatch, chief_exits, finished_workers, run_once,
                                                     stop_parameter_servers)
from auxpretrain.pretraining.graph import build_train_graph, start_batches, table_parts
from auxpretrain.pretraining.run import prepare_run, write_run_export
from auxpretrain.pretraining.run_dir import RunDirectory, usable_checkpoint
from auxpretrain.pretraining.tf_config import ENV_VAR, ClusterTask, shard_indices, worker_name

tf1 = tf.compat.v1

CONTROL_COLLECTION = "auxpretrain_cluster"  # the job's control variables; never checkpointed
_DONE_QUEUE = "auxpretrain_workers_done"  # on ps:0, one worker index per finished worker
_STOP_QUEUE = "auxpretrain_stop_ps{}"  # on ps:i, the chief's token that ends ps:i
_QUEUE_CAPACITY = 1024
_MAX_WAIT_SECONDS = 7200  # how long a worker waits for the chief to initialise (TF's default)


# ---------------------------------------------------------------- running a task

def run_task(task: ClusterTask, corpus: Sequence[str], out_dir: str, model_overrides: Mapping[str, Any],
             config, corruption, *, corpus_config: CorpusConfig = CorpusConfig(),
             init_embeddings: Optional[str] = None, wait_for_workers: float = 300.0,
             wait_for_ps: float = 60.0, log: Callable[[str], None] = print) -> Optional[Dict[str, Any]]:
    """Runs this process's task until the job is done; every log line starts with [job:index].
    Returns the chief's summary (the metrics in the export's manifest), None for other tasks.
    A chief or worker whose ps task stops answering for `wait_for_ps` seconds ends its process
    with one line and exit status 2 (cluster_control.ParameterServerWatch).
    """
    def tagged(line: str) -> None:
        log(f"[{task.name}] {line}")

    if task.job == "ps":
        run_ps(task, tagged)
        return None
    for flag, value in (("--wait-for-workers", wait_for_workers), ("--wait-for-ps", wait_for_ps)):
        if not 0 <= value < float("inf"):
            raise ConfigError(f"{flag} must be a number of seconds >= 0, got {value:g}")
    watch = ParameterServerWatch(task, wait_for_ps, tagged).start()
    try:
        with RunDirectory(out_dir) if task.is_chief else contextlib.nullcontext():  # only the chief writes
            return _run_worker(task, corpus, out_dir, model_overrides, config, corruption,
                               corpus_config=corpus_config, init_embeddings=init_embeddings,
                               wait_for_workers=wait_for_workers, watch=watch, log=tagged)
    finally:
        watch.stop()


def _start_server(task: ClusterTask, device_filters: List[str]):
    """-> (tf1.train.Server of this task, the ConfigProto for its sessions)."""
    config = tf1.ConfigProto(device_filters=device_filters)
    try:
        server = tf1.train.Server(tf1.train.ClusterSpec(dict(task.cluster)), job_name=task.job,
                                  task_index=task.index, config=config, start=True)
    except (tf.errors.OpError, ValueError) as e:
        raise ConfigError(f"{ENV_VAR}: {task.name} cannot serve at {task.address} ({first_line(e, 160)}); "
                          "is the port free on this machine?") from None
    return server, config


def _stop_queue(ps_index: int):
    """The FIFOQueue on ps task `ps_index` whose token (from the chief) ends that task."""
    with tf1.device(f"/job:ps/task:{ps_index}"):
        return tf1.FIFOQueue(_QUEUE_CAPACITY, tf.int32, shapes=[[]], name=f"stop_ps{ps_index}",
                             shared_name=_STOP_QUEUE.format(ps_index))


def run_ps(task: ClusterTask, log: Callable[[str], None] = print) -> None:
    """Serves the variables until the chief puts a token on this task's stop queue."""
    server, config = _start_server(task, [task.device])
    graph = tf.Graph()
    with graph.as_default():
        with tf1.device(task.device):
            token = _stop_queue(task.index).dequeue()
    log(f"parameter server at {task.address}: exits when the chief has finished")
    with tf1.Session(server.target, graph=graph, config=config) as sess:
        sess.run(token)
    log("the chief has finished: exiting")


def _fingerprint(data, model_config, config, corruption, total_steps: int) -> str:
    """What every task must agree on (vocabulary, split sizes, settings), as a short hash."""
    facts = {"vocab": data.vocab.sha256, "train": len(data.train), "heldout": len(data.heldout),
             "model": model_config.to_dict(), "pretrain": config.to_dict(),
             "corruption": corruption.to_dict(), "total_steps": total_steps}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode("utf-8")).hexdigest()[:16]


class _RawSession:
    """`run` on a MonitoredSession's underlying session: no hooks (evaluation, control ops)."""
    def __init__(self, monitored):
        self._monitored = monitored

    def run(self, fetches, feed_dict=None, options=None):
        def step_fn(step_context):
            return step_context.session.run(fetches, feed_dict, options=options)

        return self._monitored.run_step_fn(step_fn)


ClusterGraph = collections.namedtuple(
    "ClusterGraph", ["graph", "train", "stop", "set_stop", "fingerprint", "ready", "local_init_op",
                     "table_parts", "export_tensors", "saver", "report_done", "take_done", "stop_ps"])
ClusterGraph.__doc__ = """What `build_cluster_graph` returns.

train: pretraining.graph.TrainGraph (global step, batch iterator, inputs, model, train op...).
stop, fingerprint: control variables on a ps task (never checkpointed): the chief's stop flag
  (early stop) and what every task must agree on; `set_stop` sets the flag.
ready: string [n], what is still uninitialised (model and control variables).
local_init_op: the chief's: initialises the control variables (None on workers).
table_parts: the parts of `embedding/table`, in row order, one per ps task.
export_tensors: checkpoint name -> tensor of the transferable variables, `embedding/table`
  whole ([vocab, dim], its parts concatenated): what the export holds.
saver: saves and restores on this task's own device (the ps tasks need no disk).
report_done / take_done: put this worker's index on / take one from the done queue (ps:0).
stop_ps: one op per ps task putting the token that ends it on its stop queue.
"""


def build_cluster_graph(task: ClusterTask, maker, model_config, config, total_steps: int,
                        fingerprint: str) -> ClusterGraph:
    """Builds the training graph of a chief or worker task in a new graph, variables on the
    ps tasks (replica_device_setter), both [vocab, dim] tables sharded over all of them."""
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(config.seed)
        setter = tf1.train.replica_device_setter(cluster=tf1.train.ClusterSpec(dict(task.cluster)),
                                                 worker_device=task.device)
        with tf1.device(setter):
            # a worker's batches never run out: the global step ends the job (and a restarted
            # chief may roll it back to its checkpoint while the workers keep going)
            built = build_train_graph(maker, model_config, config, total_steps,
                                      partitioner=tf1.fixed_size_partitioner(task.num_ps),
                                      stream_end=2 ** 62, shared_tables=True)
            with tf1.name_scope("cluster"):
                stop = tf1.Variable(False, trainable=False, collections=[CONTROL_COLLECTION], name="stop")
                agreed = tf1.Variable(fingerprint, trainable=False, collections=[CONTROL_COLLECTION],
                                      name="fingerprint")
            set_stop = stop.assign(True)
            # workers wait for the model AND the control variables (the chief sets those last)
            ready = tf.concat([tf1.report_uninitialized_variables(),
                               tf1.report_uninitialized_variables([stop, agreed])], axis=0)
            parts = table_parts(built.model.encoder.embedding_table)
            export_tensors = {strip_suffix(v.name): v for v in tf1.get_collection(TRANSFERABLE_VARIABLES)
                              if all(v is not p for p in parts)}
            export_tensors["embedding/table"] = tf.concat(parts, axis=0)
            local_init = tf.group(tf1.train.Scaffold.default_local_init_op(), stop.initializer,
                                  agreed.initializer) if task.is_chief else None
        with tf1.device(task.device):
            saver = tf1.train.Saver(max_to_keep=config.keep_checkpoints)
        with tf1.device("/job:ps/task:0"):
            done_queue = tf1.FIFOQueue(_QUEUE_CAPACITY, tf.int32, shapes=[[]], name="workers_done",
                                       shared_name=_DONE_QUEUE)
            report_done = done_queue.enqueue(task.worker_index)
            take_done = done_queue.dequeue()
        stop_ps = []
        for i in range(task.num_ps):
            queue = _stop_queue(i)
            with tf1.device(f"/job:ps/task:{i}"):
                stop_ps.append(queue.enqueue(1))
    return ClusterGraph(graph, built, stop, set_stop, agreed, ready, local_init, parts,
                        export_tensors, saver, report_done, take_done, stop_ps)


def _run_worker(task: ClusterTask, corpus, out_dir, model_overrides, config, corruption, *,
                corpus_config, init_embeddings, wait_for_workers, watch,
                log) -> Optional[Dict[str, Any]]:
    """A training task: the chief (worker 0) or a `worker` task."""
    chief = task.is_chief
    # the chief records the run in OUT as `pretrain` does (and refuses another configuration
    # there); the other workers write nothing
    tokenizer, data, model_config = prepare_run(
        corpus, out_dir if chief else None, model_overrides, config, corruption,
        corpus_config=corpus_config, init_embeddings=init_embeddings, log=log,
        extra_spec={"cluster": {"ps_tasks": task.num_ps}})  # the checkpoints' table shards
    vocab = data.vocab
    me, workers = task.worker_index, task.num_workers
    index = shard_indices(len(data.train), me, workers)
    if len(index) < config.batch_size:
        raise InputError(f"{corpus[0]}: {task.name}'s shard has {len(index)} training sentences "
                         f"(1 in {workers} of {len(data.train)}), fewer than one batch of "
                         f"{config.batch_size}; use more text, fewer workers or a smaller --batch-size")
    log(f"worker {me} of {workers}: training on {len(index)} of {len(data.train)} sentences "
        f"(sentence i when i % {workers} == {me}; first {int(index[0])})")
    # each worker draws its own batch order and corruptions; the chief's equal a single run's
    maker = BatchMaker(data.train.subset(index), vocab, model_config,
                                dataclasses.replace(config, seed=config.seed + 1009 * me), corruption)
    total_steps = config.max_steps or \
        int(math.ceil(config.epochs * max(1, len(data.train) // config.batch_size)))
    fingerprint = _fingerprint(data, model_config, config, corruption, total_steps)
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    latest = usable_checkpoint(ckpt_dir, log) if chief else None  # a damaged newest: the previous one
    early_rows = None
    if chief and init_embeddings and latest is None:
        # read (and check) the vectors before any session; NaN rows: words not in the file

        early_rows, found = load_word_vectors(
            init_embeddings, vocab, model_config.embedding_size,
            np.full((len(vocab), model_config.embedding_size), np.nan, np.float32))
        log(f"init embeddings: {found} of {len(vocab)} vocabulary words found in {init_embeddings}")

    server, session_config = _start_server(task, ["/job:ps", task.device])
    g = build_cluster_graph(task, maker, model_config, config, total_steps, fingerprint)
    built = g.train

    def init_fn(scaffold, session):  # the chief, starting fresh: pretrained rows
        if early_rows is None:
            return
        rows = session.run(g.export_tensors["embedding/table"])
        known = ~np.isnan(early_rows[:, 0])
        rows[known] = early_rows[known]
        offset = 0
        for part in g.table_parts:
            n = int(part.shape[0])
            part.load(rows[offset:offset + n], session)
            offset += n

    class StartBatches(tf1.train.SessionRunHook):
        """(Re)starts the batch stream at this worker's share of the global step."""

        def after_create_session(self, session, coord):
            step = int(session.run(built.global_step))
            start_batches(session, built, step // workers)

    with g.graph.as_default():
        scaffold = tf1.train.Scaffold(init_fn=init_fn, ready_op=g.ready, local_init_op=g.local_init_op,
                                      summary_op=built.summary_op, saver=g.saver)
        if not chief:
            _wait_for_chief(server, g.graph, session_config, g.ready, log)
        logs_dir = os.path.join(out_dir, "logs") if chief else None
        with tf1.device(task.device):  # the scaffold's and hooks' own ops run here
            session = tf1.train.MonitoredTrainingSession(
                master=server.target, is_chief=chief, checkpoint_dir=ckpt_dir if chief else None,
                scaffold=scaffold, hooks=[tf1.train.StopAtStepHook(last_step=total_steps), StartBatches()],
                save_checkpoint_steps=config.checkpoint_every, save_checkpoint_secs=None,
                save_summaries_steps=50, save_summaries_secs=None, summary_dir=logs_dir,
                config=session_config, max_wait_secs=_MAX_WAIT_SECONDS)
        raw = _RawSession(session)
        start, their_fingerprint, stopped = raw.run([built.global_step, g.fingerprint, g.stop])
        start = int(start)
        if their_fingerprint.decode("utf-8") != fingerprint:
            session.close()
            raise ConfigError(f"{task.name}: this task's vocabulary, corpus size or settings differ "
                              "from the chief's; start every task with the same command and the same "
                              "corpus files")
        if not chief:
            _worker_loop(task, server, session, g, start, bool(stopped), total_steps, watch, log)
            return None
        if latest:
            restored = int(tf1.train.load_variable(latest, "global_step"))
            log(f"resumed from step {restored} ({os.path.relpath(latest, out_dir)})"
                + (f"; global step now {start}, the workers went on meanwhile" if start != restored else ""))
        summary, values = _chief_loop(task, session, raw, g, start, total_steps, maker, data,
                                      logs_dir, model_config, config, corruption, wait_for_workers, log)
    write_run_export(out_dir, values, summary, data, corpus, model_config, config,
                               corruption, tokenizer, log)
    watch.stop()  # the ps tasks go now
    stop_parameter_servers(server, g.stop_ps, task, log)
    return summary


def _wait_for_chief(server, graph, session_config, ready, log) -> None:
    """Polls until the chief has initialised or restored the variables. (TF's own wait
    polls every 30 s; this one every half second.)"""
    deadline = time.time() + _MAX_WAIT_SECONDS
    said = False
    with tf1.Session(server.target, graph=graph, config=session_config) as sess:
        while time.time() < deadline:
            try:
                if sess.run(ready).size == 0:
                    return
            except (tf.errors.UnavailableError, tf.errors.AbortedError):
                pass  # a ps is (re)starting
            if not said:
                log("waiting for the chief to initialise the variables")
                said = True
            time.sleep(0.5)
    raise ConfigError(f"the chief did not initialise the variables within {_MAX_WAIT_SECONDS} s; "
                      "is it running, with the same TF_CONFIG cluster?")


def _worker_loop(task, server, session, g: ClusterGraph, start, stopped, total_steps, watch, log) -> None:
    """Trains until the global step reaches the end or the chief sets the stop flag, then
    tells the chief (done queue) and exits."""
    gone_errors = (tf.errors.UnavailableError, tf.errors.AbortedError)
    fetches = {"step": g.train.train_op, "stop": g.stop, "good": g.train.inputs["good"], "bad": g.train.inputs["bad"]}
    state = {"step": start, "stop": stopped}
    steps = tokens = 0
    gone = False

    def step_fn(step_context):
        try:
            return step_context.run_with_hooks(fetches)
        except gone_errors:
            # the ps tasks exit only after the chief has finished: if this worker saw the end,
            # or the chief exits too, the job is over; otherwise a ps failed and TF recovers
            # (it waits for the ps to come back)
            if state["step"] >= total_steps or state["stop"] or chief_exits(task):
                return None
            raise  # a ps failed: TF recovers if it comes back in time (else the watch ends the task)

    if not (start >= total_steps or stopped):
        while not session.should_stop():
            try:
                out = session.run_step_fn(step_fn)
            except tf.errors.OutOfRangeError:
                break
            if out is None:
                gone = True
                break
            steps += 1
            tokens += int(np.count_nonzero(out["good"])) + int(np.count_nonzero(out["bad"]))
            state.update(step=int(out["step"]), stop=bool(out["stop"]))
            if state["stop"]:
                break
    watch.stop()  # from here on the ps tasks may go: the job is over
    try:
        session.close()
    except Exception:  # noqa: BLE001 - the ps may be gone already; a worker has nothing to save
        pass
    if not gone:  # after closing: the chief may stop the ps tasks as soon as it has this
        gone = not run_once(server, task, g.report_done, 0)
    if gone:
        log(f"the parameter servers have shut down (the chief has finished): {steps} steps run, "
            f"last global step seen {state['step']}; exiting")
    else:
        log(f"done: {steps} steps run ({tokens} tokens), global step {state['step']} of {total_steps}")


def _chief_loop(task, session, raw, g: ClusterGraph, start, total_steps, maker, data, logs_dir,
                model_config, config, corruption, wait_for_workers, log):
    """Trains, evaluating every `eval_every` global steps; then sets the stop flag, waits for
    the workers, evaluates, reads the export's values and closes the session (the last
    checkpoint). -> (summary, export values)"""
    built = g.train
    heldout_batches = evaluation.heldout_batches(data.heldout, data.vocab, model_config, config, corruption)
    writer = tf1.summary.FileWriterCache.get(logs_dir)
    log(f"pretraining on {task.num_workers} worker(s) and {task.num_ps} ps task(s): {total_steps} "
        f"global steps of {config.batch_size} sentence pairs, objectives "
        + ", ".join(f"{k}={v:g}" for k, v in config.objectives.items()))
    model, inputs = built.model, built.inputs
    fetches = {"step": built.train_op, "loss": built.total_loss, "good": inputs["good"], "bad": inputs["bad"]}
    heldout = evaluation.HeldoutTracker(model, inputs, heldout_batches, writer, total_steps, config.patience, log)
    step = start
    tokens, steps, train_seconds = 0, 0, 0.0
    next_eval = (start // config.eval_every + 1) * config.eval_every
    try:
        while step < total_steps and not session.should_stop():
            t0 = time.perf_counter()
            try:
                out = session.run(fetches)
            except tf.errors.OutOfRangeError:
                break
            train_seconds += time.perf_counter() - t0
            steps += 1
            step = int(out["step"])
            tokens += int(np.count_nonzero(out["good"])) + int(np.count_nonzero(out["bad"]))
            if step >= next_eval or step >= total_steps:
                next_eval = (step // config.eval_every + 1) * config.eval_every
                if heldout.check(raw, step, out["loss"],
                                 f"{tokens / max(train_seconds, 1e-9):,.0f} tokens/s on the chief"):
                    break
        raw.run(g.set_stop)  # workers stop at their next step (without it, at total_steps)
        finished = finished_workers(raw, g.take_done, task, wait_for_workers, log)
        step = int(raw.run(built.global_step))
        final = heldout.finish(raw, step)
        values = raw.run(g.export_tensors)
        pooled = evaluation.pooled_on(raw, model, inputs, heldout_batches)
    finally:
        session.close()  # the CheckpointSaverHook saves the last step
    history = heldout.history
    throughput = tokens / max(train_seconds, 1e-9) if tokens else None
    summary = {
        "steps": step, "total_steps": total_steps, "resumed_from": start,
        "heldout": {k: v for k, v in final.items() if k != "step"}, "history": history,
        "frequency_probe": evaluation.frequency_probe(*evaluation.probe_sets(maker, heldout_batches),
                                                    data.vocab.counts),
        "pooled_features": evaluation.activation_stats(pooled, model_config.activation),
        "train_seconds_this_session": round(train_seconds, 1),
        "tokens_per_second": round(throughput, 1) if throughput else None,
        "cluster": {"workers": task.num_workers, "ps_tasks": task.num_ps, "chief_steps": steps,
                    "finished_workers": sorted(worker_name(w) for w in finished)},
    }
    return summary, values
