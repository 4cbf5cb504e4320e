"""The three contracts between rlplug's parts. A plugin implements one or more of them.

* :class:`Network` owns the model and an explicit recurrent-state API.
* :class:`Algorithm` owns the RL math, the global model and optimizer, and the worker loop.
* :class:`Executor` owns concurrency only: it runs N copies of a worker function and carries
  their messages to the main process. It knows no RL.

``docs/plugins.md`` explains how to write and register each one.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from rlplug.counters import SharedCounters
    from rlplug.envs import EnvSpec

State = tuple[torch.Tensor, ...]
"""A network's recurrent state: a tuple of tensors with the batch in dimension 0; ``()`` if none."""


class Network(nn.Module, abc.ABC):
    """An actor-critic model: ``forward(obs, state, episode_starts) -> (policy, value, state)``.

    Constructed as ``cls(obs_shape, policy_dim, cfg)``: ``obs_shape`` is the (flattened-free)
    observation shape, ``policy_dim`` the number of policy parameters the algorithm needs per step
    (logits, or means and scales), ``cfg`` the network's config dataclass.

    Shapes, with ``T`` time steps and ``B`` environments:
      * ``obs``: ``[T, B, *obs_shape]`` float32;
      * ``episode_starts``: ``[T, B]`` float32, 1.0 where ``obs[t]`` is the first observation of an
        episode: a recurrent network resets its state to ``initial_state`` before that step;
      * returns ``policy``: ``[T, B, policy_dim]``, ``value``: ``[T, B]`` and the state after the last
        step. Acting (``T=1``) and the update (``T=n``) call the same method, so the update
        recomputes exactly what the actor saw.
    """

    is_recurrent: bool = False

    @abc.abstractmethod
    def initial_state(self, batch_size: int) -> State:
        """The state at the start of an episode (``()`` for feed-forward networks)."""

    @abc.abstractmethod
    def forward(self, obs: torch.Tensor, state: State, episode_starts: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """Policy parameters, values and the next state for a ``[T, B]`` block of observations."""


@dataclass
class WorkerContext:
    """What an executor hands to each worker: identity, shared counters, a stop signal and a pipe.

    ``send`` carries a small picklable dict to the main process (see :mod:`rlplug.messages`).
    ``stop_requested()`` is true once the run should end (budget reached, Ctrl-C, another worker
    failed); a worker checks it at least once per update.
    """

    rank: int
    seed: int
    counters: SharedCounters
    total_steps: int  # the run's env-step budget (``counters.reserve_steps`` enforces it)
    send: Callable[[dict[str, Any]], None]
    stop_requested: Callable[[], bool]
    report_every_s: float = 2.0  # how often to send averaged training statistics


class Actor(abc.ABC):
    """A policy that acts in one environment, for evaluation."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Start a new episode (resets any recurrent state)."""

    @abc.abstractmethod
    def act(self, obs: Any) -> Any:
        """The action to send to the environment for observation ``obs``."""


class Algorithm(abc.ABC):
    """An RL algorithm: the global model, its optimizer and the worker loop.

    Constructed in the main process as ``cls(cfg, env_cfg, spec, build_network, seed)``:
      * ``cfg``: the algorithm's config dataclass; ``env_cfg``: the core's env config (pass it to
        :func:`rlplug.envs.make_env` in workers);
      * ``spec``: the env's spaces (:class:`rlplug.envs.EnvSpec`);
      * ``build_network(policy_dim)``: builds the selected :class:`Network` for these spaces.

    The object must be picklable (the process executor sends it to its workers); tensors that all
    workers update belong in shared memory (``tensor.share_memory_()``).
    """

    @abc.abstractmethod
    def __init__(self, cfg: Any, env_cfg: Any, spec: EnvSpec,
                 build_network: Callable[[int], Network], seed: int) -> None: ...

    @abc.abstractmethod
    def run_worker(self, ctx: WorkerContext) -> None:
        """One worker's whole life: make its env, loop collect/update until ``ctx.stop_requested()``,
        reserving env steps with ``ctx.counters`` and reporting episodes with ``ctx.send``."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """The global model and optimizer state, for checkpoints."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (used by resume and evaluation)."""

    @abc.abstractmethod
    def actor(self, deterministic: bool = True) -> Actor:
        """A single-env policy from the current global model, for evaluation."""


MessageHandler = Callable[[dict[str, Any]], None]
TickHandler = Callable[[], None]


class Executor(abc.ABC):
    """Runs ``workers`` copies of a worker function concurrently.

    Constructed as ``cls(cfg)`` with the executor's config dataclass (which has ``workers``).
    :meth:`run` blocks until every worker has returned. Contract:
      * worker ``rank`` gets a :class:`WorkerContext` with ``seeds[rank]`` and the shared counters;
      * ``on_message`` is called in the main thread for every message a worker sent;
      * ``on_tick`` is called in the main thread about every ``tick_s`` seconds;
      * ``stop_requested`` turns true once ``counters.env_steps >= total_steps`` or after
        :meth:`request_stop`;
      * a worker that raises (or dies) ends the run: the others are stopped and
        :class:`rlplug.errors.WorkerFailure` is raised with its traceback, unless the executor's
        own policy (e.g. restarting) handles it;
      * ``KeyboardInterrupt`` in the main thread stops all workers before it propagates;
      * no thread or process is left running when :meth:`run` returns or raises.
    """

    @abc.abstractmethod
    def __init__(self, cfg: Any) -> None: ...

    @property
    @abc.abstractmethod
    def workers(self) -> int:
        """Number of workers this executor starts."""

    @abc.abstractmethod
    def run(self, target: Callable[[WorkerContext], None], *, seeds: list[int],
            counters: SharedCounters, total_steps: int, on_message: MessageHandler,
            on_tick: TickHandler, tick_s: float = 0.2, report_every_s: float = 2.0) -> None:
        """Run the workers to completion (see the class docstring)."""

    @abc.abstractmethod
    def request_stop(self) -> None:
        """Ask all workers to stop (thread-safe; callable from ``on_message``/``on_tick``)."""


def check_subclass(base: type) -> Callable[[Any], None]:
    """A registry check: the loaded object must be a subclass of ``base``."""
    def check(obj: Any) -> None:
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise TypeError(f"{obj!r} is not a subclass of {base.__module__}.{base.__qualname__}")
    return check
