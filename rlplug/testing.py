"""Contract checks a plugin's own tests can call: :func:`check_network`, :func:`check_executor` and
:func:`check_algorithm` (implemented in :mod:`rlplug.testing_algorithm`).

They drive a plugin the way rlplug will (real tensors, real threads or processes) and fail with an
``AssertionError`` whose message says which part of the contract (``rlplug.contracts``) is broken::

    from rlplug.testing import check_executor, check_network

    def test_my_network_keeps_the_contract():
        check_network(MyNet, MyNetConfig())

    def test_my_executor_keeps_the_contract():
        check_executor(MyExecutor, MyExecutorConfig(workers=2))

    def test_my_algorithm_keeps_the_contract():
        check_algorithm(MyAlgo, MyAlgoConfig(), EnvConfig(id="CartPole-v1"))

The process helpers (:func:`live_child_processes`, :func:`assert_nothing_left`) use psutil, which
the ``test`` extra installs (``pip install "rlplug[test]"``).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil
import torch

from rlplug import messages
from rlplug.contracts import Executor, Network, SharedModel, State, WorkerContext
from rlplug.counters import SharedCounters
from rlplug.errors import WorkerFailure
from rlplug.testing_algorithm import check_algorithm as check_algorithm  # re-exported
from rlplug.worker_processes import WORKER_NAME_PREFIX

HELLO = "contract_hello"
"""Message kind the trivial worker sends once at start, with its rank and seed."""

FAILURE_MARKER = "rlplug contract check: injected worker failure"

# Multiprocessing's own helper processes/threads outlive a run by design; they are not workers.
_HELPER_PROCESS_MARKERS = ("resource_tracker", "forkserver", "semaphore_tracker",
                           "torch_shm_manager")
_HELPER_THREAD_NAMES = ("QueueFeederThread", "tqdm_monitor")


# -- networks ----------------------------------------------------------------------------------
def _clone_state(state: State) -> State:
    return tuple(s.detach().clone() for s in state)


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str, atol: float = 1e-5) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    diff = (actual - expected).abs().max().item() if actual.numel() else 0.0
    assert diff <= atol, f"{what}: values differ by up to {diff:.3g} (tolerance {atol:g})"


def _check_state_structure(state: Any, reference: State, batch_size: int, what: str) -> None:
    assert isinstance(state, tuple), f"{what} must be a tuple of tensors, got {type(state).__name__}"
    assert len(state) == len(reference), f"{what} has {len(state)} tensors, initial_state has {len(reference)}"
    for i, (s, r) in enumerate(zip(state, reference, strict=True)):
        assert isinstance(s, torch.Tensor), f"{what}[{i}] is {type(s).__name__}, not a tensor"
        assert s.shape == r.shape, f"{what}[{i}] has shape {tuple(s.shape)}, initial_state's is {tuple(r.shape)}"
        assert s.shape[0] == batch_size, f"{what}[{i}] must have the batch ({batch_size}) in dimension 0"


def check_network(cls: type[Network], cfg: Any, *, obs_shape: tuple[int, ...] = (4,),
                  policy_dim: int = 3, batch_size: int = 3, steps: int = 6, seed: int = 0,
                  atol: float = 1e-5) -> Network:
    """Check that ``cls(obs_shape, policy_dim, cfg)`` keeps the :class:`~rlplug.contracts.Network`
    contract, and return the network it built.

    Checks: the type; ``initial_state`` (``()`` unless ``is_recurrent``, batch in dimension 0);
    output shapes and finiteness for a ``[T, B]`` block; that the input state is not modified in
    place; that stepping one step at a time (acting, ``T=1``) gives the same outputs and final state
    as one ``T=n`` call (the update); that ``episode_starts`` resets a recurrent state (and that a
    recurrent network does use its state); that batch elements do not mix; that every parameter
    gets a finite gradient; determinism; and that the class, its config and the built network
    survive pickling (process executors send them to workers).
    """
    torch.manual_seed(seed)
    net = cls(obs_shape, policy_dim, cfg)
    assert isinstance(net, Network), f"{cls.__name__}(...) built {type(net).__name__}, not an rlplug Network"
    T, B = steps, batch_size
    assert T >= 4, "check_network needs steps >= 4 to place an episode start inside the block"

    initial = net.initial_state(B)
    _check_state_structure(initial, initial, B, "initial_state(batch_size)")
    if net.is_recurrent:
        assert len(initial) > 0, f"{cls.__name__}.is_recurrent is True but initial_state() is empty"
    else:
        assert initial == (), f"{cls.__name__} is not recurrent, so initial_state() must be (), got {initial!r}"

    generator = torch.Generator().manual_seed(seed)
    obs = torch.randn((T, B, *obs_shape), generator=generator)
    starts = torch.zeros(T, B)
    starts[0] = 1.0
    middle = T // 2
    starts[middle, 0] = 1.0  # batch element 0 starts a new episode inside the block

    with torch.no_grad():
        state_in = _clone_state(initial)
        policy, value, final = net(obs, state_in, starts)
        assert isinstance(policy, torch.Tensor) and isinstance(value, torch.Tensor), \
            "forward must return (policy tensor, value tensor, state)"
        assert policy.shape == (T, B, policy_dim), \
            f"policy has shape {tuple(policy.shape)}, expected [T, B, policy_dim] = {(T, B, policy_dim)}"
        assert value.shape == (T, B), f"value has shape {tuple(value.shape)}, expected [T, B] = {(T, B)}"
        assert torch.isfinite(policy).all() and torch.isfinite(value).all(), "forward returned non-finite outputs"
        _check_state_structure(final, initial, B, "the state forward returns")
        for i, (s, r) in enumerate(zip(state_in, initial, strict=True)):
            _assert_close(s, r, f"forward modified its input state[{i}] in place (the update reuses it)", 0.0)

        # Acting (T=1, state carried by the caller) must see exactly what the update (T=n) recomputes.
        state, step_policies, step_values = _clone_state(initial), [], []
        for t in range(T):
            p, v, state = net(obs[t:t + 1], state, starts[t:t + 1])
            assert p.shape == (1, B, policy_dim) and v.shape == (1, B), \
                f"a T=1 call returned policy {tuple(p.shape)} and value {tuple(v.shape)}"
            step_policies.append(p)
            step_values.append(v)
        _assert_close(torch.cat(step_policies), policy, "policy of T=1 steps vs one T=n call", atol)
        _assert_close(torch.cat(step_values), value, "value of T=1 steps vs one T=n call", atol)
        for i, (s, f) in enumerate(zip(state, final, strict=True)):
            _assert_close(s, f, f"final state[{i}] of T=1 steps vs one T=n call", atol)

        # forward_policy (acting) gives forward's policy and state, step by step and in one block.
        state, step_policies = _clone_state(initial), []
        for t in range(T):
            p, state = net.forward_policy(obs[t:t + 1], state, starts[t:t + 1])
            step_policies.append(p)
        _assert_close(torch.cat(step_policies), policy, "forward_policy vs forward (policy)", atol)
        for i, (s, f) in enumerate(zip(state, final, strict=True)):
            _assert_close(s, f, f"forward_policy vs forward (final state[{i}])", atol)

        # Batch elements are independent environments.
        p_one, v_one, _ = net(obs[:, -1:], net.initial_state(1), starts[:, -1:])
        _assert_close(p_one, policy[:, -1:], "batch element run alone vs inside a batch (policy)", atol)
        _assert_close(v_one, value[:, -1:], "batch element run alone vs inside a batch (value)", atol)

        # Where episode_starts is 1 the past must not matter: compare with a fresh episode.
        p_fresh, v_fresh, _ = net(obs[middle:, :1], net.initial_state(1), starts[middle:, :1])
        _assert_close(policy[middle:, :1], p_fresh, "policy after an episode start vs a fresh episode", atol)
        _assert_close(value[middle:, :1], v_fresh, "value after an episode start vs a fresh episode", atol)
        if net.is_recurrent:
            noisy = tuple(torch.randn(s.shape, generator=generator) for s in initial)
            p_noisy, v_noisy, _ = net(obs, noisy, starts)
            _assert_close(p_noisy, policy, "episode_starts[0]=1 must reset any incoming state", atol)
            _assert_close(v_noisy, value, "episode_starts[0]=1 must reset any incoming state", atol)
            p_carry, _, _ = net(obs, noisy, torch.zeros(T, B))
            assert (p_carry - policy).abs().max() > atol, \
                f"{cls.__name__} is recurrent but its outputs ignore the incoming state"

        p_again, v_again, _ = net(obs, _clone_state(initial), starts)
        _assert_close(p_again, policy, "forward is not deterministic (policy)", 0.0)
        _assert_close(v_again, value, "forward is not deterministic (value)", 0.0)

    # Every parameter must be trained by the actor-critic outputs.
    net.zero_grad(set_to_none=True)
    p, v, _ = net(obs, _clone_state(initial), starts)
    (p.square().sum() + v.square().sum()).backward()
    for name, param in net.named_parameters():
        assert param.grad is not None, f"parameter {name} gets no gradient from policy or value"
        assert torch.isfinite(param.grad).all(), f"parameter {name} has a non-finite gradient"
    net.zero_grad(set_to_none=True)

    # Process executors pickle the class and config (to build workers' copies) and the network.
    try:
        cls_copy, cfg_copy = pickle.loads(pickle.dumps((cls, cfg)))
        clone = pickle.loads(pickle.dumps(net))
    except Exception as exc:
        raise AssertionError(f"{cls.__name__}, its config or the network cannot be pickled "
                             f"({type(exc).__name__}: {exc}); define them at module level") from exc
    assert cls_copy is cls, f"{cls.__name__} does not unpickle to itself (define it at module level)"
    assert cfg_copy == cfg, "the network config does not survive pickling"
    with torch.no_grad():
        p_clone, v_clone, _ = clone(obs, _clone_state(initial), starts)
    _assert_close(p_clone, policy, "a pickled copy of the network (policy)", 0.0)
    _assert_close(v_clone, value, "a pickled copy of the network (value)", 0.0)
    return net


# -- processes and threads ---------------------------------------------------------------------
def descendant_processes(pid: int) -> dict[Any, str]:
    """The descendants of process ``pid`` (``psutil.Process`` objects) with their descriptions,
    ``[name] command line``; empty if ``pid`` is gone."""
    found = {}
    try:
        for child in psutil.Process(pid).children(recursive=True):
            try:
                found[child] = f"[{child.name()}] {' '.join(child.cmdline())}"
            except psutil.NoSuchProcess:  # ended while we looked
                continue
    except psutil.NoSuchProcess:
        pass
    return found


def is_worker_process(description: str) -> bool:
    """Whether a :func:`descendant_processes` description is an rlplug worker process (named by
    :class:`rlplug.worker_processes.ChildSetup`, whatever its start method)."""
    return description.startswith(f"[{WORKER_NAME_PREFIX}")


def live_child_processes() -> list[str]:
    """Descriptions (``pid cmdline``) of this process's running descendants, leaving out
    multiprocessing's own helpers (resource tracker, forkserver) and zombies."""
    found: list[str] = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            command = " ".join(child.cmdline())
        except psutil.NoSuchProcess:  # ended while we looked
            continue
        if not any(marker in command for marker in _HELPER_PROCESS_MARKERS):
            found.append(f"{child.pid} {command}")
    return found


