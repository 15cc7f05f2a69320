"""TensorFlow's start-up lines stay off the command line's stderr.

Importing TensorFlow 2.x writes lines such as "WARNING: All log messages before
absl::InitializeLog() is called are written to STDERR" and "oneDNN custom operations are on"
from C++, before its logging is set up, so TF_CPP_MIN_LOG_LEVEL does not hold them back; they
would precede the one-line error of a bad input. `quiet_tensorflow_import()` (called by the CLI's
`main` before any TensorFlow import) makes the first `import tensorflow` of the process run with
file descriptor 2 sent to a temporary file: the lines are dropped, unless the import itself
fails, in which case they are written to stderr before the exception travels on.

oneDNN stays as the user set it: TF_ENABLE_ONEDNN_OPTS=0 would hide its notice too, but it changes
numerics and speed, so the package never sets it.

This module must not import TensorFlow.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys
import tempfile


@contextlib.contextmanager
def stderr_captured():
    """Sends file descriptor 2 to a temporary file for the block; replays it on an exception."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode("utf-8", "replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with stderr_captured():
            self._loader.exec_module(module)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Wraps the loader of the top-level `tensorflow` package, once."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow_import() -> None:
    """Silences TensorFlow's start-up: C++ log level 3 unless the user set one, and the first
    `import tensorflow` with its stderr captured. No effect when TensorFlow is already imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())
