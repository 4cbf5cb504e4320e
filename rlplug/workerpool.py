"""A base for executors that supervise their workers from the main process (the A3C plugin's
thread and process executors, and any third-party executor that wants the same policies).

A subclass says how to start one worker, how its messages reach the main process and how to tell
whether it is alive; this class carries the messages on, notices failures (a raised exception, or
a process that died), restarts or stops as configured, and always stops every worker before
returning.

Failure handling, in one place:

* a worker that raises sends its traceback (``run_target``); a worker process that dies (killed,
  out of memory) is seen as not alive on the next poll, at most ``tick_s`` later;
* the env steps it had reserved but not finished go back to the budget, so the run still reaches
  ``total_steps``;
* ``on_worker_failure=restart`` starts a fresh worker in its place (it pulls the current global
  parameters before its first update), up to ``max_restarts`` over the run, and reports a
  ``worker_restart`` message; ``stop``, a :class:`FatalWorkerError` or no restart left raise
  :class:`WorkerFailure` with the traceback.
"""

from __future__ import annotations

import abc
import logging
import multiprocessing
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlplug import messages
from rlplug.config import require
from rlplug.contracts import (
    Counters,
    Executor,
    MessageHandler,
    SharedModel,
    TickHandler,
    WorkerContext,
)
from rlplug.counters import SharedCounters
from rlplug.errors import FatalWorkerError, WorkerFailure

log = logging.getLogger(__name__)


@dataclass
class WorkerPoolConfig:
    """Settings every :class:`WorkerPool` executor has; an executor's config subclasses it."""

    name: str = "pool"
    workers: int = 2
    on_worker_failure: str = "restart"  # restart | stop
    max_restarts: int = 3  # restarts allowed over the whole run before it fails
    stop_timeout_s: float = 5.0  # how long workers get to stop before they are terminated

    def __post_init__(self) -> None:
        require(self.workers >= 1, "executor.workers", "must be >= 1", self.workers,
                "executor.workers=2")
        require(self.on_worker_failure in ("restart", "stop"), "executor.on_worker_failure",
                "must be restart or stop", self.on_worker_failure, "executor.on_worker_failure=stop")
        require(self.max_restarts >= 0, "executor.max_restarts", "must be >= 0",
                self.max_restarts, "executor.max_restarts=3")
        require(self.stop_timeout_s > 0, "executor.stop_timeout_s", "must be > 0",
                self.stop_timeout_s, "executor.stop_timeout_s=5")



WORKER_DONE = "worker_done"
WORKER_ERROR = "worker_error"
_CONTROL = (WORKER_DONE, WORKER_ERROR)

Send = Callable[[dict[str, Any]], None]
ContextFactory = Callable[[Send], WorkerContext]


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


