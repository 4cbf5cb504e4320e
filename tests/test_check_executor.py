"""``rlplug.testing.check_executor`` with an executor that runs its workers one after another, in
the main thread, each until it ends (the simplest serial executor a plugin author would write).
The A3C plugin's own executors are checked in ``plugins/a3c/tests/test_executors.py``."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from rlplug.contracts import (
    Counters,
    Executor,
    MessageHandler,
    SharedModel,
    TickHandler,
    WorkerContext,
)
from rlplug.errors import WorkerFailure
from rlplug.testing import check_executor


@dataclass
class OneAfterAnotherConfig:
    name: str = "one_after_another"
    workers: int = 2


class OneAfterAnotherExecutor(Executor):
    """Keeps the contract: runs worker 0 in the main thread until it ends, then worker 1, ...
    The main thread's duties (messages, ``on_tick``) happen inside the worker's calls."""

    def __init__(self, cfg: OneAfterAnotherConfig) -> None:
        self.cfg = cfg
        self._stop = False

    @property
    def workers(self) -> int:
        return self.cfg.workers

    def request_stop(self) -> None:
        self._stop = True

    def run(self, target: Callable[[WorkerContext], None], *, model: SharedModel,
            seeds: list[int], counters: Counters, total_steps: int, on_message: MessageHandler,
            on_tick: TickHandler, tick_s: float = 0.2, report_every_s: float = 2.0) -> None:
        self._stop = False
        next_tick = time.monotonic() + tick_s

        def stop_requested() -> bool:
            nonlocal next_tick
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + tick_s
                on_tick()  # a KeyboardInterrupt raised here leaves through the worker
            return self._stop or counters.env_steps >= total_steps

        for rank, seed in enumerate(seeds):
            ctx = WorkerContext(rank, seed, counters, model, total_steps, on_message,
                                stop_requested, report_every_s)
            try:
                target(ctx)
            except Exception as exc:
                raise WorkerFailure(rank, traceback.format_exc()) from exc


def test_check_executor_passes_an_executor_that_runs_workers_one_after_another() -> None:
    start = time.monotonic()
    check_executor(OneAfterAnotherExecutor, OneAfterAnotherConfig(workers=2), one_at_a_time=True,
                   timeout_s=30.0)
    # It used to wait in the interrupt check until the watchdog gave up (timeout_s).
    assert time.monotonic() - start < 20.0


def test_the_interrupt_check_explains_what_to_pass_for_such_an_executor() -> None:
    with pytest.raises(AssertionError, match="one_at_a_time=True"):
        check_executor(OneAfterAnotherExecutor, OneAfterAnotherConfig(workers=2),
                       check_failure=False, timeout_s=2.0)
