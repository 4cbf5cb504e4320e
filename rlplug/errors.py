"""Errors a user can act on. Each carries a one-line message naming the problem and the fix."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class UserError(Exception):
    """A mistake in the user's input (config, command line, files).

    The CLI prints ``rlplug: error: <message>`` on one line and exits with code 2; no traceback
    unless ``HYDRA_FULL_ERROR=1`` is set.
    """


class PluginError(UserError):
    """A plugin cannot be used: unknown name, failed import, duplicate registration, bad type."""


class WorkerFailure(RuntimeError):
    """A worker raised or died; carries the worker's rank and its traceback (or exit reason).

    ``fatal`` is true when the worker raised a :class:`FatalWorkerError`: the shared model itself
    may be broken, so the run keeps its last good checkpoint instead of saving a final one.
    """

    def __init__(self, rank: int, details: str, fatal: bool = False):
        super().__init__(f"worker {rank} failed:\n{details}")
        self.rank = rank
        self.details = details
        self.fatal = fatal


class FatalWorkerError(RuntimeError):
    """Raised in a worker for a failure that restarting cannot fix (e.g. a non-finite loss in the
    shared model): executors end the run instead of restarting the worker."""


@contextmanager
def report_user_errors(prog: str) -> Iterator[None]:
    """Print a :class:`UserError` as ``<prog>: error: <message>`` and exit 2 (traceback only with
    ``HYDRA_FULL_ERROR=1``)."""
    try:
        yield
    except UserError as exc:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
