"""What the main process decides while the workers run, in one place.

:class:`RunControl` is the executor's ``on_tick``: every tick it refreshes the monitor (progress
bar, metrics file), turns a received SIGINT/SIGTERM into a stop request, logs the run's throughput
and writes the periodic checkpoint and runs the periodic evaluation (``rlplug.periodic_eval``)
when one is due. Signals are only recorded
(:func:`record_signals`): an exception raised at an arbitrary point of the executor's loop could
leave a worker message half-read or cut a checkpoint short.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rlplug.contracts import Executor
from rlplug.counters import SharedCounters
from rlplug.loggers.wandb_logger import WandbLogger
from rlplug.monitor import Monitor

log = logging.getLogger(__name__)


@contextmanager
def record_signals(received: list[int]) -> Iterator[None]:
    """While training, SIGINT and SIGTERM are only appended to ``received``; the first one decides
    the status (interrupted) and the exit code (130 or 143). Repeated signals cannot interrupt
    the final writes."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install handlers (e.g. train() called from a thread)
        return

    def handler(signum: int, _frame: Any) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def next_multiple(steps: int, every: int) -> int:
    """The first multiple of ``every`` above ``steps`` (0: never)."""
    return 0 if every <= 0 else (steps // every + 1) * every


class RunControl:
    """The executor's ``on_tick`` (see the module docstring)."""

    def __init__(self, executor: Executor, counters: SharedCounters, monitor: Monitor,
                 logger: WandbLogger, checkpoint: Callable[[], None], checkpoint_every: int, *,
                 evaluate: Callable[[], None] | None = None, eval_every: int = 0):
        self.executor, self.counters, self.monitor, self.logger = executor, counters, monitor, logger
        self.checkpoint, self.checkpoint_every = checkpoint, checkpoint_every
        self.evaluate, self.eval_every = evaluate, eval_every if evaluate is not None else 0
        self.next_eval = self._next_eval()
        self.received: list[int] = []  # SIGINT/SIGTERM numbers, in order (record_signals)
        self.stopping = False
        self.next_checkpoint = next_multiple(counters.env_steps, checkpoint_every)

    @property
    def signal(self) -> int | None:
        """The first signal received, if any."""
        return self.received[0] if self.received else None

    def on_tick(self) -> None:
        self.monitor.on_tick()
        self._stop_on_signal()
        self.logger.log_progress(self.counters.env_steps)
        if self.next_checkpoint and self.counters.env_steps >= self.next_checkpoint:
            self.checkpoint()
            self.next_checkpoint = next_multiple(self.counters.env_steps, self.checkpoint_every)
        if (self.next_eval and self.evaluate is not None and not self.stopping
                and self.counters.env_steps >= self.next_eval):
            self.evaluate()
            self.next_eval = self._next_eval()

    def _next_eval(self) -> int:
        """The env step of the next periodic evaluation; 0 (none) once that reaches the budget:
        the evaluation at the end of the run covers it."""
        due = next_multiple(self.counters.env_steps, self.eval_every)
        return due if due < self.monitor.total_steps else 0

    def _stop_on_signal(self) -> None:
        if self.received and not self.stopping:
            self.stopping = True
            log.warning("%s received: stopping the workers, then saving the outputs",
                        signal.Signals(self.received[0]).name)
            self.executor.request_stop()
