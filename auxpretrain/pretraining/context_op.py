"""The context objective's passes as a TensorFlow op that updates the tables in place
(auxpretrain/pretraining/context_op.cc), built at first use.

A TensorFlow op has to be compiled against the installed TensorFlow's headers, which an
install does not have at build time (pip builds in an isolated environment). So the op is
compiled the first time a process asks for it (about 15 s), from the package's own sources
only, into a per-user cache: `$AUXPRETRAIN_CACHE`, else `$XDG_CACHE_HOME/auxpretrain`, else
`~/.cache/auxpretrain`. The file's name carries a digest of the sources, the TensorFlow version
and the compiler flags, so another version never loads a stale build; a build is written to a
temporary name and renamed, so processes building at once do not see half a file. A build
that the compiler rejects is recorded next to it (`.failed`, its first error line), so that
later processes fall back at once instead of compiling again; deleting that file retries.

`load()` -> (the op's module, "") or (None, why not): no C/C++ compiler, headers missing, a
failed build (its first error line), AUXPRETRAIN_PURE_PYTHON set, or AUXPRETRAIN_NO_OP set.
The train op then falls back to the compiled kernel on gathered rows (`graph._context_kernel`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from types import ModuleType
from typing import List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ("context_op.cc", "ccontext.c")
BUILD_SECONDS = 600

_loaded: Optional[Tuple[Optional[ModuleType], str]] = None


def cache_dir() -> str:
    """Where built ops are kept (see the module's docstring)."""
    if os.environ.get("AUXPRETRAIN_CACHE"):
        return os.environ["AUXPRETRAIN_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "auxpretrain")


def _compilers() -> Tuple[Optional[str], Optional[str]]:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    cxx = os.environ.get("CXX") or "c++"
    return shutil.which(cc.split()[0]), shutil.which(cxx.split()[0])


def _commands(cc: str, cxx: str, out: str, workdir: str) -> List[List[str]]:
    import tensorflow as tf

    core = os.path.join(workdir, "ccontext.o")
    return [[cc, "-O3", "-fPIC", "-pthread", "-DCONTEXT_CORE_ONLY", "-c", os.path.join(HERE, "ccontext.c"), "-o", core],
            [cxx, "-O2", "-w", "-shared", "-fPIC", "-pthread", os.path.join(HERE, "context_op.cc"), core, "-o", out]
            + tf.sysconfig.get_compile_flags() + tf.sysconfig.get_link_flags()]


def _first_error(text: str) -> str:
    lines = [line for line in text.splitlines() if "error" in line.lower()] or text.splitlines() or ["no output"]
    return lines[0].strip()[:300]


def build(say=None) -> Tuple[Optional[str], str]:
    """(the path of the built op library, "") or (None, why not); builds it if it is not cached."""
    import tensorflow as tf

    cc, cxx = _compilers()
    if cc is None or cxx is None:
        return None, "no C and C++ compiler found (set CC and CXX)"
    if not os.path.isdir(tf.sysconfig.get_include()):
        return None, "the installed TensorFlow has no C++ headers"
    digest = hashlib.sha256()
    for name in SOURCES:
        with open(os.path.join(HERE, name), "rb") as f:
            digest.update(f.read())
    digest.update(" ".join([tf.__version__, cc, cxx, sys.platform] + tf.sysconfig.get_compile_flags()).encode())
    target = os.path.join(cache_dir(), f"context_op-{digest.hexdigest()[:16]}.so")
    if os.path.exists(target):
        return target, ""
    failed = target + ".failed"  # a compiler's error, kept so that each process does not retry
    if os.path.exists(failed):
        with open(failed, encoding="utf-8", errors="replace") as f:
            return None, f"{f.read().strip()} (an earlier build; delete {failed} to try again)"
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with tempfile.TemporaryDirectory(dir=os.path.dirname(target), prefix=".build-") as workdir:
            out = os.path.join(workdir, "context_op.so")
            if say:
                say(f"building the context op once, into {os.path.dirname(target)} (about 15 s)")
            for command in _commands(cc, cxx, out, workdir):
                done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_SECONDS)
                if done.returncode != 0:
                    why = f"the context op did not build: {_first_error(done.stderr + done.stdout)}"
                    with open(failed, "w", encoding="utf-8") as f:
                        f.write(why + "\n")
                    return None, why
            os.replace(out, target)  # atomic: a process building at the same time renames its own
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"the context op did not build: {e}"
    return target, ""


def load(say=None) -> Tuple[Optional[ModuleType], str]:
    """(the op's module: `.auxpretrain_context_passes`, "") or (None, why not); once a process."""
    global _loaded
    if _loaded is None:
        if os.environ.get("AUXPRETRAIN_PURE_PYTHON", "") not in ("", "0"):
            _loaded = None, "AUXPRETRAIN_PURE_PYTHON is set"
        elif os.environ.get("AUXPRETRAIN_NO_OP", "") not in ("", "0"):
            _loaded = None, "AUXPRETRAIN_NO_OP is set"
        else:
            path, why = build(say)
            if path is None:
                _loaded = None, why
            else:
                import tensorflow as tf

                try:
                    _loaded = tf.load_op_library(path), ""
                except (tf.errors.OpError, OSError) as e:
                    _loaded = None, f"the context op did not load: {str(e).splitlines()[0][:300]}"
    return _loaded
