"""Ctrl-C (SIGINT) and SIGTERM in the first seconds of ``python -m rlplug`` (imports, checks,
``wandb.init``) and during ``python -m rlplug.evaluate``: exit 130 (143 for SIGTERM) with at most
one line on stderr and no traceback, and a summary.json with status ``interrupted`` once the run
directory exists.

Real processes and real signals, sent to the process group as a terminal's Ctrl-C does: after
fixed delays (wherever they land), and at moments recognised from the files the run writes
(Hydra made the run directory; W&B started writing into it).
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

import pytest
from hydra import compose, initialize_config_module

from rlplug.config import to_run_config
from rlplug.plugins import install_search_path
from rlplug.run import train

RUN = ["env=cartpole", "executor=process", "executor.workers=1", "logger.mode=offline",
       "progress=false", "total_steps=100000000"]
HANG_GUARD_S = 300


def launch(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.Popen([sys.executable, "-m", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def interrupt(proc: subprocess.Popen, signum: int, when: Callable[[], bool]) -> str:
    """Send ``signum`` to the process group once ``when()`` holds; returns stderr."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not when():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"never reached the moment: {proc.communicate()[1][-3000:]}")
        time.sleep(0.005)
    os.killpg(proc.pid, signum)
    try:
        _, err = proc.communicate(timeout=HANG_GUARD_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return err


def after(seconds: float) -> Callable[[], bool]:
    at = time.monotonic() + seconds
    return lambda: time.monotonic() >= at


def assert_quiet_exit(proc: subprocess.Popen, err: str, code: int, prog: str) -> list[str]:
    messages = [line for line in err.splitlines() if line.strip() and not line.startswith("[")]
    assert proc.returncode == code, f"exit {proc.returncode}:\n{err[-3000:]}"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert len(messages) <= 1, err[-3000:]
    assert all(m.startswith(f"{prog}: interrupted") for m in messages), messages
    return messages


def assert_summary_if_run_dir(run_dir: Path) -> str:
    if not run_dir.exists():
        return "before the run directory"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    return f"in the run directory at {summary['env_steps']} env steps"


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0, 3.5, 5.0])
def test_ctrl_c_in_the_first_seconds_is_one_line_and_exit_130(delay, tmp_path):
    run_dir = tmp_path / "run"
    proc = launch(["rlplug", *RUN, f"hydra.run.dir={run_dir}"], tmp_path)
    err = interrupt(proc, signal.SIGINT, after(delay))
    assert_quiet_exit(proc, err, 130, "rlplug")
    print(f"SIGINT after {delay} s: {assert_summary_if_run_dir(run_dir)}")


MOMENTS = {  # the run directory is there (Hydra made it), W&B writes into it (wandb.init)
    "run_dir_made": lambda run_dir: (run_dir / ".hydra").exists(),
    "wandb_started": lambda run_dir: (run_dir / "wandb").exists(),
}


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["sigint", "sigterm"])
@pytest.mark.parametrize("moment", sorted(MOMENTS))
def test_signal_once_the_run_dir_exists_leaves_an_interrupted_summary(moment, signum, code,
                                                                     tmp_path):
    run_dir = tmp_path / "run"
    proc = launch(["rlplug", *RUN, f"hydra.run.dir={run_dir}"], tmp_path)
    err = interrupt(proc, signum, lambda: MOMENTS[moment](run_dir))
    assert_quiet_exit(proc, err, code, "rlplug")
    print(f"{signal.Signals(signum).name} once {moment}: {assert_summary_if_run_dir(run_dir)}")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    install_search_path()
    with initialize_config_module(config_module="rlplug.conf", version_base="1.3"):
        cfg = compose("config", overrides=["env=cartpole", "executor=thread",
                                           "executor.workers=1", "logger.mode=disabled",
                                           "progress=false", "total_steps=300"])
    assert train(to_run_config(cfg), run_dir).status == "completed"
    return run_dir


@pytest.mark.parametrize("delay", [0.3, 1.5, 3.0, 6.0])
def test_ctrl_c_in_evaluate_is_one_line_and_exit_130(delay, trained_run, tmp_path):
    proc = launch(["rlplug.evaluate", str(trained_run / "checkpoint.pt"), "episodes=100000"],
                  tmp_path)
    err = interrupt(proc, signal.SIGINT, after(delay))
    assert_quiet_exit(proc, err, 130, "rlplug.evaluate")
    assert not (trained_run / "eval.json").exists()
