"""Worker failures: a worker that raises or whose process is killed is noticed; the executor
restarts it (``executor.on_worker_failure=restart``, up to ``executor.max_restarts``) or ends the
run as failed with the worker's traceback; a non-finite loss is never restarted and leaves the last
good checkpoint.

The runs are real: ``python -m rlplug`` in a subprocess or ``train()`` in-process, real worker
processes and threads, and envs that fail on purpose (``a3c_test_support``,
``a3c_failure_helpers``).
A worker that raises under ``on_worker_failure=stop`` is covered in ``test_executors.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from rlplug.checkpoint import all_finite, load_checkpoint
from rlplug.counters import SharedCounters
from rlplug.errors import WorkerFailure
from rlplug.outputs import read_metrics
from rlplug.testing import (
    CountingModel,
    StepWorker,
    descendant_processes,
    is_worker_process,
    run_executor,
)
from rlplug_a3c.configs import ProcessExecutorConfig, ThreadExecutorConfig
from rlplug_a3c.executors.process import ProcessExecutor
from rlplug_a3c.executors.thread import ThreadExecutor

HERE = Path(__file__).resolve().parent
FAULTY_ENV = "env.id=a3c_test_support:FaultyCartPole-v0"  # raises after 300 steps per env
HANG_GUARD_S = 180  # only against hangs; nothing here asserts on timing


def start_run(run_dir: Path, *overrides: str, wandb: str = "disabled") -> subprocess.Popen:
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "rlplug", f"hydra.run.dir={run_dir}", f"logger.mode={wandb}",
           "progress=false", "logger.train_log_every_s=0.2", *overrides]
    return subprocess.Popen(cmd, cwd=run_dir.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, seen: dict[psutil.Process, str] | None = None
           ) -> tuple[int, str, str]:
    """Wait for the run to end; meanwhile record every process it starts in ``seen``."""
    deadline = time.monotonic() + HANG_GUARD_S
    while seen is not None and proc.poll() is None and time.monotonic() < deadline:
        seen.update(descendant_processes(proc.pid))
        time.sleep(0.1)
    out, err = proc.communicate(timeout=HANG_GUARD_S)
    return proc.returncode, out, err


def rows(run_dir: Path) -> list[dict[str, Any]]:
    """The run's metrics rows so far (read_metrics skips a line being written right now)."""
    return read_metrics(run_dir / "metrics.jsonl")


def max_env_step(run_dir: Path) -> int:
    return max((r.get("env_step", 0) for r in rows(run_dir)), default=0)


