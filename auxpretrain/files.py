"""Files written whole or not at all, checksums, and one-line error texts.

- `atomic_write_bytes` / `atomic_write_text` / `atomic_write_json`: a temporary file in the
  same directory (named by `temporary_name`, created with the umask's mode), flushed and
  fsynced, then `os.replace`d over the target: a reader sees the old file or the new one.
- `make_temporary_dir` / `replace_dir`: a saved directory (exports, saved models) is built in a
  temporary sibling and swapped in whole; `recover_dir` (run by the next write) finishes or
  undoes a swap a crash interrupted and removes dead writers' leftovers, and `committed_dir`
  lets a reader find the previous directory when a crash left none at the path.
- `DirectoryLock`: one process at a time on a run directory (an OS lock, released when the
  process dies, so a crashed run never blocks the next one).
- `read_json_descriptor`, `check_file_names`, `verify_files`: the JSON file describing a
  saved directory and the sha256 of every file it lists.
- `first_line(error)`: the one line of an exception that goes into a user-facing message.

This module must not import TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from typing import Any, Iterable, List, Mapping, Optional, Tuple

from auxpretrain.errors import ExportError, InputError

TMP_SUFFIX = ".tmp"


def temporary_name(path: str) -> str:
    """A fresh temporary path next to `path`: '.NAME.PID.RANDOM.tmp' in the same directory."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}{TMP_SUFFIX}")


def is_temporary_of(name: str, target: str) -> bool:
    """Whether file name `name` is a `temporary_name` of a file named `target` (a leftover of an
    interrupted write)."""
    return name.startswith(f".{target}.") and name.endswith(TMP_SUFFIX)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file in the same directory + os.replace."""
    tmp = temporary_name(path)
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    """`atomic_write_bytes` of `text` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_text(data: Any) -> str:
    """The JSON form every file of the package uses: indent 2, a final newline."""
    return json.dumps(data, indent=2) + "\n"


def atomic_write_json(path: str, data: Any) -> None:
    """`atomic_write_text` of `data` as JSON (`json_text`)."""
    atomic_write_text(path, json_text(data))


def sha256_file(path: str) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: str) -> None:
    """fsyncs every file directly inside directory `path`."""
    for name in os.listdir(path):
        with open(os.path.join(path, name), "rb") as f:
            os.fsync(f.fileno())


def _sibling(out_dir: str, kind: str) -> str:
    """A fresh name next to `out_dir`: '.NAME.KIND-PID-RANDOM' (KIND tmp or old)."""
    return os.path.join(os.path.dirname(out_dir),
                        f".{os.path.basename(out_dir)}.{kind}-{os.getpid()}-{os.urandom(4).hex()}")


def _siblings(out_dir: str, kind: str) -> List[Tuple[str, Optional[int]]]:
    """(path, writer pid or None for a name without one) of the '.NAME.KIND-*' directories."""
    parent, name = os.path.split(out_dir)
    pattern = re.compile(re.escape(f".{name}.{kind}-") + r"(?:(\d+)-[0-9a-f]{8}|[A-Za-z0-9_]{8})")
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    out = []
    for entry in sorted(names):
        m = pattern.fullmatch(entry)
        if m and os.path.isdir(os.path.join(parent, entry)):
            out.append((os.path.join(parent, entry), int(m.group(1)) if m.group(1) else None))
    return out


def _writer_gone(path: str, pid: Optional[int], stale_seconds: float = 3600.0) -> bool:
    """Whether the process that made `path` is gone (its pid is not running); for names
    without a pid (earlier versions), whether it is older than `stale_seconds`."""
    if pid is None:
        try:
            return time.time() - os.path.getmtime(path) > stale_seconds
        except OSError:
            return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's process)
        return False
    return False


def recover_dir(out_dir: str, locked: bool = False) -> None:
    """Repairs what an interrupted `replace_dir` or write left next to `out_dir`: when a crash
    came between the swap's two renames (no `out_dir`, the previous one renamed aside), the
    previous directory is put back; leftovers of writers that are gone are removed.
    `locked`: the caller holds the lock every writer of `out_dir` takes, so every leftover is a
    gone writer's, even when its process id is in use again (a restarted container's pid 1)."""
    out_dir = os.path.abspath(out_dir)

    def gone(path, pid):
        return locked or _writer_gone(path, pid)

    olds = [(p, pid) for p, pid in _siblings(out_dir, "old") if gone(p, pid) or pid is None]
    if not os.path.lexists(out_dir) and olds:
        newest = max(olds, key=lambda item: os.path.getmtime(item[0]))
        os.rename(newest[0], out_dir)
        olds.remove(newest)
    for path, pid in olds + [(p, pid) for p, pid in _siblings(out_dir, "tmp") if gone(p, pid)]:
        shutil.rmtree(path, ignore_errors=True)


def committed_dir(path: str, descriptor: str) -> str:
    """Where a reader finds the saved directory `path`: `path` itself, or, when a writer's crash
    between the two renames of `replace_dir` left no `path`, the previous directory it renamed
    aside (holding `descriptor`, e.g. manifest.json); `path` when there is neither."""
    if os.path.lexists(path):
        return path
    olds = [p for p, _ in _siblings(os.path.abspath(path), "old")
            if os.path.isfile(os.path.join(p, descriptor))]
    return max(olds, key=os.path.getmtime) if olds else path


