"""Per-epoch checkpoints of a downstream training run (`transfer --checkpoint-dir`).

A checkpoint directory holds one run: run.json (what decides its result: settings, data,
export), then after every epoch a Saver checkpoint of every variable (weights, Adam slots)
and state.json, written atomically and last, naming the files it commits with their sha256.
Rerunning the same command resumes from the last committed epoch and ends bit-identical to an
uninterrupted run; another run's settings in the same directory are refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from auxpretrain import schema
from auxpretrain.config import ModelConfig, TransferConfig
from auxpretrain.errors import ConfigError, InputError
from auxpretrain.files import (atomic_write_json, check_file_names, first_line, is_temporary_of,
                               read_json_descriptor, sha256_file, verify_files)

tf1 = tf.compat.v1


RUN_JSON = "run.json"  # checkpoint directory: the run's identity (settings, data, export)

STATE_JSON = "state.json"  # checkpoint directory: the last completed epoch (the commit point)

CHECKPOINT_FORMAT_VERSION = 1

_CKPT_FILE = re.compile(r"epoch-\d+\.ckpt[._-]")  # our checkpoint files and TF's temporaries of them

CHECKPOINT_FIX = "delete the directory (or pass another --checkpoint-dir) to start over"

class EpochCheckpoints:
    """Per-epoch checkpoints of one training run in `directory`, committed by state.json.

    After epoch k: a Saver checkpoint `epoch-k.ckpt` of every variable of the graph (weights,
    Adam slots and beta powers), then state.json, written atomically and last, naming it, the
    best epoch's checkpoint (whose trained variables are the best weights), the sha256 of their
    files and the loop's state (step, early stopping, history). A crash at any point leaves the
    previous state.json and the files it names intact; files no state.json names are leftovers
    of an interrupted save and are removed. A damaged state.json or checkpoint file is one
    InputError, never a silent fresh start. A finished run keeps only the best checkpoint.
    """

    def __init__(self, directory: str, saver, trained_names: Sequence[str]):
        self.directory, self.saver, self.trained_names = directory, saver, list(trained_names)
        self.path = os.path.join(directory, STATE_JSON)
        self.files: Dict[str, str] = {}  # file name -> sha256 of the files the state names

    def load(self) -> Optional[Dict[str, Any]]:
        """The committed state, its files verified; None before the first epoch's commit."""
        os.makedirs(self.directory, exist_ok=True)
        if not os.path.exists(self.path):
            self._clean()
            return None
        path, state = read_json_descriptor(self.directory, STATE_JSON, "a transfer checkpoint state",
                                                 CHECKPOINT_FIX, error=InputError)
        if isinstance(state.get("files"), dict):
            check_file_names(state["files"], path, error=InputError)
        schema.check(state, schema.STATE_JSON, path, CHECKPOINT_FIX, InputError)
        try:
            if state["format_version"] != CHECKPOINT_FORMAT_VERSION:
                raise ValueError(f"format_version {state['format_version']!r}")
            files = dict(state["files"])
            for key in ("checkpoint", "best_checkpoint"):
                if not any(name.startswith(str(state[key]) + ".") for name in files):
                    raise ValueError(f"{key} {state[key]!r} has no files")
        except ValueError as e:
            raise InputError(f"{path}: incomplete or edited ({e}); {CHECKPOINT_FIX}") from None
        verify_files(self.directory, files, "transfer checkpoint", CHECKPOINT_FIX, error=InputError)
        self.files = files
        self._clean()
        return state

    def restore(self, sess, state: Mapping[str, Any]) -> Dict[str, np.ndarray]:
        """Restores the state's checkpoint into `sess`; returns the best epoch's trained values."""
        try:
            with sess.graph.as_default():  # outside a graph, Saver calls run eagerly
                self.saver.restore(sess, os.path.join(self.directory, state["checkpoint"]))
            reader = tf1.train.NewCheckpointReader(os.path.join(self.directory, state["best_checkpoint"]))
            return {name: reader.get_tensor(name) for name in self.trained_names}
        except Exception as e:  # TF raises several error types for a checkpoint of another graph
            raise InputError(f"{self.directory}: cannot restore the checkpoint {state['checkpoint']} "
                             f"({first_line(e)}); {CHECKPOINT_FIX}") from None

    def save(self, sess, state: Dict[str, Any]) -> None:
        """Writes epoch state["epoch"]'s checkpoint (unless a finished run does not need it),
        then commits `state` (+ checkpoint names and digests) and removes what it no longer names."""
        epoch, best_epoch = int(state["epoch"]), int(state["best_epoch"])
        prefix, best = f"epoch-{epoch}.ckpt", f"epoch-{best_epoch}.ckpt"
        if state["finished"]:
            prefix = best  # only the best weights are needed from now on
        if prefix == f"epoch-{epoch}.ckpt":
            with sess.graph.as_default():
                self.saver.save(sess, os.path.join(self.directory, prefix), write_meta_graph=False,
                                write_state=False)
        try:
            names = os.listdir(self.directory)
            files = {}
            for p in sorted({prefix, best}):
                pattern = re.compile(re.escape(p) + r"\.(index|data-\d+-of-\d+)")
                for name in sorted(n for n in names if pattern.fullmatch(n)):
                    files[name] = self.files.get(name) or sha256_file(os.path.join(self.directory, name))
            state = dict(state, format_version=CHECKPOINT_FORMAT_VERSION, checkpoint=prefix,
                         best_checkpoint=best, files=files)
            atomic_write_json(self.path, state)
            self.files = files
            self._clean()
        except OSError as e:
            raise InputError(f"{self.directory}: cannot write the checkpoint ({e.strerror or e}); free "
                             "some space or pass another --checkpoint-dir") from None

    def _clean(self) -> None:
        """Removes checkpoint files the state does not name and temporary state files."""
        for name in os.listdir(self.directory):
            if name in self.files:
                continue
            if _CKPT_FILE.match(name) or is_temporary_of(name, STATE_JSON) or \
                    is_temporary_of(name, RUN_JSON):
                path = os.path.join(self.directory, name)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)