def wait_until(condition, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {proc.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def worker_processes(proc: subprocess.Popen | None = None) -> list[psutil.Process]:
    """Worker processes (not multiprocessing's resource tracker) of the run, or of this
    process."""
    return [child for child, description in
            descendant_processes(proc.pid if proc else os.getpid()).items()
            if is_worker_process(description)]


def summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())


def test_killed_worker_process_is_replaced_and_training_reaches_total_steps(tmp_path):
    run_dir = tmp_path / "run"
    total = 12_000
    # At most ~2000 steps/s per worker: the replacement starts well before the budget is spent.
    proc = start_run(run_dir, "env.id=a3c_failure_helpers:Paced-v0", "+env.kwargs.step_s=0.0005",
                     "executor=process", "executor.workers=2", f"total_steps={total}")
    wait_until(lambda: max_env_step(run_dir) > 0 and len(worker_processes(proc)) == 2, proc,
               "the first env steps")
    victim = worker_processes(proc)[0]
    seen = descendant_processes(proc.pid)
    killed_at = time.monotonic()
    victim.send_signal(signal.SIGKILL)
    wait_until(lambda: any(r["kind"] == "worker_restart" for r in rows(run_dir)), proc,
               "the restart")
    noticed_s = time.monotonic() - killed_at
    code, out, err = finish(proc, seen)

    assert code == 0, err[-3000:]
    _, still_running = psutil.wait_procs(seen, timeout=10)
    assert not still_running
    result = summary(run_dir)
    assert result["status"] == "completed"
    # The dead worker's reserved-but-unfinished steps went back to the budget.
    assert result["env_steps"] == total
    all_rows = rows(run_dir)
    restart_index, restart = next((i, r) for i, r in enumerate(all_rows)
                                  if r["kind"] == "worker_restart")
    assert restart["restart"] == 1
    assert "killed by signal SIGKILL" in restart["reason"]
    assert restart["env_step"] < total
    later = [r for r in all_rows[restart_index + 1:] if r["kind"] == "train"]
    assert max(r["env_step"] for r in later) == total
    # the replacement worker (same rank, new process) trained too
    assert any(r["worker"] == restart["worker"] for r in later)
    assert len([cmd for cmd in seen.values() if is_worker_process(cmd)]) == 3
    assert "restarting it from the current global parameters" in out + err
    print(f"worker kill noticed (restart row written) after {noticed_s:.2f} s")


def test_workers_fork_at_the_start_and_a_replacement_beside_wandb_threads_is_spawned(tmp_path):
    """executor.start_method=auto: the first workers fork (no other Python thread yet); once W&B
    runs its threads in the main process, forking could copy a lock one of them holds, so the
    replacement of a killed worker is spawned -- and trains."""
    run_dir = tmp_path / "run"
    proc = start_run(run_dir, "env.id=a3c_failure_helpers:Paced-v0", "+env.kwargs.step_s=0.0005",
                     "executor=process", "executor.workers=2", "total_steps=30000",
                     wandb="offline")
    # W&B starts at the run's first tick, after the workers: wait until its offline run exists.
    wait_until(lambda: len(worker_processes(proc)) == 2
               and any(run_dir.glob("wandb/offline-run-*/run-*.wandb")), proc, "W&B's start")
    time.sleep(1.0)  # wandb.init has returned: its threads run
    first = descendant_processes(proc.pid)
    forked = [p for p, cmd in first.items() if is_worker_process(cmd)]
    assert len(forked) == 2 and not any("spawn_main" in first[p] for p in forked), first
    seen = dict(first)
    forked[0].send_signal(signal.SIGKILL)
    code, out, err = finish(proc, seen)

    assert code == 0, err[-3000:]
    assert summary(run_dir)["status"] == "completed"
    replacements = [cmd for p, cmd in seen.items() if is_worker_process(cmd) and p not in forked]
    assert len(replacements) == 1 and "spawn_main" in replacements[0], replacements
    restart = next(r for r in rows(run_dir) if r["kind"] == "worker_restart")
    later = [r for r in rows(run_dir) if r["kind"] == "train" and r["env_step"] > restart["env_step"]]
    assert any(r["worker"] == restart["worker"] for r in later)


def test_run_fails_once_max_restarts_are_used_up(tmp_path):
    run_dir = tmp_path / "run"
    proc = start_run(run_dir, FAULTY_ENV, "executor=thread", "executor.max_restarts=2",
                     "total_steps=100000")
    code, _, err = finish(proc)

    assert code == 1
    result = summary(run_dir)
    assert result["status"] == "failed"
    assert "executor.max_restarts=2 used up" in result["error"]
    restarts = [r for r in rows(run_dir) if r["kind"] == "worker_restart"]
    assert [r["restart"] for r in restarts] == [1, 2]
    assert all("injected env failure" in r["reason"] for r in restarts)
    assert "rlplug: run failed: worker" in err and "injected env failure" in err


def test_non_finite_loss_stops_the_run_naming_worker_and_step_and_keeps_last_good_checkpoint(
        tmp_path):
    run_dir = tmp_path / "run"
    # One worker: the NaN reward arrives at a known env step (after 2000 good ones, 1 ms each),
    # and no other worker adds steps afterwards. Restarts are allowed, but a non-finite loss is
    # not restarted.
    proc = start_run(run_dir, "env.id=a3c_failure_helpers:Paced-v0",
                     "+env.kwargs.nan_after=2000", "executor=process", "executor.workers=1",
                     "algo.n_steps=5", "algo.envs_per_worker=1", "checkpoint.every_steps=400", "total_steps=100000")
    code, _, err = finish(proc)

    assert code == 1
    result = summary(run_dir)
    assert result["status"] == "failed"
    last_line = err.strip().splitlines()[-1]
    assert "NonFiniteError: non-finite loss or gradient in worker 0 at env step 2005" in last_line
    assert result["env_steps"] == 2005
    assert not any(r["kind"] == "worker_restart" for r in rows(run_dir))
    checkpoint = load_checkpoint(run_dir)
    # The last periodic checkpoint stays and holds a finite model. (It may be the one at 2005: the
    # worker counts a segment's steps before its update fails, and the NaN never reached the
    # model; a tick between the two checkpoints that good model.)
    assert 400 <= checkpoint["env_steps"] <= 2005
    assert all_finite(checkpoint["algorithm"])


def test_raising_workers_are_restarted_and_training_reaches_total_steps(train_run, metrics_rows,
                                                                        tmp_path, support_on_path,
                                                                        no_leftovers):
    # Every env instance raises after 300 steps, so each worker fails several times on the way.
    result = train_run(FAULTY_ENV, "executor=thread", "executor.workers=2",
                       "algo.envs_per_worker=1", "executor.max_restarts=50", "total_steps=2000",
                       run_dir=tmp_path / "run")

    assert result.status == "completed", result.error
    assert result.summary["env_steps"] == 2000  # failed segments' steps were given back
    restarts = [r for r in metrics_rows(tmp_path / "run") if r["kind"] == "worker_restart"]
    assert len(restarts) >= 4
    assert [r["restart"] for r in restarts] == list(range(1, len(restarts) + 1))
    assert [r["env_step"] for r in restarts] == sorted(r["env_step"] for r in restarts)
    assert all("injected env failure" in r["reason"] and "Traceback" in r["traceback"]
               for r in restarts)


# -- the executors themselves, in-process, with real worker processes and threads ---------------
def test_process_worker_that_ignores_stop_is_killed_after_stop_timeout(support_on_path,
                                                                      no_leftovers):
    import a3c_failure_helpers

    executor = ProcessExecutor(ProcessExecutorConfig(workers=1, stop_timeout_s=0.5))
    pids: list[int] = []

    def on_message(msg: dict[str, Any]) -> None:
        pids.append(msg["pid"])
        executor.request_stop()

    executor.run(a3c_failure_helpers.ignore_stop, model=CountingModel(), seeds=[0],
                 counters=SharedCounters(),
                 total_steps=100, on_message=on_message, on_tick=lambda: None)

    assert len(pids) == 1
    assert not psutil.pid_exists(pids[0])


@pytest.mark.parametrize("policy,max_restarts,restarts", [("restart", 2, [1, 2]),
                                                          ("restart", 0, []), ("stop", 3, [])])
def test_failure_policy_decides_restarts_before_the_run_fails(policy, max_restarts, restarts,
                                                              no_leftovers):
    cfg = ThreadExecutorConfig(workers=2, on_worker_failure=policy, max_restarts=max_restarts)
    run = run_executor(ThreadExecutor, cfg, StepWorker(chunk=7, sleep_s=0.002, fail_rank=0),
                       total_steps=10**9)

    assert isinstance(run.error, WorkerFailure) and run.error.rank == 0
    assert [m["restart"] for m in run.messages if m["kind"] == "worker_restart"] == restarts
    if restarts:
        assert f"executor.max_restarts={max_restarts} used up" in run.error.details