def make_temporary_dir(out_dir: str) -> str:
    """A new empty directory next to `out_dir` ('.NAME.tmp-PID-RANDOM', mode 0777 minus the
    umask, as `mkdir` makes) to build a saved directory in; first repairs what a crashed
    writer left there (`recover_dir`)."""
    out_dir = os.path.abspath(out_dir)
    os.makedirs(os.path.dirname(out_dir), exist_ok=True)
    recover_dir(out_dir)
    while True:
        tmp = _sibling(out_dir, "tmp")
        try:
            os.mkdir(tmp, 0o777)
            return tmp
        except FileExistsError:
            continue


def replace_dir(tmp: str, out_dir: str, error=ExportError) -> None:
    """Moves the complete directory `tmp` to `out_dir`; an old `out_dir` is removed only
    afterwards, so a crash leaves either the old or the new one whole (and a crash between
    the two renames leaves the old one aside, where `committed_dir` finds it and the next
    write's `recover_dir` puts it back)."""
    out_dir = os.path.abspath(out_dir)
    old = None
    if os.path.lexists(out_dir):
        if not os.path.isdir(out_dir):
            raise error(f"{out_dir}: exists and is not a directory; choose another --out")
        old = _sibling(out_dir, "old")
        os.rename(out_dir, old)
    os.rename(tmp, out_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)


class DirectoryLock:
    """An exclusive lock on `directory` for this process (`fcntl.flock` on DIRECTORY/.lock):
    a second process is refused with one line naming the holder's pid. The OS releases the
    lock when the holder exits or dies, so a crashed run never blocks the next one. A no-op
    where `fcntl` does not exist."""

    FILE = ".lock"

    def __init__(self, directory: str, fix: str = "wait for it to finish or use another --out",
                 error=InputError):
        self.directory, self.fix, self.error = directory, fix, error
        self.path = os.path.join(directory, self.FILE)
        self._fd: Optional[int] = None

    def acquire(self) -> "DirectoryLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX
            return self
        while self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                raise self.error(f"{self.directory} is in use by another run (pid {holder}); "
                                 f"{self.fix}") from None
            try:  # the holder may have removed the file while we waited: lock the current one
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            self._fd = fd
        return self

    def release(self, remove: bool = False) -> None:
        """Unlocks; `remove` also deletes the lock file (before unlocking: a waiting process
        then sees it is gone and takes a new one)."""
        if self._fd is None:
            return
        if remove:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        os.close(self._fd)  # closing the last descriptor releases the flock
        self._fd = None

    def __enter__(self) -> "DirectoryLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def read_json_descriptor(directory: str, filename: str, what: str, fix: str,
                         error=ExportError) -> Tuple[str, dict]:
    """Reads the JSON object describing a saved directory -> (its path, the dict)."""
    path = os.path.join(directory, filename)
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise error(f"{directory}: no {filename}; this is not {what}") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise error(f"{path}: not valid JSON ({first_line(e, 120)}); {fix}") from None
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror or e}); {fix}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: not {what} (expected a JSON object)")
    return path, data


def check_file_names(files: Iterable[str], where: str, error=ExportError) -> None:
    """File entries of a manifest must name files inside its directory."""
    for name in files:
        if os.path.basename(name) != name or name in ("", ".", ".."):
            raise error(f"{where}: file entry {name!r} points outside the directory")


def check_listed(directory: str, files: Mapping[str, str], required: Iterable[str], checkpoint: str,
                 where: str, fix: str, error=ExportError) -> None:
    """The descriptor `where` lists the `required` files and every file of its `checkpoint`
    (CHECKPOINT.index, CHECKPOINT.data-*) present in `directory`: no file is read that no
    sha256 vouches for."""
    for name in required:
        if name not in files:
            raise error(f"{where}: lists no {name}; {fix}")
    unlisted = sorted(n for n in os.listdir(directory) if n.startswith(checkpoint + ".") and n not in files)
    if unlisted:
        raise error(f"{os.path.join(directory, unlisted[0])}: not listed in {os.path.basename(where)}; {fix}")


def verify_files(directory: str, files: Mapping[str, str], what: str, fix: str,
                 error=ExportError) -> None:
    """Checks every listed file exists and matches its sha256; one-line `error` otherwise."""
    for name, digest in files.items():
        file_path = os.path.join(directory, os.path.basename(name))
        if os.path.islink(file_path):
            raise error(f"{file_path}: a symbolic link (every file must be in the {what} itself); {fix}")
        if not os.path.isfile(file_path):
            raise error(f"{file_path}: missing from the {what}; {fix}")
        if sha256_file(file_path) != digest:
            raise error(f"{file_path}: sha256 does not match the manifest (truncated, edited or "
                        f"from another {what}); {fix}")


def first_line(error: BaseException, limit: int = 200, with_type: bool = False) -> str:
    """The first line of an exception's message (TensorFlow's `message`, without its traceback),
    at most `limit` characters; the type name alone when the message is empty. `with_type`
    prefixes 'TypeName: '."""
    lines = str(getattr(error, "message", error)).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if with_type or not text:
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text[:limit]


def cause_line(error: BaseException, limit: int = 300) -> str:
    """'TypeName: first line' of the innermost exception behind `error` (libraries such as
    datasets wrap the real reason in several layers)."""
    return first_line(root_cause(error), limit, with_type=True)


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception of `error`'s cause / context chain."""
    seen = set()
    while (error.__cause__ or error.__context__) is not None and id(error) not in seen:
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return error
