"""The cluster run's control beside its training (pretraining.cluster): which tasks are still
there, a parameter server that dies, and the end of a job.

A ps task that dies takes the variables with it, and every TensorFlow call that needs it
(creating a session, a step, closing a session) then waits for it to come back: forever, if
it does not. `ParameterServerWatch` bounds that wait. It checks every second that each ps
accepts connections; a ps that answered before and stops answering is logged, and if it is
not back within `--wait-for-ps` seconds the task ends with one line and exit status 2 (the
process is ended from the watching thread: the main thread is blocked in TensorFlow and
nothing else can end it). If it comes back in time, TensorFlow recovers by itself: the chief
restores its last checkpoint and the job goes on. A job started again with the same command
resumes from the chief's last checkpoint in --out.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from typing import Callable, Optional

import tensorflow as tf

from auxpretrain.pretraining.tf_config import ClusterTask, worker_name

tf1 = tf.compat.v1

EXIT_STATUS = 2  # what the command line exits with on a user-facing error


def reachable(address: str, timeout: float = 2.0) -> bool:
    """Whether `host:port` accepts a TCP connection within `timeout` seconds."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def chief_exits(task: ClusterTask, within: float = 10.0) -> bool:
    """Whether the chief's port closes within `within` seconds (it exits right after telling
    the ps tasks to)."""
    deadline = time.time() + within
    while reachable(task.cluster["chief"][0]):
        if time.time() > deadline:
            return False
        time.sleep(0.5)
    return True


class ParameterServerWatch:
    """Ends this process (one line on stderr, exit status 2) when a ps task that answered
    before stops answering for `timeout` seconds; see the module docstring. `stop()` before
    the job's own end takes the ps tasks down."""

    def __init__(self, task: ClusterTask, timeout: float, log: Callable[[str], None], interval: float = 1.0):
        self.task, self.timeout, self.log, self.interval = task, timeout, log, interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="auxpretrain-ps-watch", daemon=True)

    def start(self) -> "ParameterServerWatch":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self) -> None:
        seen = set()  # the ps tasks that have answered once (the job may start before them)
        down_since: Optional[float] = None
        while not self._stopped.wait(self.interval):
            up = {i for i, address in enumerate(self.task.cluster["ps"]) if reachable(address, timeout=1.0)}
            seen |= up
            down = [f"ps:{i} ({self.task.cluster['ps'][i]})" for i in sorted(seen - up)]
            if not down:
                if down_since is not None:
                    self.log("the parameter servers answer again: the job recovers from the chief's last checkpoint")
                down_since = None
                continue
            if down_since is None:
                down_since = time.time()
                self.log(f"{', '.join(down)} stopped answering; waiting up to {self.timeout:g} s for it to come back")
            elif time.time() - down_since >= self.timeout and not self._stopped.is_set():
                print(f"auxpretrain: error: {self.task.name}: {', '.join(down)} stopped answering and did not "
                      f"come back within {self.timeout:g} s (--wait-for-ps); start it again and rerun every task's "
                      "command: the job resumes from the chief's last checkpoint in --out", file=sys.stderr)
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(EXIT_STATUS)


def finished_workers(raw, take_done, task, timeout: float, log) -> set:
    """Worker indexes from the done queue, waiting at most `timeout` seconds for all of them."""
    expected = set(range(1, task.num_workers))
    seen: set = set()
    if expected:
        log(f"waiting for {len(expected)} worker(s) to finish (at most {timeout:g} s)")
    deadline = time.time() + timeout
    while expected - seen:
        left = deadline - time.time()
        if left <= 0:
            missing = ", ".join(worker_name(w) for w in sorted(expected - seen))
            log(f"{missing} did not finish within {timeout:g} s (dead or slow): finishing without them")
            break
        try:
            seen.add(int(raw.run(take_done, options=tf1.RunOptions(timeout_in_ms=int(left * 1000) + 1))))
        except tf.errors.DeadlineExceededError:
            pass
    return seen & expected


def stop_parameter_servers(server, stop_ps, task, log) -> None:
    """One token on each ps task's stop queue: they exit."""
    told = 0
    for i, op in enumerate(stop_ps):
        if run_once(server, task, op, i):
            told += 1
        else:
            log(f"ps:{i} could not be told to exit; it is gone already")
    log(f"told {told} of {task.num_ps} ps task(s) to exit")


def run_once(server, task, op, ps_index: int, timeout_ms: int = 30000) -> bool:
    """Runs `op`, placed on ps task `ps_index`, in a session of its own that sees only that
    task; False if the task is gone (its port closed, or the run fails). Unlike the
    MonitoredSession, this never waits for a ps task to come back."""
    if not reachable(task.cluster["ps"][ps_index]):
        return False
    config = tf1.ConfigProto(device_filters=[f"/job:ps/task:{ps_index}", task.device])
    try:
        with tf1.Session(server.target, graph=op.graph, config=config) as sess:
            sess.run(op, options=tf1.RunOptions(timeout_in_ms=timeout_ms))
        return True
    except tf.errors.OpError:
        return False
