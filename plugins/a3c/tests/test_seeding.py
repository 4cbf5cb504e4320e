"""Seeding: one thread worker with the same seed replays the same run; other seeds and other
workers see other episodes."""

from __future__ import annotations

import torch

from rlplug import messages
from rlplug.build import worker_seeds
from rlplug.checkpoint import load_checkpoint

SHORT_RUN = ("env=cartpole", "executor=thread", "total_steps=2000")


def _returns(rows: list[dict], worker: int | None = None) -> list[float]:
    return [r["return"] for r in rows if r["kind"] == messages.EPISODE
            and (worker is None or r["worker"] == worker)]


def test_worker_seeds_are_distinct_reproducible_and_depend_on_the_run_seed() -> None:
    seeds = worker_seeds(0, 8)
    assert len(set(seeds)) == 8
    assert worker_seeds(0, 8) == seeds
    assert set(worker_seeds(1, 8)).isdisjoint(seeds)
    # a resumed run (started at some env step) gets fresh seeds, not a replay
    assert set(worker_seeds(0, 8, env_steps=5000)).isdisjoint(seeds)


def test_same_seed_replays_the_same_run_with_one_thread_worker(train_run, metrics_rows, tmp_path) -> None:
    runs = []
    for name in ("a", "b"):
        result = train_run(*SHORT_RUN, "executor.workers=1", "seed=3", run_dir=tmp_path / name)
        assert result.status == "completed"
        runs.append(_returns(metrics_rows(tmp_path / name)))
    assert len(runs[0]) > 20
    assert runs[0] == runs[1]
    model_a = load_checkpoint(tmp_path / "a")["algorithm"]["model"]["params"]
    model_b = load_checkpoint(tmp_path / "b")["algorithm"]["model"]["params"]
    assert torch.equal(model_a, model_b)


def test_different_seeds_give_different_runs(train_run, metrics_rows, tmp_path) -> None:
    returns = []
    for seed in (3, 4):
        train_run(*SHORT_RUN, "executor.workers=1", f"seed={seed}", run_dir=tmp_path / str(seed))
        returns.append(_returns(metrics_rows(tmp_path / str(seed))))
    assert returns[0] != returns[1]


def test_each_worker_seeds_its_env_and_its_sampling_from_its_own_seed(make_worker) -> None:
    # Executors hand seeds[rank] to worker rank (checked by check_executor in test_executors.py);
    # here: the worker really uses it, for the env's first observation and for its actions.
    def first_steps(seed: int) -> tuple[list[list[float]], list[list[int]]]:
        worker = make_worker("env=cartpole", "algo.n_steps=40", "algo.envs_per_worker=3", seed=seed)
        worker.pull()
        first_obs = worker.obs.tolist()  # [B, obs]: one row per env
        segment, _ = worker.collect(40 * 3)
        return first_obs, segment.actions.T.tolist()  # [B, T]

    same_a, same_b, other = first_steps(11), first_steps(11), first_steps(12)
    assert same_a == same_b
    assert other[0][0] != same_a[0][0], "another seed must give another first observation"
    assert other[1] != same_a[1], "another seed must give other sampled actions"
    # and the envs of one worker are seeded apart: each starts its own episode
    first_obs, actions = same_a
    assert len({tuple(o) for o in first_obs}) == 3
    assert len({tuple(a) for a in actions}) == 3


def test_workers_of_one_run_see_different_episodes(train_run, metrics_rows, tmp_path) -> None:
    train_run(*SHORT_RUN, "executor.workers=2", "seed=3", run_dir=tmp_path / "run")
    rows = metrics_rows(tmp_path / "run")
    first, second = _returns(rows, worker=0)[:10], _returns(rows, worker=1)[:10]
    assert len(first) == len(second) == 10
    assert first != second
