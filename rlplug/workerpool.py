"""A base for executors that supervise their workers from the main process (the A3C plugin's
thread and process executors, and any third-party executor that wants the same policies).

A subclass says how to start one worker, how its messages reach the main process and how to tell
whether it is alive; this class carries the messages on, notices failures, restarts or stops as
configured, and always stops every worker before returning.

Failure handling, in one place:

* a worker that raises sends its traceback (``run_target``); a worker process that dies (killed,
  out of memory) is seen as not alive on the next poll, at most ``tick_s`` later;
* a worker that makes no progress -- no call to its counters -- for ``worker_timeout_s`` (an
  ``env.step`` that hangs, a process stopped with SIGSTOP) is treated as failed: a process is
  killed, a thread (which cannot be killed) is abandoned and reported, and whatever it does if it
  ever wakes up no longer counts (:class:`WorkerCounters` revokes it; its messages are dropped);
* the env steps a failed worker had reserved but not finished go back to the budget, so the run
  still reaches ``total_steps``;
* ``on_worker_failure=restart`` starts a fresh worker in its place (it pulls the current global
  parameters before its first update), up to ``max_restarts`` over the run, and reports a
  ``worker_restart`` message; ``stop``, a :class:`FatalWorkerError` or no restart left raise
  :class:`WorkerFailure` with the traceback. A worker failing while the run stops is not replaced.

Start-up: a stop request (Ctrl-C) between two launches ends the launching. With
:attr:`WorkerPool.start_barrier` (process executors, whose workers take seconds to boot), until
every worker has made its first reservation a worker takes at most its fair share of the budget
(``budget / workers``) and then waits, so that a late-booting worker still acts in a small run
while a large run loses no time; the barrier opens once all are up, a worker failed, the run stops
or after :data:`START_BARRIER_MAX_S`.
"""

from __future__ import annotations

import abc
import logging
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.sharedctypes import RawArray, RawValue
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

START_BARRIER_MAX_S = 60.0  # the longest early workers may wait for a late one to boot
BOOT_TIMEOUT_S = 120.0  # the watchdog's least allowance for a worker's start-up (first call)
MAIN_STALL_S = 5.0  # a longer gap in the main loop (e.g. Ctrl-Z) restarts every worker's timeout
RETIRE_WAIT_S = 0.5  # how long the main loop waits for the counters' lock before trying later


@dataclass
class WorkerPoolConfig:
    """Settings every :class:`WorkerPool` executor has; an executor's config subclasses it."""

    name: str = "pool"
    workers: int = 2
    on_worker_failure: str = "restart"  # restart | stop
    max_restarts: int = 3  # restarts allowed over the whole run before it fails
    stop_timeout_s: float = 5.0  # how long workers get to stop before they are terminated
    # A worker whose counters see no call (reserve/add) for this long is treated as failed, e.g.
    # stuck in env.step or stopped (SIGSTOP). Its start-up (imports, env creation) gets at least
    # BOOT_TIMEOUT_S. null or 0: no watchdog.
    worker_timeout_s: float | None = 300.0

    def __post_init__(self) -> None:
        require(self.workers >= 1, "executor.workers", "must be >= 1", self.workers,
                "executor.workers=2")
        require(self.on_worker_failure in ("restart", "stop"), "executor.on_worker_failure",
                "must be restart or stop", self.on_worker_failure, "executor.on_worker_failure=stop")
        require(self.max_restarts >= 0, "executor.max_restarts", "must be >= 0",
                self.max_restarts, "executor.max_restarts=3")
        require(0 < self.stop_timeout_s < math.inf, "executor.stop_timeout_s",
                "must be a finite number > 0", self.stop_timeout_s, "executor.stop_timeout_s=5")
        if self.worker_timeout_s:
            require(1 <= self.worker_timeout_s < math.inf, "executor.worker_timeout_s",
                    "must be >= 1 (seconds), or 0/null for no watchdog", self.worker_timeout_s,
                    "executor.worker_timeout_s=300")


WORKER_DONE = "worker_done"
WORKER_ERROR = "worker_error"
_CONTROL = (WORKER_DONE, WORKER_ERROR)
_SENDER = "_sender"  # stamped on every message by StampedSend: (rank, epoch)

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
        self._value = RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return self._value.value != 0


