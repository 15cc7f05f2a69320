"""The compiled fast paths of `corrupt` (auxpretrain/data/cspeedups.c), when they are built.

`compiled` is the extension module, or None (`why_pure_python` says why): not built (no C
compiler at install time), built from another version of the source, or turned off with
AUXPRETRAIN_PURE_PYTHON=1 (tests and the benchmark compare the two paths). Every caller has a
pure-Python path with the same output.

This module must not import TensorFlow.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Optional, Tuple

ABI_VERSION = 2  # cspeedups.c's ABI_VERSION this code was written for


def _load() -> Tuple[Optional[ModuleType], str]:
    """(the extension or None, why it is None)."""
    if os.environ.get("AUXPRETRAIN_PURE_PYTHON", "") not in ("", "0"):
        return None, "AUXPRETRAIN_PURE_PYTHON is set"
    try:
        from auxpretrain.data import cspeedups
    except ImportError:
        return None, "the C extension was not built at install (reinstall with a C compiler)"
    if getattr(cspeedups, "ABI_VERSION", None) != ABI_VERSION:
        return None, "the C extension was built from another version (reinstall the package)"
    return cspeedups, ""


compiled, why_pure_python = _load()
