"""``executor=ray``: one run's workers as Ray actors anywhere in a Ray cluster.

    driver (python -m rlplug)            hub actor (driver's node)        worker actors (any node)
    host(model) -- the model, pickled --> SharedModel + budget + stop
    run(): poll totals, messages <------- messages, totals <------------- one exchange per update:
           (a few times a second)                                          report, push, reserve,
                                                                           parameters, stop flag

Shared memory does not cross machines, so the algorithm's shared model lives in one actor, the
hub (:mod:`rlplug_ray.hub`), next to the driver; workers push gradients to it and pull parameters
from it with one remote call per update (:mod:`rlplug_ray.link`). Supervision is the pool's
(:class:`rlplug.workerpool.WorkerPool`): the same restart policy as the process executor, with a
dead actor (killed, out of memory, its node gone) seen as a dead process. A restarted worker is
a new actor, placed wherever the cluster has room.

The main process's counters mirror the hub's totals at every poll, so the progress bar, the
checkpoints and the stop at ``total_steps`` work as on one machine.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlplug.contracts import Counters, MessageHandler, SharedModel, TickHandler, WorkerContext
from rlplug.counters import SharedCounters
from rlplug.errors import WorkerFailure
from rlplug.workerpool import ContextFactory, WorkerPool
from rlplug_ray import portable
from rlplug_ray.cluster import Connection, check_resources, connect
from rlplug_ray.config import RayExecutorConfig
from rlplug_ray.hub import Hub, WorkerId
from rlplug_ray.link import HostedModel
from rlplug_ray.worker import RayWorker

log = logging.getLogger(__name__)

POLL_S = 0.05  # the driver asks the hub for totals and messages at most this often


class HubLost(WorkerFailure):
    """The hub actor (the global model) is gone: the run cannot go on."""

    def __init__(self, details: str):
        RuntimeError.__init__(self, f"the Ray actor holding the global model failed:\n{details}")
        self.rank, self.details, self.fatal = -1, details, True


@dataclass
class _Worker:
    worker: WorkerId
    actor: Any  # the RayWorker actor handle
    ref: Any  # its run() result: ready once the worker ended (or died)


def _never_called(msg: dict[str, Any]) -> None:
    raise AssertionError("a Ray worker sends its messages through the hub")


class RayExecutor(WorkerPool):
    """Workers as Ray actors (see the module docstring). Connecting to Ray waits for
    :meth:`host`: the constructor only checks settings (it also runs in the CLI's preflight)."""

    def __init__(self, cfg: RayExecutorConfig):
        super().__init__(cfg)
        self.cfg: RayExecutorConfig = cfg
        self._connection: Connection | None = None
        self._hub: Any = None
        self._payload: Any = None  # the worker function, pickled once per run (an ObjectRef)
        self._worker_cls: Any = None  # RayWorker as a Ray actor class
        self._ray_handles: list[_Worker] = []  # every worker actor of the run
        self._worker_of_rank: dict[int, WorkerId] = {}  # the worker now running each rank
        self._starts = 0
        self._released: dict[int, int] = {}  # rank -> steps the hub gave back when it failed
        self._mirror: SharedCounters | None = None
        self._last_poll = float("-inf")
        # Actor names (`ray list actors`): rlplug-<tag>-hub, rlplug-<tag>-worker<rank>.<start>
        self._tag = uuid.uuid4().hex[:8]

    # -- hosting -------------------------------------------------------------------------------
    def host(self, model: SharedModel) -> SharedModel:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._connection = connect(self.cfg)
        check_resources(self.cfg)
        # On the driver's node: losing that node ends the run anyway, losing any other costs
        # only its workers. No CPU reserved: it mostly waits, and the workers need the CPUs.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        hub_cls = ray.remote(Hub)
        self._hub = hub_cls.options(name=f"rlplug-{self._tag}-hub", num_cpus=0, max_restarts=0,
                                    scheduling_strategy=here).remote(portable.dumps(model))
        num_parameters = self._call(self._hub.num_parameters.remote())
        return HostedModel(self._hub, num_parameters)

    def close(self) -> None:
        if self._connection is None:
            return
        import ray

        try:
            self._kill_workers()
            if self._hub is not None:  # the outputs are written: the model is no longer needed
                hub, self._hub = self._hub, None
                _kill([hub], self.cfg.stop_timeout_s)
        finally:
            if self._connection is not Connection.REUSED:
                ray.shutdown()  # a local instance stops with it; a cluster only loses this driver
            self._connection = None

    # -- running -------------------------------------------------------------------------------
    def run(self, target: Callable[[WorkerContext], None], *, model: SharedModel,
            seeds: list[int], counters: Counters, total_steps: int,
            on_message: MessageHandler, on_tick: TickHandler, tick_s: float = 0.2,
            report_every_s: float = 2.0) -> None:
        import ray

        if self._hub is None or not isinstance(model, HostedModel):
            raise RuntimeError("RayExecutor.run needs the model that host() returned")
        assert isinstance(counters, SharedCounters)
        self._mirror, self._last_poll = counters, float("-inf")
        self._payload = ray.put(portable.dumps(target))
        self._call(self._hub.begin.remote(counters.env_steps, counters.episodes, total_steps))
        self._worker_cls = ray.remote(RayWorker)
        try:
            super().run(target, model=model, seeds=seeds, counters=counters,
                        total_steps=total_steps, on_message=on_message, on_tick=on_tick,
                        tick_s=tick_s, report_every_s=report_every_s)
        finally:
            self._kill_workers()

    def _start(self, target: Callable[[WorkerContext], None], make_ctx: ContextFactory) -> _Worker:
        ctx = make_ctx(_never_called)  # for its rank, seed and settings; the hub does the rest
        self._starts += 1
        worker = (ctx.rank, self._starts)
        self._worker_of_rank[ctx.rank] = worker
        # SPREAD: workers on as many nodes as possible. Ray itself never restarts them
        # (max_restarts=0): the pool does, under the run's policy, with a fresh worker.
        actor = self._worker_cls.options(
            name=f"rlplug-{self._tag}-worker{worker[0]}.{worker[1]}",
            num_cpus=self.cfg.num_cpus_per_worker, scheduling_strategy="SPREAD",
            max_restarts=0).remote()
        ref = actor.run.remote(self._payload, ctx.model, worker, ctx.seed, ctx.total_steps,
                               ctx.report_every_s)
        self._ray_handles.append(_Worker(worker, actor, ref))
        return self._ray_handles[-1]

    def _receive(self, timeout: float) -> list[dict[str, Any]]:
        wait = self._last_poll + POLL_S - time.monotonic()
        if wait > timeout:
            time.sleep(timeout)
            return []
        if wait > 0:
            time.sleep(wait)
        return self._poll()

    def _poll(self) -> list[dict[str, Any]]:
        """Messages from the hub; the main process's counters catch up with the hub's, and the
        workers that called the hub since the last poll count as alive for the pool's watchdog
        (on one machine, their calls to the shared counters record that)."""
        env_steps, episodes, messages, active = self._call(self._hub.poll.remote())
        mirror = self._mirror
        assert mirror is not None
        mirror.add(env_steps - mirror.env_steps, episodes - mirror.episodes)
        self._last_poll = now = time.monotonic()
        state = getattr(self, "_state", None)  # the pool's per-rank state (heartbeats)
        if state is not None:
            for worker in active:
                if self._worker_of_rank.get(worker[0]) == worker:
                    state.heartbeat[worker[0]] = now
        return messages

    def _flush(self, handle: _Worker) -> list[dict[str, Any]]:
        return self._poll()  # a worker's last messages reach the hub before its run() returns

    def _alive(self, handle: _Worker) -> bool:
        import ray

        ready, _ = ray.wait([handle.ref], timeout=0)
        return not ready

    def _death(self, handle: _Worker) -> str | None:
        import ray
        from ray.exceptions import RayActorError, RayError

        try:
            ray.get(handle.ref, timeout=10)
        except RayActorError as exc:  # killed, out of memory, or its node is gone
            return f"worker actor {handle.worker[0]} died: {exc}"
        except RayError as exc:
            return f"worker actor {handle.worker[0]} failed: {exc}"
        return None

    def _force_stop(self, handle: _Worker) -> None:
        import ray

        ray.kill(handle.actor, no_restart=True)

    def _begin_stop(self) -> None:
        first = self._stopping_since is None
        super()._begin_stop()
        if first and self._hub is not None:
            self._hub.request_stop.remote()  # the workers read it in their next reply

    def _may_restart(self, rank: int, details: str, fatal: bool, restarts: int) -> bool:
        # The pool gave back the failed worker's reservation as the main process knew it (none:
        # reservations live in the hub); the hub gives back the real one, and from now on
        # ignores any late call of that worker.
        self._released[rank] = self._call(self._hub.retire.remote(self._worker_of_rank[rank]))
        return super()._may_restart(rank, details, fatal, restarts)

    def _report_restart(self, rank: int, details: str, restarts: int, released: int,
                        env_step: int) -> None:
        super()._report_restart(rank, details, restarts, self._released.pop(rank, released),
                                env_step)

    # -- helpers ---------------------------------------------------------------------------------
    def _call(self, ref: Any) -> Any:
        """The result of a call to the hub; its loss ends the run (:class:`HubLost`)."""
        import ray
        from ray.exceptions import RayActorError

        try:
            return ray.get(ref)
        except RayActorError as exc:
            raise HubLost(str(exc)) from exc

    def _kill_workers(self) -> None:
        """Every worker actor of the run goes, also those whose run() returned (their process
        would otherwise stay until the driver disconnects). Killing skips the interpreter's
        teardown, which takes a second or more with torch loaded; nothing is lost: a worker's
        messages and steps are in the hub before its run() returns."""
        handles, self._ray_handles = self._ray_handles, []
        _kill([handle.actor for handle in handles], self.cfg.stop_timeout_s)


def _kill(actors: list[Any], timeout: float) -> None:
    """Kill Ray actors and wait (at most ``timeout`` s) until Ray has them down, so that no kill
    is still on its way when the driver disconnects."""
    if not actors:
        return
    import ray

    for actor in actors:
        ray.kill(actor, no_restart=True)
    probes = [actor.__ray_ready__.remote() for actor in actors]  # fail once the actor is dead
    ray.wait(probes, num_returns=len(probes), timeout=timeout)
