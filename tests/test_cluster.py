"""Cluster training (TF_CONFIG): parsing and checks of TF_CONFIG; the cluster graph (tables
sharded over 2 ps tasks, checkpoints read and written by the chief) in one process; a real
job of 1 ps + chief + 1 worker as subprocesses on 127.0.0.1; a chief restarted on the same
--out resumes. The multi-process tests start TensorFlow 3 + 2 times (~20-40 s on 2 cores)."""

import json
import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from auxpretrain.pretraining.tf_config import parse_tf_config, shard_indices, task_from_environ
from auxpretrain.errors import ConfigError

from conftest import make_tiny_corpus

MODEL = {"embedding_size": 13, "hidden_size": 17, "num_layers": 2, "max_length": 20}
PRETRAIN = dict(batch_size=16, eval_every=20, checkpoint_every=10, warmup_steps=4, heldout_fraction=0.1,
                min_heldout=20, learning_rate=5e-3, context_window=2, negatives=3)
CLUSTER = {"chief": ["127.0.0.1:2222"], "worker": ["127.0.0.1:2223", "127.0.0.1:2224"],
           "ps": ["127.0.0.1:2225"]}


def _tf_config(cluster=None, **task):
    return json.dumps({"cluster": CLUSTER if cluster is None else cluster, "task": task})


# ---------------------------------------------------------------- TF_CONFIG

def test_parse_a_worker_task():
    task = parse_tf_config(_tf_config(type="worker", index=1))
    assert (task.job, task.index, task.name, task.address) == ("worker", 1, "worker:1", "127.0.0.1:2224")
    assert (task.num_workers, task.num_ps, task.worker_index, task.is_chief) == (3, 1, 2, False)
    assert task.device == "/job:worker/task:1"
    chief = parse_tf_config(_tf_config(type="chief", index=0))
    assert chief.is_chief and chief.worker_index == 0
    assert parse_tf_config(_tf_config(type="ps", index=0)).worker_index == -1
    no_workers = {"chief": ["h:1"], "ps": ["h:2", "h:3"]}
    assert parse_tf_config(_tf_config(no_workers, type="ps", index=1)).num_workers == 1


def test_unset_or_blank_tf_config_means_a_single_process_run():
    assert task_from_environ({}) is None
    assert task_from_environ({"TF_CONFIG": "  "}) is None
    assert task_from_environ({"TF_CONFIG": _tf_config(type="chief", index=0)}).is_chief


@pytest.mark.parametrize("text, message", [
    ('{"cluster": {"chief": ["h:1"]', r"TF_CONFIG is not valid JSON \(line 1, column 30: Expecting ',' delimiter\)"),
    ("[1, 2]", 'TF_CONFIG must be a JSON object with "cluster" and "task"'),
    ('{"task": {"type": "chief", "index": 0}}', 'TF_CONFIG has no "cluster" object'),
    (json.dumps({"cluster": CLUSTER}), 'TF_CONFIG has no "task" object'),
    (_tf_config(type="evaluator", index=0), r'task.type "evaluator" is not a job of the cluster \(its jobs: chief, worker, ps\)'),
    (_tf_config(type="worker", index=2), r"task.index 2 is out of range: cluster.worker lists 2 addresses \(index 0 to 1\)"),
    (_tf_config(type="worker", index=-1), "task.index -1 is out of range"),
    (_tf_config(type="worker"), r"task.index is missing; set it to this task's position in cluster.worker \(0 to 1\)"),
    (_tf_config(type="worker", index="1"), 'task.index must be an integer, got "1"'),
    (_tf_config(index=0), "task.type is missing"),
    (_tf_config({"chief": ["h:1"], "worker": ["h:2"]}, type="chief", index=0), 'the cluster has no "ps" job'),
    (_tf_config({"worker": ["h:2"], "ps": ["h:3"]}, type="worker", index=0), 'the cluster has no "chief" job'),
    (_tf_config({"chief": ["h:1", "h:4"], "ps": ["h:3"]}, type="chief", index=0), "lists 2 addresses; a cluster has exactly one chief"),
    (_tf_config({"chief": ["h:1"], "ps": ["h"]}, type="ps", index=0), r'cluster.ps\[0\] is "h", not host:port'),
    (_tf_config({"chief": ["h:1"], "ps": ["h:1"]}, type="ps", index=0), r"h:1 is listed twice \(chief:0 and ps:0\)"),
    (_tf_config({"chief": ["h:1"], "ps": []}, type="chief", index=0), "cluster.ps must be a non-empty list"),
    (_tf_config({"chief": ["h:1"], "ps": ["h:2"], "evaluator": ["h:3"]}, type="chief", index=0),
     'cluster job "evaluator" is not supported'),
])
def test_bad_tf_config_is_one_clear_line(text, message):
    with pytest.raises(ConfigError, match=message) as caught:
        parse_tf_config(text)
    assert "\n" not in str(caught.value)


