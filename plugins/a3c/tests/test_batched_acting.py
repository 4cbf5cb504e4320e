"""Batched acting (``algo.envs_per_worker`` = B): runs end at exactly ``total_steps`` however the
last reservations are cut, every finished episode of every env is reported once with its own
return, a NaN observation stops the run once with a one-line message, and ``B`` is range-checked.

The runs are real (``train()`` in-process or ``python -m rlplug`` in a subprocess, thread and
process executors) on ``batch_envs:Ledger-v0``, whose envs write down every episode they finish.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from rlplug import messages
from rlplug.build import worker_seeds
from rlplug.errors import UserError
from rlplug.vector_env import env_seeds

HERE = Path(__file__).resolve().parent
LEDGER_ENV = "env.id=batch_envs:Ledger-v0"


def _ledger(path: Path, tags: set[int]) -> list[dict]:
    """Episodes the envs with these tags (first reset seeds) finished, from the ledger file."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [row for row in lines if row["tag"] in tags]


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_batched_run_ends_at_exactly_total_steps_and_reports_every_episode_of_every_env_once(
        executor: str, train_run, metrics_rows, tmp_path, support_on_path, no_leftovers) -> None:
    ledger = tmp_path / "ledger.jsonl"
    # 2 workers x 3 envs x 5 rows = 30 steps a round; 2003 is no multiple of it, so the last
    # reservations are cut and a last row is only partly stepped
    result = train_run(LEDGER_ENV, f"+env.kwargs.ledger={ledger}", f"executor={executor}",
                       "executor.workers=2", "algo.envs_per_worker=3", "algo.n_steps=5",
                       "total_steps=2003", "seed=5", run_dir=tmp_path / "run")
    assert result.status == "completed", result.error
    assert result.summary["env_steps"] == 2003

    # the workers' envs: env i of worker w was first reset with env_seeds(worker seed, 3)[i]
    tags = {tag for seed in worker_seeds(5, 2) for tag in env_seeds(seed, 3)}
    lines = _ledger(ledger, tags)
    done = [e for e in lines if "closed_after_steps" not in e]
    # the envs took exactly the budget: no env stepped beyond its worker's cut reservation
    assert sum(e.get("closed_after_steps", 0) for e in lines) == 2003
    rows = [r for r in metrics_rows(tmp_path / "run") if r["kind"] == messages.EPISODE]
    reported = Counter((r["return"], r["length"], r.get("success")) for r in rows)
    finished = Counter((float(e["return"]), e["length"], e["success"]) for e in done)
    assert reported == finished, "each finished episode must be reported once, with its return"
    assert result.summary["episodes"] == len(rows) == len(done)
    assert sum(r["length"] for r in rows) <= 2003
    # episodes of every env of every worker were reported (threads start at once; a process
    # worker may boot after the other has spent most of the budget)
    envs_seen = {e["tag"] for e in done}
    if executor == "thread":
        assert envs_seen == tags
    else:
        assert len(envs_seen) >= 3
    assert {e["success"] for e in done} == {True, False}  # terminated and truncated episodes
    steps = [r["env_step"] for r in rows]
    assert max(steps) <= 2003


def test_nan_observation_fails_the_run_once_naming_worker_env_and_step(tmp_path) -> None:
    # worker 0's env 2 returns NaN at its 40th step: row 39 of the worker's rows of 3 envs, in the
    # segment that starts at env step 105 (segments of 5 rows x 3 envs): run env step
    # 39 * 3 + 2 + 1 = 120
    nan_tag = env_seeds(worker_seeds(7, 1)[0], 3)[2]
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", "rlplug", LEDGER_ENV, f"+env.kwargs.nan_tag={nan_tag}",
         "+env.kwargs.nan_at=40", "executor=process", "executor.workers=1",
         "executor.on_worker_failure=restart", "algo.envs_per_worker=3", "algo.n_steps=5",
         "total_steps=100000", "seed=7", "logger.mode=disabled", "progress=false",
         "checkpoint.every_steps=0", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    message = ("non-finite observation (nan) from env 2 of worker 0 at env step 120 "
               "(components [1])")
    last_line = proc.stderr.strip().splitlines()[-1]
    assert message in last_line and "NonFiniteObservationError" in last_line, proc.stderr[-2000:]
    assert "multinomial" not in proc.stderr and "probability tensor" not in proc.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and message in summary["error"]
    assert summary["env_steps"] == 105  # the failing segment is not counted
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert not any(r["kind"] == "worker_restart" for r in rows), "a NaN input is not restarted"


@pytest.mark.parametrize("value", [0, -2])
def test_envs_per_worker_must_be_at_least_one(compose_run, value: int) -> None:
    with pytest.raises(UserError, match=r"algo.envs_per_worker must be in \[1, 4096\]"):
        compose_run(f"algo.envs_per_worker={value}")


def test_a_worker_gives_back_the_steps_of_a_segment_it_could_not_finish(make_worker,
                                                                         support_on_path) -> None:
    worker = make_worker(LEDGER_ENV, "+env.kwargs.nan_tag=123", "+env.kwargs.nan_at=4",
                         "algo.envs_per_worker=2", "algo.n_steps=5", seed=123)
    with pytest.raises(Exception, match="non-finite observation"):
        worker.run()
    counters = worker.ctx.counters
    assert counters.env_steps == 0
    # the reservation was released: the whole budget can be reserved again
    assert counters.reserve_steps(worker.ctx.total_steps, worker.ctx.total_steps) == \
        worker.ctx.total_steps


def test_a_cut_reservation_steps_only_the_first_envs_of_the_last_row(make_worker) -> None:
    # 3 envs, 5 rows: a grant of 7 steps is 2 full rows and 1 env in the third
    worker = make_worker("env=cartpole", "network=lstm", "algo.envs_per_worker=3",
                         "algo.n_steps=5", seed=4)
    worker.pull()
    segment, _ = worker.collect(7)
    assert segment.rewards.shape == (3, 3) and segment.steps == 7
    assert segment.valid is not None
    assert segment.valid.tolist() == [[True] * 3, [True] * 3, [True, False, False]]
    # envs 1 and 2 sat the last row out: what they act on next is the observation of that row,
    # and their recurrent state is the one after row 2, as if the third row had not happened
    after_two_rows = segment.obs[2]
    assert torch.equal(torch.from_numpy(worker.obs[1:]), after_two_rows[1:])
    assert not torch.equal(torch.from_numpy(worker.obs[:1]), after_two_rows[:1])
    with torch.no_grad():
        _, _, state = worker.net(segment.obs[:2], segment.initial_state, segment.episode_starts[:2])
    for now, expected in zip(worker.state, state, strict=True):
        torch.testing.assert_close(now[1:], expected[1:], rtol=0, atol=1e-6)
        assert not torch.allclose(now[:1], expected[:1])
    # the next segment goes on from there, with full rows again
    segment, _ = worker.collect(15)
    assert segment.valid is None and torch.equal(segment.obs[0, 1:], after_two_rows[1:])
    assert worker.update(segment, 0)["grad_norm"] > 0
