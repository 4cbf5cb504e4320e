"""The thread and process executors: the Executor contract (``rlplug.testing.check_executor``),
A3C runs that end at exactly total_steps, and worker failures that end a run cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

from rlplug import messages
from rlplug.checkpoint import load_checkpoint
from rlplug.testing import check_executor
from rlplug_a3c.configs import ProcessExecutorConfig, ThreadExecutorConfig
from rlplug_a3c.executors.process import ProcessExecutor
from rlplug_a3c.executors.thread import ThreadExecutor

EXECUTORS = ["thread", "process"]
FAULTY_ENV = "env.id=a3c_test_support:FaultyCartPole-v0"


# -- the contract ----------------------------------------------------------------------------------
def test_thread_executor_keeps_the_executor_contract() -> None:
    check_executor(ThreadExecutor, ThreadExecutorConfig(workers=3, on_worker_failure="stop"))


def test_process_executor_keeps_the_executor_contract() -> None:
    # A long stop timeout: on a busy machine a worker process may still be booting when the
    # others have spent the budget, and check_executor wants to hear from every worker.
    check_executor(ProcessExecutor, ProcessExecutorConfig(workers=2, on_worker_failure="stop",
                                                          stop_timeout_s=60.0))


_RELEASE_LEAKED = threading.Event()


class _LeakyThreadExecutor(ThreadExecutor):
    """Breaks the contract: leaves a thread running after ``run`` returns."""

    def run(self, target, **kwargs) -> None:  # type: ignore[no-untyped-def]
        threading.Thread(target=_RELEASE_LEAKED.wait, args=(30,), name="leaked", daemon=True).start()
        super().run(target, **kwargs)


class _OverBudgetThreadExecutor(ThreadExecutor):
    """Breaks the contract: gives its workers a larger budget than the run's."""

    def run(self, target, *, total_steps: int, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().run(target, total_steps=total_steps + 50, **kwargs)


def test_check_executor_catches_a_leaked_thread() -> None:
    executor_cfg = ThreadExecutorConfig(workers=2, on_worker_failure="stop")
    try:
        with pytest.raises(AssertionError, match="still running: threads \\['leaked'\\]"):
            check_executor(_LeakyThreadExecutor, executor_cfg, check_failure=False,
                           check_interrupt=False)
    finally:
        _RELEASE_LEAKED.set()


def test_check_executor_catches_an_executor_that_overshoots_the_budget() -> None:
    executor_cfg = ThreadExecutorConfig(workers=2, on_worker_failure="stop")
    with pytest.raises(AssertionError, match="budget"):
        check_executor(_OverBudgetThreadExecutor, executor_cfg, check_failure=False,
                       check_interrupt=False)


# -- A3C runs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("executor", EXECUTORS)
def test_a3c_run_ends_at_exactly_total_steps(executor: str, train_run, metrics_rows, tmp_path,
                                             no_leftovers) -> None:
    # 2003 is no multiple of n_steps * workers: the last reservations must be partial
    result = train_run("env=cartpole", f"executor={executor}", "executor.workers=2",
                       "total_steps=2003", run_dir=tmp_path / "run")
    assert result.status == "completed" and result.exit_code == 0
    assert result.summary["env_steps"] == 2003
    assert load_checkpoint(tmp_path / "run")["env_steps"] == 2003
    rows = metrics_rows(tmp_path / "run")
    episodes = [r for r in rows if r["kind"] == messages.EPISODE]
    assert episodes and sum(r["length"] for r in episodes) <= 2003
    assert result.summary["episodes"] == len(episodes)
    trained = {r["worker"] for r in rows if r["kind"] == messages.TRAIN}
    assert trained <= {0, 1} and trained
    if executor == "thread":  # threads start at once; a process may boot after the budget is spent
        assert trained == {0, 1}, "every worker must have trained and reported"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_worker_exception_fails_the_run_with_its_traceback(executor: str, train_run, tmp_path,
                                                           support_on_path, no_leftovers) -> None:
    import a3c_test_support

    run_dir = tmp_path / "run"
    result = train_run(FAULTY_ENV, f"executor={executor}", "executor.workers=2",
                       "algo.envs_per_worker=1", "executor.on_worker_failure=stop",
                       "total_steps=5000", run_dir=run_dir)
    assert result.status == "failed" and result.exit_code != 0
    assert result.error is not None
    assert a3c_test_support.FAILURE_TEXT in result.error
    assert "Traceback (most recent call last)" in result.error
    assert "a3c_test_support.py" in result.error, "the traceback must be the worker's own"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert a3c_test_support.FAILURE_TEXT in summary["error"]
    assert summary["env_steps"] < 5000
    assert (run_dir / "checkpoint.pt").exists(), "outputs are written even when a run fails"


def _processes_with(marker: str) -> list[str]:
    """Running processes whose environment carries ``marker`` (a run's children inherit it)."""
    name, value = marker.split("=", 1)
    found = []
    for process in psutil.process_iter():
        try:
            if (process.environ().get(name) == value
                    and process.status() != psutil.STATUS_ZOMBIE):
                found.append(f"{process.pid} {' '.join(process.cmdline())}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):  # gone, or another user's
            continue
    return found


def test_cli_run_with_a_failing_process_worker_exits_non_zero_and_leaves_no_process(
        tmp_path: Path, support_on_path: Path) -> None:
    marker = f"RLPLUG_TEST_RUN={uuid.uuid4().hex}"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(support_on_path), env.get("PYTHONPATH", "")])
    env.update([marker.split("=", 1)])
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "rlplug", FAULTY_ENV, "executor=process", "executor.workers=2",
         "algo.envs_per_worker=1", "executor.on_worker_failure=stop", "total_steps=5000",
         "logger.mode=disabled",
         "progress=false", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "run failed" in proc.stderr and "injected env failure" in proc.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    deadline = time.monotonic() + 5.0  # the resource tracker exits shortly after its parent
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(marker) == []
