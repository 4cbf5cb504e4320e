"""The main process's view of a run: it consumes worker messages and keeps the statistics, the
metrics file, the progress bar and the W&B logger up to date."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from rlplug import messages
from rlplug.counters import SharedCounters
from rlplug.periodic_eval import EVAL

WINDOW = 100  # episodes in the moving mean that summaries and the progress bar report


class MetricsSink(Protocol):
    """Something that receives metrics rows as they happen (the W&B logger)."""

    def log_row(self, row: dict[str, Any]) -> None: ...


class ReturnStats:
    """Mean return over the last 100 episodes, and its best value over the run; the success rate
    over the last 100 episodes that reported success (envs that set ``info["is_success"]``)."""

    def __init__(self) -> None:
        self.recent: deque[float] = deque(maxlen=WINDOW)
        self.recent_success: deque[bool] = deque(maxlen=WINDOW)
        self.best: float | None = None
        self.episodes = 0

    def add(self, episode_return: float, success: bool | None = None) -> None:
        self.recent.append(episode_return)
        self.episodes += 1
        if success is not None:
            self.recent_success.append(bool(success))
        if len(self.recent) == WINDOW:
            self.best = self.mean if self.best is None else max(self.best, self.mean)

    @property
    def success_rate(self) -> float | None:
        """Fraction of successes in the last 100 episodes that reported one (None: none did)."""
        if not self.recent_success:
            return None
        return sum(self.recent_success) / len(self.recent_success)

    @property
    def mean(self) -> float | None:
        return sum(self.recent) / len(self.recent) if self.recent else None

    @property
    def best_or_mean(self) -> float | None:
        """The best full-window mean; before 100 episodes, the mean of all of them."""
        return self.best if self.best is not None else self.mean


class _Bar(tqdm):
    """tqdm without its monitor thread (it only adjusts the redraw rate of a bar that is updated
    rarely; ours is updated every tick): the main process then runs no other Python thread when
    the workers start, so they can be forked (rlplug.worker_processes.resolve_start_method)."""

    monitor_interval = 0


class Monitor:
    """Receives every worker message (``on_message``) and a periodic tick (``on_tick``)."""

    def __init__(self, run_dir: Path, counters: SharedCounters, total_steps: int,
                 sinks: list[MetricsSink], show_progress: bool, wall_offset: float = 0.0,
                 returns: ReturnStats | None = None):
        self.counters = counters
        self.total_steps = total_steps
        self.sinks = sinks
        self.returns = returns or ReturnStats()
        self.start = time.monotonic() - wall_offset
        self.metrics_path = run_dir / "metrics.jsonl"
        self._file = self.metrics_path.open("a", encoding="utf-8")
        self._last_rate = (time.monotonic(), counters.env_steps)
        self.steps_per_s = 0.0
        self.eval_return: float | None = None  # the latest evaluation's (rlplug.periodic_eval)
        on_terminal = _is_terminal(sys.stderr)
        self.bar = _Bar(total=total_steps, initial=counters.env_steps, unit="step",
                        disable=not (show_progress and on_terminal), dynamic_ncols=True,
                        smoothing=0.1, desc="rlplug")
        # Without a terminal (a pipe, a CI log, a batch job) a bar would be redrawn with a
        # carriage return 5 times a second: a plain line every few seconds instead.
        self._plain = (PlainProgress(total_steps, plain_progress_every_s())
                       if show_progress and not on_terminal else None)

    @property
    def wall_s(self) -> float:
        return time.monotonic() - self.start

    def on_message(self, msg: dict[str, Any]) -> None:
        row = dict(msg)
        row["wall_s"] = round(self.wall_s, 3)
        if msg["kind"] == messages.EPISODE:
            self.returns.add(msg["return"], msg.get("success"))
            row["episode"] = self.returns.episodes
        self.write(row)

    def write(self, row: dict[str, Any]) -> None:
        if row.get("kind") == EVAL:
            self.eval_return = row["return_mean"]
        self._file.write(json.dumps(row) + "\n")
        for sink in self.sinks:
            sink.log_row(row)

    def on_tick(self) -> None:
        now, steps = time.monotonic(), self.counters.env_steps
        last_t, last_steps = self._last_rate
        if now - last_t >= 1.0:
            self.steps_per_s = (steps - last_steps) / (now - last_t)
            self._last_rate = (now, steps)
        self.bar.n = steps
        mean, success = self.returns.mean, self.returns.success_rate
        postfix = {"episodes": self.returns.episodes, "R100": "-" if mean is None else f"{mean:.1f}"}
        if success is not None:  # only for envs that report success
            postfix["success100"] = f"{success:.0%}"
        if self.eval_return is not None:  # evaluation during training (eval.every_steps)
            postfix["eval"] = f"{self.eval_return:.1f}"
        self.bar.set_postfix(postfix, sps=f"{self.steps_per_s:,.0f}", refresh=False)
        self.bar.refresh()
        if self._plain is not None:
            self._plain.update(steps, postfix, self.steps_per_s)
        self._file.flush()

    def close(self) -> None:
        self.on_tick()
        self.bar.close()
        if self._plain is not None:
            self._plain.close()
        self._file.close()


PROGRESS_EVERY_ENV = "RLPLUG_PROGRESS_EVERY_S"
PROGRESS_EVERY_S = 5.0


def plain_progress_every_s() -> float:
    """Seconds between plain progress lines (env ``RLPLUG_PROGRESS_EVERY_S``, default 5)."""
    try:
        value = float(os.environ.get(PROGRESS_EVERY_ENV, PROGRESS_EVERY_S))
    except ValueError:
        return PROGRESS_EVERY_S
    return value if math.isfinite(value) and value > 0 else PROGRESS_EVERY_S


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # replaced or closed stream
        return False


class PlainProgress:
    """The progress bar's numbers as one plain line every ``every_s`` seconds, and once at the
    end, on stderr: ``rlplug: 12,000/100,000 env steps (12.0%) | episodes 340 | R100 41.2 |
    1,950 steps/s | 0:00:06`` (steps/s over the time since the previous line)."""

    def __init__(self, total_steps: int, every_s: float, stream: Any = None) -> None:
        self.total_steps, self.every_s = total_steps, every_s
        self.stream = stream
        self.start = self.last_print = time.monotonic()
        self.last_steps: int | None = None
        self._pending: tuple[int, dict[str, Any]] | None = None

    def update(self, steps: int, postfix: dict[str, Any], _steps_per_s: float = 0.0) -> None:
        if self.last_steps is None:
            self.last_steps = steps  # where this session started (a resumed run starts above 0)
        self._pending = (steps, dict(postfix))
        if time.monotonic() - self.last_print >= self.every_s:
            self._print()

    def close(self) -> None:
        if self._pending is not None:
            self._print()

    def _print(self) -> None:
        assert self._pending is not None
        steps, postfix = self._pending
        self._pending = None
        now = time.monotonic()
        rate = (steps - (self.last_steps or 0)) / max(now - self.last_print, 1e-9)
        self.last_print, self.last_steps = now, steps
        share = steps / self.total_steps if self.total_steps else 0.0
        parts = [f"rlplug: {steps:,}/{self.total_steps:,} env steps ({share:.1%})"]
        parts += [f"{key} {value}" for key, value in postfix.items()]
        elapsed = int(now - self.start)
        parts += [f"{rate:,.0f} steps/s",
                  f"{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}"]
        try:
            print(" | ".join(parts), file=self.stream or sys.stderr, flush=True)
        except (OSError, ValueError):  # a closed or broken stream must not stop the run
            pass
