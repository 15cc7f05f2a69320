"""The pretraining run directory (`--out`) as a unit: one run at a time, nothing left behind by
a run that failed before its first checkpoint, its state checked before it is trusted.

- `RunDirectory(out_dir)`: the context of a run (single-process `pretrain` and the cluster
  chief). Creates OUT (a regular file, a read-only or full disk there are one line), locks it
  (`files.DirectoryLock`: a second run on the same OUT is refused while the first runs; the OS
  releases the lock of a crashed run), repairs what a crash during an export swap left
  (`files.recover_dir`), and if the run fails before anything can be resumed (no checkpoint
  yet) removes what it created: OUT itself, or in an OUT that existed those of run.json,
  vocab.txt, counts.txt, data/, logs/ and checkpoints/ that were not there before it.
- `read_run_json` / `check_run_files`: run.json's types (schema.RUN_JSON), and vocab.txt and
  counts.txt against the sha256 run.json recorded (an edited vocabulary would re-map ids).
- `restore_checkpoint`: the newest checkpoint that restores, falling back to the previous ones
  (three are kept) when the newest is damaged; `save_checkpoint`: one line on a full disk.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Callable, Dict, List, Mapping, Optional

import tensorflow as tf

from auxpretrain import schema
from auxpretrain.errors import AuxPretrainError, InputError
from auxpretrain.files import DirectoryLock, first_line, read_json_descriptor, recover_dir, sha256_file

tf1 = tf.compat.v1

RUN_JSON, VOCAB, COUNTS = "run.json", "vocab.txt", "counts.txt"
CREATED = (RUN_JSON, VOCAB, COUNTS, "data", "logs", "checkpoints")  # what a run writes in OUT
FIX = "delete the run directory or use a new --out to start over"
_CKPT_INDEX = re.compile(r"model\.ckpt-(\d+)\.index")


def _has_checkpoint(out_dir: str) -> bool:
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    return os.path.isdir(ckpt_dir) and any(_CKPT_INDEX.fullmatch(n) for n in os.listdir(ckpt_dir))


class RunDirectory:
    """`with RunDirectory(out_dir):` around a run; see the module docstring."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.lock = DirectoryLock(out_dir)
        self.existed = self.fresh = False
        self.before: set = set()

    def __enter__(self) -> "RunDirectory":
        out = self.out_dir
        if os.path.exists(out) and not os.path.isdir(out):
            raise InputError(f"{out}: exists and is not a directory; choose another --out")
        self.existed = os.path.isdir(out)
        self.fresh = not os.path.exists(os.path.join(out, RUN_JSON))
        # what is already there is not this run's to remove if it fails (`--out .` in a project)
        self.before = {name for name in CREATED + (DirectoryLock.FILE,)
                       if os.path.lexists(os.path.join(out, name))}
        try:
            os.makedirs(out, exist_ok=True)
            self.lock.acquire()
            recover_dir(os.path.join(out, "export"), locked=True)  # the run lock: no writer is alive
        except OSError as e:
            if not self.existed:
                shutil.rmtree(out, ignore_errors=True)
            raise InputError(f"{out}: cannot write the run directory there ({e.strerror or e}); "
                             "choose another --out") from None
        return self

    def __exit__(self, kind, error, traceback) -> None:
        try:
            if error is not None and self.fresh and not _has_checkpoint(self.out_dir):
                self._clean()
        finally:
            self.lock.release()
        if isinstance(error, OSError) and not isinstance(error, (AuxPretrainError, TimeoutError)):
            raise InputError(f"{self.out_dir}: cannot write the run directory ({error.strerror or error}); "
                             "free some space or choose another --out") from None

    def _clean(self) -> None:
        """Removes what this (fresh) run created, not what was in OUT before it."""
        if not self.existed:
            shutil.rmtree(self.out_dir, ignore_errors=True)
            return
        for name in CREATED + (DirectoryLock.FILE,):
            if name in self.before:
                continue
            path = os.path.join(self.out_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.exists(path):
                os.remove(path)


def read_run_json(out_dir: str) -> Optional[dict]:
    """OUT/run.json checked against schema.RUN_JSON, or None when there is none."""
    if not os.path.exists(os.path.join(out_dir, RUN_JSON)):
        return None
    path, data = read_json_descriptor(out_dir, RUN_JSON, "a pretraining run directory", FIX, error=InputError)
    schema.check(data, schema.RUN_JSON, path, FIX, InputError)
    return data


def run_files(out_dir: str) -> Dict[str, str]:
    """{"vocab.txt": sha256, "counts.txt": sha256} of OUT, for run.json."""
    return {name: sha256_file(os.path.join(out_dir, name)) for name in (VOCAB, COUNTS)}


def check_run_files(out_dir: str, recorded: Optional[Mapping[str, str]]) -> bool:
    """Whether OUT holds the vocabulary run.json recorded (False: none, a run killed before it
    recorded one). A vocab.txt or counts.txt that is missing or differs from the sha256 in
    run.json is an InputError: resuming with it would re-map the checkpoint's embedding rows."""
    names = (VOCAB, COUNTS)
    present = [os.path.exists(os.path.join(out_dir, n)) for n in names]
    if not recorded:  # run.json of an earlier version: nothing to check against
        return all(present)
    for name, there in zip(names, present):
        path = os.path.join(out_dir, name)
        if not there:
            raise InputError(f"{path}: missing, but run.json records it; {FIX}")
        if name in recorded and sha256_file(path) != recorded[name]:
            raise InputError(f"{path}: sha256 does not match run.json (edited or damaged: resuming would "
                             f"re-map the checkpoint's word ids); restore it, or {FIX}")
    return True


def checkpoint_paths(ckpt_dir: str) -> List[str]:
    """The checkpoints of `ckpt_dir`, newest first: those the `checkpoint` file lists and any
    other complete `model.ckpt-N` (a damaged `checkpoint` file lists none)."""
    found = {}
    state = tf1.train.get_checkpoint_state(ckpt_dir) if os.path.isdir(ckpt_dir) else None
    listed = list(state.all_model_checkpoint_paths) if state is not None else []
    for name in os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir) else []:
        m = _CKPT_INDEX.fullmatch(name)
        if m:
            found[int(m.group(1))] = os.path.join(ckpt_dir, name[:-len(".index")])
    for path in listed:
        m = re.search(r"model\.ckpt-(\d+)$", path)
        if m and int(m.group(1)) not in found and os.path.exists(path + ".index"):
            found[int(m.group(1))] = path
    return [found[step] for step in sorted(found, reverse=True)]