class PoolState:
    """What the pool and its workers share besides the run's counters, one entry per rank; each
    entry is written by one side only, as one word, so it needs no lock (``epoch`` and
    ``reserved`` change under the counters' lock)."""

    def __init__(self, workers: int) -> None:
        self.reserved = RawArray("q", workers)  # env steps reserved, not yet added
        self.epoch = RawArray("q", workers)  # bumped when the rank's current worker is retired
        self.heartbeat = RawArray("d", workers)  # time.monotonic() of the last counters call
        self.ready = RawArray("b", workers)  # the rank has reached its first reservation
        self.go = RawValue("b", 0)  # the start barrier is open
        self.share = RawValue("q", 0)  # env steps a worker may take before the barrier opens


class WorkerCounters(SharedCounters):
    """The run's counters as one worker sees them: the same shared numbers, plus

    * this worker's reservation (steps reserved but not yet added), which the pool gives back to
      the budget when the worker fails (:meth:`retire`), so the run still reaches total_steps;
    * a heartbeat: every call records the time, which the pool's watchdog reads;
    * the start barrier: until every worker has made its first reservation, a worker takes at
      most its share of the budget (then waits);
    * revocation: once retired, the worker's calls change nothing (a hung thread that wakes up
      later cannot count steps twice) and its ``stop_requested()`` is true.

    Every change is one locked section whose writes a kill can only cut between two words in a
    repairable way (see :class:`~rlplug.counters.SharedCounters`).
    """

    def __init__(self, counters: SharedCounters, state: PoolState, rank: int, stop: StopFlag):
        # Share the run's numbers and lock instead of allocating new ones.
        self._values, self._lock = counters._values, counters._lock
        self._state, self._rank, self._stop = state, rank, stop
        self._epoch = state.epoch[rank]
        self._taken = 0  # env steps this worker reserved so far

    @property
    def revoked(self) -> bool:
        return self._state.epoch[self._rank] != self._epoch

    def _beat(self) -> None:
        self._state.heartbeat[self._rank] = time.monotonic()

    def _wait_at_barrier(self, wanted: int) -> None:
        """While the start barrier is closed (some worker still boots), take at most a fair share
        of the budget: a worker that booted early waits for the others only once it would
        exceed its share, so a large run loses no time and a small one still reaches every
        worker."""
        state = self._state
        state.ready[self._rank] = 1
        while not (state.go.value or self._stop.is_set() or self.revoked):
            if self._taken == 0 or self._taken + wanted <= state.share.value:
                return
            self._beat()  # waiting for the others is not a hang
            time.sleep(0.005)

    def reserve_steps(self, wanted: int, total_steps: int) -> int:
        if not self._state.go.value:
            self._wait_at_barrier(wanted)
        self._beat()
        with self._lock:
            if self.revoked:
                return 0
            reserved = self._state.reserved
            granted = self._grantable(wanted, total_steps, sum(reserved))
            reserved[self._rank] += granted
        self._taken += granted
        return granted

    def release_steps(self, unused: int) -> None:
        self._beat()
        with self._lock:
            if not self.revoked:
                held = self._state.reserved[self._rank]
                self._state.reserved[self._rank] = held - min(max(unused, 0), held)

    def add(self, env_steps: int, episodes: int = 0) -> int:
        self._beat()
        with self._lock:
            if self.revoked:
                return self._values[self._STEPS]
            total = self._record(env_steps, episodes)  # counted first: see the class docstring
            held = self._state.reserved[self._rank]
            self._state.reserved[self._rank] = held - min(env_steps, held)
            return total

    def retire(self, timeout: float) -> int | None:
        """(In the main process, once the worker has ended or been given up.) Revoke this worker
        and give its unfinished reservation back to the budget; returns the steps given back, or
        None if the lock could not be taken within ``timeout`` (a live worker holds it)."""
        if not self._lock.acquire(timeout=timeout):
            return None
        try:
            self._state.epoch[self._rank] = self._epoch + 1
            released = self._state.reserved[self._rank]
            self._state.reserved[self._rank] = 0
            return released
        finally:
            self._lock.release()


