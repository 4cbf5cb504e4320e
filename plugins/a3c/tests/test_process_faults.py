"""Process faults that used to hang a run, leave orphans or turn Ctrl-C into a failure: a worker
killed inside a critical section (the shared optimizer's, the counters'), a worker that stops
making progress (a hung ``env.step``, SIGSTOP), Ctrl-C while the workers are still starting,
SIGKILL of the main process, too many workers for the memory, and a small budget spent before a
late worker booted.

Every run is a real ``python -m rlplug`` subprocess with real worker processes (or threads) and
real signals; the faults come from ``a3c_fault_injection`` (an env that hangs, or that makes its
worker stop inside a lock), which the workers import by the env id.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from rlplug.outputs import read_metrics
from rlplug.testing import descendant_processes, is_worker_process

HERE = Path(__file__).resolve().parent
HANG_GUARD_S = 240  # only against hangs: a run that needs it has failed
FAULT_ENV = "env.id=a3c_fault_injection:Fault-v0"
# Runs in which a replacement worker must still train: at most ~500 env steps/s per worker, so
# that the survivor cannot spend the budget while the replacement boots (10-15 s on a loaded
# machine). ``at`` counts the steps of one env instance (a worker may step several).
SLOW = "+env.kwargs.step_s=0.002"
LONG_TOTAL = 16_000


def start_run(run_dir: Path, *overrides: str) -> subprocess.Popen:
    """``python -m rlplug`` in its own process group (a group signal reaches only the run)."""
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "rlplug", f"hydra.run.dir={run_dir}", "logger.mode=disabled",
           "progress=false", "logger.train_log_every_s=0.2", "checkpoint.every_steps=0",
           *overrides]
    return subprocess.Popen(cmd, cwd=run_dir.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


class Watcher:
    """Follows a run: every process it starts, until it ends."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.seen: dict[psutil.Process, str] = {}

    def poll(self) -> None:
        self.seen.update(descendant_processes(self.proc.pid))

    def workers(self) -> list[psutil.Process]:
        """The run's live worker processes (not multiprocessing's resource tracker)."""
        out = []
        for process, cmd in descendant_processes(self.proc.pid).items():
            if is_worker_process(cmd):
                out.append(process)
        return out

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + HANG_GUARD_S
        while not condition():
            self.poll()
            if self.proc.poll() is not None:
                raise AssertionError(f"the run ended before {what}: "
                                     f"{self.proc.communicate()[1][-3000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.02)

    def finish(self) -> tuple[int, str]:
        """Wait for the run to end (recording its processes); returns exit code and stderr."""
        deadline = time.monotonic() + HANG_GUARD_S
        while self.proc.poll() is None:
            self.poll()
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"the run hung: {self.proc.communicate()[1][-3000:]}")
            time.sleep(0.05)
        _, err = self.proc.communicate()
        return self.proc.returncode, err

    def leftovers(self, timeout: float = 10.0) -> list[str]:
        """The run's processes still alive ``timeout`` s from now (the resource tracker needs a
        moment after the main process)."""
        _, alive = psutil.wait_procs(list(self.seen), timeout=timeout)
        return [self.seen[p] for p in alive]

    def kill(self) -> None:
        for process in [*self.seen, psutil.Process(self.proc.pid)]:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass


def rows(run_dir: Path, kind: str | None = None) -> list[dict[str, Any]]:
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if kind in (None, r["kind"])]


def summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())


def victim_pid(marker: Path) -> int | None:
    return int(marker.read_text()) if marker.exists() else None


def assert_completed_with_one_restart(run_dir: Path, code: int, err: str, total: int,
                                      reason: str) -> dict[str, Any]:
    assert code == 0, err[-3000:]
    result = summary(run_dir)
    assert result["status"] == "completed"
    # The failed worker's reserved steps went back to the budget, and nothing was counted twice.
    assert result["env_steps"] == total
    restarts = rows(run_dir, "worker_restart")
    assert len(restarts) == 1, restarts
    assert reason in restarts[0]["reason"], restarts[0]["reason"]
    later = [r for r in rows(run_dir) if r["kind"] == "train"
             and r["wall_s"] > restarts[0]["wall_s"]]
    # both the survivor and the replacement trained after the restart
    assert {r["worker"] for r in later} == {0, 1}, later[-5:]
    return restarts[0]


# -- a worker killed inside a critical section ---------------------------------------------------
def last_env_step(run_dir: Path) -> int:
    return max((r.get("env_step", 0) for r in rows(run_dir)), default=0)


