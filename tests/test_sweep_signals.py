"""Signals to a parallel sweep (``hydra/launcher=joblib``): every running job stops as a single run
does (status interrupted, final checkpoint, summary, learning curve, W&B finished), queued jobs
do not start, the parent exits 130 (SIGINT) or 143 (SIGTERM), and no process outlives it.

Real sweeps through ``python -m rlplug -m`` with the real launcher (loky worker processes, each
running a job with process workers), and real signals: Ctrl-C reaches the whole process group,
SIGTERM only the parent (a scheduler, ``kill <pid>``).

Also: a job that fails does not take the other running jobs down (joblib kills every worker when
a job lets ``SystemExit`` out); the sweep exits 1 once all have ended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from rlplug.checkpoint import load_checkpoint
from rlplug.outputs import read_metrics
from rlplug.testing import descendant_processes

TESTS_DIR = Path(__file__).resolve().parent
HANG_GUARD_S = 300
SWEEP = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1,2",
         "env=cartpole", "total_steps=100000000", "executor=process", "executor.workers=1",
         "progress=false", "checkpoint.every_steps=0", "logger.train_log_every_s=0.2"]


def start_sweep(sweep: Path, *overrides: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.Popen([sys.executable, "-m", "rlplug", *SWEEP, *overrides,
                             f"hydra.sweep.dir={sweep}"], cwd=sweep.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def job_dirs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.glob("*_*") if p.is_dir()) if sweep.exists() else []


def steps(job: Path) -> int:
    return max((r.get("env_step", 0) for r in read_metrics(job / "metrics.jsonl")), default=0)


def wait_until(proc: subprocess.Popen, ready, what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"the sweep never {what}: {proc.communicate()[1][-3000:]}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen, signum: int, to_group: bool) -> tuple[str, dict]:
    """Send the signal; returns stderr and the processes the sweep had just before."""
    processes = descendant_processes(proc.pid)
    if to_group:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=HANG_GUARD_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return err, processes


def sweep_processes(parent_pid: int) -> list[psutil.Process]:
    """Every process started for the sweep, found by the environment the parent gave its loky
    workers (inherited by their own children): also those started after a snapshot."""
    mark = f"rlplug-sweep-{parent_pid}-"
    found = []
    for p in psutil.process_iter():
        try:
            if mark in p.environ().get("RLPLUG_SWEEP_STOP_FILE", ""):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def assert_nothing_left(parent_pid: int, processes: dict) -> None:
    _, left = psutil.wait_procs(list(processes), timeout=30)
    assert not left, f"processes outlived the sweep: {[processes[p][:120] for p in left]}"
    deadline = time.monotonic() + 30
    while (late := [p for p in sweep_processes(parent_pid) if p.is_running()
                    and p.status() != psutil.STATUS_ZOMBIE]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not late, f"processes outlived the sweep: {[' '.join(p.cmdline())[:120] for p in late]}"


@pytest.fixture
def wandb_records(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    import wandb_records

    return wandb_records


@pytest.mark.parametrize("signum,to_group,code,logger", [
    (signal.SIGINT, True, 130, "offline"),  # Ctrl-C in the terminal
    (signal.SIGTERM, False, 143, "disabled"),  # kill <parent pid>
], ids=["ctrl-c-to-group", "sigterm-to-parent"])
def test_signal_stops_running_jobs_cleanly_and_starts_no_queued_job(
        signum, to_group, code, logger, tmp_path, wandb_records):
    sweep = tmp_path / "sweep"
    proc = start_sweep(sweep, f"logger.mode={logger}")
    wait_until(proc, lambda: sum(steps(j) > 0 for j in job_dirs(sweep)) >= 2,
               "had two jobs training")

    err, processes = stop(proc, signum, to_group)

    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert f"rlplug: sweep stopped by {signal.Signals(signum).name}" in err
    assert_nothing_left(proc.pid, processes)
    jobs = job_dirs(sweep)
    summaries = {j.name: json.loads((j / "summary.json").read_text()) for j in jobs}
    trained = [j for j in jobs if summaries[j.name]["env_steps"] > 0]
    assert len(trained) == 2, summaries
    for job in trained:  # stopped as a single run stops
        summary = summaries[job.name]
        assert summary["status"] == "interrupted"
        assert load_checkpoint(job)["env_steps"] == summary["env_steps"]
        assert max(r["env_step"] for r in read_metrics(job / "metrics.jsonl")) \
            <= summary["env_steps"]
        assert (job / "learning_curve.png").stat().st_size > 0
        if logger == "offline":
            (wandb_file,) = wandb_records.run_files(job)
            wandb_run = wandb_records.read_run(wandb_file)
            assert wandb_run.exit_code == code
            assert wandb_run.summary["status"] == "interrupted"
    for job in set(jobs) - set(trained):  # the queued job never started
        assert summaries[job.name]["status"] == "interrupted"
        assert not (job / "metrics.jsonl").exists() and not (job / "checkpoint.pt").exists()


@pytest.mark.parametrize("signum,to_group,code", [
    (signal.SIGINT, True, 130), (signal.SIGTERM, False, 143)], ids=["ctrl-c", "sigterm"])
def test_signal_while_the_jobs_start_ends_the_sweep_cleanly(signum, to_group, code, tmp_path):
    sweep = tmp_path / "sweep"
    proc = start_sweep(sweep, "logger.mode=offline")
    wait_until(proc, lambda: len(job_dirs(sweep)) >= 1, "made a job directory")

    err, processes = stop(proc, signum, to_group)

    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert_nothing_left(proc.pid, processes)
    for job in job_dirs(sweep):
        summary = json.loads((job / "summary.json").read_text())
        assert summary["status"] == "interrupted", (job, summary)


FAILING_ENV = """
import gymnasium as gym
import numpy as np


class Fails(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self):
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}

    def step(self, action):
        self.steps += 1
        if self.steps > 200:
            raise RuntimeError("this env breaks after 200 steps")
        return np.zeros(4, np.float32), 1.0, self.steps % 20 == 0, False, {}


gym.register("Fails-v0", entry_point=Fails)
"""


def test_a_failing_job_does_not_take_the_other_running_job_down(tmp_path):
    (tmp_path / "failing_env.py").write_text(FAILING_ENV)
    sweep = tmp_path / "sweep"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-m", "rlplug", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
         "env.id=failing_env:Fails-v0,CartPole-v1", "total_steps=150000", "executor=process",
         "executor.workers=1", "executor.on_worker_failure=stop", "progress=false",
         "logger.mode=disabled", "checkpoint.every_steps=0", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)

    assert proc.returncode == 1, proc.stderr[-3000:]
    summaries = {j.name: json.loads((j / "summary.json").read_text()) for j in job_dirs(sweep)}
    failed = [s for name, s in summaries.items() if "Fails-v0" in name]
    completed = [s for name, s in summaries.items() if "CartPole-v1" in name]
    assert [s["status"] for s in failed] == ["failed"], summaries
    assert [(s["status"], s["env_steps"]) for s in completed] == [("completed", 150000)]
    assert "failed: worker 0 failed: RuntimeError: this env breaks after 200 steps" in proc.stderr
