"""Run-wide counters that every worker (thread or process) sees: env steps and episodes."""

from __future__ import annotations

from multiprocessing.sharedctypes import RawArray

from rlplug.contracts import Counters
from rlplug.locks import RobustLock


class SharedCounters(Counters):
    """Env steps and episodes summed over all workers, in shared memory.

    Works for threads and for processes started with any start method (the numbers and the lock
    are inherited or pickled to children). Workers :meth:`reserve_steps` before collecting, so the
    run never exceeds its step budget, then :meth:`add` what they actually did.

    Reading (:attr:`env_steps`, :attr:`episodes`) takes no lock: each number is one aligned 8-byte
    word. Changes take a :class:`~rlplug.locks.RobustLock`, so a worker killed while changing them
    cannot block the others, and each change is ordered so that such a kill leaves nothing a
    restart cannot repair: the budget is ``env_steps`` plus the reservations not yet added; a kill
    inside :meth:`add` after the steps were counted but before the reservation was reduced only
    holds those steps twice, until the reservation of the dead worker is released (the pool's
    :class:`~rlplug.workerpool.WorkerCounters` keep one reservation per worker for that purpose).
    """

    _STEPS, _EPISODES, _PENDING = range(3)  # PENDING: reserved through this object, not yet added

    def __init__(self, env_steps: int = 0, episodes: int = 0):
        self._values = RawArray("q", [env_steps, episodes, 0])
        self._lock = RobustLock()

    def reserve_steps(self, wanted: int, total_steps: int) -> int:
        """Claim up to ``wanted`` env steps of the remaining budget; returns how many were granted."""
        with self._lock:
            granted = self._grantable(wanted, total_steps, 0)
            self._values[self._PENDING] += granted
            return granted

    def release_steps(self, unused: int) -> None:
        """Give back reserved steps that were not taken (a worker stopped early)."""
        if unused > 0:
            with self._lock:
                pending = self._values[self._PENDING]
                self._values[self._PENDING] = pending - min(unused, pending)

    def add(self, env_steps: int, episodes: int = 0) -> int:
        """Record finished env steps and episodes; returns the new env-step total."""
        with self._lock:
            total = self._record(env_steps, episodes)
            pending = self._values[self._PENDING]
            self._values[self._PENDING] = pending - min(env_steps, pending)
            return total

    @property
    def env_steps(self) -> int:
        return self._values[self._STEPS]

    @property
    def episodes(self) -> int:
        return self._values[self._EPISODES]

    # -- for subclasses, with the lock held ---------------------------------------------------
    def _grantable(self, wanted: int, total_steps: int, reserved_elsewhere: int) -> int:
        """How many of ``wanted`` steps the budget still allows, given reservations held outside
        this object's own record (e.g. by a pool's workers)."""
        reserved = self._values[self._STEPS] + self._values[self._PENDING] + reserved_elsewhere
        return max(0, min(wanted, total_steps - reserved))

    def _record(self, env_steps: int, episodes: int) -> int:
        self._values[self._STEPS] += env_steps
        self._values[self._EPISODES] += episodes
        return self._values[self._STEPS]
