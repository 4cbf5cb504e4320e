"""The main process's view of a run: it consumes worker messages and keeps the statistics, the
metrics file, the progress bar and the W&B logger up to date."""

from __future__ import annotations

import json
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
        self.bar = tqdm(total=total_steps, initial=counters.env_steps, unit="step",
                        disable=not show_progress, dynamic_ncols=True, smoothing=0.1,
                        desc="rlplug")

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
        self._file.flush()

    def close(self) -> None:
        self.on_tick()
        self.bar.close()
        self._file.close()
