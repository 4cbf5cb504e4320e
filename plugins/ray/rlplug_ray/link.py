"""Handles on the hub: the driver's (:class:`HostedModel`) and a worker's (:class:`HubLink`).

A worker calls ``ctx.model.pull``/``push``, ``ctx.counters.reserve_steps``/``add``/
``release_steps``, ``ctx.send`` and ``ctx.stop_requested``: several calls per update. A remote
call costs about a millisecond of CPU on each side, so :class:`HubLink` answers all of them with
one remote call per update (:meth:`rlplug_ray.hub.Hub.exchange`):

* ``add``, ``release_steps`` and ``send`` are buffered and travel with the next call;
* ``push`` is the call: it also reserves the worker's next steps (as many as it reserved last
  time) and fetches the parameters after its gradient, so the ``reserve_steps`` and ``pull`` that
  follow it are answered locally;
* ``stop_requested`` answers from the last reply (a call refreshes it if that is older than
  ``REFRESH_S``; an A3C worker asks right after its push, so it never waits).

Versions and reservations are exact (the hub grants every step and applies every push, one call
at a time). Only the run's env-step total a worker sees between its calls lacks the other
workers' progress since its last call; it only dates messages and learning-rate schedules.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from rlplug.contracts import Counters, SharedModel
from rlplug_ray.hub import Reply, Report, WorkerId

REFRESH_S = 0.2  # stop_requested() calls the hub if its last answer is older than this
FLUSH_S = 0.25  # send() calls the hub if messages have waited this long


def as_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A numpy view of a CPU tensor (Ray serializes numpy arrays without pickling them)."""
    return tensor.detach().cpu().numpy()


def copy_into(out: torch.Tensor, array: np.ndarray) -> None:
    """Copy received parameters into ``out`` in place (the worker's flat parameters)."""
    if out.device.type == "cpu":
        np.copyto(out.detach().numpy(), array)
    else:
        out.copy_(torch.from_numpy(np.array(array)))


def _get(ref: Any) -> Any:
    import ray

    return ray.get(ref)


class HostedModel(SharedModel):
    """The model the hub holds, as the driver sees it (what ``executor.host`` returns): every
    method is one remote call. Picklable: a worker builds its :class:`HubLink` from it."""

    def __init__(self, hub: Any, num_parameters: int):
        self.hub = hub  # the hub's Ray actor handle
        self._num_parameters = num_parameters

    @property
    def num_parameters(self) -> int:
        return self._num_parameters

    @property
    def version(self) -> int:
        return _get(self.hub.version.remote())

    def pull(self, out: torch.Tensor) -> int:
        version, params = _get(self.hub.pull.remote())
        copy_into(out, params)
        return version

    def push(self, grad: torch.Tensor, lr: float) -> int:
        return _get(self.hub.push.remote(as_numpy(grad), lr))

    def state_dict(self) -> dict[str, Any]:
        return _get(self.hub.state_dict.remote())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _get(self.hub.load_state_dict.remote(state))


class LinkedModel(HostedModel):
    """``ctx.model`` in a Ray worker: push and pull go through the worker's :class:`HubLink`."""

    def __init__(self, link: HubLink, hosted: HostedModel):
        super().__init__(hosted.hub, hosted.num_parameters)
        self.link = link

    @property
    def version(self) -> int:
        return self.link.call().version

    def pull(self, out: torch.Tensor) -> int:
        link = self.link
        if link.params is None:  # nothing fetched ahead: ask now
            link.keep_params(link.call(pull=True))
        params, version = link.params, link.params_version
        link.params = None  # used once: a second pull asks the hub again
        assert params is not None
        copy_into(out, params)
        return version

    def push(self, grad: torch.Tensor, lr: float) -> int:
        link = self.link
        prefetch = link.wanted if link.granted is None else 0
        reply = link.call(grad=as_numpy(grad), lr=lr, reserve=prefetch, pull=True)
        if prefetch:
            link.granted = reply.granted
        link.keep_params(reply)
        return reply.version


class HubLink(Counters):
    """One worker's end of the hub: its counters, its ``ctx.model`` (:attr:`model`), ``send``
    and ``stop_requested`` (see the module docstring)."""

    def __init__(self, hosted: HostedModel, worker: WorkerId):
        self.hub, self.worker = hosted.hub, worker
        self.model = LinkedModel(self, hosted)
        # buffered until the next call
        self._steps = self._episodes = self._released = 0
        self._outbox: list[dict[str, Any]] = []
        # fetched ahead by the last push
        self.wanted = 0  # how many steps the worker reserved last time
        self.granted: int | None = None  # a reservation not yet handed out
        self.params: np.ndarray | None = None
        self.params_version = 0
        # the last reply
        self._env_steps = self._known_episodes = 0
        self._stop = False
        self._last_call = float("-inf")
        self.calls = 0

    def call(self, grad: np.ndarray | None = None, lr: float = 0.0, reserve: int = 0,
             pull: bool = False) -> Reply:
        """One remote call: the buffered report, plus whatever is asked."""
        report = Report(self._steps, self._episodes, self._released, tuple(self._outbox))
        self._steps = self._episodes = self._released = 0
        self._outbox = []
        reply: Reply = _get(self.hub.exchange.remote(self.worker, report, grad, lr, reserve, pull))
        self._env_steps, self._known_episodes = reply.env_steps, reply.episodes
        self._stop = reply.stop
        self._last_call = time.monotonic()
        self.calls += 1
        return reply

    def keep_params(self, reply: Reply) -> None:
        if reply.params is not None:
            self.params, self.params_version = reply.params, reply.version

    def flush(self) -> None:
        """Deliver everything buffered (the worker is ending): messages, finished steps, and a
        reservation fetched ahead but never used."""
        if self.granted:
            self._released += self.granted
        self.granted = None
        self.call()

    # -- Counters ---------------------------------------------------------------------------------
    def reserve_steps(self, wanted: int, total_steps: int) -> int:
        self.wanted = wanted
        if self.granted is None:
            reply = self.call(reserve=wanted, pull=self.params is None)
            self.keep_params(reply)
            return reply.granted
        granted, self.granted = self.granted, None
        if granted > wanted:  # fetched ahead for a larger request: give the rest back
            self._released += granted - wanted
            granted = wanted
        return granted

    def release_steps(self, unused: int) -> None:
        if unused > 0:
            self._released += unused

    def add(self, env_steps: int, episodes: int = 0) -> int:
        self._steps += env_steps
        self._episodes += episodes
        return self.env_steps

    @property
    def env_steps(self) -> int:
        return self._env_steps + self._steps

    @property
    def episodes(self) -> int:
        return self._known_episodes + self._episodes

    # -- messages and stopping ----------------------------------------------------------------------
    def send(self, msg: dict[str, Any]) -> None:
        self._outbox.append(msg)
        if time.monotonic() - self._last_call > FLUSH_S:
            self.call()

    def stop_requested(self) -> bool:
        if time.monotonic() - self._last_call > REFRESH_S:
            self.call()
        return self._stop
