"""Run-wide counters that every worker (thread or process) sees: env steps and episodes."""

from __future__ import annotations

import multiprocessing as mp

from rlplug.contracts import Counters


class SharedCounters(Counters):
    """Env steps and episodes summed over all workers, in shared memory.

    Works for threads and for processes started with any start method (the array and its lock are
    inherited or pickled to children). Workers :meth:`reserve_steps` before collecting, so the run
    never exceeds its step budget, then :meth:`add` what they actually did.
    """

    _RESERVED, _STEPS, _EPISODES = range(3)

    def __init__(self, env_steps: int = 0, episodes: int = 0, ctx: mp.context.BaseContext | None = None):
        ctx = ctx or mp.get_context("spawn")
        self._values = ctx.Array("q", [env_steps, env_steps, episodes])

    def reserve_steps(self, wanted: int, total_steps: int) -> int:
        """Claim up to ``wanted`` env steps of the remaining budget; returns how many were granted."""
        with self._values.get_lock():
            granted = max(0, min(wanted, total_steps - self._values[self._RESERVED]))
            self._values[self._RESERVED] += granted
            return granted

    def release_steps(self, unused: int) -> None:
        """Give back reserved steps that were not taken (a worker stopped early)."""
        if unused > 0:
            with self._values.get_lock():
                self._values[self._RESERVED] -= unused

    def add(self, env_steps: int, episodes: int = 0) -> int:
        """Record finished env steps and episodes; returns the new env-step total."""
        with self._values.get_lock():
            self._values[self._STEPS] += env_steps
            self._values[self._EPISODES] += episodes
            return self._values[self._STEPS]

    @property
    def env_steps(self) -> int:
        return self._values[self._STEPS]

    @property
    def episodes(self) -> int:
        return self._values[self._EPISODES]
