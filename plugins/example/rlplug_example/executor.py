"""An executor plugin: workers as threads, written against the bare Executor contract (no
:class:`rlplug.workerpool.WorkerPool`, which adds worker restarts and process supervision).

Threads share the main process's memory, so :meth:`host` keeps the default (the model itself).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch

from rlplug.contracts import (
    Counters,
    Executor,
    MessageHandler,
    SharedModel,
    TickHandler,
    WorkerContext,
)
from rlplug.errors import FatalWorkerError, WorkerFailure
from rlplug_example.configs import SimpleThreadsConfig

log = logging.getLogger(__name__)

_FAILED = "simple_threads_failed"  # our own message kind: never passed to on_message


class SimpleThreadsExecutor(Executor):
    def __init__(self, cfg: SimpleThreadsConfig):
        self.cfg = cfg
        self._stop = threading.Event()

    @property
    def workers(self) -> int:
        return self.cfg.workers

    def request_stop(self) -> None:
        self._stop.set()  # thread-safe; the workers see it through ctx.stop_requested()

    def run(self, target: Callable[[WorkerContext], None], *, model: SharedModel,
            seeds: list[int], counters: Counters, total_steps: int,
            on_message: MessageHandler, on_tick: TickHandler, tick_s: float = 0.2,
            report_every_s: float = 2.0) -> None:
        self._stop = threading.Event()
        inbox: queue.Queue[dict[str, Any]] = queue.Queue()

        def stop_requested() -> bool:
            return self._stop.is_set() or counters.env_steps >= total_steps

        def work(ctx: WorkerContext) -> None:  # runs in the worker's thread
            try:
                target(ctx)
            except BaseException as exc:  # noqa: BLE001 - every failure must reach the main thread
                inbox.put({"kind": _FAILED, "worker": ctx.rank, "traceback": traceback.format_exc(),
                           "fatal": isinstance(exc, FatalWorkerError)})

        threads = [threading.Thread(target=work, name=f"simple-threads-worker-{rank}", daemon=True,
                                    args=(WorkerContext(rank, seed, counters, model, total_steps,
                                                        inbox.put, stop_requested,
                                                        report_every_s),))
                   for rank, seed in enumerate(seeds)]
        threads_before = torch.get_num_threads()
        torch.set_num_threads(1)  # the worker threads already use the cores
        try:
            for thread in threads:
                thread.start()
            next_tick = time.monotonic() + tick_s
            while any(t.is_alive() for t in threads) or not inbox.empty():
                try:
                    msg: dict[str, Any] | None = inbox.get(
                        timeout=max(0.0, next_tick - time.monotonic()))
                except queue.Empty:
                    msg = None
                if msg is not None and msg["kind"] == _FAILED:  # no restarts: a failure ends the run
                    raise WorkerFailure(msg["worker"], msg["traceback"], msg["fatal"])
                if msg is not None:
                    on_message(msg)
                if time.monotonic() >= next_tick:
                    on_tick()
                    next_tick = time.monotonic() + tick_s
        finally:
            # Whatever ended the run (done, a failure, KeyboardInterrupt raised in get() or
            # on_tick()): stop every worker, then let the exception propagate.
            self._stop.set()
            for thread in threads:
                thread.join(self.cfg.stop_timeout_s)
                if thread.is_alive():
                    log.warning("%s did not stop within %s s", thread.name, self.cfg.stop_timeout_s)
            torch.set_num_threads(threads_before)
