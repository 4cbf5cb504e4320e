"""A3C learns: CartPole-v1 with the tuned preset, the process executor and 2 workers.

Measured with `python -m rlplug experiment=cartpole executor=process executor.workers=2` (seeds
0, 1, 2; random play: ~22), the mean return of the last 100 episodes was 218-369, 431-485 and
277-403 at 60k env steps (two runs each: asynchrony makes runs differ) and 350, 497, 377 at 80k.
The default hyper-parameters (lr 7e-4, n_steps 5) reach 208, 388, 375 at 60k and 463, 499, 475 at
100k. 80k steps with the preset and a threshold of 150 leave a wide margin.
"""

from __future__ import annotations

import pytest

from rlplug import messages

RANDOM_RETURN = 22.0
THRESHOLD = 150.0


@pytest.mark.slow
@pytest.mark.alone
def test_a3c_learns_cartpole_with_two_process_workers(train_run, metrics_rows, tmp_path) -> None:
    result = train_run("experiment=cartpole", "executor=process", "executor.workers=2",
                       "total_steps=80000", "seed=0", run_dir=tmp_path / "run")
    assert result.status == "completed"
    assert result.summary["env_steps"] == 80000
    returns = [r["return"] for r in metrics_rows(tmp_path / "run") if r["kind"] == messages.EPISODE]
    first, last = returns[:10], returns[-100:]
    assert sum(first) / len(first) < 2 * RANDOM_RETURN, "the run should start near random play"
    final = result.summary["return_mean100_final"]
    assert final == pytest.approx(sum(last) / len(last))
    assert final > THRESHOLD, f"mean return of the last 100 episodes {final:.1f} <= {THRESHOLD}"
