"""``executor=ray`` on a real 2-node Ray cluster (``ray.cluster_utils.Cluster``: a raylet and an
object store per node, in processes of this machine): A3C learns with its workers on different
nodes, a killed worker actor is restarted (or fails the run once no restart is left), a lost node
costs only its workers, and checkpoints resume across executors.

The runs train in this test process (the Ray driver), so the tests can kill the run's actors.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
import ray
import torch
from ray_test_support import rows_of, wait_for

from rlplug.checkpoint import load_checkpoint
from rlplug.errors import UserError
from rlplug.outputs import read_metrics
from rlplug.run import train
from rlplug.testing import CountingModel, check_executor
from rlplug_ray import link, portable
from rlplug_ray.config import RayExecutorConfig
from rlplug_ray.executor import RayExecutor
from rlplug_ray.hub import Hub


def ray_executor(cluster, *more: str) -> list[str]:
    return ["executor=ray", f"executor.address={cluster.address}", "executor.workers=2", *more]


def updates_in(rows: list[dict]) -> int:
    """Updates the workers reported (each train row counts those since the worker's last one)."""
    return int(sum(r["updates"] for r in rows if r["kind"] == "train"))


def optimizer_steps(run_dir: Path) -> int:
    return int(load_checkpoint(run_dir)["algorithm"]["model"]["optimizer"]["step"].item())


def worker_actor(rank: int, start: int) -> ray.actor.ActorHandle:
    """The run's worker actor for ``rank`` (its ``start``-th worker actor)."""
    suffix = f"-worker{rank}.{start}"
    name = wait_for(f"worker actor {suffix}", lambda: ray.is_initialized() and next(
        (n for n in ray.util.list_named_actors() if n.endswith(suffix)), None))
    return ray.get_actor(name)


def test_the_ray_executor_keeps_the_executor_contract(cluster):
    check_executor(RayExecutor, RayExecutorConfig(address=cluster.address, workers=2,
                                                  on_worker_failure="stop", stop_timeout_s=20),
                   timeout_s=120)


def test_a_worker_makes_one_remote_call_per_update_with_exact_versions_and_budget(
        cluster, monkeypatch):
    """The worker's side of the hub, in A3C's order of calls (reserve, pull, act, add, push,
    send): one remote call per update, the versions that make staleness right, and a budget
    granted exactly, also with reservations fetched ahead."""
    monkeypatch.setattr(link, "REFRESH_S", 1e9)  # no time-based calls: count only the protocol's
    monkeypatch.setattr(link, "FLUSH_S", 1e9)
    ray.init(address=cluster.address)
    hub = ray.remote(Hub).options(num_cpus=0).remote(portable.dumps(CountingModel(size=3)))
    total = 10 * 20 + 5
    ray.get(hub.begin.remote(0, 0, total))
    hosted = link.HostedModel(hub, 3)
    a, b = link.HubLink(hosted, (0, 1)), link.HubLink(hosted, (1, 2))
    params = torch.zeros(3)

    # Two workers interleaved: b pulls, a pushes, b pushes: b's gradient was 1 update stale.
    assert a.reserve_steps(10, total) == 10 and a.model.pull(params) == 0
    assert b.reserve_steps(10, total) == 10 and b.model.pull(params) == 0
    a.add(10, episodes=1)
    assert a.model.push(torch.ones(3), 1.0) == 1  # staleness 1 - 1 - 0 = 0
    b.add(10)
    assert b.model.push(torch.ones(3), 1.0) == 2  # staleness 2 - 1 - 0 = 1
    # b's push brought its next reservation and the parameters after its own gradient
    assert b.reserve_steps(10, total) == 10 and b.model.pull(params) == 2
    assert torch.equal(params, torch.full((3,), -2.0))
    assert (a.calls, b.calls) == (2, 2)

    # Then a alone, in A3C's loop: one call per update, until the budget is spent exactly.
    updates = 0
    while not a.stop_requested():
        steps = a.reserve_steps(10, total)
        if steps == 0:
            break
        a.model.pull(params)
        a.add(steps)
        a.model.push(torch.ones(3), 1.0)
        a.send({"kind": "note", "worker": 0, "update": updates})
        updates += 1
    assert a.calls == 2 + updates
    b.add(10)
    b.flush()
    a.flush()
    env_steps, episodes, messages, _ = ray.get(hub.poll.remote())
    assert env_steps == total and episodes == 1
    assert [m["update"] for m in messages] == list(range(updates))
    assert a.stop_requested() and ray.get(hub.version.remote()) == 2 + updates

    # A retired worker's reservation goes back to the budget and its late calls count nothing.
    ray.get(hub.begin.remote(0, 0, 100))
    c = link.HubLink(hosted, (2, 3))
    assert c.reserve_steps(30, 100) == 30
    assert ray.get(hub.retire.remote((2, 3))) == 30
    c.add(30)
    c.flush()
    assert ray.get(hub.poll.remote())[0] == 0
    assert link.HubLink(hosted, (2, 4)).reserve_steps(100, 100) == 100


@pytest.mark.parametrize(("settings", "message"), [
    (["executor.num_cpus_per_worker=2"],
     "executor.num_cpus_per_worker=2, but the largest node of the Ray cluster has 1 CPUs"),
    (["executor.workers=3"], "executor.workers=3 x executor.num_cpus_per_worker=1 needs 3 CPUs, "
                             "but the Ray cluster has 2"),
])
def test_workers_that_cannot_fit_the_cluster_are_a_one_line_error_before_any_starts(
        cluster, compose_run, tmp_path, settings, message):
    run = compose_run("env=cartpole", "total_steps=1000", *ray_executor(cluster), *settings)
    with pytest.raises(UserError) as caught:
        train(run, tmp_path / "run")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not rows_of(tmp_path / "run", "worker_start")
    assert not ray.is_initialized()  # the driver disconnected again


@pytest.mark.alone
def test_a3c_learns_cartpole_with_its_two_workers_on_different_nodes(cluster, compose_run,
                                                                     tmp_path):
    total = 40_000
    result = train(compose_run("env=cartpole", "seed=0", f"total_steps={total}",
                               *ray_executor(cluster)), tmp_path / "run")
    assert result.status == "completed", result.error
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")

    # Where the workers ran, as each reported it: two different nodes of this cluster.
    nodes = {r["worker"]: r["node"] for r in rows if r["kind"] == "worker_start"}
    assert sorted(nodes) == [0, 1]
    assert nodes[0] != nodes[1]
    assert set(nodes.values()) <= {node.node_id for node in cluster.list_all_nodes()}

    # Exactly the budget; every update the workers made reached the hosted model (and the
    # checkpoint), and the staleness of each push was recorded.
    assert result.summary["env_steps"] == total == load_checkpoint(tmp_path / "run")["env_steps"]
    assert optimizer_steps(tmp_path / "run") == updates_in(rows) > 0
    staleness = [r["staleness"] for r in rows if r["kind"] == "train"]
    assert staleness and min(staleness) >= 0
    assert max(staleness) > 0  # the two workers' pushes interleave

    # It learned: random play averages about 22 on CartPole-v1. The best mean of 100 consecutive
    # episodes, not the last 100: when a 40k-step run stops, the episodes still running are the
    # long ones, so the last 100 that finished lean towards short ones (CartPole's tuned settings
    # at 40k steps, process executor, seeds 0-2: last 100 51-145, best 89-150).
    returns = [r["return"] for r in rows if r["kind"] == "episode"]
    assert len(returns) >= 100
    best = max(statistics.mean(returns[i - 100:i]) for i in range(100, len(returns) + 1))
    assert best > 60, best
    assert result.summary["return_mean100_best"] == pytest.approx(best)


def test_a_killed_worker_actor_is_restarted_and_the_run_completes(cluster, compose_run,
                                                                  background):
    # A budget the survivor cannot finish alone before the replacement actor is up (a new
    # process importing torch, ~2 s): with 60k steps a fast survivor sometimes ended the run first.
    total = 200_000
    run = background(compose_run("env=cartpole", f"total_steps={total}", "executor.max_restarts=2",
                                 *ray_executor(cluster)))
    wait_for("episodes", lambda: run.episodes() >= 20)
    ray.kill(worker_actor(rank=0, start=1))
    result = run.join()

    assert result.status == "completed", result.error
    assert result.summary["env_steps"] == total
    (restart,) = rows_of(run.run_dir, "worker_restart")
    assert restart["worker"] == 0 and restart["restart"] == 1
    assert "died" in restart["traceback"] and "ray.kill" in restart["traceback"]
    starts = [r["worker"] for r in rows_of(run.run_dir, "worker_start")]
    assert sorted(starts) == [0, 0, 1]  # rank 0 twice: the first actor and its replacement
    rows = read_metrics(run.run_dir / "metrics.jsonl")
    # Steps the killed worker had reserved went back to the budget; its unsent updates are lost,
    # every update that reached the hub is counted.
    assert optimizer_steps(run.run_dir) >= updates_in(rows)


def test_a_killed_worker_actor_beyond_max_restarts_fails_the_run_with_its_error(
        cluster, compose_run, background):
    run = background(compose_run("env=cartpole", "total_steps=10000000",
                                 "executor.max_restarts=0", *ray_executor(cluster)))
    wait_for("episodes", lambda: run.episodes() >= 20)
    ray.kill(worker_actor(rank=1, start=2))
    result = run.join()

    assert result.status == "failed"
    assert result.exit_code == 1
    assert "worker 1 failed" in result.error and "died" in result.error
    assert "executor.max_restarts=0 used up" in result.error
    assert result.summary["error"] == result.error
    assert (run.run_dir / "checkpoint.pt").exists()  # a killed worker does not break the model


def test_losing_a_node_costs_only_its_workers_which_restart_on_the_others(cluster, compose_run,
                                                                          background):
    cluster.add_node(num_cpus=1, object_store_memory=80 * 1024 * 1024)
    cluster.wait_for_nodes()
    total = 80_000
    run = background(compose_run("env=cartpole", f"total_steps={total}", *ray_executor(cluster)))
    starts = wait_for("both workers", lambda: len(rows_of(run.run_dir, "worker_start")) == 2
                      and rows_of(run.run_dir, "worker_start"))
    wait_for("episodes", lambda: run.episodes() >= 20)
    keep = {cluster.head_node.node_id, ray.get_runtime_context().get_node_id()}  # GCS, hub
    victim = next(node for node in cluster.list_all_nodes()
                  if node.node_id not in keep and node.node_id in {s["node"] for s in starts})
    lost = [s["worker"] for s in starts if s["node"] == victim.node_id]
    cluster.remove_node(victim)
    result = run.join()

    assert result.status == "completed", result.error
    assert result.summary["env_steps"] == total
    restarts = rows_of(run.run_dir, "worker_restart")
    assert sorted(r["worker"] for r in restarts) == lost
    replacements = rows_of(run.run_dir, "worker_start")[2:]
    assert sorted(r["worker"] for r in replacements) == lost
    assert all(r["node"] != victim.node_id for r in replacements)


@pytest.mark.parametrize("chain", [("ray", "process", "ray")])
def test_checkpoints_resume_across_executors(cluster, compose_run, tmp_path, chain):
    """A Ray run resumed with the process executor, and that one resumed on Ray again: model,
    optimizer step count, counters and metrics continue exactly."""
    step = 4000
    executors = {"ray": ray_executor(cluster), "process": ["executor=process"]}
    previous: Path | None = None
    for i, name in enumerate(chain):
        run_dir = tmp_path / f"{i}_{name}"
        resume = [f"resume={previous}"] if previous else []
        result = train(compose_run("env=cartpole", f"total_steps={(i + 1) * step}",
                                   *executors[name], *resume), run_dir)
        assert result.status == "completed", result.error
        saved = load_checkpoint(run_dir)
        rows = read_metrics(run_dir / "metrics.jsonl")
        assert saved["env_steps"] == (i + 1) * step
        assert saved["episodes"] == len([r for r in rows if r["kind"] == "episode"])
        assert optimizer_steps(run_dir) == updates_in(rows)  # Adam's count goes on
        if previous is not None:
            before = load_checkpoint(previous)
            old_rows = read_metrics(previous / "metrics.jsonl")
            assert rows[:len(old_rows)] == old_rows
            assert all(r["env_step"] > i * step for r in rows[len(old_rows):]
                       if "env_step" in r)
            # the resumed model started from the saved one: same shapes, moved on
            params, old = saved["algorithm"]["model"]["params"], before["algorithm"]["model"]["params"]
            assert params.shape == old.shape and not torch.equal(params, old)
        previous = run_dir
