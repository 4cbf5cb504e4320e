"""The default command learns with A3C's tuned defaults: ``python -m rlplug`` (CartPole-v1, the
process executor with 2 workers, tuned/a3c_cartpole.yaml) with a short budget.

Measured with a 100k-step budget, seeds 0-2: the best mean return of 100 consecutive episodes was
270, 339 and 491 and the kept policy's evaluation return 500 in all three (with the earlier
learning rate decaying over the budget: 156, 212 and 424; with 60k steps then: 92-138, too close
to the threshold); random play scores about 22. (The mean of the *last* 100 episodes of so short a run is lower than the best:
when the run stops, the episodes still running are the long ones, so the last 100 that finished
lean towards short ones.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RANDOM_RETURN = 22.0


@pytest.mark.slow
@pytest.mark.alone
def test_default_command_with_tuned_defaults_learns_cartpole(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run([sys.executable, "-m", "rlplug", "total_steps=100000", "seed=0",
                           "logger=none", "progress=false", f"hydra.run.dir={run_dir}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    config = summary["config"]
    # the default command trained CartPole with A3C's tuned settings, not the generic ones
    assert config["env"]["id"] == "CartPole-v1" and config["executor"]["name"] == "process"
    assert config["algo"]["max_grad_norm"] == 0.5 and config["algo"]["gae_lambda"] == 0.95
    assert summary["status"] == "completed" and summary["env_steps"] == 100000
    best = summary["return_mean100_best"]
    assert best > 100.0, f"best mean return of 100 episodes {best:.1f} <= 100 (random: 22)"
    # the kept policy was evaluated (deterministic, 10 episodes) and beats random play too
    assert summary["eval_return_best"] > 2 * RANDOM_RETURN