def run_spec(task, pretrained, config: ModelConfig, settings: TransferConfig,
              train_size: Optional[int]) -> Dict[str, Any]:
    """What decides a transfer run's result: a checkpoint directory holds one such run."""
    data = hashlib.sha256()
    for split in (task.train, task.dev, task.test):
        data.update(json.dumps([list(split.texts), np.asarray(split.labels).tolist()]).encode("utf-8"))
    export = None
    if pretrained is not None:
        files = json.dumps(pretrained.manifest.get("files", {}), sort_keys=True).encode("utf-8")
        export = hashlib.sha256(files).hexdigest()[:16]
    return {"kind": "transfer", "format_version": CHECKPOINT_FORMAT_VERSION, "task": task.name,
            "label_names": list(task.label_names), "data": data.hexdigest()[:16], "train_size": train_size,
            "pretrained": export, "model_config": config.to_dict(), "settings": settings.to_dict()}

_SPEC_NOTES = {"data": "the training, dev or test texts or labels differ",
               "pretrained": "another export, or none instead of one or the reverse"}

def _spec_diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> List[str]:
    """'key (old -> new)' for every difference; settings are named by their own keys."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _spec_diff(a, b, "" if key == "settings" else f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} ({_SPEC_NOTES.get(key) or f'{a!r} -> {b!r}'})")
    return out

def check_run_dir(directory: str, spec: Mapping[str, Any]) -> None:
    """Refuses a directory holding another run; records `spec` in a new one."""
    path = os.path.join(directory, RUN_JSON)
    if os.path.exists(path):
        _, old = read_json_descriptor(directory, RUN_JSON, "a transfer checkpoint directory",
                                            CHECKPOINT_FIX, error=InputError)
        if old.get("kind") != "transfer":
            raise InputError(f"{path}: not written by `auxpretrain transfer` (another command's run "
                             "directory?); pass another --checkpoint-dir")
        diff = _spec_diff(old, spec)
        if diff:
            raise ConfigError(f"{directory} holds a transfer run with other settings ({'; '.join(diff)}); "
                              "use another --checkpoint-dir, or the same settings to resume")
        return
    try:
        os.makedirs(directory, exist_ok=True)
        atomic_write_json(path, dict(spec))
    except OSError as e:
        raise InputError(f"{directory}: cannot write checkpoints there ({e.strerror or e}); "
                         "pass another --checkpoint-dir") from None
