"""Workers as threads in one process, all updating the same global model in memory.

A thread cannot be killed: one that hangs (e.g. in ``env.step``) is abandoned by the pool's
watchdog and replaced; it ends with the process, and nothing it does if it wakes up counts.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from rlplug.contracts import Counters, MessageHandler, SharedModel, TickHandler, WorkerContext
from rlplug.torch_threads import one_torch_thread
from rlplug.workerpool import ContextFactory, WorkerPool, run_target
from rlplug_a3c.configs import ThreadExecutorConfig

log = logging.getLogger(__name__)


class ThreadExecutor(WorkerPool):
    """Simple and light (no process start-up), but the GIL limits how far it scales."""

    def __init__(self, cfg: ThreadExecutorConfig):
        super().__init__(cfg)
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()

    def _start(self, target: Callable[[WorkerContext], None],
               make_ctx: ContextFactory) -> threading.Thread:
        ctx = make_ctx(self._queue.put)
        thread = threading.Thread(target=run_target, args=(target, ctx),
                                  name=f"rlplug-worker-{ctx.rank}", daemon=True)
        thread.start()
        return thread

    def _receive(self, timeout: float) -> list[dict[str, Any]]:
        out = []
        try:
            first = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            out.append(first)
            while True:
                out.append(self._queue.get_nowait())
        except queue.Empty:
            return out

    def _flush(self, handle: threading.Thread) -> list[dict[str, Any]]:
        # A finished thread's last message is already in the shared queue.
        return self._receive(timeout=0.0)

    def _force_stop(self, handle: threading.Thread) -> None:
        log.warning("%s cannot be killed; it ends with the process (a daemon thread)", handle.name)

    def _alive(self, handle: threading.Thread) -> bool:
        return handle.is_alive()

    def run(self, target: Callable[[WorkerContext], None], *, model: SharedModel,
            seeds: list[int], counters: Counters, total_steps: int,
            on_message: MessageHandler, on_tick: TickHandler, tick_s: float = 0.2,
            report_every_s: float = 2.0) -> None:
        # torch's intra-op threads would oversubscribe the cores the worker threads already use
        with one_torch_thread():
            self._queue = queue.Queue()  # nothing from an earlier run's threads
            super().run(target, model=model, seeds=seeds, counters=counters,
                        total_steps=total_steps,
                        on_message=on_message, on_tick=on_tick, tick_s=tick_s,
                        report_every_s=report_every_s)
