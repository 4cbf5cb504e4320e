"""Checkpoints and resume: checkpoints are written atomically, every ``checkpoint.every_steps``
and at the end; ``resume=<run dir>`` continues exactly where the checkpoint stopped: model,
optimizer state (its step count too), env-step and episode counters, RNG state, metrics.jsonl and
the learning curve.

The runs are real ``python -m rlplug`` subprocesses with process workers.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch
from hydra import compose, initialize_config_module

from rlplug.build import build_algorithm
from rlplug.checkpoint import all_finite, load_checkpoint, save_checkpoint
from rlplug.config import to_run_config
from rlplug.envs import probe_env
from rlplug.errors import UserError
from rlplug.outputs import read_metrics
from rlplug.plugins import install_search_path
from rlplug.resume import check_resumable

HANG_GUARD_S = 300  # only against hangs; nothing here asserts on timing
# One worker: the shared optimizer's step count is then exact (two processes could race on it).
BASE = ["env=cartpole", "executor=process", "logger.mode=disabled", "progress=false"]
RUN = [*BASE, "executor.workers=1"]


def rlplug(*overrides: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rlplug", *overrides], cwd=cwd,
                          capture_output=True, text=True, timeout=HANG_GUARD_S)


def compose_run(*overrides: str):
    install_search_path()
    with initialize_config_module(config_module="rlplug.conf", version_base="1.3"):
        return to_run_config(compose("config", overrides=[*RUN, *overrides]))


def updates_in(rows: list[dict[str, Any]]) -> int:
    """Optimizer steps the workers reported (each ``train`` row counts its updates)."""
    return int(sum(r["updates"] for r in rows if r["kind"] == "train"))


def assert_same_tensors(actual: Any, expected: Any, where: str = "state") -> None:
    if isinstance(expected, dict):
        assert set(actual) == set(expected), where
        for key in expected:
            assert_same_tensors(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, torch.Tensor):
        assert torch.equal(actual, expected), where
    else:
        assert actual == expected, where


def test_resume_continues_model_optimizer_counters_and_metrics_exactly(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    n = 1500
    done = rlplug(*RUN, f"total_steps={n}", f"hydra.run.dir={first}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = load_checkpoint(first)
    first_rows = read_metrics(first / "metrics.jsonl")
    first_episodes = [r for r in first_rows if r["kind"] == "episode"]
    assert saved["env_steps"] == n
    assert saved["episodes"] == len(first_episodes) > 0
    assert saved["algorithm"]["model"]["optimizer"]["step"].item() == updates_in(first_rows)

    # What resume loads is exactly the first run's final state.
    run = compose_run(f"resume={first}", f"total_steps={2 * n}")
    algo = build_algorithm(run, probe_env(run.env))
    loaded = check_resumable(run, algo)
    assert_same_tensors(algo.state_dict(), saved["algorithm"])
    assert torch.equal(loaded["rng"]["torch"], saved["rng"]["torch"])

    resumed = rlplug(*RUN, f"resume={first}", f"total_steps={2 * n}", f"hydra.run.dir={second}",
                     cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = load_checkpoint(second)
    rows = read_metrics(second / "metrics.jsonl")
    new_rows = rows[len(first_rows):]
    new_episodes = [r for r in new_rows if r["kind"] == "episode"]

    assert rows[:len(first_rows)] == first_rows  # the first run's rows, then the new ones
    assert new_rows and all(r["env_step"] > n for r in new_rows)
    assert final["env_steps"] == 2 * n
    assert final["episodes"] == saved["episodes"] + len(new_episodes)
    assert [r["episode"] for r in new_episodes] == list(
        range(saved["episodes"] + 1, saved["episodes"] + len(new_episodes) + 1))
    # Adam's step count (its bias correction) continues from the saved value.
    assert final["algorithm"]["model"]["optimizer"]["step"].item() == (
        saved["algorithm"]["model"]["optimizer"]["step"].item() + updates_in(new_rows))
    assert final["wall_s"] > saved["wall_s"]
    summary = json.loads((second / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["resumed_from"] == str(first)
    assert summary["episodes"] == final["episodes"]
    assert (second / "learning_curve.png").stat().st_size > 0
    assert load_checkpoint(first)["env_steps"] == n  # the source run is left as it was


def test_main_process_killed_leaves_no_worker_and_resume_drops_rows_past_the_checkpoint(
        tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlplug", *BASE, "executor.workers=2", "total_steps=100000000",
         "checkpoint.every_steps=20000", "logger.train_log_every_s=0.2",
         f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + HANG_GUARD_S
    # Wait for a periodic checkpoint and for rows well past it (what a crash leaves behind), but
    # far from the next checkpoint, so that none is written between this check and the kill.
    while not ((run_dir / "checkpoint.pt").exists()
               and 2000 < max((r.get("env_step", 0) for r in read_metrics(run_dir / "metrics.jsonl")),
                              default=0) - load_checkpoint(run_dir)["env_steps"] < 10000):
        assert proc.poll() is None and time.monotonic() < deadline, "the run never checkpointed"
        time.sleep(0.1)
    processes = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)  # a crash: no handler runs, no final checkpoint
    proc.wait(timeout=HANG_GUARD_S)

    _, left = psutil.wait_procs(processes, timeout=60)  # orphaned workers notice and leave
    assert not left, f"processes left behind: {[p.pid for p in left]}"
    assert not (run_dir / "summary.json").exists()
    crashed = load_checkpoint(run_dir)
    assert crashed["env_steps"] >= 20000 and all_finite(crashed["algorithm"])
    before = read_metrics(run_dir / "metrics.jsonl")
    assert max(r["env_step"] for r in before) > crashed["env_steps"]

    # Resume in place: the run directory goes on.
    target = crashed["env_steps"] + 1000
    resumed = rlplug(*RUN, f"resume={run_dir}", f"total_steps={target}", f"hydra.run.dir={run_dir}",
                     cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = read_metrics(run_dir / "metrics.jsonl")
    kept = [r for r in before if r["env_step"] <= crashed["env_steps"]]
    assert rows[:len(kept)] == kept
    assert all(r["env_step"] > crashed["env_steps"] for r in rows[len(kept):])
    assert load_checkpoint(run_dir)["env_steps"] == target


@pytest.mark.parametrize("failure", [OSError("No space left on device"), KeyboardInterrupt()],
                         ids=["disk-full", "ctrl-c"])
def test_checkpoint_write_that_fails_midway_keeps_the_previous_checkpoint(failure, tmp_path,
                                                                          monkeypatch):
    path = tmp_path / "checkpoint.pt"
    good = {"algorithm": {"w": torch.arange(4.0)}, "config": {}, "env_steps": 100}
    save_checkpoint(path, good)
    real_save = torch.save

    def save_half_then_fail(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)  # some bytes reached the disk, then the write died
        raise failure

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(type(failure)):
        save_checkpoint(path, {**good, "algorithm": {"w": torch.zeros(4)}, "env_steps": 200})

    monkeypatch.setattr(torch, "save", real_save)
    kept = load_checkpoint(path)
    assert kept["env_steps"] == 100 and torch.equal(kept["algorithm"]["w"], torch.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left


def test_truncated_checkpoint_is_reported_as_corrupt(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"algorithm": {"w": torch.ones(1000)}, "config": {}, "env_steps": 1})
    path.write_bytes(path.read_bytes()[:500])

    with pytest.raises(UserError, match="is corrupt or unreadable"):
        load_checkpoint(tmp_path)


def test_all_finite_finds_nan_and_inf_anywhere_in_a_state():
    state = {"model": {"w": torch.ones(3)}, "optimizer": {"step": torch.tensor(5.0),
                                                          "kind": "adam"}}
    assert all_finite(state)
    state["model"]["w"][1] = float("nan")
    assert not all_finite(state)
    assert not all_finite([torch.tensor([float("inf")])])
    assert all_finite({"steps": torch.tensor([1, 2], dtype=torch.int64)})