def _new_threads(before: set[int]) -> list[str]:
    return [t.name for t in threading.enumerate()
            if t.ident not in before and t.is_alive() and t.name not in _HELPER_THREAD_NAMES]


def assert_nothing_left(threads_before: set[int], processes_before: list[str],
                        grace_s: float = 3.0, what: str = "the run") -> None:
    """Fail if threads or processes started since the snapshot are still running after
    ``grace_s`` (``threads_before`` = idents of ``threading.enumerate()``)."""
    deadline = time.monotonic() + grace_s
    while True:
        threads = _new_threads(threads_before)
        processes = [p for p in live_child_processes() if p not in processes_before]
        if not threads and not processes:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"after {what}, still running: threads {threads}, processes {processes}")
        time.sleep(0.05)


# -- executors ---------------------------------------------------------------------------------
class CountingModel(SharedModel):
    """A tiny :class:`~rlplug.contracts.SharedModel` for executor checks: a few parameters in
    shared memory, plain SGD under a lock, and a shared update count (picklable, for processes)."""

    def __init__(self, size: int = 4) -> None:
        self.params = torch.zeros(size).share_memory_()
        self._version = torch.zeros((), dtype=torch.int64).share_memory_()
        self._lock = multiprocessing.get_context("spawn").Lock()

    @property
    def num_parameters(self) -> int:
        return self.params.numel()

    @property
    def version(self) -> int:
        return int(self._version)

    def pull(self, out: torch.Tensor) -> int:
        version = int(self._version)
        out.copy_(self.params)
        return version

    def push(self, grad: torch.Tensor, lr: float) -> int:
        with self._lock:
            self.params.add_(grad, alpha=-lr)
            self._version += 1
            return int(self._version)

    def state_dict(self) -> dict[str, Any]:
        return {"params": self.params.clone(), "version": int(self._version)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.params.copy_(state["params"])
        self._version.fill_(int(state["version"]))


@dataclass
class StepWorker:
    """A trivial worker function (picklable, so process executors can run it): says hello, then
    reserves ``chunk`` env steps at a time, records them and sends one episode message per chunk,
    until the executor asks it to stop. Rank ``fail_rank`` raises after its first chunk."""

    chunk: int = 7
    sleep_s: float = 0.0
    start_delay_s: float = 0.0
    fail_rank: int | None = None

    def __call__(self, ctx: WorkerContext) -> None:
        ctx.send({"kind": HELLO, "worker": ctx.rank, "seed": ctx.seed, "total_steps": ctx.total_steps,
                  "pid": os.getpid()})
        time.sleep(self.start_delay_s)
        while not ctx.stop_requested():
            granted = ctx.counters.reserve_steps(self.chunk, ctx.total_steps)
            if granted == 0:  # budget spent: the executor must now turn stop_requested() true
                time.sleep(0.005)
                continue
            local = torch.zeros(ctx.model.num_parameters)
            ctx.model.pull(local)
            ctx.model.push(-torch.ones_like(local), 1.0)  # every parameter counts the pushes
            env_step = ctx.counters.add(granted, episodes=1)
            ctx.send(messages.episode(ctx.rank, env_step, float(ctx.seed), granted))
            if ctx.rank == self.fail_rank:
                raise RuntimeError(f"{FAILURE_MARKER} (rank {ctx.rank})")
            time.sleep(self.sleep_s)


@dataclass
class ExecutorRun:
    """What one :func:`run_executor` call observed."""

    messages: list[dict[str, Any]]
    ticks: int
    env_steps: int
    episodes: int
    seeds: list[int]
    error: BaseException | None
    timed_out: bool
    off_main_thread: list[str]
    model_state: dict[str, Any] | None = None  # the hosted model's state after the run


def run_executor(cls: type[Executor], cfg: Any, target: Callable[[WorkerContext], None], *,
                 total_steps: int, timeout_s: float = 60.0, stop_after_messages: int | None = None,
                 interrupt_when_started: bool = False, interrupt_when_acted: bool = False,
                 tick_s: float = 0.05) -> ExecutorRun:
    """Run ``target`` with a fresh ``cls(cfg)`` and record everything the main process saw.

    A watchdog calls ``request_stop()`` after ``timeout_s`` (a hang guard: ``timed_out`` is set).
    ``stop_after_messages`` calls ``request_stop()`` from ``on_message``. ``KeyboardInterrupt`` is
    raised (as Ctrl-C would in the main thread) from the first ``on_tick`` after every worker said
    hello with ``interrupt_when_started``, after the first episode message with
    ``interrupt_when_acted``.
    Exceptions from ``run`` are caught into ``error``.
    """
    executor = cls(cfg)
    counters = SharedCounters()
    seeds = [1000 + 17 * rank for rank in range(executor.workers)]
    main = threading.get_ident()
    seen: list[dict[str, Any]] = []
    off_main: list[str] = []
    ticks = [0]
    timed_out = threading.Event()

    def on_message(msg: dict[str, Any]) -> None:
        if threading.get_ident() != main:
            off_main.append("on_message")
        seen.append(msg)
        if stop_after_messages is not None and len(seen) >= stop_after_messages:
            executor.request_stop()

    def on_tick() -> None:
        if threading.get_ident() != main:
            off_main.append("on_tick")
        ticks[0] += 1
        started = {m["worker"] for m in seen if m.get("kind") == HELLO}
        if interrupt_when_started and len(started) == len(seeds):
            raise KeyboardInterrupt
        if interrupt_when_acted and any(m.get("kind") == messages.EPISODE for m in seen):
            raise KeyboardInterrupt

    def hung() -> None:
        timed_out.set()
        executor.request_stop()

    watchdog = threading.Timer(timeout_s, hung)
    watchdog.daemon = True
    watchdog.start()
    error: BaseException | None = None
    model_state = None
    try:
        hosted = executor.host(CountingModel())
        executor.run(target, model=hosted, seeds=seeds, counters=counters,
                     total_steps=total_steps, on_message=on_message, on_tick=on_tick,
                     tick_s=tick_s, report_every_s=0.5)
        model_state = hosted.state_dict()
    except (Exception, KeyboardInterrupt) as exc:
        error = exc
    finally:
        watchdog.cancel()
        watchdog.join()
        executor.close()
    return ExecutorRun(seen, ticks[0], counters.env_steps, counters.episodes, seeds, error,
                       timed_out.is_set(), off_main, model_state)


def _snapshot() -> tuple[set[int], list[str]]:
    return {t.ident for t in threading.enumerate() if t.ident is not None}, live_child_processes()


def check_executor(cls: type[Executor], cfg: Any, *, total_steps: int = 300, chunk: int = 7,
                   timeout_s: float = 60.0, check_failure: bool = True,
                   check_interrupt: bool = True, one_at_a_time: bool = False) -> None:
    """Check that ``cls(cfg)`` keeps the :class:`~rlplug.contracts.Executor` contract with a
    trivial worker function (:class:`StepWorker`), in up to four runs:

    1. budget: every worker starts once with its own seed; the run ends at exactly
       ``total_steps`` (workers that find the budget spent wait for ``stop_requested()``); every
       message arrives, in the main thread; ``on_tick`` is called;
    2. ``request_stop()`` from ``on_message`` ends a run with an unreachable budget;
    3. (``check_failure``) a worker that raises ends the run with :class:`WorkerFailure` carrying
       its traceback text, once the executor's own restart policy (if any) gives up;
    4. (``check_interrupt``) ``KeyboardInterrupt`` raised in the main thread propagates out of
       ``run`` after the workers are stopped. It is raised once every worker has started; with
       ``one_at_a_time=True``, once the first worker has acted: an executor that runs each worker
       until it ends before starting the next never starts the second one while the first runs
       (an executor that takes turns between its workers, e.g. round-robin, keeps the default).

    After each run no thread or process the executor started may still be running.

    Give ``cfg`` a generous stop timeout if the executor has one (a worker process still booting
    when the budget is spent must get to say hello) and a "stop on failure" policy to keep run 3
    short. ``timeout_s`` is a hang guard per run.
    """
    threads, processes = _snapshot()
    run = run_executor(cls, cfg, StepWorker(chunk=chunk, sleep_s=0.002, start_delay_s=0.3),
                       total_steps=total_steps, timeout_s=timeout_s)
    assert not run.timed_out, (f"the run did not end within {timeout_s} s: stop_requested() must turn "
                               f"true once counters.env_steps >= total_steps")
    assert run.error is None, f"run raised {run.error!r} for workers that did not fail"
    assert_nothing_left(threads, processes, what="a completed run")
    hellos = [m for m in run.messages if m.get("kind") == HELLO]
    assert sorted(m["worker"] for m in hellos) == list(range(len(run.seeds))), \
        f"expected one start per worker rank 0..{len(run.seeds) - 1}, saw ranks {[m['worker'] for m in hellos]}"
    for m in hellos:
        assert m["seed"] == run.seeds[m["worker"]], \
            f"worker {m['worker']} got seed {m['seed']}, expected seeds[{m['worker']}] = {run.seeds[m['worker']]}"
        assert m["total_steps"] == total_steps, "WorkerContext.total_steps is not the run's budget"
    assert run.env_steps == total_steps, f"the run did {run.env_steps} env steps, its budget was {total_steps}"
    episodes = [m for m in run.messages if m.get("kind") == messages.EPISODE]
    assert sum(m["length"] for m in episodes) == total_steps, \
        "messages were lost: the episode messages do not add up to the steps the workers recorded"
    assert len(episodes) == run.episodes, "counters.episodes does not match the episode messages"
    assert run.model_state is not None and int(run.model_state["version"]) == len(episodes), \
        (f"the hosted model saw {run.model_state and run.model_state['version']} pushes, the workers "
         f"made {len(episodes)}: ctx.model must be the handle host() returned")
    assert not run.off_main_thread, f"{sorted(set(run.off_main_thread))} called outside the main thread"
    assert run.ticks >= 1, "on_tick was never called"

    threads, processes = _snapshot()
    unreachable = 10**12
    run = run_executor(cls, cfg, StepWorker(chunk=chunk, sleep_s=0.002), total_steps=unreachable,
                       timeout_s=timeout_s, stop_after_messages=2 * len(run.seeds) + 3)
    assert not run.timed_out, "request_stop() called from on_message did not end the run"
    assert run.error is None, f"run raised {run.error!r} after request_stop()"
    assert 0 < run.env_steps < unreachable
    assert_nothing_left(threads, processes, what="request_stop()")

    if check_failure:
        threads, processes = _snapshot()
        run = run_executor(cls, cfg, StepWorker(chunk=chunk, sleep_s=0.002, fail_rank=0),
                           total_steps=unreachable, timeout_s=timeout_s)
        assert isinstance(run.error, WorkerFailure), \
            f"a failing worker must end the run with WorkerFailure, got {run.error!r}"
        text = str(run.error)
        assert FAILURE_MARKER in text and "Traceback" in text, \
            f"WorkerFailure must carry the worker's traceback, got: {text[:500]}"
        assert run.error.rank == 0, f"WorkerFailure names rank {run.error.rank}, the failing worker was 0"
        assert not run.timed_out, "the run only ended through the watchdog after a worker failed"
        assert_nothing_left(threads, processes, what="a worker failure")

    if check_interrupt:
        threads, processes = _snapshot()
        run = run_executor(cls, cfg, StepWorker(chunk=chunk, sleep_s=0.002), total_steps=unreachable,
                           timeout_s=timeout_s, interrupt_when_started=not one_at_a_time,
                           interrupt_when_acted=one_at_a_time)
        hint = ("" if one_at_a_time else " (it is raised once every worker has started; for an "
                "executor that runs each worker until it ends, pass one_at_a_time=True)")
        assert not run.timed_out, f"KeyboardInterrupt did not end the run{hint}"
        assert isinstance(run.error, KeyboardInterrupt), \
            f"KeyboardInterrupt in the main thread must propagate out of run(), got {run.error!r}"
        assert_nothing_left(threads, processes, what="KeyboardInterrupt")
