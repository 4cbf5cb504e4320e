"""An env and a worker function for the worker-failure tests (the env that raises is
``a3c_test_support:FaultyCartPole-v0``).

Importing this module registers the env; runs name it ``env.id=a3c_failure_helpers:Paced-v0``
(gymnasium's ``module:id`` form imports the module, in the main process and in every spawned
worker, as long as this directory is on ``PYTHONPATH``/``sys.path``). The worker function is
module-level so that the ``spawn`` start method can pickle it by name.
"""

from __future__ import annotations

import os
import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlplug.contracts import WorkerContext


class PacedEnv(gym.Env):
    """20-step episodes with a 4-float observation and 2 actions; each step takes at least
    ``step_s`` seconds, so a run lasts long enough for what a test does meanwhile (a periodic
    checkpoint, killing a worker) however fast the machine. The reward is the action, or NaN once
    the env made ``nan_after`` steps (a good checkpoint first, then a non-finite loss)."""

    def __init__(self, step_s: float = 0.001, nan_after: int | None = None) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.nan_after = nan_after
        self.step_s = step_s
        self.steps = 0
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self._t = 0
        return self.np_random.uniform(-1, 1, 4).astype(np.float32), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        time.sleep(self.step_s)
        self.steps += 1
        self._t += 1
        obs = self.np_random.uniform(-1, 1, 4).astype(np.float32)
        poisoned = self.nan_after is not None and self.steps > self.nan_after
        reward = float("nan") if poisoned else float(action)
        return obs, reward, self._t >= 20, False, {}


if "Paced-v0" not in gym.registry:
    gym.register("Paced-v0", entry_point=PacedEnv)


def ignore_stop(ctx: WorkerContext) -> None:
    """A worker stuck outside the stop check (e.g. in a hung env.step): it never returns."""
    ctx.send({"kind": "train", "worker": ctx.rank, "env_step": 0, "pid": os.getpid()})
    while True:
        time.sleep(0.1)
