"""``rlplug.testing.check_algorithm``: the :class:`~rlplug.contracts.Algorithm` contract, checked
on a real env, a real :class:`~rlplug.contracts.WorkerContext` and real
:class:`~rlplug.counters.SharedCounters` (import it from :mod:`rlplug.testing`)."""

from __future__ import annotations

import io
import math
import multiprocessing as mp
import pickle
import queue
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlplug import messages
from rlplug.config import EnvConfig
from rlplug.contracts import (
    Actor,
    Algorithm,
    Network,
    SharedModel,
    State,
    WorkerContext,
    supports_act_batch,
)
from rlplug.counters import SharedCounters
from rlplug.envs import make_env, probe_env
from rlplug.evaluation import evaluate_policy

WORKER_RANK = 1  # not 0: a worker must use ctx.rank, not a constant


class TinyNetwork(Network):
    """The network :func:`check_algorithm` builds when none is given: a tanh layer, then linear
    policy and value heads (feed-forward)."""

    def __init__(self, obs_shape: tuple[int, ...], policy_dim: int, cfg: Any = None):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(start_dim=2), nn.Linear(int(np.prod(obs_shape)), 16),
                                  nn.Tanh())
        self.policy = nn.Linear(16, policy_dim)
        self.value = nn.Linear(16, 1)

    def initial_state(self, batch_size: int) -> State:
        return ()

    def forward(self, obs: torch.Tensor, state: State, episode_starts: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, State]:
        x = self.body(obs)
        return self.policy(x), self.value(x).squeeze(-1), ()


@dataclass
class NetworkBuilder:
    """``build_network(policy_dim)`` as the run passes it to an algorithm (picklable)."""

    cls: type[Network]
    obs_shape: tuple[int, ...]
    cfg: Any

    def __call__(self, policy_dim: int) -> Network:
        return self.cls(self.obs_shape, policy_dim, self.cfg)


class RecordingCounters(SharedCounters):
    """Shared counters that also note what one worker reserved, gave back and recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.granted = self.released = self.recorded = 0
        self.problems: list[str] = []
        self._guard = threading.Lock()

    def reserve_steps(self, wanted: int, total_steps: int) -> int:
        granted = super().reserve_steps(wanted, total_steps)
        with self._guard:
            self.granted += granted
        return granted

    def release_steps(self, unused: int) -> None:
        with self._guard:
            if unused < 0:
                self.problems.append(f"release_steps({unused}): a negative count")
            self.released += max(0, unused)
            if self.recorded > self.granted - self.released:
                self.problems.append(f"release_steps({unused}) gave back steps it had recorded")
        super().release_steps(unused)

    def add(self, env_steps: int, episodes: int = 0) -> int:
        with self._guard:
            if env_steps < 0 or episodes < 0:
                self.problems.append(f"add({env_steps}, {episodes}): a negative count")
            self.recorded += env_steps
            if self.recorded > self.granted - self.released:
                self.problems.append(f"add({env_steps}) recorded env steps that were never "
                                     f"reserved ({self.recorded} recorded, "
                                     f"{self.granted - self.released} reserved)")
        return super().add(env_steps, episodes)


def _pull(model: SharedModel) -> tuple[torch.Tensor, int]:
    out = torch.zeros(model.num_parameters)
    version = model.pull(out)
    return out, version


def _weights_only(state: Any, what: str) -> Any:
    """``state`` after a checkpoint's save/load (``torch.load(weights_only=True)``)."""
    buffer = io.BytesIO()
    try:
        torch.save(state, buffer)
        buffer.seek(0)
        return torch.load(buffer, weights_only=True)
    except Exception as exc:
        raise AssertionError(f"{what} must hold tensors and plain data only (checkpoints are "
                             f"loaded with torch.load(weights_only=True)): "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc


def _assert_same(actual: Any, expected: Any, where: str) -> None:
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor) and actual.shape == expected.shape \
            and torch.equal(actual, expected), f"{where} differs"
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), \
            f"{where} has keys {sorted(map(str, actual)) if isinstance(actual, dict) else actual!r}, " \
            f"expected {sorted(map(str, expected))}"
        for key in expected:
            _assert_same(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, list | tuple):
        assert isinstance(actual, list | tuple) and len(actual) == len(expected), f"{where} differs"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _assert_same(a, e, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where} is {actual!r}, expected {expected!r}"


