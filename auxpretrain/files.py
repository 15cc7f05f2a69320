"""Files written whole or not at all, checksums, and one-line error texts.

- `atomic_write_bytes` / `atomic_write_text` / `atomic_write_json`: a temporary file in the
  same directory (named by `temporary_name`, created with the umask's mode), flushed and
  fsynced, then `os.replace`d over the target: a reader sees the old file or the new one.
- `replace_dir`: swaps a complete temporary directory in for a saved directory (exports,
  saved models).
- `read_json_descriptor`, `check_file_names`, `verify_files`: the JSON file describing a
  saved directory and the sha256 of every file it lists.
- `first_line(error)`: the one line of an exception that goes into a user-facing message.

This module must not import TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from typing import Any, Iterable, Mapping, Tuple

from auxpretrain.errors import ExportError

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


def make_temporary_dir(out_dir: str) -> str:
    """A new empty directory next to `out_dir` ('.NAME.tmp-RANDOM') to build a saved directory in."""
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.tmp-", dir=parent)


def replace_dir(tmp: str, out_dir: str, error=ExportError) -> None:
    """Moves the complete directory `tmp` to `out_dir`; an old `out_dir` is removed only
    afterwards, so a crash leaves either the old or the new one whole."""
    old = None
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise error(f"{out_dir}: exists and is not a directory; choose another --out")
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.old-", dir=os.path.dirname(out_dir))
        os.rmdir(old)
        os.rename(out_dir, old)
    os.rename(tmp, out_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def read_json_descriptor(directory: str, filename: str, what: str, fix: str,
                         error=ExportError) -> Tuple[str, dict]:
    """Reads the JSON object describing a saved directory -> (its path, the dict)."""
    path = os.path.join(directory, filename)
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise error(f"{directory}: no {filename}; this is not {what}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON ({e}); {fix}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: not {what} (expected a JSON object)")
    return path, data


def check_file_names(files: Iterable[str], where: str, error=ExportError) -> None:
    """File entries of a manifest must name files inside its directory."""
    for name in files:
        if os.path.basename(name) != name or name in ("", ".", ".."):
            raise error(f"{where}: file entry {name!r} points outside the directory")


def verify_files(directory: str, files: Mapping[str, str], what: str, fix: str,
                 error=ExportError) -> None:
    """Checks every listed file exists and matches its sha256; one-line `error` otherwise."""
    for name, digest in files.items():
        file_path = os.path.join(directory, os.path.basename(name))
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