@pytest.mark.parametrize("fault", ["optimizer_lock", "counters_lock"])
def test_worker_killed_inside_a_critical_section_does_not_block_the_run(fault, tmp_path):
    run_dir, marker, total = tmp_path / "run", tmp_path / "victim", LONG_TOTAL
    run = Watcher(start_run(run_dir, FAULT_ENV, f"+env.kwargs.fault={fault}",
                            "+env.kwargs.at=5", SLOW,
                            f"+env.kwargs.marker={marker}", "executor=process",
                            "executor.workers=2", f"total_steps={total}"))
    run.wait_for(lambda: victim_pid(marker) is not None, "a worker to stop inside the lock")
    time.sleep(0.5)
    before = last_env_step(run_dir)
    time.sleep(1.5)
    # The other worker is blocked on the lock (unblocked it would have made 1500 steps): the fault is real.
    assert last_env_step(run_dir) - before <= 300
    os.kill(victim_pid(marker), signal.SIGKILL)
    code, err = run.finish()

    restart = assert_completed_with_one_restart(run_dir, code, err, total,
                                                "killed by signal SIGKILL")
    assert not run.leftovers()
    print(f"{fault}: killed at env step {restart['env_step']}, {restart['released_steps']} "
          f"reserved steps given back")


@pytest.mark.parametrize("fault,signum,exit_code", [
    ("counters_lock", signal.SIGINT, 130), ("optimizer_lock", signal.SIGTERM, 143)])
def test_stop_signal_ends_a_run_whose_worker_hangs_inside_a_lock(fault, signum, exit_code,
                                                                 tmp_path):
    run_dir, marker = tmp_path / "run", tmp_path / "victim"
    run = Watcher(start_run(run_dir, FAULT_ENV, f"+env.kwargs.fault={fault}",
                            "+env.kwargs.at=5", f"+env.kwargs.marker={marker}",
                            "executor=process", "executor.workers=2", "executor.stop_timeout_s=2",
                            "total_steps=100000000"))
    run.wait_for(lambda: victim_pid(marker) is not None, "a worker to stop inside the lock")
    time.sleep(1.0)
    signalled = time.monotonic()
    os.killpg(run.proc.pid, signum)  # the victim ignores it, like every worker
    code, err = run.finish()

    assert code == exit_code, err[-3000:]
    assert time.monotonic() - signalled < 60
    assert summary(run_dir)["status"] == "interrupted"
    assert "forcing them" in (run_dir / "rlplug.log").read_text()
    assert not rows(run_dir, "worker_restart")
    assert not run.leftovers()


# -- the watchdog ---------------------------------------------------------------------------------
@pytest.mark.parametrize("executor", ["process", "thread"])
def test_worker_stuck_in_env_step_is_given_up_and_the_run_completes(executor, tmp_path):
    run_dir, marker, total = tmp_path / "run", tmp_path / "victim", LONG_TOTAL
    run = Watcher(start_run(run_dir, FAULT_ENV, "+env.kwargs.fault=hang", "+env.kwargs.at=20",
                            SLOW, f"+env.kwargs.marker={marker}",
                            f"executor={executor}", "executor.workers=2",
                            "executor.worker_timeout_s=3", f"total_steps={total}"))
    code, err = run.finish()

    assert victim_pid(marker) is not None, "no worker hung: the test did not test anything"
    restart = assert_completed_with_one_restart(run_dir, code, err, total, "made no progress")
    if executor == "thread":
        assert "cannot be killed and was abandoned" in restart["reason"]
    assert not run.leftovers()


def test_abandoned_thread_that_wakes_up_later_changes_no_counter(tmp_path):
    run_dir, marker, total = tmp_path / "run", tmp_path / "victim", 30_000
    # Worker threads do about 1000 steps/s at most here: the hung one wakes (6 s) before the end.
    run = Watcher(start_run(run_dir, FAULT_ENV, "+env.kwargs.fault=hang", "+env.kwargs.at=20",
                            "+env.kwargs.hang_s=6", "+env.kwargs.step_s=0.001",
                            f"+env.kwargs.marker={marker}", "executor=thread",
                            "executor.workers=2", "executor.worker_timeout_s=2",
                            f"total_steps={total}"))
    code, err = run.finish()

    assert Path(f"{marker}.woke").exists(), "the run ended before the hung thread woke up"
    assert_completed_with_one_restart(run_dir, code, err, total, "abandoned")
    result = summary(run_dir)
    episodes = rows(run_dir, "episode")
    # the woken thread counted nothing and its messages were dropped: the counts still agree
    assert len(episodes) == result["episodes"]
    assert sum(r["length"] for r in episodes) <= total


