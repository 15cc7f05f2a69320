"""The compiled fast paths of `corrupt` (auxpretrain/data/cspeedups.c), when they are built.

`compiled` is the extension module, or None (`why_pure_python` says why): not built (no C
compiler at install time), built from another version of the source, or turned off with
AUXPRETRAIN_PURE_PYTHON=1 (tests and the benchmark compare the two paths). Every caller has a
pure-Python path with the same output.

`load_compiled` loads an extension of the package this way (also auxpretrain/pretraining's
ccontext.c). This module must not import TensorFlow.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Optional, Tuple

ABI_VERSION = 2  # cspeedups.c's ABI_VERSION this code was written for


def load_compiled(module: str, abi_version: int) -> Tuple[Optional[ModuleType], str]:
    """(the compiled extension `module` or None, why it is None): not built, built from another
    version of its source (its ABI_VERSION is not `abi_version`), or AUXPRETRAIN_PURE_PYTHON set."""
    if os.environ.get("AUXPRETRAIN_PURE_PYTHON", "") not in ("", "0"):
        return None, "AUXPRETRAIN_PURE_PYTHON is set"
    try:
        extension = importlib.import_module(module)
    except ImportError:
        return None, "the C extension was not built at install (reinstall with a C compiler)"
    if getattr(extension, "ABI_VERSION", None) != abi_version:
        return None, "the C extension was built from another version (reinstall the package)"
    return extension, ""


compiled, why_pure_python = load_compiled("auxpretrain.data.cspeedups", ABI_VERSION)