@dataclass
class StampedSend:
    """A worker's ``send``: stamps each message with the sender's rank and epoch, so the pool can
    drop what a retired worker still sends (picklable, for processes)."""

    send: Send
    rank: int
    epoch: int

    def __call__(self, msg: dict[str, Any]) -> None:
        self.send({**msg, _SENDER: (self.rank, self.epoch)})


@dataclass
class StopCheck:
    """A worker's ``stop_requested``: the run stops, or this worker was retired."""

    stop: StopFlag
    counters: WorkerCounters

    def __call__(self) -> bool:
        return self.stop.is_set() or self.counters.revoked


class WorkerPool(Executor):
    """An executor that supervises its workers from the main process (see the module doc)."""

    #: Whether workers wait at their first reservation until all have reached it. Only for
    #: workers that run at the same time (a serial executor would wait for ever).
    start_barrier: bool = False

    def __init__(self, cfg: WorkerPoolConfig):
        self.cfg = cfg
        self._stop = StopFlag()
        # request_stop only sets this plain attribute (safe from any thread); the loop turns it
        # into the shared flag the workers read.
        self._stop_asked = False
        self._stopping_since: float | None = None
        self._state: PoolState | None = None  # a run's shared state, from the start of run()
        self._restarts = 0  # over the current run

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
        """Stop a worker that ignored the stop request or hangs (processes: kill). A worker that
        is still alive afterwards (a thread) is abandoned."""

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
        state = self._state = PoolState(len(seeds))
        state.go.value = int(not self.start_barrier)
        state.share.value = -(-(total_steps - counters.env_steps) // max(1, len(seeds)))  # ceil
        handles: dict[int, Any] = {}
        worker_counters: dict[int, WorkerCounters] = {}
        started: list[Any] = []  # every worker ever started, for the final shutdown
        abandoned: list[Any] = []  # hung threads given up on: not waited for again
        launched: dict[int, float] = {}  # when each rank's current worker was started

        def start(rank: int, seed: int) -> None:
            mine = worker_counters[rank] = WorkerCounters(counters, state, rank, self._stop)
            # Until the worker's first counters call changes this, it is booting (see _watchdog).
            launched[rank] = state.heartbeat[rank] = time.monotonic()

            def make_ctx(send: Send) -> WorkerContext:
                return WorkerContext(rank, seed, mine, model, total_steps,
                                     StampedSend(send, rank, state.epoch[rank]),
                                     StopCheck(self._stop, mine), report_every_s)

            handles[rank] = self._start(target, make_ctx)
            started.append(handles[rank])

        def replace(rank: int, details: str, fatal: bool) -> bool:
            """Retire a failed worker and start its replacement if the policy allows; False if
            it cannot be retired yet (a live worker holds the counters' lock: next pass)."""
            released = worker_counters[rank].retire(RETIRE_WAIT_S)
            if released is None:
                return False
            if self._may_restart(rank, details, fatal, self._restarts):
                self._restarts += 1
                self._report_restart(rank, details, self._restarts, released, counters.env_steps)
                ended.discard(rank)
                start(rank, restart_seed(seeds[rank], self._restarts))
            return True

        ended: set[int] = set()
        pending: list[tuple[int, str, bool]] = []  # failures whose worker is not yet retired
        self._restarts = 0
        try:
            next_tick = self._launch(seeds, start, on_tick, tick_s)
            launched_at = last_pass = time.monotonic()
            grace_from = 0.0  # no worker times out before this (after a stall of the main loop)
            while len(ended) < len(handles) or pending:
                wait_s = max(0.0, min(tick_s, next_tick - time.monotonic()))
                failures = self._collect(handles, ended, wait_s)
                now = time.monotonic()
                if now - last_pass > MAIN_STALL_S:  # e.g. the whole run was stopped (Ctrl-Z)
                    grace_from = now
                last_pass = now
                # Decide about stopping first: a worker failing now is not replaced if the run ends.
                if self._stop_asked or counters.env_steps >= total_steps:
                    self._begin_stop()
                if self._stopping_since is None:
                    failures += self._watchdog(handles, ended, launched, grace_from, now,
                                               abandoned)
                if not state.go.value and (failures or self._stop.is_set()
                                           or all(state.ready[r] for r in handles)
                                           or now - launched_at > START_BARRIER_MAX_S):
                    state.go.value = 1  # open the start barrier
                    log.info("start barrier open: %d of %d workers up %.1f s after the launch",
                             sum(state.ready[r] for r in handles), len(seeds), now - launched_at)
                pending = [f for f in pending + failures if not replace(*f)]
                if (self._stopping_since is not None
                        and time.monotonic() - self._stopping_since > self.cfg.stop_timeout_s):
                    break  # some worker ignores the stop request: _shutdown forces it
                if time.monotonic() >= next_tick:
                    on_tick()
                    next_tick = time.monotonic() + tick_s
        finally:
            self._shutdown([h for h in started if not any(h is a for a in abandoned)])
            if abandoned:
                log.warning("%d hung worker(s) could not be killed and were abandoned; they end "
                            "with this process", len(abandoned))

    def _launch(self, seeds: list[int], start: Callable[[int, int], None],
                on_tick: TickHandler, tick_s: float) -> float:
        """Start one worker per seed, ticking in between (a Ctrl-C is only turned into a stop
        request by ``on_tick``); stop launching once a stop is requested. Returns the next tick."""
        next_tick = time.monotonic() + tick_s
        for rank, seed in enumerate(seeds):
            if self._stop_asked:
                log.warning("stop requested while starting the workers: %d of %d not started",
                            len(seeds) - rank, len(seeds))
                break
            start(rank, seed)
            if time.monotonic() >= next_tick:
                on_tick()
                next_tick = time.monotonic() + tick_s
        return next_tick

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

    def _watchdog(self, handles: dict[int, Any], ended: set[int], launched: dict[int, float],
                  grace_from: float, now: float, abandoned: list[Any]
                  ) -> list[tuple[int, str, bool]]:
        """Give up on the worker that has been silent longest beyond its allowance:
        ``worker_timeout_s`` since its last counters call, or at least :data:`BOOT_TIMEOUT_S`
        since its start while it has made none (a process imports torch and builds its env
        first, which takes seconds on a loaded machine).

        One per pass: workers blocked behind a hung one (e.g. waiting for a lock it holds) were
        silent for less long, and move again once it is gone.
        """
        timeout = self.cfg.worker_timeout_s
        if not timeout:
            return []
        assert self._state is not None
        heartbeat = self._state.heartbeat
        overdue: dict[int, float] = {}  # rank -> seconds silent beyond its allowance
        for rank in handles:
            if rank in ended:
                continue
            booting = heartbeat[rank] == launched[rank]
            silent = now - max(heartbeat[rank], grace_from)
            overdue[rank] = silent - (max(timeout, BOOT_TIMEOUT_S) if booting else timeout)
        rank = max(overdue, key=overdue.__getitem__, default=None)
        if rank is None or overdue[rank] <= 0:
            return []
        handle = handles[rank]
        silent_s = now - max(heartbeat[rank], grace_from)
        what = "did not start" if heartbeat[rank] == launched[rank] else "made no progress"
        details = (f"worker {rank} {what} for {silent_s:.0f} s "
                   f"(executor.worker_timeout_s={timeout:g})")
        self._force_stop(handle)
        if self._alive(handle):
            abandoned.append(handle)
            details += "; it cannot be killed and was abandoned"
        log.warning("%s: treating it as failed", details)
        failures: list[tuple[int, str, bool]] = []
        for msg in self._flush(handle):
            self._handle(msg, ended, failures)
        if rank not in ended:
            ended.add(rank)
            failures.append((rank, details, False))
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
        if self._stop.is_set() or self._stop_asked:
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

    def _current(self, msg: dict[str, Any]) -> bool:
        """Whether a message comes from a rank's current worker (not from a retired one); drops
        the sender stamp."""
        sender = msg.pop(_SENDER, None)
        if sender is None or self._state is None:
            return True
        rank, epoch = sender
        return self._state.epoch[rank] == epoch

    def _handle(self, msg: dict[str, Any], ended: set[int],
                failures: list[tuple[int, str, bool]]) -> None:
        if not self._current(msg):
            return
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
        if self._state is not None:
            self._state.go.value = 1  # workers waiting at the start barrier see the stop
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
            if self._current(msg) and msg.get("kind") not in _CONTROL:
                try:
                    self._on_message(msg)
                except Exception:  # noqa: BLE001 - logged; the shutdown goes on
                    log.exception("a worker message could not be handled during shutdown")
