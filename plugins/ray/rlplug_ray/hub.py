"""The hub: the one Ray actor that holds what a run's workers share.

Shared memory does not cross machines, so the algorithm's :class:`~rlplug.contracts.SharedModel`
(global parameters and optimizer) lives here, in one actor on the driver's node, together with
the env-step budget and totals, the stop flag and the workers' messages on their way to the
driver. The actor runs one call at a time, so every call is atomic: a push is applied whole, and
the budget is never over-granted.

A worker reaches the hub with one call per update (:meth:`Hub.exchange`): it reports what it did
since its last call (env steps, episodes, messages, unused steps), pushes its gradient, and gets
back the new parameters with their version, its next step reservation and the stop flag
(``rlplug_ray.link``). The driver polls totals and messages a few times a second
(:meth:`Hub.poll`) and retires a failed worker's reservation (:meth:`Hub.retire`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from rlplug.contracts import SharedModel
from rlplug_ray import portable

WorkerId = tuple[int, int]
"""(rank, start number): a restarted worker has the same rank and a new start number."""


class Report(NamedTuple):
    """What a worker did since its last call."""

    steps: int = 0  # env steps finished (counters.add)
    episodes: int = 0
    released: int = 0  # reserved steps given back unused (counters.release_steps)
    messages: tuple[dict[str, Any], ...] = ()


class Reply(NamedTuple):
    """The hub's answer to :meth:`Hub.exchange`."""

    version: int  # the model's version after this call (the pushed gradient included)
    params: np.ndarray | None  # the parameters at that version, if asked for
    granted: int  # env steps reserved for the worker, if it asked for some
    env_steps: int  # the run's totals so far
    episodes: int
    stop: bool  # the run is ending: the worker should return


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor over a received array (copied if Ray handed over a read-only buffer)."""
    return torch.from_numpy(array if array.flags.writeable else array.copy())


class Hub:
    """Holds the algorithm's shared model, the budget, the stop flag and the message queue."""

    def __init__(self, model: bytes):
        torch.set_num_threads(1)  # small tensor ops only; more threads would contend with workers
        self.model: SharedModel = portable.loads(model)
        self._params = torch.empty(self.model.num_parameters)
        self.begin(0, 0, 0)

    # -- the driver ---------------------------------------------------------------------------
    def begin(self, env_steps: int, episodes: int, total_steps: int) -> None:
        """Start a run from these totals (a resumed run starts where it stopped)."""
        self.env_steps, self.episodes, self.reserved = env_steps, episodes, env_steps
        self.total_steps = total_steps
        self.outstanding: dict[WorkerId, int] = {}  # reserved, not yet finished, per worker
        self.retired: set[WorkerId] = set()
        self.messages: list[dict[str, Any]] = []
        self.active: set[WorkerId] = set()  # workers that called since the last poll
        self.stop_asked = False

    def request_stop(self) -> None:
        self.stop_asked = True

    def poll(self) -> tuple[int, int, list[dict[str, Any]], list[WorkerId]]:
        """The run's env steps and episodes, and since the last poll: the messages received and
        the workers that called (a sign of life for the pool's watchdog)."""
        messages, self.messages = self.messages, []
        active, self.active = list(self.active), set()
        return self.env_steps, self.episodes, messages, active

    def retire(self, worker: WorkerId) -> int:
        """A worker failed: give its unfinished reservation back to the budget and ignore any
        late call of it (its steps will be taken again). Returns the steps given back."""
        self.retired.add(worker)
        unused = self.outstanding.pop(worker, 0)
        self.reserved -= unused
        return unused

    # -- the shared model, for the driver (checkpoints, evaluation) -----------------------------
    def num_parameters(self) -> int:
        return self.model.num_parameters

    def version(self) -> int:
        return self.model.version

    def pull(self) -> tuple[int, np.ndarray]:
        version = self.model.pull(self._params)
        return version, self._params.numpy().copy()

    def push(self, grad: np.ndarray, lr: float) -> int:
        return self.model.push(as_tensor(grad), lr)

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state)

    # -- the workers -----------------------------------------------------------------------------
    def exchange(self, worker: WorkerId, report: Report, grad: np.ndarray | None = None,
                 lr: float = 0.0, reserve: int = 0, pull: bool = False) -> Reply:
        """A worker's call: record its report, then (each only if asked) apply its gradient,
        reserve steps for it and return the parameters, in that order."""
        if worker in self.retired:  # a late call of a worker already counted as failed
            return Reply(self.model.version, None, 0, self.env_steps, self.episodes, True)
        self.active.add(worker)
        self._record(worker, report)
        version = (self.model.push(as_tensor(grad), lr) if grad is not None
                   else self.model.version)
        granted = self._reserve(worker, reserve) if reserve > 0 else 0
        params = None
        if pull:  # one call at a time, so nothing came between the push and this pull
            version = self.model.pull(self._params)
            params = self._params.numpy().copy()
        return Reply(version, params, granted, self.env_steps, self.episodes, self.stopping)

    @property
    def stopping(self) -> bool:
        return self.stop_asked or self.env_steps >= self.total_steps

    def _record(self, worker: WorkerId, report: Report) -> None:
        outstanding = self.outstanding.get(worker, 0)
        released = min(report.released, outstanding)
        self.reserved -= released
        self.env_steps += report.steps
        self.episodes += report.episodes
        self.outstanding[worker] = max(0, outstanding - released - report.steps)
        self.messages.extend(report.messages)

    def _reserve(self, worker: WorkerId, wanted: int) -> int:
        granted = max(0, min(wanted, self.total_steps - self.reserved))
        self.reserved += granted
        self.outstanding[worker] = self.outstanding.get(worker, 0) + granted
        return granted