def test_cli_reports_a_bad_tf_config_before_reading_anything(tmp_path, monkeypatch, capsys):
    from auxpretrain.cli import main

    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"chief": ["h:1"]}, "task": {"type": "chief", "index": 0}')
    code = main(["pretrain", "--corpus", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("auxpretrain: error: TF_CONFIG is not valid JSON (line 1, column 70:")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_shards_are_disjoint_and_cover_the_training_split():
    shards = [shard_indices(23, w, 3) for w in range(3)]
    assert [list(s[:3]) for s in shards] == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    together = np.concatenate(shards)
    assert len(together) == 23 and set(together) == set(range(23))


# ---------------------------------------------------------------- the graph, in one process

def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_tables_are_sharded_over_the_ps_tasks_and_exported_whole(tf1):
    """2 ps tasks + the chief as in-process servers: each table is split in row blocks over
    the ps tasks, checkpoint ops run on the chief, and the exported `embedding/table` (the
    parts concatenated) has, at row i, the vector the model looks up for word i."""
    from auxpretrain.pretraining.tf_config import ClusterTask
    from auxpretrain.pretraining.cluster import build_cluster_graph
    from auxpretrain.config import CorruptionConfig, ModelConfig, PretrainConfig
    from auxpretrain.pretraining.batches import BatchMaker
    from auxpretrain.data.encoded import EncodedSentences
    from auxpretrain.data.vocab import Vocabulary

    words = [f"w{i}" for i in range(35)]
    vocab = Vocabulary.build([words, words], min_count=1)  # 37 rows: parts of 19 and 18
    ids = np.arange(2, 37, dtype=np.int32)
    data = EncodedSentences(ids, np.array([0, 12, 24, 35], dtype=np.int64))
    model_config = ModelConfig(vocab_size=len(vocab), **MODEL)
    config = PretrainConfig(**dict(PRETRAIN, batch_size=2, max_steps=5))
    maker = BatchMaker(data, vocab, model_config, config, CorruptionConfig())
    chief_port, ps0, ps1 = _free_ports(3)
    cluster = {"chief": [f"127.0.0.1:{chief_port}"], "ps": [f"127.0.0.1:{ps0}", f"127.0.0.1:{ps1}"]}
    task = ClusterTask(cluster, "chief", 0)
    g = build_cluster_graph(task, maker, model_config, config, 5, "abc")

    for table in ("embedding/table", "context/output_table"):
        parts = [v for v in g.graph.get_collection("variables") if v.name.startswith(table + "/part_")]
        assert [(v.name, v.shape.as_list()) for v in parts] == [
            (f"{table}/part_0:0", [19, 13]), (f"{table}/part_1:0", [18, 13])]
        assert {v.device for v in parts} == {"/job:ps/task:0", "/job:ps/task:1"}
    io_ops = [op for op in g.graph.get_operations() if op.type in ("SaveV2", "RestoreV2")]
    assert io_ops and all(op.device.startswith("/job:chief/task:0") for op in io_ops)
    assert {v.name for v in g.graph.get_collection("variables")}.isdisjoint({"cluster/stop:0", "cluster/fingerprint:0"})
    assert sorted(g.export_tensors) == ["embedding/table", "layer_0/bias", "layer_0/kernel",
                                        "layer_1/bias", "layer_1/kernel"]

    spec = tf1.train.ClusterSpec(cluster)
    servers = [tf1.train.Server(spec, job_name=job, task_index=i) for job, i in (("ps", 0), ("ps", 1))]
    chief = tf1.train.Server(spec, job_name="chief", task_index=0)
    servers.append(chief)
    with g.graph.as_default(), tf1.Session(chief.target, config=tf1.ConfigProto(
            device_filters=["/job:ps", task.device])) as sess:
        sess.run(tf1.global_variables_initializer())
        sess.run(g.local_init_op)
        assert sess.run(g.ready).size == 0
        table = sess.run(g.export_tensors["embedding/table"])
        probe = np.array([[1, 18, 19, 36]], np.int32)
        inputs = g.train.inputs
        embedded = sess.run(g.train.model.encoder.embedded, {
            inputs["good"]: probe, inputs["bad"]: probe, inputs["changed"]: probe > 99})
    assert table.shape == (37, 13)
    np.testing.assert_allclose(embedded[0], table[probe[0]], rtol=1e-6)


# ---------------------------------------------------------------- real jobs, one process a task

def _start(job, index, cluster, args, log_path):
    env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": job, "index": index}}))
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "auxpretrain.cli", "pretrain"] + args, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    proc.log_file, proc.log_path = log, log_path
    return proc


def _finish(procs, timeout):
    """Waits for every process; one still running at the deadline is killed and reported."""
    deadline = time.time() + timeout
    hung = []
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(deadline - time.time(), 1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            hung.append(name)
        proc.log_file.close()
    logs = {name: open(proc.log_path).read() for name, proc in procs.items()}
    return {name: proc.returncode for name, proc in procs.items()}, logs, hung


def _run_job(tmp, out, max_steps, workers):
    ports = _free_ports(2 + workers)
    cluster = {"chief": [f"127.0.0.1:{ports[0]}"], "ps": [f"127.0.0.1:{ports[1]}"]}
    if workers:
        cluster["worker"] = [f"127.0.0.1:{p}" for p in ports[2:]]
    config = tmp / "config.json"
    config.write_text(json.dumps({"model": MODEL, "pretrain": PRETRAIN}))
    args = ["--corpus", str(tmp / "corpus.txt"), "--config", str(config), "--min-count", "1",
            "--max-steps", str(max_steps), "--wait-for-workers", "60"]
    # only the chief writes: the other tasks get an --out that must never appear
    elsewhere = ["--out", str(tmp / "not-the-chief")]
    tag = f"{max_steps}"
    procs = {"ps": _start("ps", 0, cluster, args + elsewhere, tmp / f"ps-{tag}.log"),
             "chief": _start("chief", 0, cluster, args + ["--out", str(out)], tmp / f"chief-{tag}.log")}
    for i in range(workers):
        procs[f"worker{i}"] = _start("worker", i, cluster, args + elsewhere, tmp / f"worker{i}-{tag}.log")
    codes, logs, hung = _finish({"chief": procs.pop("chief"), **procs}, timeout=240)
    return codes, logs, hung


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """1 ps + chief + 1 worker, 40 steps, on a 200-line corpus."""
    tmp = tmp_path_factory.mktemp("cluster")
    make_tiny_corpus(tmp / "corpus.txt", lines=200)
    out = tmp / "run"
    codes, logs, hung = _run_job(tmp, out, 40, workers=1)
    return {"tmp": tmp, "out": out, "codes": codes, "logs": logs, "hung": hung}


@pytest.mark.cluster
def test_job_trains_exports_and_every_task_exits(job, capsys):
    from auxpretrain.cli import main
    from auxpretrain.export import expected_variables, load_export

    logs = job["logs"]
    assert not job["hung"], f"still running at the deadline: {job['hung']}\n" + logs["ps"][-2000:]
    assert job["codes"] == {"chief": 0, "ps": 0, "worker0": 0}, \
        {name: text[-1500:] for name, text in logs.items()}
    for text in logs.values():
        assert "Traceback" not in text
    assert not (job["tmp"] / "not-the-chief").exists()
    # the export has single-process pretrain's format: full table, same names
    exported = load_export(str(job["out"] / "export"))
    values = exported.values()
    assert {n: v.shape for n, v in values.items()} == expected_variables(exported.config)
    assert values["embedding/table"].shape == (exported.config.vocab_size, 13)
    assert values["layer_0/kernel"].shape == (3, 13, 17)
    metrics = exported.manifest["metrics"]
    assert metrics["steps"] >= 40 and {"pairwise_accuracy", "context_loss"} <= set(metrics["heldout"])
    assert metrics["cluster"]["finished_workers"] == ["worker:0"]
    assert exported.manifest["transfer"]["default_layers"] == ["embedding"]
    capsys.readouterr()
    assert main(["inspect", str(job["out"] / "export")]) == 0
    assert "embedding/table" in capsys.readouterr().out
    # the shards: sentence i goes to worker i % 2, chief = worker 0; together the whole split
    shard = re.compile(r"worker (\d) of 2: training on (\d+) of (\d+) sentences \(sentence i when i % 2 == (\d); first (\d)\)")
    (c_me, c_n, total, c_mod, c_first), = shard.findall(logs["chief"])
    (w_me, w_n, total_w, w_mod, w_first), = shard.findall(logs["worker0"])
    assert (c_me, c_mod, c_first, w_me, w_mod, w_first) == ("0", "0", "0", "1", "1", "1")
    assert total == total_w and int(c_n) + int(w_n) == int(total)
    # shutdown: the worker reported, the chief stopped the ps, the ps exited by itself
    assert len(re.findall(r"\[worker:0\] (done: |the parameter servers have shut down)", logs["worker0"])) == 1
    assert "told 1 of 1 ps task(s) to exit" in logs["chief"]
    assert "[ps:0] the chief has finished: exiting" in logs["ps"]


@pytest.mark.cluster
def test_restarted_chief_resumes_from_its_checkpoint(job):
    """The same --out, a larger --max-steps, a cluster without the worker: the chief restores
    OUT/checkpoints and goes on from there."""
    assert job["codes"]["chief"] == 0
    codes, logs, hung = _run_job(job["tmp"], job["out"], 60, workers=0)
    assert not hung and codes == {"chief": 0, "ps": 0}, {name: text[-1500:] for name, text in logs.items()}
    resumed = re.findall(r"\[chief:0\] resumed from step (\d+) \(checkpoints/model.ckpt-(\d+)\)", logs["chief"])
    assert resumed and int(resumed[0][0]) >= 40 and resumed[0][0] == resumed[0][1]
    from auxpretrain.export import load_export

    assert load_export(str(job["out"] / "export")).manifest["metrics"]["steps"] >= 60


@pytest.mark.cluster
def test_a_dead_ps_fails_every_task_with_one_line_and_the_job_resumes(tmp_path):
    """ps:0 is killed mid-job and does not come back: the chief and the worker wait
    --wait-for-ps seconds, then fail with one line (exit 2) instead of waiting forever; the
    same job started again resumes from the chief's last checkpoint and finishes. (A worker
    takes the chief's exit within 10 s of losing the ps for the job's normal end: the wait is
    longer than that.)"""
    make_tiny_corpus(tmp_path / "corpus.txt", lines=200)
    ports = _free_ports(3)
    cluster = {"chief": [f"127.0.0.1:{ports[0]}"], "ps": [f"127.0.0.1:{ports[1]}"],
               "worker": [f"127.0.0.1:{ports[2]}"]}
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model": MODEL, "pretrain": PRETRAIN}))
    args = ["--corpus", str(tmp_path / "corpus.txt"), "--config", str(config), "--min-count", "1",
            "--max-steps", "200", "--wait-for-workers", "30", "--wait-for-ps", "12"]
    out, elsewhere = tmp_path / "run", ["--out", str(tmp_path / "not-the-chief")]

    def start_job(tag):
        return {"ps": _start("ps", 0, cluster, args + elsewhere, tmp_path / f"ps-{tag}.log"),
                "chief": _start("chief", 0, cluster, args + ["--out", str(out)], tmp_path / f"chief-{tag}.log"),
                "worker0": _start("worker", 0, cluster, args + elsewhere, tmp_path / f"worker0-{tag}.log")}

    procs = start_job("first")
    deadline = time.time() + 240
    while time.time() < deadline and procs["chief"].poll() is None:
        ckpt = out / "checkpoints"
        if ckpt.exists() and any(re.fullmatch(r"model\.ckpt-[1-9]\d*\.index", f) for f in os.listdir(ckpt)):
            break
        time.sleep(0.05)
    procs["ps"].kill()
    codes, logs, hung = _finish(procs, timeout=120)
    assert not hung, hung
    assert codes == {"ps": -9, "chief": 2, "worker0": 2}, {n: t[-1500:] for n, t in logs.items()}
    for name, task in (("chief", "chief:0"), ("worker0", "worker:0")):
        last = logs[name].strip().splitlines()[-1]
        assert last == (f"auxpretrain: error: {task}: ps:0 ({cluster['ps'][0]}) stopped answering and did not "
                        "come back within 12 s (--wait-for-ps); start it again and rerun every task's command: "
                        "the job resumes from the chief's last checkpoint in --out"), logs[name][-1500:]
        assert "Traceback" not in logs[name]
    codes, logs, hung = _finish(start_job("again"), timeout=240)
    assert not hung and codes == {"ps": 0, "chief": 0, "worker0": 0}, {n: t[-1500:] for n, t in logs.items()}
    resumed = re.findall(r"\[chief:0\] resumed from step (\d+)", logs["chief"])
    assert resumed and int(resumed[0]) >= 10
    from auxpretrain.export import load_export

    assert load_export(str(out / "export")).manifest["metrics"]["steps"] >= 200
