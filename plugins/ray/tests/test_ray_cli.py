"""``executor=ray`` and cluster sweeps through the real command line, in subprocesses, exactly as a
user types them: Ctrl-C with a local Ray instance, bad Ray settings, and a sweep through Hydra's
submitit launcher."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from ray_test_support import rows_of, wait_for

from rlplug.checkpoint import load_checkpoint
from rlplug.errors import UserError
from rlplug.testing import descendant_processes
from rlplug_ray.config import RayExecutorConfig

CORE_TESTS_DIR = Path(__file__).resolve().parents[3] / "tests"
QUIET = ["logger.mode=disabled", "progress=false"]


def rlplug(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rlplug", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("rlplug: error:")]


def running(processes: list[psutil.Process]) -> list[str]:
    alive = []
    for proc in processes:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            continue
    return alive


def session_processes(session: str) -> list[psutil.Process]:
    """Every process whose command line names this Ray session (raylet, GCS, helpers)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if session in " ".join(proc.cmdline()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.parametrize(("signum", "to_group", "exit_code"), [
    (signal.SIGINT, True, 130),  # Ctrl-C in a terminal: the whole foreground process group
    (signal.SIGTERM, False, 143),  # `kill <pid>`, `docker stop`: the main process only
], ids=["ctrl_c", "sigterm"])
def test_a_stop_signal_with_a_local_ray_instance_saves_everything_and_leaves_no_ray_process(
        tmp_path, signum, to_group, exit_code):
    run_dir = tmp_path / "run"
    # A session of its own, so that a signal to the group reaches only this run.
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlplug", "env=cartpole", "executor=ray", "total_steps=100000000",
         *QUIET, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        wait_for("both workers training", lambda: proc.poll() is not None or (
            len(rows_of(run_dir, "worker_start")) == 2 and len(rows_of(run_dir, "episode")) >= 20),
            timeout=240)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        ray_processes = list(descendant_processes(proc.pid))
        commands = [" ".join(p.cmdline()) for p in ray_processes if p.is_running()]
        assert any("raylet" in c for c in commands) and any("gcs_server" in c for c in commands)
        assert sum("ray::RayWorker" in c for c in commands) == 2
        assert sum("ray::Hub" in c for c in commands) == 1
        session = next(part for c in commands if "gcs_server" in c for part in c.split()
                       if "session_" in part).rsplit("session_", 1)[1].split("/")[0]
        if to_group:
            os.killpg(proc.pid, signum)
        else:
            os.kill(proc.pid, signum)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == exit_code, stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    saved = load_checkpoint(run_dir)
    assert 0 < saved["env_steps"] == summary["env_steps"] < 100000000
    time.sleep(1.0)  # processes reparented to init may take a moment to be reaped
    assert not running(ray_processes), running(ray_processes)
    assert not running(session_processes(f"session_{session}")), session


def test_bad_ray_addresses_are_one_line_errors_before_any_worker_starts(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = rlplug("executor=ray", f"executor.address=127.0.0.1:{port}", *QUIET,
                    f"hydra.run.dir={tmp_path / 'refused'}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = error_lines(result.stderr)
    assert f"cannot reach Ray at executor.address=127.0.0.1:{port}" in line
    assert not rows_of(tmp_path / "refused", "worker_start")

    # A port that answers, but is no Ray head (a web server, like the dashboard's): no hang.
    server = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(server.stdout.readline().split(" port ")[1].split()[0])
        start = time.monotonic()
        result = rlplug("executor=ray", f"executor.address=127.0.0.1:{port}", *QUIET,
                        f"hydra.run.dir={tmp_path / 'web'}", cwd=tmp_path)
    finally:
        server.kill()
        server.wait()
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = error_lines(result.stderr)
    assert "answers, but not as a Ray head node" in line
    assert time.monotonic() - start < 60


@pytest.mark.parametrize(("key", "message"), [
    ("address=ray://head:10001", "Ray Client (ray://) addresses are not supported"),
    ("address=head", "executor.address must be null (a local Ray instance), auto"),
    ("num_cpus_per_worker=0", "executor.num_cpus_per_worker must be > 0"),
    ("object_store_mb=10", "executor.object_store_mb must be >= 80"),
])
def test_bad_ray_settings_are_refused_by_the_config_check(key, message):
    name, value = key.split("=")
    with pytest.raises(UserError) as caught:
        RayExecutorConfig(**{name: int(value) if value.isdigit() else value})
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.fixture
def wandb_records(monkeypatch: pytest.MonkeyPatch):
    """The core tests' reader of .wandb files (tests/wandb_records.py)."""
    monkeypatch.syspath_prepend(str(CORE_TESTS_DIR))
    import wandb_records

    return wandb_records


def test_a_sweep_through_the_submitit_launcher_runs_every_job_in_one_wandb_group(
        tmp_path, wandb_records):
    sweep = tmp_path / "scan"
    result = rlplug("-m", "hydra/launcher=submitit_local", "seed=0,1", "env=cartpole",
                    "executor=thread", "executor.workers=1", "total_steps=2000", "progress=false",
                    "checkpoint.every_steps=0", f"hydra.sweep.dir={sweep}", cwd=tmp_path,
                    timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if (p / "summary.json").exists())
    assert len(jobs) == 2
    assert (sweep / ".submitit").is_dir()  # the jobs really went through submitit
    for job in jobs:
        summary = json.loads((job / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["env_steps"] == 2000
    runs = [wandb_records.read_run(path) for job in jobs for path in wandb_records.run_files(job)]
    assert [r.group for r in runs] == ["scan", "scan"]
    assert runs[0].run_id != runs[1].run_id


def test_the_preflight_checks_every_job_before_submitit_submits_any(tmp_path):
    sweep = tmp_path / "scan"
    result = rlplug("-m", "hydra/launcher=submitit_local", "algo.lr=3e-4,-1", "env=cartpole",
                    "executor=ray", *QUIET, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 2
    (line,) = error_lines(result.stderr)
    assert "algo.lr must be > 0" in line
    assert not sweep.exists()  # nothing was submitted
