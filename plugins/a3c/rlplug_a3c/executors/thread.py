"""Workers as threads in one process, all updating the same global model in memory."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import torch

from rlplug.contracts import MessageHandler, TickHandler, WorkerContext
from rlplug.counters import SharedCounters
from rlplug_a3c.configs import ThreadExecutorConfig
from rlplug_a3c.executors.pool import WorkerPool, run_target


class ThreadExecutor(WorkerPool):
    """Simple and light (no process start-up), but the GIL limits how far it scales."""

    def __init__(self, cfg: ThreadExecutorConfig):
        super().__init__(cfg)

    def _channel(self) -> tuple[Any, Any]:
        return threading.Event(), queue.Queue()

    def _start(self, target: Callable[[WorkerContext], None], ctx: WorkerContext) -> threading.Thread:
        thread = threading.Thread(target=run_target, args=(target, ctx),
                                  name=f"rlplug-worker-{ctx.rank}", daemon=True)
        thread.start()
        return thread

    def _alive(self, handle: threading.Thread) -> bool:
        return handle.is_alive()

    def run(self, target: Callable[[WorkerContext], None], *, seeds: list[int],
            counters: SharedCounters, total_steps: int, on_message: MessageHandler,
            on_tick: TickHandler, tick_s: float = 0.2, report_every_s: float = 2.0) -> None:
        # torch's intra-op threads would oversubscribe the cores the worker threads already use
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            super().run(target, seeds=seeds, counters=counters, total_steps=total_steps,
                        on_message=on_message, on_tick=on_tick, tick_s=tick_s,
                        report_every_s=report_every_s)
        finally:
            torch.set_num_threads(previous)
