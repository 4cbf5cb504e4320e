"""``executor=serial``: every worker in the main process, one at a time, round-robin with one
update per turn. It keeps the Executor contract, every worker acts, the budget is exact, a run is
reproducible from its seed, and Ctrl-C stops it cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from rlplug import messages
from rlplug.checkpoint import load_checkpoint
from rlplug.contracts import WorkerContext
from rlplug.testing import check_executor, run_executor
from rlplug_a3c.configs import SerialExecutorConfig
from rlplug_a3c.executors.serial import SerialExecutor

HANG_GUARD_S = 300


def test_serial_executor_keeps_the_executor_contract() -> None:
    check_executor(SerialExecutor, SerialExecutorConfig(workers=2, on_worker_failure="stop"))
    check_executor(SerialExecutor, SerialExecutorConfig(workers=3, on_worker_failure="stop"))


class TurnRecorder:
    """A worker that pushes one update per loop and records, from inside the worker, how many
    workers are running at that moment."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most_running = 0
        self.threads: set[str] = set()

    def __call__(self, ctx: WorkerContext) -> None:
        local = torch.zeros(ctx.model.num_parameters)
        while not ctx.stop_requested():
            with self.lock:
                self.running += 1
                self.most_running = max(self.most_running, self.running)
                self.threads.add(threading.current_thread().name)
            granted = ctx.counters.reserve_steps(5, ctx.total_steps)
            time.sleep(0.001)  # room for another thread to run, were it allowed to
            if granted:
                ctx.model.pull(local)
                ctx.model.push(torch.ones_like(local), 0.0)
                env_step = ctx.counters.add(granted, episodes=1)
                ctx.send(messages.episode(ctx.rank, env_step, 0.0, granted))
            with self.lock:
                self.running -= 1


def test_workers_take_turns_one_update_each_never_two_at_once() -> None:
    recorder = TurnRecorder()
    run = run_executor(SerialExecutor, SerialExecutorConfig(workers=3), recorder,
                       total_steps=5 * 3 * 20, timeout_s=60)
    assert run.error is None and not run.timed_out, run.error
    assert run.env_steps == 300
    ranks = [m["worker"] for m in run.messages if m["kind"] == messages.EPISODE]
    assert ranks == [0, 1, 2] * 20, ranks  # round-robin, one update per turn
    assert recorder.most_running == 1, "two workers ran at the same time"
    assert len(recorder.threads) == 3 and threading.main_thread().name not in recorder.threads


def test_a_worker_waiting_for_the_end_lets_the_others_go_on() -> None:
    """Worker 0 reserves nothing and only polls stop_requested(); the others still finish."""
    def target(ctx: WorkerContext) -> None:
        if ctx.rank == 0:
            while not ctx.stop_requested():
                pass
            return
        local = torch.zeros(ctx.model.num_parameters)
        while not ctx.stop_requested():
            granted = ctx.counters.reserve_steps(7, ctx.total_steps)
            if granted:
                ctx.model.pull(local)
                ctx.model.push(torch.zeros_like(local), 0.0)
                ctx.counters.add(granted)

    run = run_executor(SerialExecutor, SerialExecutorConfig(workers=2), target, total_steps=700,
                       timeout_s=60)
    assert run.error is None and not run.timed_out
    assert run.env_steps == 700
    assert run.model_state is not None and int(run.model_state["version"]) == 100


def _train(tmp_path: Path, name: str, *overrides: str) -> Path:
    run_dir = tmp_path / name
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run(
        [sys.executable, "-m", "rlplug", "env=cartpole", "executor=serial", "executor.workers=2",
         "logger.mode=disabled", "progress=false", "checkpoint.every_steps=0",
         f"hydra.run.dir={run_dir}", *overrides],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def _episodes(run_dir: Path) -> list[tuple[int, int, float, int]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["worker"], r["env_step"], r["return"], r["length"]) for r in rows
            if r["kind"] == messages.EPISODE]


def test_serial_training_is_reproducible_every_worker_acts_and_the_budget_is_exact(
        tmp_path: Path) -> None:
    # 4003: no multiple of a worker's segment, so the last reservation is cut
    first = _train(tmp_path, "first", "seed=7", "total_steps=4003")
    second = _train(tmp_path, "second", "seed=7", "total_steps=4003")
    other = _train(tmp_path, "other", "seed=8", "total_steps=4003")

    episodes = _episodes(first)
    assert episodes and _episodes(second) == episodes  # same seed: the very same run
    assert _episodes(other) != episodes
    assert {worker for worker, *_ in episodes} == {0, 1}, "every worker must act"
    a, b = load_checkpoint(first), load_checkpoint(second)
    assert a["env_steps"] == b["env_steps"] == 4003
    assert torch.equal(a["algorithm"]["model"]["params"], b["algorithm"]["model"]["params"])
    summary = json.loads((first / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["env_steps"] == 4003


def test_ctrl_c_stops_a_serial_run_between_turns_and_saves_the_outputs(tmp_path: Path,
                                                                      ctrl_c) -> None:
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlplug", "env=cartpole", "executor=serial", "executor.workers=2",
         "total_steps=100000000", "logger.mode=disabled", "progress=false",
         "logger.train_log_every_s=0.2", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.jsonl"
    stderr = ctrl_c(proc, lambda: metrics.exists() and '"kind": "train"' in metrics.read_text(),
                    poll_s=0.1)
    assert proc.returncode == 130, stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert load_checkpoint(run_dir)["env_steps"] == summary["env_steps"] > 0