def _same_action(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=0.0, atol=1e-6))


def _in_space(action: Any, space: gym.Space) -> bool:
    if isinstance(space, gym.spaces.Box):  # any float dtype will do, as long as shape and bounds fit
        try:
            return bool(space.contains(np.asarray(action, dtype=space.dtype)))
        except (TypeError, ValueError):
            return False
    return bool(space.contains(action))


# -- the shared model ----------------------------------------------------------------------------
def _check_model(algo: Algorithm, seed: int) -> None:
    model = algo.model
    assert isinstance(model, SharedModel), \
        f"{type(algo).__name__}.model is {type(model).__name__}, not an rlplug SharedModel"
    assert algo.model is model, \
        "Algorithm.model must return the same SharedModel every time (the executor hosts it once)"
    n = model.num_parameters
    assert isinstance(n, int) and n > 0, f"SharedModel.num_parameters must be a positive int, got {n!r}"
    params, version = _pull(model)
    assert isinstance(version, int), f"SharedModel.pull must return the version (an int), got {version!r}"
    assert version == model.version, f"pull returned version {version}, model.version is {model.version}"
    assert torch.isfinite(params).all(), "SharedModel.pull copied non-finite parameters"
    saved = _weights_only(model.state_dict(), "SharedModel.state_dict()")

    grad = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    after = model.push(grad, 1e-2)
    assert after == version + 1 and model.version == after, \
        (f"push must apply one update and return the version after it: version was {version}, "
         f"push returned {after!r}, model.version is now {model.version}")
    pushed, pulled_version = _pull(model)
    assert pulled_version == after, f"pull after a push returned version {pulled_version}, expected {after}"
    assert not torch.equal(pushed, params), "push(grad, lr=0.01) with a random gradient changed no parameter"

    model.load_state_dict(saved)
    restored, restored_version = _pull(model)
    assert torch.equal(restored, params), "SharedModel.load_state_dict did not restore the parameters"
    assert restored_version == version == model.version, \
        (f"SharedModel.load_state_dict did not restore the version ({model.version} after loading, "
         f"saved at {version}): a resumed run continues the count")


# -- the actor -----------------------------------------------------------------------------------
def _check_actor(algo: Algorithm, env_cfg: EnvConfig, episodes: int, max_episode_steps: int,
                 seed: int) -> tuple[list[Any], list[Any]]:
    """Play with both actors; return the deterministic actor's first episode (observations,
    actions)."""
    env = make_env(env_cfg)
    first: tuple[list[Any], list[Any]] = ([], [])
    try:
        for deterministic in (True, False):
            actor = algo.actor(deterministic)
            assert isinstance(actor, Actor), \
                f"actor({deterministic}) returned {type(actor).__name__}, not an rlplug Actor"
            for episode in range(episodes):
                obs, _ = env.reset(seed=seed + episode)
                actor.reset()
                observations, actions = [], []
                for _ in range(max_episode_steps):
                    action = actor.act(obs)
                    assert _in_space(action, env.action_space), \
                        (f"actor({deterministic}).act returned {action!r} "
                         f"({type(action).__name__}), not an action of {env.action_space}")
                    observations.append(obs)
                    actions.append(action)
                    obs, _, terminated, truncated, _ = env.step(action)
                    if terminated or truncated:
                        break
                if deterministic:
                    actor.reset()
                    replayed = [actor.act(o) for o in observations]
                    same = all(_same_action(a, b) for a, b in zip(replayed, actions, strict=True))
                    assert same, ("a deterministic actor acted differently on the same observations "
                                  "after reset(): reset() must start a new episode (recurrent state)")
                    if episode == 0:
                        first = (observations, actions)
    finally:
        env.close()
    if supports_act_batch(algo.actor(True)):
        _check_act_batch(algo, env_cfg, episodes, seed)
    return first


