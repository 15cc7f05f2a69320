"""TF_CONFIG: which task of a TensorFlow cluster this process is.

TF_CONFIG (what Kubernetes TFJob and other launchers set) names the cluster's tasks and this
process's task:
  {"cluster": {"chief": ["h0:2222"], "worker": ["h1:2222"], "ps": ["h0:2223"]},
   "task": {"type": "worker", "index": 0}}

Parsed before anything else is read, with one-line errors. No TensorFlow here.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Mapping, Optional, Sequence

from auxpretrain.errors import ConfigError

ENV_VAR = "TF_CONFIG"

JOBS = ("chief", "worker", "ps")

_EXAMPLE = ('{"cluster": {"chief": ["host0:2222"], "worker": ["host1:2222"], "ps": ["host0:2223"]}, '
            '"task": {"type": "worker", "index": 0}}')

@dataclasses.dataclass(frozen=True)
class ClusterTask:
    """This process's place in the cluster, as TF_CONFIG says."""

    cluster: Mapping[str, Sequence[str]]  # job name -> "host:port" of its tasks, by index
    job: str  # "chief", "worker" or "ps"
    index: int  # this task's position in cluster[job]

    @property
    def name(self) -> str:
        return f"{self.job}:{self.index}"

    @property
    def address(self) -> str:
        return self.cluster[self.job][self.index]

    @property
    def device(self) -> str:
        return f"/job:{self.job}/task:{self.index}"

    @property
    def is_chief(self) -> bool:
        return self.job == "chief"

    @property
    def num_ps(self) -> int:
        return len(self.cluster["ps"])

    @property
    def num_workers(self) -> int:
        """Tasks that train: the chief and every `worker` task."""
        return 1 + len(self.cluster.get("worker", ()))

    @property
    def worker_index(self) -> int:
        """0 for the chief, i + 1 for `worker` task i (ps tasks have none: -1)."""
        return {"chief": 0, "worker": self.index + 1}.get(self.job, -1)

def worker_name(worker_index: int) -> str:
    """0 -> "chief:0", i -> "worker:{i - 1}"."""
    return "chief:0" if worker_index == 0 else f"worker:{worker_index - 1}"

def parse_tf_config(text: str, where: str = ENV_VAR) -> ClusterTask:
    """Parses and checks a TF_CONFIG value: one chief, at least one ps, optional workers.

    Raises:
      ConfigError: one line saying what is wrong and what to write instead.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
                          f"expected e.g. {_EXAMPLE}") from None
    if not isinstance(data, dict):
        raise ConfigError(f'{where} must be a JSON object with "cluster" and "task", e.g. {_EXAMPLE}')
    cluster, task = data.get("cluster"), data.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise ConfigError(f'{where} has no "cluster" object (job name -> list of "host:port"); '
                          f"expected e.g. {_EXAMPLE}")
    if not isinstance(task, dict):
        raise ConfigError(f'{where} has no "task" object saying which task this process is '
                          f'({{"type": "chief"|"worker"|"ps", "index": N}}); expected e.g. {_EXAMPLE}')
    jobs: Dict[str, List[str]] = {}
    seen: Dict[str, str] = {}
    for job, addresses in cluster.items():
        if job not in JOBS:
            raise ConfigError(f'{where}: cluster job "{job}" is not supported; use chief, worker and ps')
        if not isinstance(addresses, list) or not addresses or \
                not all(isinstance(a, str) for a in addresses):
            raise ConfigError(f'{where}: cluster.{job} must be a non-empty list of "host:port" strings, '
                              f"got {json.dumps(addresses)}")
        for i, address in enumerate(addresses):
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f'{where}: cluster.{job}[{i}] is "{address}", not host:port '
                                  '(e.g. "10.0.0.5:2222")')
            if address in seen:
                raise ConfigError(f"{where}: {address} is listed twice ({seen[address]} and {job}:{i}); "
                                  "every task needs its own host:port")
            seen[address] = f"{job}:{i}"
        jobs[job] = list(addresses)
    if "chief" not in jobs:
        raise ConfigError(f'{where}: the cluster has no "chief" job; add one, it checkpoints and '
                          'writes the export: "chief": ["host:port"]')
    if len(jobs["chief"]) != 1:
        raise ConfigError(f"{where}: cluster.chief lists {len(jobs['chief'])} addresses; a cluster "
                          'has exactly one chief (more training tasks go in "worker")')
    if "ps" not in jobs:
        raise ConfigError(f'{where}: the cluster has no "ps" job; add at least one parameter server '
                          'to hold the variables: "ps": ["host:port"]')
    kind = task.get("type")
    if not isinstance(kind, str) or not kind:
        raise ConfigError(f'{where}: task.type is missing; set it to "chief", "worker" or "ps"')
    if kind not in jobs:
        raise ConfigError(f'{where}: task.type "{kind}" is not a job of the cluster '
                          f"(its jobs: {', '.join(j for j in JOBS if j in jobs)})")
    index = task.get("index")
    count = len(jobs[kind])
    if index is None:
        raise ConfigError(f"{where}: task.index is missing; set it to this task's position in "
                          f"cluster.{kind} (0 to {count - 1})")
    if isinstance(index, bool) or not isinstance(index, int):
        raise ConfigError(f"{where}: task.index must be an integer, got {json.dumps(index)}")
    if not 0 <= index < count:
        raise ConfigError(f"{where}: task.index {index} is out of range: cluster.{kind} lists {count} "
                          f"address{'es' if count > 1 else ''} (index 0 to {count - 1})")
    return ClusterTask(jobs, kind, index)

def task_from_environ(environ: Optional[Mapping[str, str]] = None) -> Optional[ClusterTask]:
    """The task TF_CONFIG describes, or None when it is unset or blank (a single-process run)."""
    text = (os.environ if environ is None else environ).get(ENV_VAR)
    if text is None or not text.strip():
        return None
    return parse_tf_config(text)

def shard_indices(num_sentences: int, worker_index: int, num_workers: int):
    """int64 [k]: the training sentences of one worker, i with i % num_workers == worker_index."""
    import numpy as np

    return np.arange(worker_index, num_sentences, num_workers, dtype=np.int64)