def last_line(details: str) -> str:
    """The last non-empty line of a traceback: the exception itself."""
    lines = [line for line in details.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else details


class StopFlag:
    """The run-wide stop request: one byte in shared memory, read without a lock.

    A lock would be a hazard here: a worker killed while holding it would block every other
    worker's ``stop_requested()`` for ever.
    """

    def __init__(self) -> None:
        self._value = multiprocessing.RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return self._value.value != 0


class WorkerCounters(SharedCounters):
    """The run's counters as one worker sees them: the same shared numbers, plus a note of the env
    steps this worker has reserved but not yet added. When the worker dies, the pool gives those
    steps back to the budget (:meth:`release_outstanding`), so the run still reaches total_steps."""

    def __init__(self, counters: SharedCounters, outstanding: Any, rank: int):
        # Share the run's array (and its lock) instead of allocating a new one.
        self._values = counters._values
        self._outstanding = outstanding
        self._rank = rank

    def reserve_steps(self, wanted: int, total_steps: int) -> int:
        with self._values.get_lock():  # a recursive lock: the parent's methods take it again
            granted = super().reserve_steps(wanted, total_steps)
            self._outstanding[self._rank] += granted
            return granted

    def release_steps(self, unused: int) -> None:
        with self._values.get_lock():
            unused = min(unused, self._outstanding[self._rank])
            super().release_steps(unused)
            self._outstanding[self._rank] -= unused

    def add(self, env_steps: int, episodes: int = 0) -> int:
        with self._values.get_lock():
            total = super().add(env_steps, episodes)
            self._outstanding[self._rank] = max(0, self._outstanding[self._rank] - env_steps)
            return total

    def release_outstanding(self) -> int:
        """Give back whatever this worker still holds (in the main process, after it ended)."""
        with self._values.get_lock():
            unused = self._outstanding[self._rank]
            SharedCounters.release_steps(self, unused)
            self._outstanding[self._rank] = 0
            return unused


class WorkerPool(Executor):
    """An executor that supervises its workers from the main process (see the module doc)."""

    def __init__(self, cfg: WorkerPoolConfig):
        self.cfg = cfg
        self._stop = StopFlag()
        # request_stop only sets this plain attribute (safe from any thread); the loop turns it
        # into the shared flag the workers read.
        self._stop_asked = False
        self._stopping_since: float | None = None

    @property
    def workers(self) -> int:
        return self.cfg.workers

    # -- what a subclass provides -----------------------------------------------------------
    @abc.abstractmethod
    def _start(self, target: Callable[[WorkerContext], None], make_ctx: ContextFactory) -> Any:
        """Start one worker running ``run_target(target, make_ctx(send))``, where ``send``
        delivers a message to :meth:`_receive`; returns the worker's handle."""

    @abc.abstractmethod
    def _receive(self, timeout: float) -> list[dict[str, Any]]:
        """Messages from any worker, waiting up to ``timeout`` seconds for the first one."""

    @abc.abstractmethod
    def _alive(self, handle: Any) -> bool: ...

    def _flush(self, handle: Any) -> list[dict[str, Any]]:
        """The last messages of a worker that is no longer alive (its channel is then closed)."""
        return []

    def _death(self, handle: Any) -> str | None:
        """Why a worker ended without reporting (e.g. killed by a signal); None if it exited
        cleanly."""
        return None

    def _force_stop(self, handle: Any) -> None:
        """Stop a worker that ignored the stop request (processes: kill)."""

    # -- the loop ---------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop_asked = True

    def run(self, target: Callable[[WorkerContext], None], *, model: SharedModel,
            seeds: list[int], counters: Counters, total_steps: int,
            on_message: MessageHandler, on_tick: TickHandler, tick_s: float = 0.2,
            report_every_s: float = 2.0) -> None:
        assert isinstance(counters, SharedCounters), "the pool shares SharedCounters' memory"
        self._stop = StopFlag()
        self._stop_asked, self._stopping_since = False, None
        self._on_message = on_message
        outstanding = multiprocessing.RawArray("q", len(seeds))
        handles: dict[int, Any] = {}
        started: list[Any] = []  # every worker ever started, for the final shutdown
        worker_counters = [WorkerCounters(counters, outstanding, rank)
                           for rank in range(len(seeds))]

        def start(rank: int, seed: int) -> None:
            def make_ctx(send: Send) -> WorkerContext:
                return WorkerContext(rank, seed, worker_counters[rank], model, total_steps, send,
                                     self._stop.is_set, report_every_s)

            handles[rank] = self._start(target, make_ctx)
            started.append(handles[rank])

        ended: set[int] = set()
        restarts = 0
        try:
            for rank, seed in enumerate(seeds):
                start(rank, seed)
            next_tick = time.monotonic() + tick_s
            while len(ended) < len(handles):
                wait_s = max(0.0, min(tick_s, next_tick - time.monotonic()))
                failures = self._collect(handles, ended, wait_s)
                # Decide about stopping first: a worker failing now is not replaced if the run ends.
                if self._stop_asked or counters.env_steps >= total_steps:
                    self._begin_stop()
                for rank, details, fatal in failures:
                    released = worker_counters[rank].release_outstanding()
                    if self._may_restart(rank, details, fatal, restarts):
                        restarts += 1
                        self._report_restart(rank, details, restarts, released, counters.env_steps)
                        ended.discard(rank)
                        start(rank, restart_seed(seeds[rank], restarts))
                if (self._stopping_since is not None
                        and time.monotonic() - self._stopping_since > self.cfg.stop_timeout_s):
                    break  # some worker ignores the stop request: _shutdown forces it
                if time.monotonic() >= next_tick:
                    on_tick()
                    next_tick = time.monotonic() + tick_s
        finally:
            self._shutdown(started)

    def _collect(self, handles: dict[int, Any], ended: set[int], timeout: float
                 ) -> list[tuple[int, str, bool]]:
        """Pass on the workers' messages; return the failures seen: (rank, details, fatal)."""
        failures: list[tuple[int, str, bool]] = []
        for msg in self._receive(timeout):
            self._handle(msg, ended, failures)
        for rank, handle in handles.items():
            if rank not in ended and not self._alive(handle):
                self._reap(rank, handle, ended, failures)
        return failures

    def _begin_stop(self) -> None:
        if self._stopping_since is None:
            self._stopping_since = time.monotonic()
        self._stop.set()

    def _may_restart(self, rank: int, details: str, fatal: bool, restarts: int) -> bool:
        """Whether a failed worker gets a replacement; raises :class:`WorkerFailure` when the
        failure ends the run."""
        if fatal or self.cfg.on_worker_failure == "stop":
            raise WorkerFailure(rank, details, fatal)
        if self._stop.is_set():
            # The run is ending anyway; a replacement would only be stopped again.
            log.warning("worker %d failed while the run was stopping: %s", rank, last_line(details))
            return False
        if restarts >= self.cfg.max_restarts:
            raise WorkerFailure(rank, f"{details.rstrip()}\n(no restart left: "
                                      f"executor.max_restarts={self.cfg.max_restarts} used up)")
        return True

    def _report_restart(self, rank: int, details: str, restarts: int, released: int,
                        env_step: int) -> None:
        log.warning("worker %d failed at env step %d (%s); restarting it from the current global "
                    "parameters (restart %d of at most %d)", rank, env_step, last_line(details),
                    restarts, self.cfg.max_restarts)
        self._on_message(messages.worker_restart(rank, restarts, env_step, released,
                                                 last_line(details), details))

    def _handle(self, msg: dict[str, Any], ended: set[int],
                failures: list[tuple[int, str, bool]]) -> None:
        kind = msg.get("kind")
        if kind == WORKER_DONE:
            ended.add(msg["worker"])
        elif kind == WORKER_ERROR:
            ended.add(msg["worker"])
            failures.append((msg["worker"], msg["traceback"], bool(msg.get("fatal"))))
        else:
            self._on_message(msg)

    def _reap(self, rank: int, handle: Any, ended: set[int],
              failures: list[tuple[int, str, bool]]) -> None:
        """A worker is gone: read its last messages, else record how it died."""
        for msg in self._flush(handle):
            self._handle(msg, ended, failures)
        if rank not in ended:
            ended.add(rank)
            death = self._death(handle)
            if death is not None:
                failures.append((rank, death, False))

    def _shutdown(self, handles: list[Any]) -> None:
        """Stop everyone: set the flag, keep receiving (a process cannot exit while its pipe is
        full), then kill whoever did not stop within stop_timeout_s of the stop request."""
        self._begin_stop()
        assert self._stopping_since is not None
        deadline = self._stopping_since + self.cfg.stop_timeout_s
        while any(self._alive(h) for h in handles) and time.monotonic() < deadline:
            self._forward(self._receive(timeout=0.05))
        forced = [h for h in handles if self._alive(h)]
        if forced:
            log.warning("%d worker(s) did not stop within executor.stop_timeout_s=%s s; "
                        "forcing them", len(forced), self.cfg.stop_timeout_s)
        for handle in forced:
            self._force_stop(handle)
        self._forward(self._receive(timeout=0.0))
        for handle in handles:
            self._forward(self._flush(handle))
        log.info("all workers stopped %.2f s after the stop request%s",
                 time.monotonic() - self._stopping_since,
                 f" ({len(forced)} forced)" if forced else "")

    def _forward(self, msgs: list[dict[str, Any]]) -> None:
        """Pass statistics on during shutdown; how workers ended no longer matters. A failing
        handler must not keep the shutdown from stopping every worker."""
        for msg in msgs:
            if msg.get("kind") not in _CONTROL:
                try:
                    self._on_message(msg)
                except Exception:  # noqa: BLE001 - logged; the shutdown goes on
                    log.exception("a worker message could not be handled during shutdown")