def _check_act_batch(algo: Algorithm, env_cfg: EnvConfig, episodes: int, seed: int) -> None:
    """An actor with act_batch: evaluation with the episodes side by side plays the same episodes
    as one after another (the deterministic policy: same lengths, returns equal up to the float
    rounding of a batched forward pass), and the stochastic actor's batch actions are actions of
    the space."""
    apart = evaluate_policy(algo, env_cfg, episodes, seed=seed, side_by_side=False)
    together = evaluate_policy(algo, env_cfg, episodes, seed=seed, side_by_side=True)
    assert together.lengths == apart.lengths and np.allclose(together.returns, apart.returns,
                                                             rtol=1e-4, atol=1e-4), \
        (f"act_batch and act play different episodes: returns {together.returns} side by side, "
         f"{apart.returns} one after another (lengths {together.lengths} vs {apart.lengths})")
    env = make_env(env_cfg)
    try:
        obs = np.stack([env.reset(seed=seed + i)[0] for i in range(3)])
        actions = algo.actor(False).act_batch(obs, np.ones(3, dtype=bool))
        assert len(actions) == 3 and all(_in_space(a, env.action_space) for a in actions), \
            f"actor(False).act_batch returned {actions!r}, not 3 actions of {env.action_space}"
    finally:
        env.close()


# -- pickling: what a process executor does with the algorithm -----------------------------------
def _push_in_child(algo: Algorithm, seed: int, results: Any) -> None:
    """In a spawned process: pull from the unpickled copy's model, push one gradient, pull again."""
    try:
        model = algo.model
        params, version = _pull(model)
        grad = torch.randn(model.num_parameters, generator=torch.Generator().manual_seed(seed))
        after = model.push(grad, 1e-2)
        pushed, _ = _pull(model)
        results.put({"version": version, "params": params.tolist(), "after": after,
                     "pushed": pushed.tolist()})
    except BaseException:  # noqa: BLE001 - reported to the parent
        results.put({"error": traceback.format_exc()})


def _check_pickled_copy(algo: Algorithm, seed: int, shared_memory: bool, timeout_s: float) -> None:
    name = type(algo).__name__
    params, version = _pull(algo.model)
    context = mp.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_push_in_child, args=(algo, seed, results),
                              name="rlplug-check-algorithm", daemon=True)
    try:
        process.start()
    except Exception as exc:
        raise AssertionError(f"{name} cannot be sent to a worker process (pickled as a spawn start "
                             f"method does): {type(exc).__name__}: {exc}") from exc
    try:
        deadline = time.monotonic() + timeout_s
        result = None
        while result is None:
            try:
                result = results.get(timeout=0.2)
            except queue.Empty:
                assert process.is_alive() or process.exitcode == 0, \
                    (f"a spawned process could not load the pickled {name} (exit code "
                     f"{process.exitcode}; its traceback is on stderr)")
                assert time.monotonic() < deadline, f"the spawned process did not answer within {timeout_s} s"
    finally:
        process.join(timeout=10.0)
        if process.is_alive():
            process.kill()
            process.join()
    assert "error" not in result, f"the pickled {name} failed in a spawned process:\n{result.get('error')}"
    assert result["version"] == version and torch.equal(torch.tensor(result["params"]), params), \
        f"the pickled {name} does not carry the model's current parameters and version"
    if shared_memory:
        now, now_version = _pull(algo.model)
        assert now_version == result["after"] and torch.equal(now, torch.tensor(result["pushed"])), \
            (f"a push through the pickled {name}'s model in a worker process did not reach this "
             f"process's model: keep its tensors in shared memory (Tensor.share_memory_()), or "
             f"pass shared_memory=False if only a remote executor hosts it")


# -- a worker and the step budget ----------------------------------------------------------------
@dataclass
class _WorkerRun:
    counters: RecordingCounters
    sent: list[dict[str, Any]]
    error: str | None
    hung: bool


