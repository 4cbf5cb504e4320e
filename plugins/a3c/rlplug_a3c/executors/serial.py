"""Workers that take turns in the main process: one runs at a time, in a fixed order, so a run is
deterministic and can be stepped through in a debugger (sample-factory's serial mode is the model).

Each worker keeps its own stack (a thread, so it can be paused between two updates), but only the
worker that holds the turn runs; the main thread waits meanwhile. Turns go round-robin by rank,
one update each: a worker's turn ends at its first ``ctx.stop_requested()`` call after it pushed
an update to the model, or at its second call without one (a worker with nothing to update, e.g.
waiting for the end of the run, lets the others go on). Between two turns the main thread
passes the messages on, checks the budget and calls ``on_tick``, exactly like the thread and
process executors: the supervision (failures, restarts, stopping) is :class:`WorkerPool`'s.

Ctrl-C is acted on between turns: a worker's turn is never cut short. ``breakpoint()`` in worker
code works as usual (the other workers wait for their turn).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from rlplug.contracts import Counters, MessageHandler, SharedModel, TickHandler, WorkerContext
from rlplug.torch_threads import one_torch_thread
from rlplug.workerpool import ContextFactory, WorkerPool, run_target
from rlplug_a3c.configs import SerialExecutorConfig

log = logging.getLogger(__name__)

_POLLS_PER_TURN = 2  # stop_requested() calls that end a turn in which the worker pushed nothing
_WAIT_SLICE_S = 0.1  # the main thread waits in slices, so Ctrl-C (KeyboardInterrupt) gets through


@dataclass
class _Worker:
    """One worker's thread and where it is in its turn."""

    rank: int
    thread: threading.Thread = field(init=False)
    finished: bool = False  # its target returned or raised: it takes no more turns
    pushed: bool = False  # it pushed an update during its current turn
    polls: int = 0  # its stop_requested() calls during its current turn


class _TurnModel(SharedModel):
    """The hosted model as one worker sees it: the same model, and a note of each push (the
    moment the worker's update is done)."""

    def __init__(self, model: SharedModel, worker: _Worker):
        self._model, self._worker = model, worker

    @property
    def num_parameters(self) -> int:
        return self._model.num_parameters

    @property
    def version(self) -> int:
        return self._model.version

    def pull(self, out: torch.Tensor) -> int:
        return self._model.pull(out)

    def push(self, grad: torch.Tensor, lr: float) -> int:
        version = self._model.push(grad, lr)
        self._worker.pushed = True
        return version

    def state_dict(self) -> dict[str, Any]:
        return self._model.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._model.load_state_dict(state)


class SerialExecutor(WorkerPool):
    """All workers in the main process, one at a time, round-robin (see the module doc)."""

    def __init__(self, cfg: SerialExecutorConfig):
        super().__init__(cfg)
        self._turn = threading.Condition()
        self._holder: _Worker | None = None  # who runs now; None: the main thread
        self._workers: dict[int, _Worker] = {}  # rank -> its latest worker (restarts replace it)
        self._last_rank = -1
        self._inbox: collections.deque[dict[str, Any]] = collections.deque()

    # -- the worker's side ------------------------------------------------------------------
    def _start(self, target: Callable[[WorkerContext], None],
               make_ctx: ContextFactory) -> _Worker:
        ctx = make_ctx(self._inbox.append)
        worker = _Worker(ctx.rank)
        ctx.model = _TurnModel(ctx.model, worker)
        shared_stop = ctx.stop_requested

        def stop_requested() -> bool:
            if shared_stop():
                return True  # stopping: the worker finishes within this turn
            worker.polls += 1
            if worker.pushed or worker.polls >= _POLLS_PER_TURN:
                self._end_turn(worker)
                self._wait_turn(worker)
            return shared_stop()

        ctx.stop_requested = stop_requested
        worker.thread = threading.Thread(target=self._worker_main, args=(target, ctx, worker),
                                         name=f"rlplug-serial-worker-{ctx.rank}", daemon=True)
        self._workers[ctx.rank] = worker
        worker.thread.start()  # it waits for its first turn before running anything
        return worker

    def _worker_main(self, target: Callable[[WorkerContext], None], ctx: WorkerContext,
                     worker: _Worker) -> None:
        self._wait_turn(worker)
        try:
            run_target(target, ctx)
        finally:
            with self._turn:
                worker.finished = True
            self._end_turn(worker)

    def _wait_turn(self, worker: _Worker) -> None:
        with self._turn:
            while self._holder is not worker:
                self._turn.wait()
            worker.pushed, worker.polls = False, 0

    def _end_turn(self, worker: _Worker) -> None:
        with self._turn:
            if self._holder is worker:
                self._holder = None
                self._turn.notify_all()

    # -- the main thread's side -------------------------------------------------------------
    def _next(self) -> _Worker | None:
        """The next worker by rank after the last one that had a turn (round-robin)."""
        ranks = sorted(r for r, w in self._workers.items()
                       if not w.finished and w.thread.is_alive())
        if not ranks:
            return None
        rank = next((r for r in ranks if r > self._last_rank), ranks[0])
        self._last_rank = rank
        return self._workers[rank]

    def _receive(self, timeout: float) -> list[dict[str, Any]]:
        """Give the next worker its turn and wait until it ends; return what it sent. While the
        run is stopping, wait at most ``timeout`` (the pool enforces executor.stop_timeout_s)."""
        with self._turn:
            if self._holder is None:
                self._holder = self._next()
                self._turn.notify_all()
            deadline = time.monotonic() + timeout if self._stop.is_set() else None
            while self._holder is not None and not self._holder.finished:
                left = _WAIT_SLICE_S if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    break
                self._turn.wait(min(left, _WAIT_SLICE_S))
        return self._drain()

    def _flush(self, handle: _Worker) -> list[dict[str, Any]]:
        # A worker's messages are in the inbox as soon as it sends them.
        return self._drain()

    def _drain(self) -> list[dict[str, Any]]:
        out = []
        while self._inbox:
            out.append(self._inbox.popleft())
        return out

    def _alive(self, handle: _Worker) -> bool:
        return handle.thread.is_alive()

    def _force_stop(self, handle: _Worker) -> None:
        log.warning("%s cannot be killed; it ends with the process (a daemon thread)",
                    handle.thread.name)

    def run(self, target: Callable[[WorkerContext], None], *, model: SharedModel,
            seeds: list[int], counters: Counters, total_steps: int,
            on_message: MessageHandler, on_tick: TickHandler, tick_s: float = 0.2,
            report_every_s: float = 2.0) -> None:
        # One worker runs at a time, so torch's intra-op threads would only add noise.
        with one_torch_thread():
            self._workers, self._holder, self._last_rank = {}, None, -1
            self._inbox.clear()
            super().run(target, model=model, seeds=seeds, counters=counters,
                        total_steps=total_steps, on_message=on_message, on_tick=on_tick,
                        tick_s=tick_s, report_every_s=report_every_s)