def test_stopped_worker_process_is_killed_and_replaced(tmp_path):
    run_dir, total = tmp_path / "run", LONG_TOTAL
    run = Watcher(start_run(run_dir, "env.id=a3c_failure_helpers:Paced-v0",
                            SLOW, "executor=process", "executor.workers=2",
                            "executor.worker_timeout_s=3", f"total_steps={total}"))
    run.wait_for(lambda: len(run.workers()) == 2 and rows(run_dir, "train"), "training")
    victim = run.workers()[0]
    victim.send_signal(signal.SIGSTOP)
    code, err = run.finish()

    assert_completed_with_one_restart(run_dir, code, err, total, "made no progress")
    assert not victim.is_running()
    assert not run.leftovers()


def test_whole_run_suspended_and_resumed_is_not_a_worker_failure(tmp_path):
    # Ctrl-Z, then `fg`: every process was stopped longer than the timeout, none has failed.
    run_dir, total = tmp_path / "run", 12_000
    run = Watcher(start_run(run_dir, "env.id=a3c_failure_helpers:Paced-v0",
                            "+env.kwargs.step_s=0.001", "executor=process", "executor.workers=2",
                            "executor.worker_timeout_s=2", f"total_steps={total}"))
    run.wait_for(lambda: len(run.workers()) == 2 and rows(run_dir, "train"), "training")
    os.killpg(run.proc.pid, signal.SIGSTOP)
    time.sleep(6)
    os.killpg(run.proc.pid, signal.SIGCONT)
    code, err = run.finish()

    assert code == 0, err[-3000:]
    assert summary(run_dir)["env_steps"] == total
    assert not rows(run_dir, "worker_restart")


# -- signals and deaths at the wrong moment -------------------------------------------------------
@pytest.mark.parametrize("delay_s", [0.0, 0.3, 1.0, 2.0])
def test_ctrl_c_while_workers_start_ends_the_run_interrupted(delay_s, tmp_path):
    run_dir, workers = tmp_path / "run", 4
    run = Watcher(start_run(run_dir, "env=cartpole", "executor=process",
                            f"executor.workers={workers}", "total_steps=100000000"))
    run.wait_for(lambda: run.workers(), "the first worker process")
    time.sleep(delay_s)
    os.killpg(run.proc.pid, signal.SIGINT)  # Ctrl-C in the terminal: every process gets it
    code, err = run.finish()

    assert code == 130, err[-3000:]
    assert summary(run_dir)["status"] == "interrupted"
    assert not rows(run_dir, "worker_restart")
    assert "KeyboardInterrupt" not in err
    started = [cmd for cmd in run.seen.values() if is_worker_process(cmd)]
    assert len(started) <= workers  # no replacement was launched
    assert not run.leftovers()


@pytest.mark.parametrize("moment", ["booting", "one_hung_in_env_step"])
def test_no_worker_outlives_a_killed_main_process(moment, tmp_path):
    run_dir, marker = tmp_path / "run", tmp_path / "victim"
    run = Watcher(start_run(run_dir, FAULT_ENV, "+env.kwargs.fault=hang", "+env.kwargs.at=20",
                            f"+env.kwargs.marker={marker}", "executor=process",
                            "executor.workers=3", "total_steps=100000000"))
    if moment == "booting":
        run.wait_for(lambda: run.workers(), "the first worker process")
    else:  # one worker never returns from env.step (no stop check), the others train
        run.wait_for(lambda: victim_pid(marker) is not None, "a worker to hang")
    workers = run.workers()
    run.proc.send_signal(signal.SIGKILL)
    run.proc.wait()
    _, alive = psutil.wait_procs(workers, timeout=5)

    assert not alive, [p.pid for p in alive]
    assert not run.leftovers()


def test_too_many_process_workers_for_the_memory_are_refused_before_starting(tmp_path):
    run_dir = tmp_path / "run"
    run = Watcher(start_run(run_dir, "env=cartpole", "executor=process",
                            "executor.workers=1000"))
    code, err = run.finish()

    assert code == 2, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlplug: error: executor.workers=1000 process "
                                                   "workers need about"), err
    assert not any(is_worker_process(cmd) for cmd in run.seen.values())


# -- a small budget -------------------------------------------------------------------------------
def test_every_process_worker_acts_in_a_small_run(tmp_path):
    run_dir, workers = tmp_path / "run", 3
    run = Watcher(start_run(run_dir, "env=cartpole", "executor=process",
                            f"executor.workers={workers}", "total_steps=2000"))
    code, err = run.finish()

    assert code == 0, err[-3000:]
    steps = {rank: sum(r["length"] for r in rows(run_dir, "episode") if r["worker"] == rank)
             for rank in range(workers)}
    assert all(steps[rank] > 0 for rank in range(workers)), steps
    print(f"env steps in finished episodes per worker: {steps}")