def _run_worker(algo: Algorithm, total_steps: int, seed: int, timeout_s: float,
                stop_at: int | None = None) -> _WorkerRun:
    """``run_worker`` in a thread with a real WorkerContext, as an executor runs it: the stop
    signal turns true at the budget (or once ``stop_at`` env steps are recorded)."""
    counters = RecordingCounters()
    sent: list[dict[str, Any]] = []
    hung = threading.Event()
    limit = total_steps if stop_at is None else stop_at

    def stop_requested() -> bool:
        return hung.is_set() or counters.env_steps >= limit

    ctx = WorkerContext(WORKER_RANK, seed, counters, algo.model, total_steps, sent.append,
                        stop_requested, report_every_s=0.05)
    errors: list[str] = []

    def work() -> None:
        try:
            algo.run_worker(ctx)
        except BaseException:  # noqa: BLE001 - reported by the check
            errors.append(traceback.format_exc())

    thread = threading.Thread(target=work, name="rlplug-check-algorithm-worker", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        hung.set()
        thread.join(10.0)
    return _WorkerRun(counters, sent, errors[0] if errors else None, hung.is_set())


def _check_messages(run: _WorkerRun, total_steps: int) -> None:
    episodes = 0
    for msg in run.sent:
        assert isinstance(msg, dict) and isinstance(msg.get("kind"), str), \
            f"ctx.send got {msg!r}: messages are dicts with a 'kind' (see rlplug.messages)"
        assert msg.get("worker") == WORKER_RANK, \
            f"a {msg['kind']!r} message names worker {msg.get('worker')!r}, ctx.rank is {WORKER_RANK}"
        try:
            pickle.dumps(msg)
        except Exception as exc:
            raise AssertionError(f"a {msg['kind']!r} message cannot be pickled: {exc}") from exc
        if msg["kind"] == messages.EPISODE:
            episodes += 1
            assert math.isfinite(msg["return"]) and isinstance(msg["length"], int) \
                and msg["length"] >= 1, f"bad episode message {msg!r}"
            assert 0 < msg["env_step"] <= total_steps, \
                f"an episode message has env_step {msg['env_step']}, outside 1..{total_steps}"
        if msg["kind"] == messages.TRAIN:
            numbers = {k: v for k, v in msg.items() if k not in ("kind", "worker")}
            assert all(isinstance(v, int | float) for v in numbers.values()), \
                f"a train message holds non-numbers: {msg!r}"
    assert episodes == run.counters.episodes, \
        (f"the worker sent {episodes} episode messages but recorded {run.counters.episodes} "
         f"episodes with ctx.counters.add")


def _check_budget(algo: Algorithm, total_steps: int, seed: int, timeout_s: float) -> None:
    version = algo.model.version
    run = _run_worker(algo, total_steps, seed, timeout_s)
    assert run.error is None, f"run_worker raised:\n{run.error}"
    assert not run.hung, (f"run_worker did not return within {timeout_s} s of a {total_steps}-step "
                          f"budget (stop_requested() was true once the budget was recorded)")
    counters = run.counters
    assert not counters.problems, counters.problems[0]
    assert counters.env_steps == total_steps, \
        (f"the worker recorded {counters.env_steps} env steps with ctx.counters.add, the budget was "
         f"{total_steps}: reserve steps with ctx.counters.reserve_steps and record every step taken")
    assert counters.recorded == counters.granted - counters.released, \
        (f"the worker was granted {counters.granted} env steps, gave back {counters.released} and "
         f"recorded {counters.recorded}: give back unused steps with ctx.counters.release_steps")
    assert algo.model.version > version, \
        (f"no update reached ctx.model in {total_steps} env steps (version still {version}): "
         f"push gradients to ctx.model, or give check_algorithm a larger total_steps")
    _check_messages(run, total_steps)


def _check_stop(algo: Algorithm, total_steps: int, seed: int, timeout_s: float) -> None:
    unreachable = 10**12
    run = _run_worker(algo, unreachable, seed, timeout_s, stop_at=max(1, total_steps // 3))
    assert run.error is None, f"run_worker raised after stop_requested() turned true:\n{run.error}"
    assert not run.hung, (f"run_worker did not return within {timeout_s} s after stop_requested() "
                          f"turned true: check it at least once per update")
    counters = run.counters
    assert not counters.problems, counters.problems[0]
    assert counters.recorded == counters.granted - counters.released, \
        (f"after a stop request the worker had been granted {counters.granted} env steps, gave back "
         f"{counters.released} and recorded {counters.recorded}: record the steps taken and give "
         f"back the rest (ctx.counters.release_steps) before returning")
    _check_messages(run, unreachable)


def check_algorithm(cls: type[Algorithm], cfg: Any, env_cfg: EnvConfig, *,
                    network: type[Network] | None = None, network_cfg: Any = None,
                    seed: int = 0, total_steps: int = 300, episodes: int = 2,
                    max_episode_steps: int = 200, shared_memory: bool = True,
                    timeout_s: float = 120.0) -> Algorithm:
    """Check that ``cls(cfg, env_cfg, spec, build_network, seed)`` keeps the
    :class:`~rlplug.contracts.Algorithm` contract on the env ``env_cfg``, and return the
    algorithm it built.

    ``network``/``network_cfg``: the network to build (default: :class:`TinyNetwork`, a small
    feed-forward actor-critic). Checks, in order:

    1. ``model`` is a :class:`~rlplug.contracts.SharedModel` (the same object every time) whose
       ``pull`` copies finite parameters and returns ``version``; ``push`` applies exactly one
       update and returns the version after it; ``state_dict`` survives
       ``torch.load(weights_only=True)`` and ``load_state_dict`` restores parameters and version;
    2. ``actor(True)`` and ``actor(False)`` return :class:`~rlplug.contracts.Actor` s whose actions
       lie in the env's action space for ``episodes`` episodes (up to ``max_episode_steps`` steps
       each); after ``reset()`` the deterministic actor repeats its actions on the same observations;
    3. ``state_dict()`` survives ``weights_only`` loading, and a fresh instance (another seed) that
       loads it has the same ``state_dict()``, parameters, version and deterministic actions;
    4. ``run_worker`` with a real :class:`~rlplug.contracts.WorkerContext` and
       :class:`~rlplug.counters.SharedCounters` records exactly ``total_steps`` env steps, never
       more than it reserved, pushes at least one update and sends well-formed, picklable
       messages (``worker`` = ``ctx.rank``; one ``episode`` message per episode it records);
    5. a worker whose ``stop_requested()`` turns true mid-run returns, having recorded the steps it
       took and given back (``release_steps``) the rest of what it reserved;
    6. the algorithm is picklable as process executors send it (spawn), the copy carries the
       current parameters, and (``shared_memory``) a push in that process reaches this one's model
       (torch moves tensors into shared memory when it sends them; Python numbers stay copies).

    A recurrent state that survives ``reset()`` shows only where it changes an action: with
    Discrete actions it may go unnoticed, so check a recurrent algorithm on a Box env too.
    ``timeout_s`` is a hang guard for each worker run and for the spawned process.
    """
    spec = probe_env(env_cfg)
    builder = NetworkBuilder(network or TinyNetwork, spec.obs_shape, network_cfg)
    algo = cls(cfg, env_cfg, spec, builder, seed)
    assert isinstance(algo, Algorithm), f"{cls.__name__}(...) built {type(algo).__name__}, not an rlplug Algorithm"
    _check_model(algo, seed)

    # Move the model away from its initial parameters, so that loading a state shows.
    algo.model.push(torch.randn(algo.model.num_parameters,
                                generator=torch.Generator().manual_seed(seed + 1)), 1e-2)
    observations, actions = _check_actor(algo, env_cfg, episodes, max_episode_steps, seed)

    saved = _weights_only(algo.state_dict(), f"{cls.__name__}.state_dict()")
    fresh = cls(cfg, env_cfg, spec, builder, seed + 1)
    fresh.load_state_dict(saved)
    _assert_same(_weights_only(fresh.state_dict(), "state_dict()"), saved,
                 "state_dict() of a fresh instance after load_state_dict(state)")
    (params, version), (fresh_params, fresh_version) = _pull(algo.model), _pull(fresh.model)
    assert torch.equal(fresh_params, params) and fresh_version == version, \
        "after load_state_dict, a fresh instance's model has other parameters or another version"
    actor = fresh.actor(True)
    replayed = [actor.act(o) for o in observations]
    assert all(_same_action(a, b) for a, b in zip(replayed, actions, strict=True)), \
        "after load_state_dict, a fresh instance's deterministic actor acts differently"

    _check_budget(algo, total_steps, seed, timeout_s)
    _check_stop(algo, total_steps, seed, timeout_s)
    _check_pickled_copy(algo, seed, shared_memory, timeout_s)
    return algo


__all__ = ["NetworkBuilder", "RecordingCounters", "TinyNetwork", "check_algorithm"]
