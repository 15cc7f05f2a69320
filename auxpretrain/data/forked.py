"""A generator run in a forked child process, its items read back in order by the parent.

`corrupt` reads and splits its text into sentences (Python work, about half of its time) in a
child process while the parent encodes the previous batch (mostly compiled work), so the two
halves use two cores. `ForkedItems` is that pipe: the child sends each item as it is made,
pickled (at most one batch waits in the pipe: the child blocks until the parent reads), then a
final value; an exception in the child is raised again in the parent, as it was. Callers fork
only where forking is safe and pays (`can_fork`, `fork_pays`) and run the same generator in
process otherwise.

This module must not import TensorFlow.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from typing import Any, Callable, Iterable, Iterator, Optional

from auxpretrain.errors import InputError


def can_fork() -> bool:
    """Whether this platform forks: Linux, where fork is the default start method (elsewhere
    forking a process that has loaded system frameworks is unsafe)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def fork_pays() -> bool:
    """Whether a child process can take work here: at least two processors for this process,
    and only the main thread running (a fork copies no other thread; TensorFlow's, if it is
    loaded, may hold locks the child would wait on)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return cpus >= 2 and threading.active_count() == 1 and "tensorflow" not in sys.modules


class ForkedItems:
    """Iterates over `make_items()` run in a forked child; then `final` holds `finish()`, also
    computed in the child (e.g. counters the generator updated there).

    Iterate once. Leaving the loop early (break, an exception) stops the child."""

    def __init__(self, make_items: Callable[[], Iterable[Any]], finish: Optional[Callable[[], Any]] = None):
        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_child, args=(make_items, finish, send), daemon=True)
        self._process.start()
        send.close()  # the child holds the other end: EOF when it ends
        self.final: Any = None

    def __iter__(self) -> Iterator[Any]:
        try:
            while True:
                try:
                    kind, value = self._receive.recv()
                except EOFError:
                    self._process.join()
                    raise InputError(f"the process reading the corpus ended without a result (exit code "
                                     f"{self._process.exitcode}; out of memory?); rerun, or free memory") from None
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    self.final = value
                    return
        finally:
            self.close()

    def close(self) -> None:
        """Stops the child if it still runs, and releases the pipe."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._receive.close()


def _child(make_items, finish, send) -> None:
    try:
        for item in make_items():
            send.send(("item", item))
        send.send(("done", finish() if finish is not None else None))
    except BaseException as e:  # noqa: B036 - every failure goes to the parent, which raises it
        try:
            send.send(("error", e))
        except Exception:  # an exception that does not pickle: its text
            send.send(("error", RuntimeError(f"{type(e).__name__}: {e}")))
    finally:
        send.close()
