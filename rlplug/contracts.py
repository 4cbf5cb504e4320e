"""The contracts between rlplug's parts. A plugin implements one or more of them.

* :class:`Network` owns the model and an explicit recurrent-state API.
* :class:`Algorithm` owns the RL math, the global model and optimizer (as a :class:`SharedModel`),
  and the worker loop.
* :class:`Executor` owns concurrency only: it hosts the :class:`SharedModel` where its workers can
  reach it (shared memory, or behind a remote boundary), runs N copies of a worker function and
  carries their messages to the main process. It knows no RL.
* :class:`Counters` and :class:`SharedModel` are what workers share: the run's step budget, and
  the global parameters they push gradients to and pull parameters from.

``docs/plugins.md`` explains how to write and register each one.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
from torch import nn

State = tuple[torch.Tensor, ...]
"""A network's recurrent state: a tuple of tensors with the batch in dimension 0; ``()`` if none."""


@dataclass(frozen=True)
class EnvSpec:
    """What an algorithm and a network need to know about an env (after rlplug's wrappers);
    :func:`rlplug.envs.probe_env` makes it from the env config."""

    env_id: str
    observation_space: gym.spaces.Box
    action_space: gym.spaces.Discrete | gym.spaces.Box

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return tuple(self.observation_space.shape)


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

    def forward_policy(self, obs: torch.Tensor, state: State, episode_starts: torch.Tensor
                       ) -> tuple[torch.Tensor, State]:
        """The policy parameters and the next state alone, as :meth:`forward` gives them: acting
        needs no value. The default calls ``forward``; override it where the value costs
        computation of its own (a separate critic), since acting happens every env step."""
        policy, _, state = self(obs, state, episode_starts)
        return policy, state


class Counters(abc.ABC):
    """The run's env-step budget and totals, as every worker sees them.

    :class:`rlplug.counters.SharedCounters` keeps them in shared memory (threads and processes on
    one machine); an executor may hand workers another implementation (e.g. a remote one).
    """

    @abc.abstractmethod
    def reserve_steps(self, wanted: int, total_steps: int) -> int:
        """Claim up to ``wanted`` env steps of the remaining budget; returns how many were granted
        (0: the budget is spent, the worker should return)."""

    @abc.abstractmethod
    def release_steps(self, unused: int) -> None:
        """Give back reserved env steps that were not taken (a worker that stops early)."""

    @abc.abstractmethod
    def add(self, env_steps: int, episodes: int = 0) -> int:
        """Record finished env steps and episodes; returns the run's new env-step total."""

    @property
    @abc.abstractmethod
    def env_steps(self) -> int:
        """Env steps finished by all workers."""

    @property
    @abc.abstractmethod
    def episodes(self) -> int:
        """Episodes finished by all workers."""


class SharedModel(abc.ABC):
    """The global state all workers of a run update: the parameters as one flat float32 tensor,
    and the optimizer that applies the workers' gradients to them.

    The algorithm builds it (:attr:`Algorithm.model`); the executor hosts it (:meth:`Executor.host`)
    and hands each worker a handle with this same interface as ``ctx.model``: the object itself
    for threads and shared-memory processes, a proxy to a remote copy for a distributed executor.
    A worker only ever ``pull``s parameters and ``push``es gradients, so it runs unchanged on both.

    ``version`` counts the updates applied so far; a worker that pulled at version ``v`` and whose
    push returned ``w`` was ``w - 1 - v`` updates stale (other workers' updates in between).
    """

    @property
    @abc.abstractmethod
    def num_parameters(self) -> int:
        """Length of the flat parameter (and gradient) vector."""

    @property
    @abc.abstractmethod
    def version(self) -> int:
        """Updates applied so far (a resumed run continues the count)."""

    @abc.abstractmethod
    def pull(self, out: torch.Tensor) -> int:
        """Copy the current global parameters into ``out`` (flat, ``[num_parameters]``); return
        the version they belong to."""

    @abc.abstractmethod
    def push(self, grad: torch.Tensor, lr: float) -> int:
        """Apply one worker's flat gradient with learning rate ``lr``, atomically with respect to
        other pushes; return the version after this update."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Parameters, optimizer statistics and version: tensors and plain data only (checkpoints
        are loaded with ``torch.load(weights_only=True)``)."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, in place."""


@dataclass
class WorkerContext:
    """What an executor hands to each worker: identity, the shared counters and model, a stop
    signal and a pipe to the main process.

    ``send`` carries a small picklable dict to the main process (see :mod:`rlplug.messages`).
    ``stop_requested()`` is true once the run should end (budget reached, Ctrl-C, another worker
    failed); a worker checks it at least once per update. ``model`` is the hosted
    :class:`SharedModel`: push gradients to it and pull parameters from it, never reach around it.
    """

    rank: int
    seed: int
    counters: Counters
    model: SharedModel
    total_steps: int  # the run's env-step budget (``counters.reserve_steps`` enforces it)
    send: Callable[[dict[str, Any]], None]
    stop_requested: Callable[[], bool]
    report_every_s: float = 2.0  # how often to send averaged training statistics


