"""Workers as processes (torch.multiprocessing); the algorithm's shared tensors (global model,
optimizer statistics) live in shared memory, so every process updates the same numbers.

Each worker writes its messages into its own pipe rather than a queue shared by all: a worker
killed in the middle of a write then damages only its own pipe (which the main process reads to
its end and closes), never a lock the other workers need.

A worker process never outlives the main process (the kernel kills it when its parent dies, see
:mod:`rlplug.worker_processes`), and a Ctrl-C that arrives while it is still booting is ignored by
it like any later one: the main process decides how the run stops. The constructor refuses a
worker count whose processes cannot fit in the available memory (it runs in the CLI's checks,
before anything starts).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import torch
import torch.multiprocessing as mp

from rlplug.contracts import WorkerContext
from rlplug.worker_processes import (
    WORKER_NAME_PREFIX,
    ChildSetup,
    check_workers_fit,
    child_main,
    resolve_start_method,
    start_process,
    warn_if_tight,
)
from rlplug.workerpool import ContextFactory, WorkerPool, run_target
from rlplug_a3c.configs import ProcessExecutorConfig

log = logging.getLogger(__name__)


def _process_main(target: Callable[[WorkerContext], None], ctx: WorkerContext, *,
                  parent_pid: int) -> None:
    # (child_main has already made this process ignore SIGINT/SIGTERM and die with its parent.)
    shared_stop = ctx.stop_requested

    def stop_requested() -> bool:
        # A worker whose main process died is adopted by another process: stop rather than train
        # on alone (where the kernel's parent-death signal is not available).
        return shared_stop() or os.getppid() != parent_pid

    ctx.stop_requested = stop_requested
    # One intra-op thread per worker: more would oversubscribe the cores (pitfall 3), and a forked
    # worker must never enter the OpenMP pool of its parent (it did not survive the fork).
    torch.set_num_threads(1)
    code = 0
    try:
        run_target(target, ctx)
    except OSError:  # the main process is gone (its end of the pipe is closed): no one to tell
        code = 1
    # Leave without the interpreter's teardown, which takes about a second with torch loaded and
    # would delay every stop: the messages are already in the pipe (sent synchronously) and the
    # worker owns nothing else that needs saving.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@dataclass
class _Worker:
    process: Any  # a multiprocessing Process of the executor's context
    reader: Connection | None  # None once read to its end


class ProcessExecutor(WorkerPool):
    """Scales across cores. The ``auto`` start method forks a worker while the main process runs
    no other Python thread (the first start, before W&B's threads exist) and spawns it otherwise
    (inside Hydra's joblib launcher, a restart while W&B runs): see
    :func:`rlplug.worker_processes.resolve_start_method`."""

    start_barrier = True  # a worker booting late (seconds) still gets its share of a small budget

    def __init__(self, cfg: ProcessExecutorConfig):
        super().__init__(cfg)
        check_workers_fit(cfg.workers)  # before anything starts: the CLI's preflight builds this
        self._readers: dict[Connection, _Worker] = {}

    def run(self, target: Callable[[WorkerContext], None], **kwargs: Any) -> None:
        warn_if_tight(self.cfg.workers)
        super().run(target, **kwargs)

    def _start(self, target: Callable[[WorkerContext], None], make_ctx: ContextFactory) -> _Worker:
        method = resolve_start_method(self.cfg.start_method)  # per start: a restart may differ
        context = mp.get_context(method)
        reader, writer = context.Pipe(duplex=False)
        ctx = make_ctx(writer.send)
        log.debug("starting worker %d with the %s start method", ctx.rank, method)
        # The child must not outlive this process; with forkserver its parent is the forkserver.
        setup = ChildSetup(None if method == "forkserver" else os.getpid(),
                           f"{WORKER_NAME_PREFIX}{ctx.rank}")
        process = context.Process(target=child_main, args=(setup, _process_main, target, ctx),
                                   name=f"rlplug-worker-{ctx.rank}", daemon=True)
        start_process(process)  # a Ctrl-C now must not kill the child while it boots
        writer.close()  # the child holds its own end; ours would hide the child's exit (no EOF)
        worker = _Worker(process, reader)
        self._readers[reader] = worker
        return worker

    def _read(self, worker: _Worker) -> list[dict[str, Any]]:
        """Everything waiting in the worker's pipe; closes it at its end (the worker exited)."""
        out: list[dict[str, Any]] = []
        reader = worker.reader
        if reader is None:
            return out
        try:
            while reader.poll():
                out.append(reader.recv())
        except (EOFError, OSError, ValueError, RuntimeError, ImportError, AttributeError):
            # The end of the pipe, or a message torn by a kill: nothing more will come.
            self._close(worker)
        return out

    def _close(self, worker: _Worker) -> None:
        if worker.reader is not None:
            self._readers.pop(worker.reader, None)
            worker.reader.close()
            worker.reader = None

    def _receive(self, timeout: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not self._readers:  # every worker gone: still wait, or the main loop would spin
            time.sleep(timeout)
            return out
        for reader in wait(list(self._readers), timeout):
            out.extend(self._read(self._readers[reader]))  # type: ignore[index]
        return out

    def _flush(self, handle: _Worker) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        # The process is gone, so its pipe ends soon; the timeout guards against a grandchild
        # that inherited the write end.
        while handle.reader is not None and handle.reader.poll(0.5):
            out.extend(self._read(handle))
        self._close(handle)
        return out

    def _alive(self, handle: _Worker) -> bool:
        return handle.process.is_alive()

    def _death(self, handle: _Worker) -> str | None:
        handle.process.join(timeout=0.1)
        code = handle.process.exitcode
        if code is None or code == 0:
            return None
        if code < 0:
            return (f"worker process {handle.process.pid} was killed by signal "
                    f"{signal.Signals(-code).name}")
        return f"worker process {handle.process.pid} exited with code {code}"

    def _force_stop(self, handle: _Worker) -> None:
        handle.process.kill()
        handle.process.join(timeout=5.0)
