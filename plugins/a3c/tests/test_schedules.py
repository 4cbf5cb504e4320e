"""The learning rate and the entropy bonus follow their schedules over the run's env steps, and a
worker reports both in its train statistics."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_lr_and_entropy_coef_follow_their_schedule_to_total_steps(make_worker, schedule) -> None:
    worker = make_worker("env=cartpole", "total_steps=1000", "algo.lr=1e-3",
                         "algo.entropy_coef=0.02", f"algo.lr_schedule={schedule}",
                         f"algo.entropy_schedule={schedule}")
    counters = worker.ctx.counters
    seen = []
    for steps in (0, 250, 500, 1000):
        counters.add(steps - counters.env_steps)
        seen += [worker.learning_rate(), worker.entropy_coef()]
    if schedule == "constant":
        assert seen == [1e-3, 0.02] * 4
    else:  # linear: from the configured value at step 0 to 0 at total_steps
        assert seen == pytest.approx([1e-3, 0.02, 7.5e-4, 0.015, 5e-4, 0.01, 0.0, 0.0])


def test_schedules_are_independent_and_the_worker_reports_the_coefficient(make_worker) -> None:
    worker = make_worker("env=cartpole", "total_steps=1000", "algo.lr_schedule=constant",
                         "algo.entropy_schedule=linear", "algo.envs_per_worker=4",
                         "algo.n_steps=5")
    worker.ctx.counters.add(500)
    assert worker.learning_rate() == worker.cfg.lr
    assert worker.entropy_coef() == pytest.approx(worker.cfg.entropy_coef / 2)
    worker.pull()
    segment, _ = worker.collect(20)
    stats = worker.update(segment, env_step=520)
    assert stats["lr"] == worker.cfg.lr
    assert stats["entropy_coef"] == pytest.approx(worker.cfg.entropy_coef / 2)