class Actor(abc.ABC):
    """A policy that acts in one environment, for evaluation; optionally in a batch of them."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Start a new episode (resets any recurrent state)."""

    @abc.abstractmethod
    def act(self, obs: Any) -> Any:
        """The action to send to the environment for observation ``obs``."""

    def act_batch(self, obs: Any, starts: Any) -> list[Any]:
        """Optional: one action per env for a batch of envs, in one call (one forward pass):
        ``obs`` stacks their observations (``[N, *obs_shape]``), ``starts[i]`` is True where env
        ``i`` begins an episode (start its recurrent state afresh). ``N`` stays the same from one
        call to the next until ``starts`` is all True again. Evaluation then plays its episodes
        side by side instead of one after another; the actions must be those :meth:`act` would
        give (the same policy, and for a deterministic actor the same actions). Not implemented
        by default."""
        raise NotImplementedError


def supports_act_batch(actor: Actor) -> bool:
    """Whether ``actor`` implements :meth:`Actor.act_batch`."""
    return type(actor).act_batch is not Actor.act_batch


class Algorithm(abc.ABC):
    """An RL algorithm: the global model and its optimizer (a :class:`SharedModel`) and the worker
    loop.

    Constructed in the main process as ``cls(cfg, env_cfg, spec, build_network, seed)``:
      * ``cfg``: the algorithm's config dataclass; ``env_cfg``: the core's env config (pass it to
        :func:`rlplug.envs.make_env` in workers);
      * ``spec``: the env's spaces (:class:`EnvSpec`);
      * ``build_network(policy_dim)``: builds the selected :class:`Network` for these spaces.

    The object must be picklable (executors send it to their workers). Workers read the global
    parameters only through ``ctx.model`` (the hosted :attr:`model`), so the same worker code runs
    in threads, processes and on remote machines.
    """

    @abc.abstractmethod
    def __init__(self, cfg: Any, env_cfg: Any, spec: EnvSpec,
                 build_network: Callable[[int], Network], seed: int) -> None: ...

    @property
    @abc.abstractmethod
    def model(self) -> SharedModel:
        """The global parameters and optimizer, in this process (the executor hosts it)."""

    @abc.abstractmethod
    def run_worker(self, ctx: WorkerContext) -> None:
        """One worker's whole life: make its env, loop until ``ctx.stop_requested()``: reserve env
        steps with ``ctx.counters``, pull parameters from ``ctx.model``, act, push the gradient,
        record the steps and report episodes and statistics with ``ctx.send``."""

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint keeps of the algorithm (default: the shared model's state)."""
        return {"model": self.model.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (used by resume and evaluation)."""
        self.model.load_state_dict(state["model"])

    @abc.abstractmethod
    def actor(self, deterministic: bool = True) -> Actor:
        """A single-env policy from the current global model, for evaluation."""


MessageHandler = Callable[[dict[str, Any]], None]
TickHandler = Callable[[], None]


class Executor(abc.ABC):
    """Hosts the shared model and runs ``workers`` copies of a worker function concurrently.

    Constructed as ``cls(cfg)`` with the executor's config dataclass (which has ``workers``);
    the constructor checks what it can (one-line :class:`rlplug.errors.UserError`). The run calls
    :meth:`host` once, then :meth:`run`, and :meth:`close` at the end, whatever happened.
    :meth:`run` blocks until every worker has returned. Contract:
      * worker ``rank`` gets a :class:`WorkerContext` with ``seeds[rank]``, the shared counters and
        the hosted model;
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

    def host(self, model: SharedModel) -> SharedModel:
        """Put the global model where this executor's workers can reach it and return the handle
        they (and the main process, for checkpoints and evaluation) use. Executors whose workers
        share memory with the main process return ``model`` itself (the default)."""
        return model

    @abc.abstractmethod
    def run(self, target: Callable[[WorkerContext], None], *, model: SharedModel,
            seeds: list[int], counters: Counters, total_steps: int,
            on_message: MessageHandler, on_tick: TickHandler, tick_s: float = 0.2,
            report_every_s: float = 2.0) -> None:
        """Run the workers to completion (see the class docstring); ``model`` is what
        :meth:`host` returned."""

    def close(self) -> None:
        """Release what :meth:`host` acquired (remote processes, clusters); idempotent. The
        default has nothing to release."""
        return None

    @abc.abstractmethod
    def request_stop(self) -> None:
        """Ask all workers to stop (thread-safe; callable from ``on_message``/``on_tick``)."""


def check_subclass(base: type) -> Callable[[Any], None]:
    """A registry check: the loaded object must be a subclass of ``base``."""
    def check(obj: Any) -> None:
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise TypeError(f"{obj!r} is not a subclass of {base.__module__}.{base.__qualname__}")
    return check
