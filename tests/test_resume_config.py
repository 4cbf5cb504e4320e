"""``resume=<run dir>`` through the real CLI: alone, it continues the run with the config saved in
its checkpoint (not the defaults); keys given beside it apply when the saved model still fits
them, and one that changes the model or what it sees is refused in one line naming the key,
before anything starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlplug.checkpoint import load_checkpoint

# A run nothing in the defaults would reproduce: another env, another network shape, seed, executor.
FIRST = ["env=pendulum", "network.hidden_sizes=[32]", "seed=5", "executor=thread",
         "executor.workers=1", "logger.mode=disabled", "progress=false",
         "checkpoint.every_steps=500", "total_steps=12000",
         "algo.envs_per_worker=1"]  # slow enough that Ctrl-C lands before the budget


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory: pytest.TempPathFactory, ctrl_c) -> Path:
    """A run stopped with Ctrl-C once its first periodic checkpoint is written."""
    cwd = tmp_path_factory.mktemp("resume_config")
    run_dir = cwd / "first"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.Popen([sys.executable, "-m", "rlplug", *FIRST, f"hydra.run.dir={run_dir}"],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    stderr = ctrl_c(proc, (run_dir / "checkpoint.pt").exists)
    assert proc.returncode == 130, stderr[-3000:]
    assert load_checkpoint(run_dir)["env_steps"] < 12000
    return run_dir


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_resume_alone_continues_with_the_saved_config(interrupted_run: Path, run_rlplug,
                                                      tmp_path: Path) -> None:
    saved = load_checkpoint(interrupted_run)
    run_dir = tmp_path / "resumed"
    proc = run_rlplug(f"resume={interrupted_run}", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = _summary(run_dir)
    assert summary["status"] == "completed" and summary["env_steps"] == 12000
    assert summary["resumed_from"] == str(interrupted_run)
    config = summary["config"]
    assert config["env"]["id"] == "Pendulum-v1" and config["network"]["hidden_sizes"] == [32]
    assert (config["seed"], config["executor"]["name"], config["logger"]["mode"]) == (
        5, "thread", "disabled")
    assert {k: v for k, v in config.items() if k != "resume"} == {
        k: v for k, v in saved["config"].items() if k != "resume"}
    assert not (run_dir / "wandb").exists()  # logger.mode=disabled came from the checkpoint


def test_compatible_keys_beside_resume_apply(interrupted_run: Path, run_rlplug,
                                             tmp_path: Path) -> None:
    run_dir = tmp_path / "longer"
    proc = run_rlplug(f"resume={interrupted_run}", "total_steps=13000", "executor=serial",
                      "executor.workers=2", "checkpoint.every_steps=0", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = _summary(run_dir)
    assert summary["status"] == "completed" and summary["env_steps"] == 13000
    config = summary["config"]
    assert config["total_steps"] == 13000 and config["checkpoint"]["every_steps"] == 0
    assert (config["executor"]["name"], config["executor"]["workers"]) == ("serial", 2)
    assert config["env"]["id"] == "Pendulum-v1" and config["network"]["hidden_sizes"] == [32]


@pytest.mark.parametrize("override, fragments", [
    ("network.hidden_sizes=[16]", ["network.hidden_sizes=[32]", "network.hidden_sizes=[16]"]),
    ("env=cartpole", ["env.id='Pendulum-v1'", "env.id='CartPole-v1'"]),
    ("experiment=pendulum", ["experiment=pendulum cannot be combined with resume="]),
], ids=["network_shape", "other_env", "preset"])
def test_incompatible_key_beside_resume_is_one_line_naming_it(
        override: str, fragments: list[str], interrupted_run: Path, run_rlplug, one_line_error,
        tmp_path: Path) -> None:
    run_dir = tmp_path / "refused"
    proc = run_rlplug(f"resume={interrupted_run}", override, f"hydra.run.dir={run_dir}")
    line = one_line_error(proc)
    for fragment in fragments:
        assert fragment in line, line
    assert not run_dir.exists()  # refused before the run started