def restore_checkpoint(saver, sess, ckpt_dir: str, log: Callable[[str], None]) -> Optional[str]:
    """Restores the newest checkpoint of `ckpt_dir` that restores (a damaged one is logged and
    the previous one tried); returns its path, None when there is none. InputError when every
    checkpoint is damaged."""
    paths = checkpoint_paths(ckpt_dir)
    problem = None
    for path in paths:
        try:
            saver.restore(sess, path)
            saver.recover_last_checkpoints(paths[::-1])  # keep_checkpoints counts them (oldest go first)
            return path
        except (tf.errors.OpError, ValueError) as e:
            problem = first_line(e, 160)
            log(f"checkpoint {os.path.basename(path)} cannot be restored ({problem}); trying the previous one")
    if paths:
        raise InputError(f"{ckpt_dir}: none of the {len(paths)} checkpoints can be restored (the newest: "
                         f"{problem}); {FIX}")
    return None


def usable_checkpoint(ckpt_dir: str, log: Callable[[str], None]) -> Optional[str]:
    """For a restore that TensorFlow does itself (the cluster chief's MonitoredTrainingSession
    restores the `checkpoint` file's newest): the newest checkpoint whose every tensor reads
    back (crc32c checked), made the `checkpoint` file's latest; None when there is none.
    InputError when every checkpoint is damaged."""
    paths = checkpoint_paths(ckpt_dir)
    problem = None
    for i, path in enumerate(paths):
        try:
            reader = tf1.train.NewCheckpointReader(path)
            for name in reader.get_variable_to_shape_map():
                reader.get_tensor(name)
        except Exception as e:  # noqa: BLE001 - TF raises several error types for a damaged file
            problem = first_line(e, 160)
            log(f"checkpoint {os.path.basename(path)} cannot be read ({problem}); trying the previous one")
            continue
        if i:
            tf1.train.update_checkpoint_state(ckpt_dir, path, all_model_checkpoint_paths=paths[i:][::-1])
        return path
    if paths:
        raise InputError(f"{ckpt_dir}: none of the {len(paths)} checkpoints can be read (the newest: "
                         f"{problem}); {FIX}")
    return None


def save_checkpoint(saver, sess, ckpt_dir: str, step: int) -> None:
    """`saver.save` of step `step`; a full or read-only disk is one InputError."""
    try:
        saver.save(sess, os.path.join(ckpt_dir, "model.ckpt"), global_step=step)
    except (tf.errors.OpError, OSError) as e:
        raise InputError(f"{ckpt_dir}: cannot write the checkpoint of step {step} ({first_line(e, 160)}); "
                         "free some space, then run the same command again to resume from the last "
                         "checkpoint") from None

