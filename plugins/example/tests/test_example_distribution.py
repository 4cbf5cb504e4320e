"""The example distribution as a user gets it: built into a wheel, installed (without
dependencies) into a temporary directory, listed by ``python -m rlplug --list`` and trained from the
command line with every one of its plugins (and its tuned defaults), then evaluated."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

EXAMPLE_DIR = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300  # a hang guard only
RANDOM_POLICY_RETURN = -0.14  # mean return of uniformly random actions in env=corridor


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distribution installed into a fresh target directory, from a copy of its source (so
    the build leaves no egg-info or build/ in the repository)."""
    tmp = tmp_path_factory.mktemp("example")
    source = tmp / "rlplug-example"
    shutil.copytree(EXAMPLE_DIR, source, ignore=shutil.ignore_patterns(
        "tests", "build", "*.egg-info", "__pycache__"))
    target = tmp / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps",
                           "--no-build-isolation", "-q", "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return target


def rlplug(module: str, *args: str, site: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)


def test_the_installed_distribution_ships_its_presets(installed: Path) -> None:
    conf = installed / "rlplug_example" / "conf"
    assert (conf / "env" / "corridor.yaml").is_file()
    assert (conf / "tuned" / "reinforce_corridor.yaml").is_file()
    assert not (installed / "tests").exists()


def test_list_shows_every_example_plugin_with_its_distribution(installed: Path,
                                                               tmp_path: Path) -> None:
    proc = rlplug("rlplug", "--list", site=installed, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    for group, name in [("rlplug.algos", "reinforce"), ("rlplug.networks", "gru"),
                        ("rlplug.executors", "simple_threads"), ("rlplug.envs", "Corridor-v0"),
                        ("rlplug.configs", "example")]:
        section = lines[lines.index(f"{group}:") + 1:]
        rows = [line for line in section if line.split()[:1] == [name]]
        assert rows, f"{name} missing under {group}:\n{proc.stdout}"
        assert "rlplug-example" in rows[0] and rows[0].endswith("[ok]"), rows[0]


def test_the_example_trains_from_the_command_line_and_learns(installed: Path,
                                                             tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = rlplug("rlplug", "algo=reinforce", "network=gru", "executor=simple_threads",
                  "env=corridor", "logger=none", "progress=false", f"hydra.run.dir={run_dir}",
                  site=installed, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    summary = json.loads((run_dir / "summary.json").read_text())
    config = summary["config"]
    assert summary["status"] == "completed" and summary["error"] is None
    assert (config["algo"]["name"], config["network"]["name"], config["executor"]["name"],
            config["env"]["id"]) == ("reinforce", "gru", "simple_threads", "Corridor-v0")
    assert config["total_steps"] == 3000, "the tuned defaults (tuned/reinforce_corridor.yaml) set the budget"
    assert summary["env_steps"] == 3000 and summary["workers"] == 2
    assert summary["plugins"]["rlplug-example"] == "0.1.0"
    # random actions: mean return -0.14, success in 30% of episodes; walking right: about 0.91
    assert summary["return_mean100_final"] > 0.6, summary
    assert summary["success_rate_100"] >= 0.9, summary

    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    episodes = [r for r in rows if r["kind"] == "episode"]
    assert len(episodes) == summary["episodes"]
    assert {r["worker"] for r in episodes} == {0, 1}
    assert all(isinstance(r["success"], bool) for r in episodes)
    assert any(r["kind"] == "train" and "policy_loss" in r for r in rows)

    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert checkpoint["env_steps"] == 3000
    assert checkpoint["algorithm"]["model"]["steps"] > 0  # SharedAdamModel's update count

    proc = rlplug("rlplug.evaluate", str(run_dir), "episodes=5", site=installed, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert evaluation["return_mean"] > 0.6, evaluation
