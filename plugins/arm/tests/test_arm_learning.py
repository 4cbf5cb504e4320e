"""A3C learns the arm: a short ``experiment=arm`` run (``python -m rlplug`` in a subprocess, two
process workers) ends far above a random policy, and its episode rows carry the env's success.

Measured with the preset (seeds 0 and 1): the mean return of the last 30 episodes was about -56
after 20k env steps and +1 to +9 after 30k; uniformly random actions average about -265 over
300 steps. Success in 95% of the last 100 episodes comes at about 45k (benchmarks/arm.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlplug_arm.env import ArmEnv

TOTAL_STEPS = 30_000
MARGIN = 150.0  # the trained policy's mean return must beat random play by this much


def random_policy_return(episodes: int = 20) -> float:
    env = ArmEnv()
    env.action_space.seed(0)
    returns = []
    for episode in range(episodes):
        env.reset(seed=1000 + episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += reward
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


@pytest.mark.alone
def test_a3c_beats_a_random_policy_on_the_easy_arm(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "rlplug", "experiment=arm", f"total_steps={TOTAL_STEPS}", "seed=0",
         "logger.mode=disabled", "progress=false", "checkpoint.every_steps=0",
         f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["env_steps"] == TOTAL_STEPS
    assert summary["config"]["env"]["id"] == "RlplugArm-v0"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    episodes = [r for r in rows if r["kind"] == "episode"]
    assert all(isinstance(r["success"], bool) for r in episodes), "the env reports is_success"
    assert summary["success_rate_100"] == sum(r["success"] for r in episodes[-100:]) / min(
        100, len(episodes))

    random_return = random_policy_return()
    assert random_return < -150  # sanity: random play stays far from the goal
    first = np.mean([r["return"] for r in episodes[:10]])
    last = np.mean([r["return"] for r in episodes[-30:]])
    assert first < random_return + 100, f"the run should start near random play ({first:.1f})"
    assert last > random_return + MARGIN, (
        f"mean return of the last 30 episodes {last:.1f} is not clearly above random play "
        f"({random_return:.1f})")
