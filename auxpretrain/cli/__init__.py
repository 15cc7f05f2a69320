"""Command line: `auxpretrain corpus | corrupt | pretrain | inspect | transfer`.

The only place that reads argv and prints. Each command's flags are built from the config
dataclasses (cli.flags); heavy modules (TensorFlow) are imported inside the command functions
so `--help` and `corrupt` stay fast. Every user error is one line on stderr
(`auxpretrain: error: ...`) and exit status 2; never a traceback, and never after TensorFlow's
start-up lines (cli.quiet).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

# `corrupt` does no linear algebra: spare it the OpenBLAS thread pool that NumPy's import starts
# (~80 ms of a 2-core machine's start-up); set before anything below imports NumPy
if sys.argv[1:2] == ["corrupt"]:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from auxpretrain.cli.data_commands import PROG, add_corpus, add_corrupt
from auxpretrain.cli.pretrain_command import add_pretrain
from auxpretrain.cli.quiet import quiet_tensorflow_import
from auxpretrain.cli.transfer_command import add_inspect, add_transfer
from auxpretrain.errors import AuxPretrainError


def build_parser() -> argparse.ArgumentParser:
    from auxpretrain import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Pretrain text encoders on an auxiliary good/bad sentence task and "
                    "transfer their layers into downstream TF1 models.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (add_corrupt, add_pretrain, add_transfer, add_inspect, add_corpus):
        add(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    quiet_tensorflow_import()  # before any TensorFlow import: no start-up lines before our errors
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # its Python deprecation warnings
    try:
        return int(args.func(args) or 0)
    except AuxPretrainError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
