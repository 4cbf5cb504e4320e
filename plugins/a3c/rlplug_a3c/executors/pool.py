"""What the thread and process executors share: the supervision loop in the main process.

A subclass says how to start one worker and how to tell whether it is alive; this class carries
messages to the main process, notices failures (a raised exception, or a process that died),
restarts or stops as configured, and always stops every worker before returning.
"""

from __future__ import annotations

import abc
import queue as queue_module
import time
import traceback
from collections.abc import Callable
from typing import Any

from rlplug.contracts import Executor, MessageHandler, TickHandler, WorkerContext
from rlplug.counters import SharedCounters
from rlplug.errors import FatalWorkerError, WorkerFailure
from rlplug_a3c.configs import ExecutorConfig

WORKER_DONE = "worker_done"
WORKER_ERROR = "worker_error"
WORKER_RESTART = "worker_restart"


def run_target(target: Callable[[WorkerContext], None], ctx: WorkerContext) -> None:
    """Run one worker and report how it ended (in the worker's own thread or process)."""
    try:
        target(ctx)
        ctx.send({"kind": WORKER_DONE, "worker": ctx.rank})
    except BaseException as exc:  # noqa: BLE001 - every ending must reach the main process
        ctx.send({"kind": WORKER_ERROR, "worker": ctx.rank, "traceback": traceback.format_exc(),
                  "fatal": isinstance(exc, FatalWorkerError)})


def restart_seed(seed: int, restart: int) -> int:
    """A fresh seed for a restarted worker, so it does not replay its predecessor's episodes."""
    return (seed + 7919 * restart) % 2**32


class WorkerPool(Executor):
    def __init__(self, cfg: ExecutorConfig):
        self.cfg = cfg
        self._stop: Any = None

    @property
    def workers(self) -> int:
        return self.cfg.workers

    # -- what a subclass provides -----------------------------------------------------------
    @abc.abstractmethod
    def _channel(self) -> tuple[Any, Any]:
        """A stop event and a message queue that workers of this kind can use."""

    @abc.abstractmethod
    def _start(self, target: Callable[[WorkerContext], None], ctx: WorkerContext) -> Any:
        """Start one worker running ``run_target(target, ctx)``; returns its handle."""

    @abc.abstractmethod
    def _alive(self, handle: Any) -> bool: ...

    def _death(self, handle: Any) -> str | None:
        """Why a worker ended without reporting (e.g. killed by a signal); None if it exited cleanly."""
        return None

    def _force_stop(self, handle: Any) -> None:
        """Stop a worker that ignored the stop event (processes: terminate, then kill)."""

    # -- the loop ---------------------------------------------------------------------------
    def request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def run(self, target: Callable[[WorkerContext], None], *, seeds: list[int],
            counters: SharedCounters, total_steps: int, on_message: MessageHandler,
            on_tick: TickHandler, tick_s: float = 0.2, report_every_s: float = 2.0) -> None:
        self._stop, self._queue = self._channel()
        self._on_message = on_message

        def context(rank: int, seed: int) -> WorkerContext:
            return WorkerContext(rank, seed, counters, total_steps, self._queue.put,
                                 self._stop.is_set, report_every_s)

        handles = {rank: self._start(target, context(rank, seed)) for rank, seed in enumerate(seeds)}
        ended: set[int] = set()
        restarts = 0
        try:
            next_tick = time.monotonic() + tick_s
            while len(ended) < len(handles):
                for msg in self._drain(timeout=min(tick_s, max(0.0, next_tick - time.monotonic()))):
                    failure = self._handle(msg, ended)
                    if failure is not None:
                        rank, details, fatal = failure
                        if fatal or not self._may_restart(restarts):
                            raise WorkerFailure(rank, details)
                        restarts += 1
                        ended.discard(rank)
                        on_message({"kind": WORKER_RESTART, "worker": rank, "restart": restarts,
                                    "env_step": counters.env_steps, "reason": details})
                        handles[rank] = self._start(
                            target, context(rank, restart_seed(seeds[rank], restarts)))
                for rank, handle in handles.items():
                    if rank not in ended and not self._alive(handle):
                        self._reap(rank, handle, ended)
                if counters.env_steps >= total_steps:
                    self._stop.set()
                if time.monotonic() >= next_tick:
                    on_tick()
                    next_tick = time.monotonic() + tick_s
        finally:
            self._shutdown(list(handles.values()))

    def _may_restart(self, restarts: int) -> bool:
        return (self.cfg.on_worker_failure == "restart" and restarts < self.cfg.max_restarts
                and not self._stop.is_set())

    def _drain(self, timeout: float) -> list[dict[str, Any]]:
        """Messages waiting in the queue (waiting up to ``timeout`` for the first one)."""
        out = []
        try:
            out.append(self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait())
            while True:
                out.append(self._queue.get_nowait())
        except queue_module.Empty:
            return out

    def _handle(self, msg: dict[str, Any], ended: set[int]) -> tuple[int, str, bool] | None:
        kind = msg.get("kind")
        if kind == WORKER_DONE:
            ended.add(msg["worker"])
        elif kind == WORKER_ERROR:
            ended.add(msg["worker"])
            return msg["worker"], msg["traceback"], bool(msg.get("fatal"))
        else:
            self._on_message(msg)
        return None

    def _reap(self, rank: int, handle: Any, ended: set[int]) -> None:
        """A worker is gone without a message we have seen: wait briefly for its last message,
        else report how it died. Puts a synthetic error message in the queue when it died."""
        deadline = time.monotonic() + 1.0
        while rank not in ended and time.monotonic() < deadline:
            for msg in self._drain(timeout=0.05):
                if msg.get("worker") == rank and msg.get("kind") in (WORKER_DONE, WORKER_ERROR):
                    self._queue.put(msg)  # handled by the main loop, with restart logic
                    ended.add(rank)
                    return
                self._handle(msg, ended)
        death = self._death(handle)
        if rank not in ended:
            ended.add(rank)
            if death is not None:
                self._queue.put({"kind": WORKER_ERROR, "worker": rank, "traceback": death,
                                 "fatal": False})

    def _shutdown(self, handles: list[Any]) -> None:
        """Stop everyone: set the event, keep draining the queue (a process cannot exit while its
        queue buffer is full), then terminate whoever did not stop within stop_timeout_s."""
        self._stop.set()
        deadline = time.monotonic() + self.cfg.stop_timeout_s
        while any(self._alive(h) for h in handles) and time.monotonic() < deadline:
            for msg in self._drain(timeout=0.05):
                if msg.get("kind") not in (WORKER_DONE, WORKER_ERROR, None):
                    self._on_message(msg)
        for handle in handles:
            if self._alive(handle):
                self._force_stop(handle)
        for msg in self._drain(timeout=0.0):
            if msg.get("kind") not in (WORKER_DONE, WORKER_ERROR, None):
                self._on_message(msg)
