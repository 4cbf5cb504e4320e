"""Support code for the A3C foundation tests that must be importable by name in spawned children.

* ``FaultyCartPole-v0``: CartPole whose ``step`` raises after ``fail_after`` steps; a run selects
  it with ``env.id=a3c_test_support:FaultyCartPole-v0`` (gymnasium's ``module:id`` form imports
  this module first, in spawned worker processes too, as long as this directory is on
  ``sys.path``/``PYTHONPATH``).
* Functions run in ``torch.multiprocessing`` spawn children by the shared-optimizer tests (they
  must be module-level in an importable module for ``spawn`` to find them).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from rlplug.contracts import WorkerContext
from rlplug.counters import SharedCounters

FAULTY_ID = "FaultyCartPole-v0"
FAILURE_TEXT = "injected env failure"


class FaultyCartPole(CartPoleEnv):
    """CartPole-v1 that raises ``RuntimeError`` in its ``fail_after + 1``-th step."""

    def __init__(self, fail_after: int = 300, **kwargs: Any):
        super().__init__(**kwargs)
        self.fail_after = fail_after
        self.steps_done = 0

    def step(self, action: Any) -> Any:
        self.steps_done += 1
        if self.steps_done > self.fail_after:
            raise RuntimeError(f"{FAILURE_TEXT} after {self.fail_after} steps")
        return super().step(action)


if FAULTY_ID not in gym.registry:
    gym.register(FAULTY_ID, entry_point=FaultyCartPole, max_episode_steps=500)


def optimizer_steps_in_child(optimizers: list[Any], grads: list[torch.Tensor], lr: float) -> None:
    """Apply ``grads`` one after the other through each (shared-memory) optimizer."""
    for optimizer in optimizers:
        for grad in grads:
            optimizer.step(grad, lr)


def a3c_updates_in_child(algos: list[Any], seed: int, updates: int, result: Any) -> None:
    """Run ``updates`` A3C worker updates on each algorithm's shared model, then report the step
    counts the child sees through the ``result`` queue."""
    from rlplug_a3c.worker import A3CWorker

    for algo in algos:
        ctx = WorkerContext(rank=0, seed=seed, counters=SharedCounters(), model=algo.model, total_steps=10**9,
                            send=lambda _msg: None, stop_requested=lambda: False)
        worker = A3CWorker(ctx, algo.cfg, algo.env_cfg, algo.head, algo.build_network)
        for _ in range(updates):
            worker.pull()
            segment, _ = worker.collect(algo.cfg.n_steps * algo.cfg.envs_per_worker)
            worker.update(segment, 0)
    result.put([algo.optimizer.step_count for algo in algos])


def optimizer_steps_after(start: Any, optimizer: Any, steps: int) -> None:
    """Wait for ``start`` (so that several children step at the same time), then take ``steps``
    optimizer steps with a constant gradient."""
    grad = torch.ones_like(optimizer.params)
    start.wait()
    for _ in range(steps):
        optimizer.step(grad, 1e-6)
