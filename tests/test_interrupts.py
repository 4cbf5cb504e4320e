"""SIGINT and SIGTERM during training: the workers stop, the final checkpoint, metrics.jsonl and
summary.json (status "interrupted") are written, the W&B run is finished, the exit code is 130 or
143, and no process of the run is left.

Every run is a real ``python -m rlplug`` subprocess; the signal goes out once metrics.jsonl shows
env steps, to the main process alone (``kill <pid>``) or to its whole process group (Ctrl-C in a
terminal, a batch scheduler, ``docker stop``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from rlplug.checkpoint import load_checkpoint
from rlplug.outputs import read_metrics
from rlplug.testing import descendant_processes, is_worker_process

TESTS_DIR = Path(__file__).resolve().parent
HANG_GUARD_S = 180  # only against hangs; nothing here asserts on timing
UNREACHABLE_STEPS = 10**8


def start_run(run_dir: Path, *overrides: str) -> subprocess.Popen:
    """``python -m rlplug`` in its own process group (so a group signal reaches only the run)."""
    cmd = [sys.executable, "-m", "rlplug", "env=cartpole", f"total_steps={UNREACHABLE_STEPS}",
           "progress=false", "logger.train_log_every_s=0.2", f"hydra.run.dir={run_dir}", *overrides]
    return subprocess.Popen(cmd, cwd=run_dir.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def env_steps_seen(run_dir: Path) -> int:
    return max((r.get("env_step", 0) for r in read_metrics(run_dir / "metrics.jsonl")), default=0)




def run_until_training(proc: subprocess.Popen, run_dir: Path, workers: int
                       ) -> dict[psutil.Process, str]:
    """Wait until the run has made env steps and all its worker processes are up; returns the
    run's processes at that moment."""
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        processes = descendant_processes(proc.pid)
        spawned = [cmd for cmd in processes.values() if is_worker_process(cmd)]
        if env_steps_seen(run_dir) > 0 and len(spawned) >= workers:
            return processes
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the run never started training: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)


def stop_seconds(run_dir: Path) -> float:
    """How long the workers took to stop, as the executor logged it."""
    match = re.search(r"all workers stopped ([0-9.]+) s after the stop request",
                      (run_dir / "rlplug.log").read_text())
    assert match, "the executor did not log the shutdown"
    return float(match.group(1))


def assert_outputs_of_interrupted_run(run_dir: Path, steps_before_signal: int) -> dict[str, Any]:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert steps_before_signal <= summary["env_steps"] < UNREACHABLE_STEPS
    checkpoint = load_checkpoint(run_dir)
    # the final checkpoint, written after the workers stopped
    assert checkpoint["env_steps"] == summary["env_steps"]
    assert checkpoint["episodes"] == summary["episodes"]
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert any(r["kind"] == "episode" for r in rows) and any(r["kind"] == "train" for r in rows)
    assert max(r["env_step"] for r in rows) <= summary["env_steps"]
    assert (run_dir / "learning_curve.png").stat().st_size > 0
    return summary


@pytest.mark.parametrize("signum,to_group,logger,exit_code", [
    (signal.SIGINT, True, "offline", 130),  # Ctrl-C: W&B's own service process gets it too
    (signal.SIGTERM, False, "disabled", 143),  # kill <pid>
    (signal.SIGTERM, True, "disabled", 143),  # a batch scheduler or `docker stop`
], ids=["sigint-group-wandb", "sigterm-main", "sigterm-group"])
def test_signal_stops_workers_and_writes_every_output(signum, to_group, logger, exit_code,
                                                      tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    proc = start_run(run_dir, "executor=process", "executor.workers=2", f"logger.mode={logger}")
    processes = run_until_training(proc, run_dir, workers=2)
    steps_before = env_steps_seen(run_dir)

    if to_group:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    _, err = proc.communicate(timeout=HANG_GUARD_S)

    assert proc.returncode == exit_code, err[-3000:]
    summary = assert_outputs_of_interrupted_run(run_dir, steps_before)
    assert f"rlplug: interrupted at {summary['env_steps']} env steps" in err
    _, left = psutil.wait_procs(list(processes), timeout=10)  # the resource tracker needs a moment
    assert not left, f"processes left behind: {[processes[p] for p in left]}"
    if logger == "offline":
        monkeypatch.syspath_prepend(str(TESTS_DIR))
        import wandb_records

        [wandb_file] = wandb_records.run_files(run_dir)
        wandb_run = wandb_records.read_run(wandb_file)
        assert wandb_run.exit_code == exit_code
        assert wandb_run.summary["status"] == "interrupted"
        assert wandb_run.summary["env_steps"] == summary["env_steps"]
    print(f"{signal.Signals(signum).name} to {'group' if to_group else 'main'}: workers stopped "
          f"{stop_seconds(run_dir):.2f} s after the stop request")


def test_repeated_signals_do_not_cut_the_final_writes_short(tmp_path):
    # thread workers: the same main-process handling, without process start-up
    run_dir = tmp_path / "run"
    proc = start_run(run_dir, "executor=thread", "executor.workers=2", "logger.mode=disabled")
    run_until_training(proc, run_dir, workers=0)
    steps_before = env_steps_seen(run_dir)

    proc.send_signal(signal.SIGINT)
    for _ in range(3):  # an impatient user, then a scheduler
        time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=HANG_GUARD_S)

    assert proc.returncode == 130, err[-3000:]  # the first signal decides
    assert "Traceback" not in err
    assert_outputs_of_interrupted_run(run_dir, steps_before)
